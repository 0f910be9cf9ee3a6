/**
 * OpenTelemetry spans for store operations, through `@opentelemetry/api` only (bring your own
 * SDK). Subscribes to the core's store tracing channel; until `instrumentOpenTelemetry()` is
 * called nothing is traced, and `close()` stops it.
 *
 * @example
 * import { instrumentOpenTelemetry } from 'elastic-session/otel';
 * // after the OpenTelemetry SDK is started:
 * const tracing = instrumentOpenTelemetry();
 * // ... on shutdown:
 * tracing.close();
 */
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Span, Tracer } from '@opentelemetry/api';
import { storeChannel } from './core/telemetry.js';
import type { StoreOperationContext } from './core/telemetry.js';
import { errorKind, labelValue } from './telemetry-labels.js';

export interface OpenTelemetryOptions {
  /** The tracer spans come from. @default trace.getTracer('elastic-session') */
  tracer?: Tracer;
}

export interface OpenTelemetryInstrumentation {
  /** Stops creating spans. Spans already started still end. Idempotent. */
  close(): void;
}

/** Span attribute names. Values are store and operation names and error codes, never IDs, keys or data. */
export const SPAN_ATTRIBUTES = {
  store: 'elastic_session.store',
  operation: 'elastic_session.operation',
  errorType: 'error.type',
} as const;

/**
 * Starts a client span named `elastic-session <operation>` around every store call of every
 * manager in the process, child of the span active when the call began. A failed call sets the
 * span status to error with the error's code (`ESESS_STORE_UNAVAILABLE:timeout`, `ECONNREFUSED`)
 * as `error.type`; exceptions are not recorded, because driver messages may name keys.
 */
export function instrumentOpenTelemetry(options: OpenTelemetryOptions = {}): OpenTelemetryInstrumentation {
  const tracer = options.tracer ?? trace.getTracer('elastic-session');
  const spans = new WeakMap<object, Span>();
  let closed = false;
  let inFlight = 0;

  const finish = (ctx: StoreOperationContext & { error?: unknown }): void => {
    const span = spans.get(ctx);
    if (!span) return;
    spans.delete(ctx);
    inFlight--;
    // Stay subscribed after close() until the spans already started have ended.
    if (closed && inFlight === 0) storeChannel.unsubscribe(handlers);
    if (ctx.error !== undefined) {
      const kind = errorKind(ctx.error);
      span.setAttribute(SPAN_ATTRIBUTES.errorType, kind);
      span.setStatus({ code: SpanStatusCode.ERROR, message: kind });
    }
    span.end();
  };

  const handlers = {
    start(ctx: StoreOperationContext): void {
      if (closed) return;
      const operation = labelValue(ctx.operation);
      const span = tracer.startSpan(
        `elastic-session ${operation}`,
        { kind: SpanKind.CLIENT, attributes: { [SPAN_ATTRIBUTES.store]: labelValue(ctx.store), [SPAN_ATTRIBUTES.operation]: operation } },
        context.active(),
      );
      spans.set(ctx, span);
      inFlight++;
    },
    end(ctx: StoreOperationContext & { error?: unknown }): void {
      // A call that threw before returning its promise never reaches asyncEnd.
      if (ctx.error !== undefined) finish(ctx);
    },
    asyncStart(): void {},
    asyncEnd: finish,
    error(): void {},
  };

  storeChannel.subscribe(handlers);
  return {
    close() {
      if (closed) return;
      closed = true;
      if (inFlight === 0) storeChannel.unsubscribe(handlers);
    },
  };
}
