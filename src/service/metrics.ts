import diagnostics from 'node:diagnostics_channel';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { SessionError } from '../core/errors.js';
import { CHANNELS, storeChannel } from '../core/telemetry.js';
import type { SessionEvent, StoreOperationContext } from '../core/telemetry.js';

export interface ServiceMetrics {
  readonly registry: Registry;
  /** One finished HTTP request; `route` is the route template, never the concrete path. */
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  /** One problem response, by its stable code. */
  countError(code: string): void;
  requestStarted(): void;
  requestEnded(): void;
  /** A sweep batch run by the service. */
  countSweep(removed: number): void;
  /** Unsubscribes from the telemetry channels. */
  close(): void;
}

export interface MetricsOptions {
  /** Also collect Node.js process metrics (CPU, memory, event loop). Once per process. @default false */
  defaultMetrics?: boolean;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const KNOWN_METHODS = new Set(['GET', 'POST', 'PATCH', 'PUT', 'DELETE', 'HEAD', 'OPTIONS']);
const SESSION_EVENTS = ['created', 'updated', 'regenerated', 'destroyed', 'expired', 'revoked'] as const;

/** A store error's kind as a low-cardinality label: our code, a driver's upper-case code, or "unknown". */
export function errorKind(error: unknown): string {
  if (error instanceof SessionError) return error.code;
  const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,39}$/.test(code) ? code : 'unknown';
}

/** A label value from telemetry, bounded so a misbehaving publisher cannot explode cardinality. */
function label(value: unknown): string {
  return typeof value === 'string' && /^[A-Za-z0-9_:.-]{1,40}$/.test(value) ? value : 'other';
}

/**
 * A prom-client registry for one service, fed by the `node:diagnostics_channel` telemetry of
 * the core. Channels are process-wide, so store and session counters include every manager in
 * the process (one service per process in deployment).
 */
export function createMetrics(options: MetricsOptions = {}): ServiceMetrics {
  const registry = new Registry();
  const registers = [registry];
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry });

  const httpDuration = new Histogram({
    name: 'elastic_session_http_request_duration_seconds',
    help: 'HTTP request latency by method, route template and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const httpInFlight = new Gauge({ name: 'elastic_session_http_requests_in_flight', help: 'HTTP requests being served', registers });
  const errors = new Counter({
    name: 'elastic_session_errors_total',
    help: 'Problem responses by stable error code',
    labelNames: ['code'] as const,
    registers,
  });
  const storeDuration = new Histogram({
    name: 'elastic_session_store_operation_duration_seconds',
    help: 'Store operation latency by store, operation and outcome',
    labelNames: ['store', 'operation', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const storeErrors = new Counter({
    name: 'elastic_session_store_errors_total',
    help: 'Failed store operations by store, operation and error kind',
    labelNames: ['store', 'operation', 'kind'] as const,
    registers,
  });
  const sessionCounters = Object.fromEntries(
    SESSION_EVENTS.map((type) => [
      type,
      new Counter({ name: `elastic_session_sessions_${type}_total`, help: `Sessions ${type}, by store`, labelNames: ['store'] as const, registers }),
    ]),
  ) as Record<(typeof SESSION_EVENTS)[number], Counter<'store'>>;
  const cookiesRejected = new Counter({
    name: 'elastic_session_cookies_rejected_total',
    help: 'Session cookies that failed format or signature checks, by reason',
    labelNames: ['reason'] as const,
    registers,
  });
  const corrupt = new Counter({
    name: 'elastic_session_store_corrupt_records_total',
    help: 'Stored records that could not be read and were treated as absent, by store',
    labelNames: ['store'] as const,
    registers,
  });
  const conflicts = new Counter({
    name: 'elastic_session_conflicts_total',
    help: 'Compare-and-swap attempts that lost to a concurrent write, by store',
    labelNames: ['store'] as const,
    registers,
  });
  const sweeps = new Counter({ name: 'elastic_session_sweeps_total', help: 'Sweep batches run by this service', registers });
  const swept = new Counter({ name: 'elastic_session_swept_records_total', help: 'Expired records and dead tombstones removed by sweeps of this service', registers });

  const started = new WeakMap<object, bigint>();
  const storeHandlers = {
    start(context: StoreOperationContext): void {
      started.set(context, process.hrtime.bigint());
    },
    end(): void {},
    asyncStart(): void {},
    asyncEnd(context: StoreOperationContext & { error?: unknown }): void {
      const begin = started.get(context);
      if (begin === undefined) return;
      started.delete(context);
      const seconds = Number(process.hrtime.bigint() - begin) / 1e9;
      const outcome = 'error' in context && context.error !== undefined ? 'error' : 'ok';
      storeDuration.observe({ store: label(context.store), operation: label(context.operation), outcome }, seconds);
    },
    error(context: StoreOperationContext & { error?: unknown }): void {
      storeErrors.inc({ store: label(context.store), operation: label(context.operation), kind: errorKind(context.error) });
    },
  };
  const onSession = (message: unknown): void => {
    const event = message as SessionEvent;
    const counter = sessionCounters[event.type as (typeof SESSION_EVENTS)[number]] as Counter<'store'> | undefined;
    if (!counter) return;
    const count = typeof event.count === 'number' && event.count > 0 ? event.count : 1;
    counter.inc({ store: label(event.store) }, count);
  };
  const onCookieRejected = (message: unknown): void => {
    cookiesRejected.inc({ reason: label((message as { reason?: unknown }).reason) });
  };
  const onCorrupt = (message: unknown): void => {
    corrupt.inc({ store: label((message as { store?: unknown }).store) });
  };
  const onConflict = (message: unknown): void => {
    conflicts.inc({ store: label((message as { store?: unknown }).store) });
  };

  storeChannel.subscribe(storeHandlers);
  diagnostics.subscribe(CHANNELS.session, onSession);
  diagnostics.subscribe(CHANNELS.cookieRejected, onCookieRejected);
  diagnostics.subscribe(CHANNELS.corrupt, onCorrupt);
  diagnostics.subscribe(CHANNELS.conflict, onConflict);
  let closed = false;

  return {
    registry,
    observeRequest(method, route, status, seconds) {
      httpDuration.observe({ method: KNOWN_METHODS.has(method) ? method : 'other', route, status: String(status) }, seconds);
    },
    countError(code) {
      errors.inc({ code: label(code) });
    },
    requestStarted() {
      httpInFlight.inc();
    },
    requestEnded() {
      httpInFlight.dec();
    },
    countSweep(removed) {
      sweeps.inc();
      swept.inc(removed);
    },
    close() {
      if (closed) return;
      closed = true;
      storeChannel.unsubscribe(storeHandlers);
      diagnostics.unsubscribe(CHANNELS.session, onSession);
      diagnostics.unsubscribe(CHANNELS.cookieRejected, onCookieRejected);
      diagnostics.unsubscribe(CHANNELS.corrupt, onCorrupt);
      diagnostics.unsubscribe(CHANNELS.conflict, onConflict);
    },
  };
}
