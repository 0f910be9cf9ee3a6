/**
 * Prometheus metrics for elastic-session, fed by the `node:diagnostics_channel` telemetry of the
 * core: nothing is measured until `createSessionMetrics()` subscribes, and `close()` unsubscribes.
 *
 * @example
 * import express from 'express';
 * import { createSessionMetrics, metricsHandler } from 'elastic-session/metrics';
 *
 * const metrics = createSessionMetrics({ stores: [store] });
 * app.get('/metrics', metricsHandler(metrics));
 *
 * @example
 * // Fastify, Hono or anything else: serve the text yourself.
 * app.get('/metrics', async (_request, reply) => reply.type(metrics.contentType).send(await metrics.text()));
 */
import diagnostics from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { configError } from './core/errors.js';
import { CHANNELS, storeChannel } from './core/telemetry.js';
import type { AnomalyEvent, SessionEvent, StoreOperationContext } from './core/telemetry.js';
import type { NearCacheEvent } from './stores/near-cache/telemetry.js';
import { errorKind, labelValue } from './telemetry-labels.js';

export { errorKind, labelValue } from './telemetry-labels.js';

/**
 * What a store may tell about its size, through an optional `usage` method (or getter) beside
 * the store contract. Every figure is optional; a store that reports none is simply not shown.
 * The shapes the bundled stores use are all accepted.
 */
export interface StoreUsage {
  /** Records held: sessions, tombstones and any index entries the store counts. */
  keys?: number | null;
  /** Bytes the store holds (its own figure: file size, server memory, approximate heap). */
  bytes?: number | null;
  /** Live sessions, counted exactly. */
  sessions?: number | null;
  /** Sessions past their deadline the store still holds (stores swept in batches). */
  expired?: number | null;
  /** The memory store's name for `keys`. */
  entries?: number | null;
  /** The Redis store's name for `bytes` (`used_memory`). */
  memoryBytes?: number | null;
}

/** A store (or anything) whose usage the metrics report. `usage` is optional. */
export interface UsageSource {
  readonly name: string;
  readonly usage?: StoreUsage | (() => StoreUsage | Promise<StoreUsage>);
}

export interface SessionMetricsOptions {
  /** Registry to register in. Two metric sets with the same prefix cannot share one. @default a new Registry */
  registry?: Registry;
  /** Prefix of every metric name. @default 'elastic_session_' */
  prefix?: string;
  /** Stores whose usage (keys, bytes, live sessions) is read when metrics are collected, where they tell. */
  stores?: readonly UsageSource[];
  /** Shortest time between two usage reads of the stores, in milliseconds (a read may cost a query). @default 10000 */
  usageIntervalMs?: number;
  /** Also collect Node.js process metrics (CPU, memory, event loop). Once per registry. @default false */
  defaultMetrics?: boolean;
}

export interface SessionMetrics {
  readonly registry: Registry;
  /** The Prometheus content type of `text()`. */
  readonly contentType: string;
  /** The registry in Prometheus text format. */
  text(): Promise<string>;
  /** Reports the usage of one more store. */
  addStore(store: UsageSource): void;
  /** Unsubscribes from the telemetry channels and stops reading store usage. Idempotent. */
  close(): void;
}

export const DEFAULT_METRICS_OPTIONS = {
  prefix: 'elastic_session_',
  usageIntervalMs: 10_000,
} as const;

/** Histogram buckets in seconds, from half a millisecond to ten seconds. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const SESSION_EVENTS = ['created', 'updated', 'regenerated', 'destroyed', 'expired', 'revoked'] as const;
type CountedEvent = (typeof SESSION_EVENTS)[number];

function count(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : null;
}

/** Reads a store's usage in the shapes the bundled stores report; null when it reports none. */
export async function readStoreUsage(store: UsageSource): Promise<{ keys: number | null; bytes: number | null; sessions: number | null; expired: number | null } | null> {
  const source = store.usage;
  if (source === undefined || source === null) return null;
  const usage = typeof source === 'function' ? await source.call(store) : source;
  if (typeof usage !== 'object' || usage === null) return null;
  return {
    keys: count(usage.keys ?? usage.entries),
    bytes: count(usage.bytes ?? usage.memoryBytes),
    sessions: count(usage.sessions),
    expired: count(usage.expired),
  };
}

/**
 * Metrics of every session manager in this process: store latency by store, operation and
 * outcome; store errors by kind; sessions created, updated, regenerated, destroyed, revoked and
 * expired (by reason); rejected cookies and tokens by reason; session anomalies; corrupt records; compare-and-swap
 * conflicts; sweeps; and, for the given stores, usage and live sessions. Labels carry store
 * names, operation names, codes and reasons only, never IDs.
 *
 * Channels are process-wide: two managers on stores of the same name are counted together.
 */
export function createSessionMetrics(options: SessionMetricsOptions = {}): SessionMetrics {
  const registry = options.registry ?? new Registry();
  const prefix = options.prefix ?? DEFAULT_METRICS_OPTIONS.prefix;
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) throw configError('prefix', 'must be a Prometheus metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*)');
  const usageIntervalMs = options.usageIntervalMs ?? DEFAULT_METRICS_OPTIONS.usageIntervalMs;
  if (typeof usageIntervalMs !== 'number' || !Number.isFinite(usageIntervalMs) || usageIntervalMs < 0) throw configError('usageIntervalMs', 'must be a number of milliseconds, 0 or more');
  const registers = [registry];
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry });
  const name = (suffix: string): string => `${prefix}${suffix}`;

  const storeDuration = new Histogram({
    name: name('store_operation_duration_seconds'),
    help: 'Store operation latency by store, operation and outcome',
    labelNames: ['store', 'operation', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const storeErrors = new Counter({
    name: name('store_errors_total'),
    help: 'Failed store operations by store, operation and error kind (code, or code:kind)',
    labelNames: ['store', 'operation', 'kind'] as const,
    registers,
  });
  const sessionCounters = {} as Record<CountedEvent, Counter<string>>;
  for (const type of SESSION_EVENTS) {
    sessionCounters[type] =
      type === 'expired'
        ? new Counter({
            name: name('sessions_expired_total'),
            help: 'Sessions found expired, by store and reason: idle or absolute when the manager saw the record past its deadline, sweep for records removed by a sweep (deadline unknown, includes dead tombstones)',
            labelNames: ['store', 'reason'] as const,
            registers,
          })
        : new Counter({ name: name(`sessions_${type}_total`), help: `Sessions ${type}, by store`, labelNames: ['store'] as const, registers });
  }
  const cookiesRejected = new Counter({
    name: name('cookies_rejected_total'),
    help: 'Session cookies that failed format or signature checks, by reason',
    labelNames: ['reason'] as const,
    registers,
  });
  const tokensRejected = new Counter({
    name: name('tokens_rejected_total'),
    help: 'Session tokens that failed verification, by reason',
    labelNames: ['reason'] as const,
    registers,
  });
  const anomalies = new Counter({
    name: name('session_anomalies_total'),
    help: 'Sessions seen from another client than they were bound to, by changed signal and action taken',
    labelNames: ['signal', 'action'] as const,
    registers,
  });
  const corrupt = new Counter({
    name: name('store_corrupt_records_total'),
    help: 'Stored records that could not be read and were treated as absent, by store',
    labelNames: ['store'] as const,
    registers,
  });
  const conflicts = new Counter({
    name: name('conflicts_total'),
    help: 'Compare-and-swap attempts of update() that lost to a concurrent write (each is retried until maxRetries), by store',
    labelNames: ['store'] as const,
    registers,
  });
  const conflictAttempts = new Histogram({
    name: name('conflict_attempt'),
    help: 'The attempt number of update() at which a compare-and-swap conflict happened (above 1: a retry conflicted again), by store',
    labelNames: ['store'] as const,
    buckets: [1, 2, 3, 5, 10],
    registers,
  });
  const nearCacheEvents = new Counter({
    name: name('near_cache_events_total'),
    help: 'Near-cache hits, misses, invalidations (origin local or remote), evictions (by reason) and flushes, by store; for invalidations, evictions and flushes: entries dropped',
    labelNames: ['store', 'event', 'detail'] as const,
    registers,
  });
  const nearCacheEntries = new Gauge({ name: name('near_cache_entries'), help: 'Records held by the near-cache, by store', labelNames: ['store'] as const, registers });
  const nearCacheBytes = new Gauge({ name: name('near_cache_bytes'), help: 'Approximate bytes held by the near-cache, by store', labelNames: ['store'] as const, registers });
  const sweeps = new Counter({ name: name('sweeps_total'), help: 'Sweep batches run, by store and outcome', labelNames: ['store', 'outcome'] as const, registers });
  const swept = new Counter({ name: name('swept_records_total'), help: 'Expired records and dead tombstones removed by sweeps, by store', labelNames: ['store'] as const, registers });

  // Store usage: read when the registry is collected, at most once per interval.
  const stores: UsageSource[] = [...(options.stores ?? [])];
  let usageAt = Number.NEGATIVE_INFINITY;
  let reading: Promise<void> | null = null;
  const refreshUsage = (): Promise<void> => {
    if (reading) return reading;
    if (closed || performance.now() - usageAt < usageIntervalMs) return Promise.resolve();
    reading = (async () => {
      const results = await Promise.all(stores.map((store) => readStoreUsage(store).catch(() => null)));
      usageAt = performance.now();
      storeKeys.reset();
      storeBytes.reset();
      activeSessions.reset();
      expiredRecords.reset();
      results.forEach((usage, index) => {
        if (!usage) return;
        const store = labelValue((stores[index] as UsageSource).name);
        if (usage.keys !== null) storeKeys.set({ store }, usage.keys);
        if (usage.bytes !== null) storeBytes.set({ store }, usage.bytes);
        if (usage.expired !== null) expiredRecords.set({ store }, usage.expired);
        if (usage.sessions !== null) activeSessions.set({ store, accuracy: 'exact' }, usage.sessions);
        else if (usage.keys !== null) activeSessions.set({ store, accuracy: 'estimate' }, usage.keys);
      });
    })().finally(() => {
      reading = null;
    });
    return reading;
  };
  const storeKeys = new Gauge({
    name: name('store_keys'),
    help: 'Records the store holds (sessions, tombstones and index entries, as the store counts them), where it tells',
    labelNames: ['store'] as const,
    registers,
    collect: refreshUsage,
  });
  const storeBytes = new Gauge({
    name: name('store_bytes'),
    help: 'Bytes the store holds or uses (file size, server memory or approximate heap, as the store tells)',
    labelNames: ['store'] as const,
    registers,
    collect: refreshUsage,
  });
  const expiredRecords = new Gauge({
    name: name('store_expired_records'),
    help: 'Sessions past their deadline that the store still holds until a sweep removes them (where it tells): an expiry counts when it happens',
    labelNames: ['store'] as const,
    registers,
    collect: refreshUsage,
  });
  const activeSessions = new Gauge({
    name: name('active_sessions'),
    help: 'Live sessions: exact where the store counts them, otherwise an estimate (its record count, an upper bound)',
    labelNames: ['store', 'accuracy'] as const,
    registers,
    collect: refreshUsage,
  });

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
      const outcome = context.error !== undefined ? 'error' : 'ok';
      const store = labelValue(context.store);
      storeDuration.observe({ store, operation: labelValue(context.operation), outcome }, seconds);
      if (context.operation === 'sweep') sweeps.inc({ store, outcome });
    },
    error(context: StoreOperationContext & { error?: unknown }): void {
      storeErrors.inc({ store: labelValue(context.store), operation: labelValue(context.operation), kind: errorKind(context.error) });
    },
  };
  const onSession = (message: unknown): void => {
    const event = message as SessionEvent;
    if (!Object.hasOwn(sessionCounters, event.type)) return;
    const store = labelValue(event.store);
    const n = typeof event.count === 'number' && event.count > 0 ? event.count : 1;
    if (event.type !== 'expired') {
      sessionCounters[event.type as CountedEvent].inc({ store }, n);
      return;
    }
    const reason = event.reason === 'idle' || event.reason === 'absolute' ? event.reason : 'sweep';
    sessionCounters.expired.inc({ store, reason }, n);
    if (reason === 'sweep') swept.inc({ store }, n);
  };
  const onCookieRejected = (message: unknown): void => {
    cookiesRejected.inc({ reason: labelValue((message as { reason?: unknown }).reason) });
  };
  const onTokenRejected = (message: unknown): void => {
    tokensRejected.inc({ reason: labelValue((message as { reason?: unknown }).reason) });
  };
  const onAnomaly = (message: unknown): void => {
    const { signals, action } = message as Partial<AnomalyEvent>;
    for (const signal of Array.isArray(signals) ? signals : []) anomalies.inc({ signal: labelValue(signal), action: labelValue(action) });
  };
  const onCorrupt = (message: unknown): void => {
    corrupt.inc({ store: labelValue((message as { store?: unknown }).store) });
  };
  const onConflict = (message: unknown): void => {
    const { store, attempt } = message as { store?: unknown; attempt?: unknown };
    conflicts.inc({ store: labelValue(store) });
    if (typeof attempt === 'number' && attempt >= 1) conflictAttempts.observe({ store: labelValue(store) }, attempt);
  };

  const onNearCache = (message: unknown): void => {
    const { store, event, origin, reason, count, entries, bytes } = message as Partial<NearCacheEvent>;
    const labels = { store: labelValue(store) };
    nearCacheEvents.inc({ ...labels, event: labelValue(event), detail: labelValue(origin ?? reason ?? 'none') }, typeof count === 'number' && count > 0 ? count : 0);
    if (typeof entries === 'number') nearCacheEntries.set(labels, entries);
    if (typeof bytes === 'number') nearCacheBytes.set(labels, bytes);
  };

  storeChannel.subscribe(storeHandlers);
  diagnostics.subscribe(CHANNELS.session, onSession);
  diagnostics.subscribe(CHANNELS.nearCache, onNearCache);
  diagnostics.subscribe(CHANNELS.cookieRejected, onCookieRejected);
  diagnostics.subscribe(CHANNELS.tokenRejected, onTokenRejected);
  diagnostics.subscribe(CHANNELS.anomaly, onAnomaly);
  diagnostics.subscribe(CHANNELS.corrupt, onCorrupt);
  diagnostics.subscribe(CHANNELS.conflict, onConflict);
  let closed = false;

  return {
    registry,
    get contentType() {
      return registry.contentType;
    },
    text: () => registry.metrics(),
    addStore(store) {
      if (!stores.includes(store)) stores.push(store);
      usageAt = Number.NEGATIVE_INFINITY;
    },
    close() {
      if (closed) return;
      closed = true;
      storeChannel.unsubscribe(storeHandlers);
      diagnostics.unsubscribe(CHANNELS.session, onSession);
      diagnostics.unsubscribe(CHANNELS.nearCache, onNearCache);
      diagnostics.unsubscribe(CHANNELS.cookieRejected, onCookieRejected);
      diagnostics.unsubscribe(CHANNELS.tokenRejected, onTokenRejected);
      diagnostics.unsubscribe(CHANNELS.anomaly, onAnomaly);
      diagnostics.unsubscribe(CHANNELS.corrupt, onCorrupt);
      diagnostics.unsubscribe(CHANNELS.conflict, onConflict);
      stores.length = 0;
    },
  };
}

/**
 * A `(req, res)` handler serving the metrics in Prometheus text format: mount it on `node:http`,
 * Express or Connect. It answers every method; route it to `GET /metrics` yourself.
 */
export function metricsHandler(metrics: Pick<SessionMetrics, 'text' | 'contentType'>): (req: IncomingMessage, res: ServerResponse) => void {
  return (_req, res) => {
    metrics.text().then(
      (text) => {
        res.statusCode = 200;
        res.setHeader('content-type', metrics.contentType);
        res.setHeader('cache-control', 'no-store');
        res.end(text);
      },
      () => {
        res.statusCode = 500;
        res.setHeader('content-type', 'text/plain; charset=utf-8');
        res.end('metrics collection failed\n');
      },
    );
  };
}
