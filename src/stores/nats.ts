import { createHash } from 'node:crypto';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { ConnectionOptions, KV, KvEntry, NatsConnection, QueuedIterator } from 'nats';
import { configError, SessionError } from '../core/errors.js';
import { publishConflict, publishCorrupt } from '../core/telemetry.js';
import type { ApplyResult, Clock, SessionDelta, SessionStore, StoreCapabilities, StoredSession, StoredSummary } from '../core/types.js';
import { expiresAt, systemClock } from '../core/types.js';
import { importDriver } from './driver.js';
import { nodeTlsOptions, tlsFromUrl } from './tls-url.js';
import { backoff, mergeDelta } from './delta.js';
import { checkGrace, encodeFields, readSession, toInteger } from './sql-record.js';

/** What the store uses of a NATS KV bucket view (`await js.views.kv(name)`). */
export type NatsKv = Pick<KV, 'get' | 'put' | 'delete' | 'watch' | 'status'>;

export interface NatsStoreOptions {
  /**
   * A KV bucket with history 1, e.g. `await js.views.kv('sessions', { history: 1, ttl, allow_direct: false })`.
   * The application owns its connection: `close()` leaves it open.
   */
  kv: NatsKv;
  /** Compare-and-swap attempts of one write before ESESS_CONFLICT. @default 32 */
  maxAttempts?: number;
  /**
   * How long one walk of the bucket (a `scan` page, a `sweep` batch, the user-index listing of
   * `listByUser`/`destroyByUser`) may read. A scan page or sweep batch then returns what it has
   * and continues from there next time; a user-index listing fails with ESESS_STORE_UNAVAILABLE.
   * @default 5000
   */
  walkBudgetMs?: number;
  /** Time source for expiry decisions. @default Date.now */
  clock?: Clock;
}

export interface OpenNatsStoreOptions extends Omit<NatsStoreOptions, 'kv'> {
  /** More nats.js connection options (`tls`, `authenticator`, reconnect settings, ...); servers and credentials come from the URL. */
  connection?: ConnectionOptions;
  /** How long connecting and each JetStream request may wait for an answer. @default 5000 */
  requestTimeoutMs?: number;
}

export const NATS_STORE_DEFAULTS = {
  bucket: 'elastic_sessions',
  /** The bucket's `max_age` when `openNatsStore` creates it: 30 days. */
  maxAgeMs: 30 * 24 * 3_600_000,
  replicas: 1,
  maxAttempts: 32,
  walkBudgetMs: 5_000,
  requestTimeoutMs: 5_000,
} as const;

const STORE = 'nats';
const SESSION_PREFIX = 's.';
const INDEX_PREFIX = 'u.';
const SWEEP_LEASE = 'm.sweep';
/** Store keys as the manager makes them (base64url hashes), in characters that NATS keys allow. */
const STORE_KEY = /^[A-Za-z0-9_=-]{1,512}$/;
const CURSOR = /^n1\.([1-9]\d{0,15})$/;
/** JetStream API error codes (nats-server `errors.json`). */
const API = { wrongLastSequence: 10071, messageTooLarge: 10054, streamNotFound: 10059, notEnabledForAccount: 10039, notEnabled: 10076 } as const;

type Decoded = { kind: 'absent' } | { kind: 'live'; session: StoredSession } | { kind: 'tombstone'; until: number } | { kind: 'corrupt' };
type ErrorKind = 'timeout' | 'closed' | 'connection' | 'jetstream' | 'bucket' | 'auth' | 'server';

const ABSENT: Decoded = { kind: 'absent' };
const CORRUPT: Decoded = { kind: 'corrupt' };

/**
 * Sessions in a NATS JetStream KV bucket (NATS 2.9 or later). One entry per session,
 * `s.<store key>`, holding the record as two lines of JSON (the SQL stores' row, then the fields
 * document). KV has no server-side merge, so a delta is a bounded compare-and-swap loop: `get`
 * (value and revision), merge by stamp here, `update` on that revision.
 *
 * NATS 2.9 has no per-key TTL. Records carry their deadlines and read as absent once dead by the
 * store's clock; `sweep()` deletes expired sessions, dead tombstones and dead user-index entries
 * (one instance at a time, under a lease in the bucket), and the bucket's `max_age` bounds how
 * long anything lingers. Destroy writes a tombstone `s.<key>` that holds the key until the
 * absolute expiry plus the grace.
 *
 * User index: one entry per (user, session), `u.<sha256(userId)>.<store key>`, written before
 * the session names the user, so a crash between the two leaves an extra entry (filtered when
 * listing: the session must be live and still name the user), never a missing one. See
 * docs/nats.md for the round trips and the trade-offs.
 */
export class NatsStore implements SessionStore {
  readonly name = STORE;
  readonly capabilities: StoreCapabilities = { nativeTtl: false, cas: true, userIndex: true, sweep: true };
  readonly #kv: NatsKv;
  readonly #maxAttempts: number;
  readonly #walkBudgetMs: number;
  readonly #clock: Clock;
  readonly #onClose: (() => Promise<void>) | undefined;
  /** The bucket's `max_age` in milliseconds (0: none), read once before the first operation. */
  #maxAgeMs = 0;
  #ready: Promise<void> | undefined;
  #closed = false;

  constructor(options: NatsStoreOptions, onClose?: () => Promise<void>) {
    const kv = options?.kv;
    if (!kv || (['get', 'put', 'delete', 'watch', 'status'] as const).some((method) => typeof kv[method] !== 'function')) throw configError('kv', 'must be a NATS KV bucket (await js.views.kv(name))');
    const maxAttempts = options.maxAttempts ?? NATS_STORE_DEFAULTS.maxAttempts;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw configError('maxAttempts', 'must be a positive integer');
    const walkBudgetMs = options.walkBudgetMs ?? NATS_STORE_DEFAULTS.walkBudgetMs;
    if (!Number.isInteger(walkBudgetMs) || walkBudgetMs < 1) throw configError('walkBudgetMs', 'must be a positive integer of milliseconds');
    if (options.clock !== undefined && typeof options.clock !== 'function') throw configError('clock', 'must be a function returning milliseconds');
    this.#kv = kv;
    this.#maxAttempts = maxAttempts;
    this.#walkBudgetMs = walkBudgetMs;
    this.#clock = options.clock ?? systemClock;
    this.#onClose = onClose;
  }

  async load(key: string): Promise<StoredSession | null> {
    return this.#op('load', async () => this.#live((await this.#read(sessionItem(key))).record));
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    return this.#op('create', async () => {
      const item = sessionItem(key);
      const value = encodeSession(session);
      if (this.#maxAgeMs > 0 && session.absoluteExpiresAt - this.#clock() > this.#maxAgeMs) {
        throw new SessionError('ESESS_CONFIG', {
          message: `The session's absolute timeout exceeds the NATS bucket's max_age (${this.#maxAgeMs} ms), which would drop its user-index entry and tombstone early: raise max_age`,
          context: { store: STORE, maxAgeMs: this.#maxAgeMs },
        });
      }
      if (typeof session.userId === 'string') await this.#index(session.userId, key, session.absoluteExpiresAt);
      for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
        if ((await this.#write(item, value, 0)) !== null) return true;
        // Taken: by a live record or tombstone (the key stays taken), or by a dead, unreadable
        // or deleted one (taken over on its revision).
        const found = await this.#read(item, false);
        if (this.#holdsKey(found.record)) return false;
        if (found.revision > 0 && (await this.#write(item, value, found.revision)) !== null) return true;
      }
      throw this.#conflict('create');
    });
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    return this.#op('apply', async () => {
      const item = sessionItem(key);
      let indexed = false;
      for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
        const { revision, record } = await this.#read(item);
        const session = this.#live(record);
        if (!session) return { status: 'gone' };
        if (delta.expectVersion !== undefined && delta.expectVersion !== session.version) return { status: 'conflict', version: session.version };
        if (!indexed && typeof delta.userId === 'string' && delta.userId !== session.userId) {
          await this.#index(delta.userId, key, session.absoluteExpiresAt);
          indexed = true;
        }
        mergeDelta(session, delta);
        if ((await this.#write(item, encodeSession(session), revision)) !== null) return { status: 'ok', version: session.version };
        publishConflict(STORE, attempt);
        await backoff(attempt);
      }
      throw this.#conflict('apply');
    });
  }

  async destroy(key: string, tombstoneGraceMs: number): Promise<boolean> {
    return this.#op('destroy', async () => this.#destroy(key, checkGrace(tombstoneGraceMs)));
  }

  /** Live sessions of a user, oldest first. */
  async listByUser(userId: string): Promise<StoredSummary[]> {
    return this.#op('listByUser', async () => {
      const keys = await this.#indexed(userId);
      const found = await Promise.all(keys.map(async (key) => ({ key, session: this.#live((await this.#read(sessionItem(key))).record) })));
      const summaries: StoredSummary[] = [];
      for (const { key, session } of found) {
        if (session?.userId === userId) summaries.push({ key, createdAt: session.createdAt, lastSeenAt: session.lastSeenAt, expiresAt: expiresAt(session) });
      }
      return summaries.sort((a, b) => a.createdAt - b.createdAt);
    });
  }

  async destroyByUser(userId: string, tombstoneGraceMs: number): Promise<number> {
    return this.#op('destroyByUser', async () => {
      const grace = checkGrace(tombstoneGraceMs);
      const keys = await this.#indexed(userId);
      const destroyed = await Promise.all(keys.map((key) => this.#destroy(key, grace, userId)));
      return destroyed.filter(Boolean).length;
    });
  }

  /**
   * Deletes up to `limit` expired sessions, dead tombstones and dead user-index entries, each on
   * the revision it was read at (a record written meanwhile stays). Batches walk the bucket in
   * stream order from where the previous batch of any instance stopped (the lease entry keeps
   * the position); at the end of the stream the next batch starts over. Returns 0 at once while
   * another instance holds the lease.
   */
  async sweep(limit: number): Promise<number> {
    return this.#op('sweep', async () => {
      if (!Number.isSafeInteger(limit) || limit < 0) throw new SessionError('ESESS_INVALID_INPUT', { message: 'sweep() limit must be a non-negative integer', context: { store: STORE } });
      if (limit === 0) return 0;
      const lease = await this.#kv.get(SWEEP_LEASE);
      const state = readLease(lease);
      const now = this.#clock();
      if (state.heldUntil > now) return 0;
      // The lease outlasts any batch: a walk stops after walkBudgetMs, the deletes are bounded by the request timeout.
      const held = await this.#write(SWEEP_LEASE, encodeLease(state.next, now + 4 * this.#walkBudgetMs), lease?.revision ?? 0);
      if (held === null) return 0;
      let next = state.next;
      try {
        const dead: { item: string; revision: number }[] = [];
        const walked = await this.#walk('>', next, (entry) => {
          if (this.#isDead(entry)) dead.push({ item: entry.key, revision: entry.revision });
          return dead.length < limit;
        });
        next = walked.next ?? 1;
        const removed = await Promise.all(dead.map(({ item, revision }) => this.#remove(item, revision)));
        return removed.filter(Boolean).length;
      } finally {
        // A lease left behind (NATS failed just now) ends by itself at heldUntil.
        await this.#write(SWEEP_LEASE, encodeLease(next, 0), held).catch(() => null);
      }
    });
  }

  /**
   * Up to `limit` keys of live sessions, walking the bucket in stream order (the order of each
   * record's last write) from `cursor`. A record written during the walk moves to the end of the
   * stream and is visited again there, so a key may come twice (work per key should be
   * idempotent) but none that lives throughout the walk is missed. A page may hold fewer keys,
   * even none, when the walk ran out of `walkBudgetMs`; the walk is done when the cursor is null.
   */
  async scan(cursor: string | null, limit: number): Promise<{ keys: string[]; cursor: string | null }> {
    return this.#op('scan', async () => {
      if (!Number.isSafeInteger(limit) || limit < 1) throw new SessionError('ESESS_INVALID_INPUT', { message: 'scan() limit must be a positive integer', context: { store: STORE } });
      const keys = new Set<string>();
      const walked = await this.#walk(`${SESSION_PREFIX}>`, decodeCursor(cursor), (entry) => {
        if (entry.operation === 'PUT' && this.#live(decodeRecord(entry.value))) keys.add(entry.key.slice(SESSION_PREFIX.length));
        return keys.size < limit;
      });
      return { keys: [...keys], cursor: walked.next === null ? null : `n1.${walked.next}` };
    });
  }

  /** The bucket's `max_age`, or null when it has none: records never outlive it. */
  async maxLifetimeMs(): Promise<number | null> {
    return this.#op('maxLifetimeMs', async () => (this.#maxAgeMs > 0 ? this.#maxAgeMs : null));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#onClose?.();
  }

  /** Every operation: refused after close, run once the bucket is checked, and any failure typed. */
  async #op<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new SessionError('ESESS_STORE_CLOSED', { context: { store: STORE, operation } });
    try {
      await this.#whenReady();
      return await fn();
    } catch (error) {
      if (this.#closed && !(error instanceof SessionError)) throw new SessionError('ESESS_STORE_CLOSED', { context: { store: STORE, operation } });
      throw natsError(error, operation);
    }
  }

  /** Reads the bucket's settings once; a failure is retried by the next call. */
  #whenReady(): Promise<void> {
    this.#ready ??= (async () => {
      const status = await this.#kv.status();
      // Walks read every message of the stream: older revisions would pass for current records.
      if (status.history !== 1) throw configError('kv', `the bucket must keep history 1 (it keeps ${status.history})`);
      this.#maxAgeMs = status.ttl;
    })().catch((error: unknown) => {
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }

  async #read(item: string, count = true): Promise<{ revision: number; record: Decoded }> {
    const entry = await this.#kv.get(item);
    if (!entry || entry.operation !== 'PUT') return { revision: entry?.revision ?? 0, record: ABSENT };
    const record = decodeRecord(entry.value);
    if (record.kind === 'corrupt' && count) publishCorrupt(STORE);
    return { revision: entry.revision, record };
  }

  /**
   * Writes `value` if the entry is still at `previous` (0: the key has never been written or was
   * purged; undefined: unconditionally). The new revision, or null when another write came first.
   */
  async #write(item: string, value: string, previous: number | undefined): Promise<number | null> {
    try {
      return await this.#kv.put(item, value, previous === undefined ? undefined : { previousSeq: previous });
    } catch (error) {
      if (isWrongLastSequence(error)) return null;
      throw error;
    }
  }

  /** Deletes the entry if it is still at `revision`; whether it did. */
  async #remove(item: string, revision: number): Promise<boolean> {
    try {
      await this.#kv.delete(item, { previousSeq: revision });
      return true;
    } catch (error) {
      if (isWrongLastSequence(error)) return false;
      throw error;
    }
  }

  /** Destroys the live session under `key` (only if it names `user`, when given). */
  async #destroy(key: string, grace: number, user?: string): Promise<boolean> {
    const item = sessionItem(key);
    for (let attempt = 1; ; attempt++) {
      const { revision, record } = await this.#read(item);
      const session = this.#live(record);
      if (!session || (user !== undefined && session.userId !== user)) return false;
      // Destroy must win: after losing the race this often, write the tombstone over whatever is there.
      const previous = attempt >= this.#maxAttempts ? undefined : revision;
      if ((await this.#write(item, JSON.stringify({ tombstone_until: session.absoluteExpiresAt + grace }), previous)) !== null) {
        if (session.userId !== null) {
          // Only tidies the index: an entry of a dead session is skipped when listing and swept at
          // the session's absolute expiry, so a failure here must not undo a destroy that happened.
          await this.#kv.delete(indexItem(session.userId, key)).catch(() => undefined);
        }
        return true;
      }
      publishConflict(STORE, attempt);
      await backoff(attempt);
    }
  }

  async #index(userId: string, key: string, absoluteExpiresAt: number): Promise<void> {
    await this.#kv.put(indexItem(userId, key), JSON.stringify({ absolute_expires_at: absoluteExpiresAt }));
  }

  /** The store keys in a user's index whose sessions may still be live. */
  async #indexed(userId: string): Promise<string[]> {
    const prefix = indexPrefix(userId);
    const now = this.#clock();
    const keys = new Set<string>();
    const walked = await this.#walk(`${prefix}>`, 1, (entry) => {
      if (entry.operation === 'PUT' && indexDeadline(entry.value) > now) keys.add(entry.key.slice(prefix.length));
      else keys.delete(entry.key.slice(prefix.length));
      return true;
    });
    if (walked.next !== null) {
      throw new SessionError('ESESS_STORE_UNAVAILABLE', { message: `The user index could not be read within ${this.#walkBudgetMs} ms`, context: { store: STORE, kind: 'timeout' } });
    }
    return [...keys];
  }

  /**
   * Visits the messages under `filter` in stream order from sequence `from` until `visit`
   * returns false or the walk catches up with the end of the stream (`next` is then null),
   * or walkBudgetMs passes. `next` is the sequence to continue from.
   */
  async #walk(filter: string, from: number, visit: (entry: KvEntry) => boolean): Promise<{ next: number | null }> {
    let caughtUp = false;
    let outOfTime = false;
    let entries: QueuedIterator<KvEntry> | undefined;
    const timer = setTimeout(() => {
      outOfTime = true;
      entries?.stop();
    }, this.#walkBudgetMs);
    let next = from;
    try {
      entries = await this.#kv.watch({
        key: filter,
        resumeFromRevision: from,
        initializedFn: () => {
          caughtUp = true;
          entries?.stop();
        },
      });
      // With nothing to deliver, the watch reports being caught up before it returns.
      if (caughtUp || outOfTime) entries.stop();
      for await (const entry of entries) {
        next = entry.revision + 1;
        if (!visit(entry)) return { next };
      }
    } finally {
      clearTimeout(timer);
      entries?.stop();
    }
    if (caughtUp) return { next: null };
    if (outOfTime && next > from) return { next };
    throw new SessionError('ESESS_STORE_UNAVAILABLE', {
      message: outOfTime ? `NATS delivered nothing of the bucket within ${this.#walkBudgetMs} ms` : 'The NATS subscription ended before the walk was done',
      context: { store: STORE, kind: outOfTime ? 'timeout' : 'connection' },
    });
  }

  #live(record: Decoded): StoredSession | null {
    return record.kind === 'live' && expiresAt(record.session) > this.#clock() ? record.session : null;
  }

  /** Whether the record keeps its key from `create`: a live session or a tombstone not yet past its time. */
  #holdsKey(record: Decoded): boolean {
    return this.#live(record) !== null || (record.kind === 'tombstone' && record.until > this.#clock());
  }

  /** Whether `sweep` may delete the entry: an expired session, a dead tombstone, an index entry of a dead session. */
  #isDead(entry: KvEntry): boolean {
    if (entry.operation !== 'PUT') return false;
    if (entry.key.startsWith(INDEX_PREFIX)) return indexDeadline(entry.value) <= this.#clock();
    if (!entry.key.startsWith(SESSION_PREFIX)) return false;
    const record = decodeRecord(entry.value);
    return record.kind === 'tombstone' ? record.until <= this.#clock() : record.kind === 'live' && this.#live(record) === null;
  }

  #conflict(operation: string): SessionError {
    return new SessionError('ESESS_CONFLICT', { context: { store: STORE, operation, attempts: this.#maxAttempts } });
  }
}

export function natsStore(options: NatsStoreOptions): NatsStore {
  return new NatsStore(options);
}

/** A parsed `nats://` store URL. */
export interface NatsTarget {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  bucket: string;
  /** 0: no max_age. */
  maxAgeMs: number;
  replicas: number;
}

/**
 * Parses `nats://[user:pass@|token@]host[:4222][,host[:port]...][?bucket=NAME&max_age=30d&replicas=1]`.
 * `max_age` is a whole number of seconds, minutes, hours or days (`90s`, `12h`, `30d`), or `0`
 * for none. Errors never repeat the URL.
 */
export function parseNatsUrl(url: string): NatsTarget {
  const match = typeof url === 'string' ? /^nats:\/\/(?:([^@/?#]*)@)?([^@/?#]+)\/?(?:\?([^#]*))?$/i.exec(url.trim()) : null;
  if (!match) throw configError('store', 'must be a nats://host:port[,host:port...][?bucket=NAME] URL');
  const servers = (match[2] as string).split(',').map((entry) => {
    const host = /^(?:\[[0-9a-fA-F:.]+\]|[^:[\]\s]+)(?::(\d{1,5}))?$/.exec(entry.trim());
    const port = host?.[1] === undefined ? 4222 : Number(host[1]);
    if (!host || port < 1 || port > 65535) throw configError('store', 'must list servers as host[:port] with a port from 1 to 65535, separated by commas');
    return host[1] === undefined ? `${entry.trim()}:4222` : entry.trim();
  });
  const query = new URLSearchParams(match[3] ?? '');
  for (const name of query.keys()) if (!['bucket', 'max_age', 'replicas'].includes(name)) throw configError('store', `unknown query parameter "${name}" (known: bucket, max_age, replicas)`);
  const bucket = query.get('bucket') ?? NATS_STORE_DEFAULTS.bucket;
  if (!/^[-\w]{1,64}$/.test(bucket)) throw configError('store', 'bucket must be 1 to 64 letters, digits, "-" or "_"');
  const replicas = Number(query.get('replicas') ?? NATS_STORE_DEFAULTS.replicas);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw configError('store', 'replicas must be an integer from 1 to 5');
  const maxAge = query.get('max_age');
  const maxAgeMs = maxAge === null ? NATS_STORE_DEFAULTS.maxAgeMs : parseDuration(maxAge);
  return { servers, ...parseCredentials(match[1]), bucket, maxAgeMs, replicas };
}

/**
 * Opens a store over its own NATS connection from a URL (see `parseNatsUrl`), creating the
 * bucket if it is missing (history 1, file storage, `max_age` and `replicas` from the URL, reads
 * from the stream leader). An existing bucket is used as it is. The connection reconnects for
 * as long as the store is open; `close()` closes it. nats is an optional peer dependency,
 * loaded only here.
 *
 * @example
 * const store = await openNatsStore('nats://app:secret@nats1:4222,nats2:4222?bucket=sessions&max_age=30d&replicas=3');
 */
export async function openNatsStore(url: string, options: OpenNatsStoreOptions = {}): Promise<NatsStore> {
  const { rest, tls } = await withoutTls(url);
  const target = parseNatsUrl(rest);
  const { connection, requestTimeoutMs = NATS_STORE_DEFAULTS.requestTimeoutMs, ...storeOptions } = options ?? {};
  if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs < 1) throw configError('requestTimeoutMs', 'must be a positive integer of milliseconds');
  const nats = await importDriver(() => import('nats'), 'NATS', 'nats');
  const { servers, bucket, maxAgeMs, replicas, ...credentials } = target;
  let nc: NatsConnection;
  try {
    // nats.js hands its tls option on to tls.connect.
    const secured = tls === undefined ? {} : { tls: tls as NonNullable<ConnectionOptions['tls']> };
    nc = await nats.connect({ name: 'elastic-session', maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: requestTimeoutMs, ...secured, ...connection, servers, ...credentials });
  } catch (error) {
    throw natsError(error, 'open');
  }
  try {
    // Reads from the stream leader (no direct get): a replica that lags would break read-your-writes.
    const kv = await nc.jetstream({ timeout: requestTimeoutMs }).views.kv(bucket, { history: 1, ttl: maxAgeMs, replicas, allow_direct: false });
    return new NatsStore({ ...storeOptions, kv }, () => nc.close());
  } catch (error) {
    await nc.close();
    throw natsError(error, 'open');
  }
}

/** The URL without its TLS parameters (`ssl-mode`, `ssl-ca`, `ssl-cert`, `ssl-key`, as for MySQL), and those as tls.connect options. */
async function withoutTls(url: string): Promise<{ rest: string; tls: TlsConnectionOptions | undefined }> {
  const at = typeof url === 'string' ? url.indexOf('?') : -1;
  if (at < 0) return { rest: url, tls: undefined };
  const query = new URLSearchParams(url.slice(at + 1));
  const settings = await tlsFromUrl(query);
  const remaining = query.toString();
  return { rest: `${url.slice(0, at)}${remaining === '' ? '' : `?${remaining}`}`, tls: settings && nodeTlsOptions(settings) };
}

function parseCredentials(userinfo: string | undefined): { user?: string; pass?: string; token?: string } {
  if (!userinfo) return {};
  const colon = userinfo.indexOf(':');
  if (colon < 0) return { token: decodeComponent(userinfo) };
  return { user: decodeComponent(userinfo.slice(0, colon)), pass: decodeComponent(userinfo.slice(colon + 1)) };
}

function decodeComponent(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw configError('store', 'has malformed percent-encoding in its credentials');
  }
}

function parseDuration(text: string): number {
  if (text === '0') return 0;
  const match = /^(\d{1,6})(s|m|h|d)$/.exec(text);
  if (!match) throw configError('store', 'max_age must be a whole number of s, m, h or d (e.g. 30d), or 0 for none');
  return Number(match[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd'];
}

function sessionItem(key: string): string {
  if (typeof key !== 'string' || !STORE_KEY.test(key)) {
    throw new SessionError('ESESS_INVALID_INPUT', { message: 'A NATS store key must be 1 to 512 characters of A-Z, a-z, 0-9, "-", "_" or "="', context: { store: STORE } });
  }
  return SESSION_PREFIX + key;
}

function indexPrefix(userId: string): string {
  if (typeof userId !== 'string') throw new SessionError('ESESS_INVALID_INPUT', { message: 'userId must be a string', context: { store: STORE, field: 'userId' } });
  return `${INDEX_PREFIX}${createHash('sha256').update(userId, 'utf8').digest('base64url')}.`;
}

function indexItem(userId: string, key: string): string {
  return indexPrefix(userId) + sessionItem(key).slice(SESSION_PREFIX.length);
}

/** A live record: the SQL stores' row without its fields as one line of JSON, then the fields document. */
function encodeSession(session: StoredSession): string {
  const { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, version } = session;
  if (![createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, version].every((n) => Number.isSafeInteger(n)) || (typeof userId !== 'string' && userId !== null && userId !== undefined)) {
    throw new SessionError('ESESS_INVALID_INPUT', { message: 'A stored session needs integer times and version and a string or null userId', context: { store: STORE } });
  }
  const row = { created_at: createdAt, last_seen_at: lastSeenAt, idle_timeout: idleTimeout, absolute_expires_at: absoluteExpiresAt, user_id: userId ?? null, version };
  // JSON.stringify escapes line breaks, so the first one ends the row.
  return `${JSON.stringify(row)}\n${encodeFields(session.fields)}`;
}

function decodeRecord(value: Uint8Array): Decoded {
  const text = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
  const newline = text.indexOf('\n');
  const head = parseObject(newline < 0 ? text : text.slice(0, newline));
  if (!head) return CORRUPT;
  if (newline < 0) {
    const until = toInteger(head.tombstone_until);
    return until === undefined ? CORRUPT : { kind: 'tombstone', until };
  }
  const session = readSession({ ...head, fields: text.slice(newline + 1) });
  return session ? { kind: 'live', session } : CORRUPT;
}

/** When an index entry's session is dead at the latest; an unreadable entry is kept for the session itself to decide. */
function indexDeadline(value: Uint8Array): number {
  return toInteger(parseObject(Buffer.from(value).toString('utf8'))?.absolute_expires_at) ?? Number.POSITIVE_INFINITY;
}

/** The sweep lease: where the next batch starts and until when an instance holds it. */
function readLease(entry: KvEntry | null): { next: number; heldUntil: number } {
  const lease = entry?.operation === 'PUT' ? parseObject(Buffer.from(entry.value).toString('utf8')) : null;
  const next = toInteger(lease?.next_sequence);
  return { next: next !== undefined && next > 0 ? next : 1, heldUntil: toInteger(lease?.held_until) ?? 0 };
}

function encodeLease(next: number, heldUntil: number): string {
  return JSON.stringify({ next_sequence: next, held_until: heldUntil });
}

function decodeCursor(cursor: string | null): number {
  if (cursor === null) return 1;
  const match = typeof cursor === 'string' ? CURSOR.exec(cursor) : null;
  if (!match) throw new SessionError('ESESS_INVALID_INPUT', { message: 'scan() cursor is not one this store returned', context: { store: STORE } });
  return Number(match[1]);
}

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function apiCode(error: unknown): unknown {
  return (error as { api_error?: { err_code?: unknown } } | null)?.api_error?.err_code;
}

function isWrongLastSequence(error: unknown): boolean {
  return apiCode(error) === API.wrongLastSequence;
}

const KIND_MESSAGES: Record<ErrorKind, string> = {
  timeout: 'NATS did not answer in time; a write may or may not have been applied',
  closed: 'The NATS connection is closed',
  connection: 'NATS cannot be reached',
  jetstream: 'No JetStream stream answered: JetStream is not enabled on the NATS server (nats-server -js) or for the account, or the bucket is gone',
  bucket: 'The NATS KV bucket does not exist',
  auth: 'NATS refused the credentials or their permissions',
  server: 'NATS refused the request',
};

/** nats.js and JetStream failures as typed errors; the kind and the JetStream error code travel in the context. */
function natsError(error: unknown, operation: string): SessionError {
  if (error instanceof SessionError) {
    if (error.context.operation !== undefined) return error;
    return new SessionError(error.code, { message: error.message, cause: error.cause, context: { ...error.context, operation } });
  }
  const code = String((error as { code?: unknown } | null)?.code ?? '');
  const api = apiCode(error);
  const context = { store: STORE, operation, ...(typeof api === 'number' ? { natsCode: api } : {}) };
  if (code === 'MAX_PAYLOAD_EXCEEDED' || api === API.messageTooLarge) {
    return new SessionError('ESESS_TOO_LARGE', { message: 'Session record exceeds the NATS message size limit (max_payload, or the bucket max_value_size)', context });
  }
  const kind = errorKind(code, api);
  return new SessionError('ESESS_STORE_UNAVAILABLE', { message: KIND_MESSAGES[kind], cause: redacted(error), context: { ...context, kind } });
}

function errorKind(code: string, api: unknown): ErrorKind {
  if (code === 'TIMEOUT' || code === '408') return 'timeout';
  if (code === 'CONNECTION_CLOSED' || code === 'CONNECTION_DRAINING') return 'closed';
  if (code === 'CONNECTION_REFUSED' || code === 'CONNECTION_TIMEOUT' || code === 'DISCONNECT' || code === 'TLS') return 'connection';
  if (code === '503' || api === API.notEnabled || api === API.notEnabledForAccount) return 'jetstream';
  if (api === API.streamNotFound) return 'bucket';
  if (/AUTH|PERMISSIONS|CREDS|ACCOUNT_EXPIRED/.test(code)) return 'auth';
  return 'server';
}

/** The cause without subjects: a permissions error names the subject, which carries a store key. */
function redacted(error: unknown): Error {
  const { name = 'Error', message = String(error), code } = (error ?? {}) as { name?: string; message?: string; code?: unknown };
  return Object.assign(new Error(message.replace(/\$KV\.[^\s"']*/g, '$KV.…')), { name, ...(typeof code === 'string' ? { code } : {}) });
}
