import type { Redis } from 'ioredis';
import { configError } from '../../core/errors.js';
import { withTimeout } from '../kit/shell.js';
import { REDIS_STORE_DEFAULTS } from '../redis/config.js';
import type { InvalidationSink, InvalidationSource } from './invalidation.js';

export interface RedisInvalidationOptions {
  /**
   * The ioredis client the Redis store writes through (standalone or Sentinel-managed; a Cluster
   * client is refused). Client tracking is turned on on its connection, again after every
   * reconnect.
   */
  client: Redis;
  /** The Redis store's `prefix`. @default "es:" */
  prefix?: string;
  /**
   * A connection of its own for the `__redis__:invalidate` channel, created with
   * `autoResubscribe: false` (the source reads the connection's ID before it subscribes, on
   * every connection). Left open by `close()`.
   * @default client.duplicate(), closed by close()
   */
  subscriber?: Redis;
  /**
   * `NOLOOP`: writes through `client` itself are not reported back (the near-cache already
   * dropped their keys). Turn it off when something else writes sessions through the same client
   * without going through the near-cache.
   * @default true
   */
  noLoop?: boolean;
  /**
   * How often the subscriber is pinged and the tracking checked, in milliseconds; a check
   * unanswered within as long takes the cache down. So a connection that dies silently leaves
   * cached copies served at most about twice this long.
   * @default 1000
   */
  healthCheckMs?: number;
}

export const REDIS_INVALIDATION_DEFAULTS = {
  noLoop: true,
  healthCheckMs: 1_000,
} as const;

const CHANNEL = '__redis__:invalidate';

type Listener = Parameters<Redis['off']>[1];

/** Clients a source has turned tracking on for: a second source would redirect the first's tracking to itself. */
const tracked = new WeakSet<Redis>();

/** What the source is doing, for operators: up, or down and why. */
export interface RedisInvalidationStatus {
  up: boolean;
  /** Why it is down, or why the last attempt to come up failed (never a key or an address). */
  reason: string | null;
}

/**
 * Redis client-side caching as a near-cache's invalidation source, in broadcasting mode:
 * `CLIENT TRACKING on REDIRECT <subscriber> BCAST PREFIX <prefix>{ NOLOOP` on the store's
 * connection, and a second connection subscribed to `__redis__:invalidate` (RESP2, which
 * ioredis speaks). Redis then reports every change to a session key under the prefix (writes by
 * any client, expiry, eviction, FLUSHDB) to the subscriber, which hands the store keys to the
 * near-cache.
 *
 * Why BCAST rather than tracking the keys each connection read: it does not depend on how the
 * store reads (scripts, pipelines, replicas) or on the server's tracking table (whose evictions
 * arrive as invalidations of keys still cached), and the server keeps no per-key state. The
 * price is that every instance hears of every session write; a write costs one small message
 * per instance, which is cheap next to the load it saves.
 *
 * The source goes down (and the near-cache flushes and stops caching) when either connection
 * closes, when the subscriber does not answer a ping, or when the tracking is found off or
 * pointing at another connection; it comes up again only after tracking is turned on anew
 * pointing at the subscriber's current connection.
 */
export class RedisInvalidation implements InvalidationSource {
  readonly name = 'redis-tracking';
  readonly #client: Redis;
  readonly #subscriber: Redis;
  readonly #ownsSubscriber: boolean;
  readonly #prefix: string;
  readonly #noLoop: boolean;
  readonly #healthCheckMs: number;
  #sink: InvalidationSink | undefined;
  #up = false;
  #closed = false;
  #reason: string | null = 'starting';
  /** Rises on every loss: an attempt to come up that began before a loss does not count. */
  #attempt = 0;
  /** Rises when the subscriber's connection closes: its ID and subscription went with it. */
  #subscriberConnection = 0;
  #subscriberId: number | null = null;
  #chain: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #checking = false;
  readonly #listeners: { target: Redis; event: string; listener: Listener }[] = [];

  constructor(options: RedisInvalidationOptions) {
    const client = options?.client;
    if (!client || typeof client.call !== 'function' || typeof client.duplicate !== 'function') throw configError('client', 'an ioredis Redis instance is required');
    if ((client as { isCluster?: boolean }).isCluster === true) {
      throw configError('client', 'client tracking needs a standalone or Sentinel client: a Redis Cluster client has one connection per node (use the change log as the invalidation source)');
    }
    const prefix = options.prefix ?? REDIS_STORE_DEFAULTS.prefix;
    if (typeof prefix !== 'string' || /[{}]/.test(prefix)) throw configError('prefix', 'must be the Redis store prefix: a string without "{" or "}"');
    const healthCheckMs = options.healthCheckMs ?? REDIS_INVALIDATION_DEFAULTS.healthCheckMs;
    if (!Number.isSafeInteger(healthCheckMs) || healthCheckMs < 1) throw configError('healthCheckMs', 'must be a positive integer of milliseconds');
    if (options.subscriber !== undefined) {
      if (typeof options.subscriber?.subscribe !== 'function') throw configError('subscriber', 'must be an ioredis Redis instance');
      if (options.subscriber === client) throw configError('subscriber', 'must be a connection of its own, not the client');
      if (options.subscriber.options.autoResubscribe !== false) {
        throw configError('subscriber', 'must be created with autoResubscribe: false (the source reads each connection\'s ID before it subscribes)');
      }
    }
    this.#client = client;
    this.#ownsSubscriber = options.subscriber === undefined;
    // Lazy: no connection until start(), so a source never started holds none.
    this.#subscriber = options.subscriber ?? client.duplicate({ autoResubscribe: false, connectionName: 'elastic-session:invalidation', lazyConnect: true });
    this.#prefix = prefix;
    this.#noLoop = options.noLoop ?? REDIS_INVALIDATION_DEFAULTS.noLoop;
    this.#healthCheckMs = healthCheckMs;
  }

  get status(): RedisInvalidationStatus {
    return { up: this.#up, reason: this.#reason };
  }

  start(sink: InvalidationSink): void {
    if (this.#sink) throw configError('invalidation', 'a Redis invalidation source serves one near-cache: create one per nearCache()');
    if (tracked.has(this.#client)) throw configError('client', 'already has a Redis invalidation source: tracking is per connection, so give each near-cache a client of its own');
    tracked.add(this.#client);
    this.#sink = sink;
    const ready = () => this.#comeUp();
    this.#on(this.#subscriber, 'messageBuffer', (channel: Buffer, payload: Buffer | Buffer[] | null) => this.#message(channel, payload));
    this.#on(this.#subscriber, 'close', () => {
      this.#subscriberConnection++;
      this.#subscriberId = null;
      this.#lost('the subscriber connection closed');
    });
    this.#on(this.#client, 'close', () => this.#lost('the client connection closed'));
    this.#on(this.#subscriber, 'ready', ready);
    this.#on(this.#client, 'ready', ready);
    // Without a listener ioredis prints every failed reconnect; the failures show as `down`.
    if (this.#ownsSubscriber) this.#on(this.#subscriber, 'error', () => {});
    if (this.#subscriber.status === 'wait') this.#subscriber.connect().catch(() => {});
    this.#timer = setInterval(() => void this.#check(), this.#healthCheckMs);
    this.#timer.unref();
    process.nextTick(ready);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#up = false;
    this.#reason = 'closed';
    clearInterval(this.#timer);
    for (const { target, event, listener } of this.#listeners.splice(0)) target.off(event, listener);
    if (this.#sink) tracked.delete(this.#client);
    await this.#chain;
    const bounded = <T>(promise: Promise<T>) => withTimeout(promise, this.#healthCheckMs).catch(() => undefined);
    if (this.#client.status === 'ready') await bounded(this.#client.call('CLIENT', 'TRACKING', 'OFF'));
    if (this.#ownsSubscriber) {
      if (this.#subscriber.status === 'ready') await bounded(this.#subscriber.quit());
      this.#subscriber.disconnect();
    } else if (this.#subscriber.status === 'ready' && this.#subscriberId !== null) {
      await bounded(this.#subscriber.unsubscribe(CHANNEL));
    }
  }

  #on(target: Redis, event: string, listener: Listener): void {
    target.on(event, listener);
    this.#listeners.push({ target, event, listener });
  }

  #message(channel: Buffer, payload: Buffer | Buffer[] | null): void {
    if (this.#closed || channel.toString() !== CHANNEL) return;
    const sink = this.#sink as InvalidationSink;
    // A null payload: FLUSHALL or FLUSHDB, every key changed.
    if (payload === null) return sink.flush('server-flush');
    const session = `${this.#prefix}{`;
    const keys: string[] = [];
    for (const name of Array.isArray(payload) ? payload : [payload]) {
      const text = name.toString('utf8');
      if (text.startsWith(session) && text.endsWith('}')) keys.push(text.slice(session.length, -1));
    }
    if (keys.length > 0) sink.invalidate(keys);
  }

  #lost(reason: string): void {
    this.#attempt++;
    if (this.#closed) return;
    this.#reason = reason;
    if (!this.#up) return;
    this.#up = false;
    this.#sink?.down('invalidation-lost');
  }

  /** Comes up when both connections are ready; serialised, so two ready events do not interleave. */
  #comeUp(): void {
    this.#chain = this.#chain.then(
      () => this.#tryComeUp(),
      () => this.#tryComeUp(),
    );
  }

  async #tryComeUp(): Promise<void> {
    if (this.#closed || this.#up || this.#client.status !== 'ready' || this.#subscriber.status !== 'ready') return;
    const attempt = this.#attempt;
    try {
      if (this.#subscriberId === null) {
        const connection = this.#subscriberConnection;
        const id = await withTimeout(this.#subscriber.client('ID'), this.#healthCheckMs);
        await withTimeout(this.#subscriber.subscribe(CHANNEL), this.#healthCheckMs);
        if (connection !== this.#subscriberConnection) return;
        this.#subscriberId = id;
      }
      // OFF first: tracking cannot be turned on again over the same prefix, and the redirect may be an old connection's.
      await withTimeout(this.#client.call('CLIENT', 'TRACKING', 'OFF'), this.#healthCheckMs);
      const on = ['TRACKING', 'ON', 'REDIRECT', String(this.#subscriberId), 'BCAST', 'PREFIX', `${this.#prefix}{`, ...(this.#noLoop ? ['NOLOOP'] : [])];
      await withTimeout(this.#client.call('CLIENT', ...on), this.#healthCheckMs);
    } catch (error) {
      if (attempt === this.#attempt) this.#reason = `tracking could not be turned on (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`;
      return;
    }
    if (this.#closed || attempt !== this.#attempt) return;
    this.#up = true;
    this.#reason = null;
    this.#sink?.up();
  }

  /**
   * The health check. A PONG on the subscriber means every invalidation Redis queued for it
   * before the PING has arrived (one connection keeps order); TRACKINGINFO on the client proves
   * the tracking still points at this subscriber. While down, it retries coming up.
   */
  async #check(): Promise<void> {
    if (this.#closed || this.#checking) return;
    if (!this.#up) return this.#comeUp();
    this.#checking = true;
    const attempt = this.#attempt;
    try {
      const [pong, info] = await Promise.allSettled([
        withTimeout(this.#subscriber.ping(), this.#healthCheckMs),
        withTimeout(this.#client.call('CLIENT', 'TRACKINGINFO'), this.#healthCheckMs),
      ]);
      if (this.#closed || attempt !== this.#attempt) return;
      if (pong.status === 'rejected') {
        this.#lost('the subscriber did not answer a ping');
        // It may be half-open: a fresh connection comes up through its ready event.
        this.#subscriber.disconnect(true);
      } else if (info.status === 'rejected') {
        this.#lost('the client did not answer CLIENT TRACKINGINFO');
      } else if (!tracksInto(info.value, this.#subscriberId)) {
        this.#lost('client tracking was found off or redirected elsewhere');
        this.#comeUp();
      }
    } finally {
      this.#checking = false;
    }
  }
}

/** `CLIENT TRACKINGINFO` (RESP2: a flat list of names and values) says tracking is on, redirected to `id`, and not broken. */
function tracksInto(info: unknown, id: number | null): boolean {
  if (!Array.isArray(info) || id === null) return false;
  const value = (name: string): unknown => {
    const at = info.findIndex((item) => String(item) === name);
    return at < 0 ? undefined : info[at + 1];
  };
  const flags = value('flags');
  const names = Array.isArray(flags) ? flags.map(String) : [];
  return names.includes('on') && !names.includes('broken_redirect') && Number(value('redirect')) === id;
}

/**
 * The invalidation source for a near-cache over a Redis store.
 *
 * @example
 * const client = new Redis(url);
 * const store = nearCache(redisStore({ client, prefix: 'es:' }), {
 *   invalidation: redisInvalidation({ client, prefix: 'es:' }),
 * });
 */
export function redisInvalidation(options: RedisInvalidationOptions): RedisInvalidation {
  return new RedisInvalidation(options);
}
