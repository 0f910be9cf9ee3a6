import type { MetricObjectWithValues, MetricValue, MetricValueWithName, Registry } from 'prom-client';
import { ERROR_CODES } from '../../core/errors.js';

/** One reading of the cumulative counters the dashboard charts. */
export interface StatsSample {
  /** Milliseconds since the epoch. */
  at: number;
  /** Finished `/v1` requests (API traffic; the dashboard's own polling is left out). */
  requests: number;
  /** Cumulative latency histogram of those requests: upper bound in seconds to count. */
  latency: [bound: number, count: number][];
  /** Server-side problem responses (5xx: store failures, internal errors): what the error chart shows. */
  errors: number;
  /** Problem responses of the caller's making (4xx: unknown or expired IDs, bad input, missing keys). */
  clientErrors: number;
  errorsByCode: Record<string, number>;
  created: number;
  /**
   * Sessions expired: with a store that reports the expired records it still holds
   * (`store_expired_records`), those plus the ones sweeps removed, so an expiry counts when its
   * deadline passes, not when the next sweep runs; otherwise what the manager and sweeps saw.
   */
  expired: number;
  /** Expired records the store still holds (they count in `expired` already), or null when it does not tell. */
  expiredUnswept: number | null;
  destroyed: number;
  revoked: number;
  regenerated: number;
  storeKeys: number | null;
  storeBytes: number | null;
  activeSessions: { value: number; accuracy: string } | null;
}

/** Rates between consecutive samples, as columns, oldest first. */
export interface StatsSeries {
  t: number[];
  rps: number[];
  /** Milliseconds; null where no request finished in the interval. */
  p50: (number | null)[];
  p99: (number | null)[];
  errorsPerMin: number[];
  createdPerMin: number[];
  expiredPerMin: number[];
  storeKeys: (number | null)[];
  storeBytes: (number | null)[];
}

/** The "now" tiles: rates over the last `windowMs`; p50 and p99 are null when no request finished in it. */
export interface RecentStats {
  windowMs: number;
  rps: number;
  p50: number | null;
  p99: number | null;
}

export interface StatsReport {
  intervalMs: number;
  updatedAt: string;
  store: { name: string; nativeTtl: boolean; userIndex: boolean };
  version: string;
  totals: Omit<StatsSample, 'at' | 'latency' | 'errorsByCode' | 'expiredUnswept'>;
  /** Every problem response by code, with the code's status: 4xx are the caller's, 5xx the service's. */
  errorsByCode: { code: string; status: number; count: number }[];
  recent: RecentStats;
  series: StatsSeries;
}

/** The status a problem code answers with; a code this build does not know counts as a server error. */
export function statusOfCode(code: string): number {
  return Object.hasOwn(ERROR_CODES, code) ? ERROR_CODES[code as keyof typeof ERROR_CODES].status : 500;
}

const PREFIX = 'elastic_session_';

type Values = (MetricValue<string> | MetricValueWithName<string>)[];

function sum(values: Values | undefined, keep: (labels: Record<string, string | number>) => boolean = () => true): number {
  let total = 0;
  for (const value of values ?? []) if (keep(value.labels as Record<string, string | number>)) total += value.value;
  return total;
}

/** Reads the service registry into one sample. */
export async function readSample(registry: Registry, at: number): Promise<StatsSample> {
  const metrics = new Map<string, Values>();
  for (const metric of (await registry.getMetricsAsJSON()) as MetricObjectWithValues<MetricValue<string>>[]) metrics.set(metric.name, metric.values);
  const values = (name: string): Values | undefined => metrics.get(`${PREFIX}${name}`);

  const isApi = (labels: Record<string, string | number>): boolean => String(labels.route).startsWith('/v1');
  const http = values('http_request_duration_seconds') ?? [];
  const buckets = new Map<number, number>();
  let requests = 0;
  for (const value of http as MetricValueWithName<string>[]) {
    const labels = value.labels as Record<string, string | number>;
    if (!isApi(labels)) continue;
    if (value.metricName?.endsWith('_count')) requests += value.value;
    else if (value.metricName?.endsWith('_bucket')) {
      const bound = labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(labels.le);
      buckets.set(bound, (buckets.get(bound) ?? 0) + value.value);
    }
  }
  const errorsByCode: Record<string, number> = {};
  let errors = 0;
  let clientErrors = 0;
  for (const value of values('errors_total') ?? []) {
    const code = String(value.labels.code);
    errorsByCode[code] = (errorsByCode[code] ?? 0) + value.value;
    if (statusOfCode(code) >= 500) errors += value.value;
    else clientErrors += value.value;
  }
  const gauge = (name: string): number | null => {
    const found = values(name);
    return found && found.length > 0 ? sum(found) : null;
  };
  const expiredUnswept = gauge('store_expired_records');
  // The unswept records were counted when their deadline passed; a sweep moves them from the
  // gauge to the sweep count, and a load that finds one past its deadline saw one of them again.
  const expired =
    expiredUnswept === null ? sum(values('sessions_expired_total')) : sum(values('sessions_expired_total'), (labels) => labels.reason === 'sweep') + expiredUnswept;
  const active = values('active_sessions') ?? [];
  return {
    at,
    requests,
    latency: [...buckets.entries()].sort((a, b) => a[0] - b[0]),
    errors,
    clientErrors,
    errorsByCode,
    created: sum(values('sessions_created_total')),
    expired,
    expiredUnswept,
    destroyed: sum(values('sessions_destroyed_total')),
    revoked: sum(values('sessions_revoked_total')),
    regenerated: sum(values('sessions_regenerated_total')),
    storeKeys: gauge('store_keys'),
    storeBytes: gauge('store_bytes'),
    activeSessions:
      active.length === 0 ? null : { value: sum(active), accuracy: active.every((value) => value.labels.accuracy === 'exact') ? 'exact' : 'estimate' },
  };
}

/**
 * The latency below which a fraction `q` of the observations fall, from cumulative bucket
 * counts, interpolating linearly inside a bucket as Prometheus' histogram_quantile does.
 * Null when there is no observation; the largest finite bound when the rank is in +Inf.
 */
export function quantile(q: number, buckets: readonly (readonly [number, number])[]): number | null {
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, count] of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(bound)) return lowerBound;
      if (count === lowerCount) return bound;
      return lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / (count - lowerCount);
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}

function bucketDelta(now: StatsSample['latency'], before: StatsSample['latency']): [number, number][] {
  const earlier = new Map(before);
  return now.map(([bound, count]) => [bound, Math.max(0, count - (earlier.get(bound) ?? 0))]);
}

/**
 * Rates over the last `windowMs` up to `latest`: from the newest sample at least that old (or the
 * oldest there is). With no request finished in the window the quantiles are null, never the
 * last value seen: an idle service has no latency to show.
 */
export function recentOf(samples: readonly StatsSample[], latest: StatsSample, windowMs: number): RecentStats {
  let from: StatsSample | undefined;
  for (const sample of samples) {
    if (sample.at > latest.at - windowMs) break;
    from = sample;
  }
  from ??= samples[0];
  if (from === undefined || from.at >= latest.at) return { windowMs, rps: 0, p50: null, p99: null };
  const latency = bucketDelta(latest.latency, from.latency);
  const ms = (q: number): number | null => {
    const value = quantile(q, latency);
    return value === null ? null : value * 1000;
  };
  return { windowMs, rps: Math.max(0, latest.requests - from.requests) / ((latest.at - from.at) / 1000), p50: ms(0.5), p99: ms(0.99) };
}

/** Rates between each pair of consecutive samples. */
export function seriesOf(samples: readonly StatsSample[]): StatsSeries {
  const series: StatsSeries = { t: [], rps: [], p50: [], p99: [], errorsPerMin: [], createdPerMin: [], expiredPerMin: [], storeKeys: [], storeBytes: [] };
  for (let i = 1; i < samples.length; i++) {
    const now = samples[i] as StatsSample;
    const before = samples[i - 1] as StatsSample;
    const seconds = Math.max((now.at - before.at) / 1000, 0.001);
    const perMinute = (a: number, b: number): number => (Math.max(0, a - b) / seconds) * 60;
    const latency = bucketDelta(now.latency, before.latency);
    const ms = (q: number): number | null => {
      const value = quantile(q, latency);
      return value === null ? null : value * 1000;
    };
    series.t.push(now.at);
    series.rps.push(Math.max(0, now.requests - before.requests) / seconds);
    series.p50.push(ms(0.5));
    series.p99.push(ms(0.99));
    series.errorsPerMin.push(perMinute(now.errors, before.errors));
    series.createdPerMin.push(perMinute(now.created, before.created));
    series.expiredPerMin.push(perMinute(now.expired, before.expired));
    series.storeKeys.push(now.storeKeys);
    series.storeBytes.push(now.storeBytes);
  }
  return series;
}

export interface StatsHistoryOptions {
  /** Milliseconds between samples. @default 2000 */
  intervalMs?: number;
  /** Samples kept. @default 180 (six minutes at the default interval) */
  size?: number;
  /** Sampling stops when nobody asked for this long, in milliseconds, and starts again on the next request. @default 300000 */
  idleStopMs?: number;
  /** The window of the "now" tiles (requests/s, p50, p99), in milliseconds. @default 10000 */
  recentMs?: number;
}

/**
 * Samples the registry on an interval into a ring, started by the first request and stopped
 * when the dashboard has not asked for a while: a service nobody watches does no work for it.
 */
export class StatsHistory {
  readonly intervalMs: number;
  readonly recentMs: number;
  readonly #registry: Registry;
  readonly #size: number;
  readonly #idleStopMs: number;
  readonly #samples: StatsSample[] = [];
  #timer: NodeJS.Timeout | undefined;
  #askedAt = 0;
  #sampling: Promise<void> | null = null;
  #closed = false;
  #unsweptAtStart: number | undefined;

  constructor(registry: Registry, options: StatsHistoryOptions = {}) {
    this.#registry = registry;
    this.intervalMs = options.intervalMs ?? 2000;
    this.#size = options.size ?? 180;
    this.#idleStopMs = options.idleStopMs ?? 300_000;
    this.recentMs = options.recentMs ?? 10_000;
  }

  /** The samples so far, oldest first; starts sampling if it was not running. */
  async samples(): Promise<readonly StatsSample[]> {
    this.#askedAt = Date.now();
    if (!this.#closed && this.#timer === undefined) {
      this.#samples.length = 0;
      this.#timer = setInterval(() => void this.#sample(), this.intervalMs);
      this.#timer.unref();
      await this.#sample();
    } else if (this.#sampling) {
      await this.#sampling;
    }
    return this.#samples;
  }

  /**
   * A fresh reading (for the totals), not kept in the ring. Its `expired` leaves out the
   * expired records the store already held at the first reading: they expired before anyone
   * looked, and count once a sweep removes them.
   */
  async latest(): Promise<StatsSample> {
    const sample = await readSample(this.#registry, Date.now());
    this.#unsweptAtStart ??= sample.expiredUnswept ?? 0;
    return { ...sample, expired: Math.max(0, sample.expired - this.#unsweptAtStart) };
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #sample(): Promise<void> {
    if (Date.now() - this.#askedAt > this.#idleStopMs) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return Promise.resolve();
    }
    this.#sampling ??= readSample(this.#registry, Date.now())
      .then((sample) => {
        this.#samples.push(sample);
        if (this.#samples.length > this.#size) this.#samples.splice(0, this.#samples.length - this.#size);
      })
      .catch(() => {})
      .finally(() => {
        this.#sampling = null;
      });
    return this.#sampling;
  }
}
