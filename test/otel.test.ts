import { AsyncLocalStorage } from 'node:async_hooks';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Attributes, AttributeValue, Context, ContextManager, Span, SpanContext, SpanOptions, SpanStatus, Tracer } from '@opentelemetry/api';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/core/manager.js';
import { storeChannel } from '../src/core/telemetry.js';
import type { SessionStore } from '../src/core/types.js';
import { instrumentOpenTelemetry, SPAN_ATTRIBUTES } from '../src/otel.js';
import type { OpenTelemetryInstrumentation } from '../src/otel.js';
import { memoryStore } from '../src/stores/memory.js';
import { builtDist, failingStore, randomSecret, runModule } from './helpers/service.js';

/** A span that records what it is told: an implementation of the API interface, as an SDK's would be. */
class RecordedSpan implements Span {
  readonly attributes: Attributes = {};
  status: SpanStatus = { code: SpanStatusCode.UNSET };
  ended = false;
  exceptions = 0;
  readonly #context: SpanContext;

  constructor(
    public name: string,
    readonly options: SpanOptions,
    readonly parent: Span | undefined,
  ) {
    Object.assign(this.attributes, options.attributes);
    this.#context = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: Math.random().toString(16).slice(2, 18).padEnd(16, '0'), traceFlags: 1 };
  }

  spanContext(): SpanContext {
    return this.#context;
  }
  setAttribute(key: string, value: AttributeValue): this {
    this.attributes[key] = value;
    return this;
  }
  setAttributes(attributes: Attributes): this {
    Object.assign(this.attributes, attributes);
    return this;
  }
  addEvent(): this {
    return this;
  }
  addLink(): this {
    return this;
  }
  addLinks(): this {
    return this;
  }
  setStatus(status: SpanStatus): this {
    this.status = status;
    return this;
  }
  updateName(name: string): this {
    this.name = name;
    return this;
  }
  end(): void {
    this.ended = true;
  }
  isRecording(): boolean {
    return !this.ended;
  }
  recordException(): void {
    this.exceptions++;
  }
}

class RecordingTracer implements Tracer {
  readonly spans: RecordedSpan[] = [];

  startSpan(name: string, options: SpanOptions = {}, parentContext: Context = context.active()): Span {
    const span = new RecordedSpan(name, options, trace.getSpan(parentContext));
    this.spans.push(span);
    return span;
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...rest: [F] | [SpanOptions, F] | [SpanOptions, Context, F]): ReturnType<F> {
    const fn = rest.at(-1) as F;
    const options = (rest.length > 1 ? rest[0] : {}) as SpanOptions;
    const parent = (rest.length > 2 ? rest[1] : context.active()) as Context;
    const span = this.startSpan(name, options, parent);
    return context.with(trace.setSpan(parent, span), () => fn(span)) as ReturnType<F>;
  }
}

/** The AsyncLocalStorage context manager an SDK would install, in a few lines. */
class AsyncContextManager implements ContextManager {
  readonly #storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.#storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.#storage.run(ctx, () => fn.call(thisArg, ...args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.#storage.disable();
    return this;
  }
}

beforeAll(() => {
  context.setGlobalContextManager(new AsyncContextManager());
});
afterAll(() => {
  context.disable();
});

const open: OpenTelemetryInstrumentation[] = [];
afterEach(() => {
  for (const instrumentation of open.splice(0)) instrumentation.close();
});

function instrument(tracer: Tracer): OpenTelemetryInstrumentation {
  const instrumentation = instrumentOpenTelemetry({ tracer });
  open.push(instrumentation);
  return instrumentation;
}

function manager(store: SessionStore): SessionManager {
  return new SessionManager({ store, secrets: [randomSecret()] });
}

describe('instrumentOpenTelemetry', () => {
  it('creates one ended client span per store call, named by operation, with only the store and operation as attributes', async () => {
    const tracer = new RecordingTracer();
    instrument(tracer);
    const sessions = manager(memoryStore());
    const session = sessions.create({ data: { secret: 'hunter2' }, userId: 'alice' });
    await sessions.save(session);
    await sessions.load(session.id);
    await sessions.destroy(session.id);
    expect(tracer.spans.map((span) => span.name)).toEqual(['elastic-session create', 'elastic-session load', 'elastic-session destroy']);
    for (const span of tracer.spans) {
      expect(span.ended).toBe(true);
      expect(span.options.kind).toBe(SpanKind.CLIENT);
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
      expect(Object.keys(span.attributes).sort()).toEqual([SPAN_ATTRIBUTES.operation, SPAN_ATTRIBUTES.store].sort());
      expect(span.attributes[SPAN_ATTRIBUTES.store]).toBe('memory');
    }
    const everything = JSON.stringify(tracer.spans.map((span) => [span.name, span.attributes]));
    for (const secret of [session.id, 'hunter2', 'alice']) expect(everything).not.toContain(secret);
  });

  it('makes store spans children of the span active when the call began', async () => {
    const tracer = new RecordingTracer();
    instrument(tracer);
    const sessions = manager(memoryStore());
    const session = sessions.create({ data: { a: 1 } });
    await tracer.startActiveSpan('GET /cart', async (request) => {
      await sessions.save(session);
      request.end();
    });
    const [requestSpan, storeSpan] = tracer.spans;
    expect(storeSpan!.name).toBe('elastic-session create');
    expect(storeSpan!.parent).toBe(requestSpan);
  });

  it('marks a failed call as an error with its code as error.type, and records no exception message', async () => {
    const tracer = new RecordingTracer();
    instrument(tracer);
    await expect(manager(failingStore()).load('A'.repeat(43))).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
    const [span] = tracer.spans;
    expect(span).toMatchObject({ name: 'elastic-session load', ended: true, exceptions: 0 });
    expect(span!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'ECONNREFUSED' });
    expect(span!.attributes[SPAN_ATTRIBUTES.errorType]).toBe('ECONNREFUSED');
    expect(JSON.stringify(span!.status)).not.toContain('10.0.0.7');
  });

  it('after close() starts no span, still ends the ones in flight, then leaves the channel', async () => {
    const tracer = new RecordingTracer();
    const instrumentation = instrumentOpenTelemetry({ tracer });
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let arrived: () => void = () => {};
    const reached = new Promise<void>((resolve) => (arrived = resolve));
    const inner = memoryStore();
    const slow: SessionStore = Object.assign(Object.create(inner) as SessionStore, { load: async (key: string) => (arrived(), await gate, inner.load(key)) });
    const sessions = manager(slow);
    const pending = sessions.load('A'.repeat(43));
    await reached;
    instrumentation.close();
    expect(storeChannel.start.hasSubscribers).toBe(true);
    await manager(memoryStore()).load('B'.repeat(43));
    release();
    await pending;
    expect(tracer.spans.map((span) => [span.name, span.ended])).toEqual([['elastic-session load', true]]);
    expect(storeChannel.start.hasSubscribers).toBe(false);
  });

  it('uses the global tracer provider when no tracer is given (a no-op without an SDK)', async () => {
    instrument(trace.getTracer('test'));
    const instrumentation = instrumentOpenTelemetry();
    open.push(instrumentation);
    const sessions = manager(memoryStore());
    await expect(sessions.load('A'.repeat(43))).resolves.toBeNull();
  });
});

describe('elastic-session/otel as built', () => {
  const built = (file: string): string => JSON.stringify(pathToFileURL(join(builtDist(), file)).href);

  beforeAll(() => {
    builtDist();
  }, 180_000);

  it('loads and traces without prom-client: neither imported (it looks uninstalled) nor required', async () => {
    const program = `
      const { createRequire } = await import('node:module');
      const { instrumentOpenTelemetry } = await import(${built('otel.js')});
      instrumentOpenTelemetry().close();
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((path) => path.includes('/node_modules/prom-client/'));
      console.log(JSON.stringify(loaded));`;
    const result = await runModule(program, { hide: ['prom-client'] });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('[]\n');
    expect(result.code).toBe(0);
  });

  it('the check above would catch it: elastic-session/metrics fails to load where prom-client looks uninstalled', async () => {
    const result = await runModule(`await import(${built('metrics.js')});`, { hide: ['prom-client'] });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/ERR_MODULE_NOT_FOUND|Cannot find package 'prom-client'/);
  });
});
