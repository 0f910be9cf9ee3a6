import type * as Memjs from 'memjs';
import type { Client, ClientOptions, ServerOptions } from 'memjs';
import { configError, SessionError } from '../core/errors.js';
import { importDriver } from './driver.js';
import { publishConflict, publishCorrupt } from '../core/telemetry.js';
import type { ApplyResult, Clock, SessionDelta, SessionStore, StoreCapabilities, StoredField, StoredSession, StoredSummary } from '../core/types.js';
import { expiresAt, systemClock } from '../core/types.js';

/** What the store uses of a memjs Client; any serializer works, the store bypasses it. */
export type MemjsClient = Pick<Client<never, unknown>, 'perform' | 'incrSeq' | 'seq'>;

export interface MemcachedStoreOptions {
  /** A memjs Client. The application owns it: `close()` leaves it open. */
  client: MemjsClient;
  /** Prepended to every store key. @default 'es:' */
  prefix?: string;
  /** Compare-and-swap attempts of one `apply()` before ESESS_CONFLICT. @default 32 */
  maxAttempts?: number;
  /**
   * The server's item size limit (`memcached -I`, 1 MiB unless configured). A record that would
   * not fit is refused with ESESS_TOO_LARGE before it is sent. @default 1048576
   */
  maxItemBytes?: number;
  /** Time source for expiry decisions. @default Date.now */
  clock?: Clock;
}

const STORE = 'memcached';
const OP = { get: 0x00, set: 0x01, add: 0x02, replace: 0x03 } as const;
const STATUS = { ok: 0x00, notFound: 0x01, exists: 0x02, tooLarge: 0x03, notStored: 0x05 } as const;
/** memcached reads an expiration beyond 30 days as an absolute Unix time. */
const RELATIVE_LIMIT_SECONDS = 30 * 24 * 3600;
/** Item header, CAS and suffix bytes memcached keeps beside key and value. */
const ITEM_OVERHEAD = 64;
const MAX_KEY_BYTES = 250;

/** A live session as stored: short names keep items small. Fields are `[value, stamp]`. */
interface LiveRecord {
  c: number;
  l: number;
  i: number;
  a: number;
  u: string | null;
  v: number;
  f: Record<string, [string | null, string]>;
}

type Decoded = { kind: 'live'; session: StoredSession } | { kind: 'tombstone'; until: number } | { kind: 'corrupt' };

interface Reply {
  status: number;
  cas: Buffer;
  value: Buffer;
}

/**
 * Sessions in Memcached: one item per session holding the whole record as JSON. Memcached has
 * no server-side merge, so a delta is a bounded compare-and-swap loop (`get` with its CAS
 * token, merge by stamp here, `replace` with that token). Items expire natively; a destroyed
 * session is replaced by a tombstone item that lives until its absolute expiry plus the grace.
 *
 * Memcached is a cache: under memory pressure it evicts items, live sessions and tombstones
 * alike. An evicted session is simply gone (deltas never recreate it). It has no user index.
 */
export class MemcachedStore implements SessionStore {
  readonly name = STORE;
  readonly capabilities: StoreCapabilities = { nativeTtl: true, cas: true, userIndex: false, sweep: false };
  readonly #client: MemjsClient;
  readonly #prefix: string;
  readonly #maxAttempts: number;
  readonly #maxItemBytes: number;
  readonly #clock: Clock;
  readonly #onClose: (() => void) | undefined;
  #closed = false;

  constructor(options: MemcachedStoreOptions, onClose?: () => void) {
    if (!options || typeof options.client?.perform !== 'function' || typeof options.client.incrSeq !== 'function') throw configError('client', 'must be a memjs Client');
    const prefix = options.prefix ?? 'es:';
    if (typeof prefix !== 'string' || Buffer.byteLength(prefix) > 100 || [...prefix].some((char) => char <= ' ' || char === '\u007f')) throw configError('prefix', 'must be at most 100 bytes without spaces or control characters');
    const maxAttempts = options.maxAttempts ?? 32;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw configError('maxAttempts', 'must be a positive integer');
    const maxItemBytes = options.maxItemBytes ?? 1024 * 1024;
    if (!Number.isInteger(maxItemBytes) || maxItemBytes < 1024) throw configError('maxItemBytes', 'must be an integer of at least 1024');
    if (options.clock !== undefined && typeof options.clock !== 'function') throw configError('clock', 'must be a function returning milliseconds');
    this.#client = options.client;
    this.#prefix = prefix;
    this.#maxAttempts = maxAttempts;
    this.#maxItemBytes = maxItemBytes;
    this.#clock = options.clock ?? systemClock;
    this.#onClose = onClose;
  }

  async load(key: string): Promise<StoredSession | null> {
    const item = this.#key(key);
    const reply = await this.#send('load', OP.get, item);
    if (reply.status === STATUS.notFound) return null;
    const record = this.#decode(reply.value);
    return record.kind === 'live' && this.#isLive(record.session) ? record.session : null;
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    const item = this.#key(key);
    const value = this.#encode(item, session);
    const exptime = this.#exptime(expiresAt(session));
    for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
      const added = await this.#send('create', OP.add, item, value, exptime);
      if (added.status === STATUS.ok) return true;
      if (added.status !== STATUS.exists && added.status !== STATUS.notStored) throw this.#statusError('create', added.status);
      // Taken: by a live record or tombstone (the key stays taken), or by one that is dead by
      // our clock but not yet by memcached's (it is replaced).
      const found = await this.#send('create', OP.get, item);
      if (found.status === STATUS.notFound) continue;
      const record = this.#decode(found.value, false);
      if (record.kind === 'live' && this.#isLive(record.session)) return false;
      if (record.kind === 'tombstone' && record.until > this.#clock()) return false;
      const replaced = await this.#send('create', OP.replace, item, value, exptime, found.cas);
      if (replaced.status === STATUS.ok) return true;
      if (replaced.status !== STATUS.exists && replaced.status !== STATUS.notFound) throw this.#statusError('create', replaced.status);
    }
    throw this.#conflict('create');
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    const item = this.#key(key);
    for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
      const found = await this.#send('apply', OP.get, item);
      if (found.status === STATUS.notFound) return { status: 'gone' };
      const record = this.#decode(found.value);
      if (record.kind !== 'live' || !this.#isLive(record.session)) return { status: 'gone' };
      const session = record.session;
      if (delta.expectVersion !== undefined && delta.expectVersion !== session.version) return { status: 'conflict', version: session.version };
      merge(session, delta);
      const replaced = await this.#send('apply', OP.replace, item, this.#encode(item, session), this.#exptime(expiresAt(session)), found.cas);
      if (replaced.status === STATUS.ok) return { status: 'ok', version: session.version };
      // Deleted or expired between our get and replace: gone, like any other reader would see.
      if (replaced.status === STATUS.notFound) return { status: 'gone' };
      if (replaced.status !== STATUS.exists) throw this.#statusError('apply', replaced.status);
      publishConflict(STORE, attempt);
      await backoff(attempt);
    }
    throw this.#conflict('apply');
  }

  async destroy(key: string, tombstoneGraceMs: number): Promise<boolean> {
    if (!Number.isSafeInteger(tombstoneGraceMs) || tombstoneGraceMs < 0) throw new SessionError('ESESS_INVALID_INPUT', { message: 'tombstoneGraceMs must be a non-negative integer' });
    const item = this.#key(key);
    for (let attempt = 1; ; attempt++) {
      const found = await this.#send('destroy', OP.get, item);
      if (found.status === STATUS.notFound) return false;
      const record = this.#decode(found.value);
      if (record.kind !== 'live' || !this.#isLive(record.session)) return false;
      const until = record.session.absoluteExpiresAt + tombstoneGraceMs;
      const tombstone = Buffer.from(JSON.stringify({ t: until }));
      // Destroy must win: after losing the race this often, overwrite whatever is there.
      const last = attempt >= this.#maxAttempts;
      const written = await this.#send('destroy', last ? OP.set : OP.replace, item, tombstone, this.#exptime(until), last ? undefined : found.cas);
      if (written.status === STATUS.ok) return true;
      if (written.status === STATUS.notFound) return false;
      if (written.status !== STATUS.exists) throw this.#statusError('destroy', written.status);
      publishConflict(STORE, attempt);
      await backoff(attempt);
    }
  }

  /** Memcached cannot enumerate keys, so this store keeps no user index. */
  async listByUser(_userId: string): Promise<StoredSummary[]> {
    throw this.#unsupported('listByUser');
  }

  async destroyByUser(_userId: string, _tombstoneGraceMs: number): Promise<number> {
    throw this.#unsupported('destroyByUser');
  }

  /** Nothing to do: memcached expires items itself. */
  async sweep(_limit: number): Promise<number> {
    this.#open();
    return 0;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose?.();
  }

  #open(): void {
    if (this.#closed) throw new SessionError('ESESS_STORE_CLOSED', { context: { store: STORE } });
  }

  #unsupported(operation: string): SessionError {
    this.#open();
    return new SessionError('ESESS_UNSUPPORTED', { message: 'The memcached store has no user index', context: { store: STORE, operation } });
  }

  #conflict(operation: string): SessionError {
    return new SessionError('ESESS_CONFLICT', { context: { store: STORE, operation, attempts: this.#maxAttempts } });
  }

  #key(key: string): string {
    this.#open();
    const item = this.#prefix + key;
    if (typeof key !== 'string' || Buffer.byteLength(item) > MAX_KEY_BYTES) throw new SessionError('ESESS_INVALID_INPUT', { message: `Store keys must be strings of at most ${MAX_KEY_BYTES} bytes with the prefix` });
    return item;
  }

  #isLive(session: StoredSession): boolean {
    return expiresAt(session) > this.#clock();
  }

  /**
   * Memcached counts whole seconds and may drop an item up to a second early, so items get one
   * second more than their deadline; reads check the deadline themselves. Beyond 30 days the
   * protocol wants an absolute Unix time, which is the server's wall clock, not our clock.
   */
  #exptime(deadline: number): number {
    const remaining = deadline - this.#clock();
    const seconds = Math.max(1, Math.ceil(remaining / 1000) + 1);
    if (seconds <= RELATIVE_LIMIT_SECONDS) return seconds;
    return Math.min(0xffffffff, Math.ceil((Date.now() + remaining) / 1000) + 1);
  }

  #encode(item: string, session: StoredSession): Buffer {
    const f = Object.create(null) as LiveRecord['f'];
    for (const [name, field] of Object.entries(session.fields)) {
      if (!field || (typeof field.value !== 'string' && field.value !== null) || typeof field.stamp !== 'string') {
        throw new SessionError('ESESS_INVALID_INPUT', { message: 'A stored field needs a string or null value and a string stamp' });
      }
      f[name] = [field.value, field.stamp];
    }
    const record: LiveRecord = { c: session.createdAt, l: session.lastSeenAt, i: session.idleTimeout, a: session.absoluteExpiresAt, u: session.userId ?? null, v: session.version, f };
    const value = Buffer.from(JSON.stringify(record));
    if (value.length + Buffer.byteLength(item) + ITEM_OVERHEAD > this.#maxItemBytes) {
      throw new SessionError('ESESS_TOO_LARGE', { message: 'Session record exceeds the memcached item size limit', context: { store: STORE, maxItemBytes: this.#maxItemBytes } });
    }
    return value;
  }

  /** @param count whether an unreadable item is published as corrupt (not when create replaces it). */
  #decode(value: Buffer, count = true): Decoded {
    const decoded = decodeRecord(value);
    if (decoded.kind === 'corrupt' && count) publishCorrupt(STORE);
    return decoded;
  }

  #statusError(operation: string, status: number): SessionError {
    if (status === STATUS.tooLarge) {
      return new SessionError('ESESS_TOO_LARGE', { message: 'Session record exceeds the memcached item size limit', context: { store: STORE, operation, maxItemBytes: this.#maxItemBytes } });
    }
    return new SessionError('ESESS_STORE_UNAVAILABLE', { message: `Memcached answered with status ${status}`, context: { store: STORE, operation, status } });
  }

  /** One binary-protocol request through memjs (which routes by key and reconnects). */
  #send(operation: string, opcode: number, item: string, value?: Buffer, exptime?: number, cas?: Buffer): Promise<Reply> {
    this.#open();
    const extras = Buffer.alloc(value === undefined ? 0 : 8);
    if (value !== undefined) extras.writeUInt32BE(exptime ?? 0, 4);
    const key = Buffer.from(item);
    const body = value ?? Buffer.alloc(0);
    const request = Buffer.alloc(24 + extras.length + key.length + body.length);
    request.writeUInt8(0x80, 0);
    request.writeUInt8(opcode, 1);
    request.writeUInt16BE(key.length, 2);
    request.writeUInt8(extras.length, 4);
    request.writeUInt32BE(extras.length + key.length + body.length, 8);
    this.#client.incrSeq();
    const seq = this.#client.seq;
    request.writeUInt32BE(seq, 12);
    cas?.copy(request, 16);
    extras.copy(request, 24);
    key.copy(request, 24 + extras.length);
    body.copy(request, 24 + extras.length + key.length);
    return new Promise((resolve, reject) => {
      this.#client.perform(item, request, seq, (error: Error | null, response?: unknown) => {
        const reply = readReply(response);
        if (error || !reply) reject(new SessionError('ESESS_STORE_UNAVAILABLE', { cause: error ?? undefined, context: { store: STORE, operation } }));
        else resolve(reply);
      });
    });
  }
}

export function memcachedStore(options: MemcachedStoreOptions): MemcachedStore {
  return new MemcachedStore(options);
}

/**
 * Opens a store over its own memjs client from a URL: `memcached://host:port,host:port`
 * (optionally `user:pass@` before the hosts for SASL, and `?prefix=` to change the key prefix).
 * Keys are spread over the servers by memjs's hashing. `close()` closes the client.
 */
export async function openMemcachedStore(url: string, options: Omit<MemcachedStoreOptions, 'client'> & { client?: ClientOptions & ServerOptions } = {}): Promise<MemcachedStore> {
  const match = /^memcached:\/\/([^/?#]+)\/?(?:\?([^#]*))?$/i.exec(url);
  if (!match?.[1]) throw configError('store', 'must be a memcached://host:port[,host:port...] URL');
  const servers = match[1].split(',');
  for (const server of servers) {
    if (!/^(?:[^@:\s]+:[^@\s]*@)?[^@:,\s]+(?::\d{1,5})?$/.test(server)) throw configError('store', 'must list servers as host:port, separated by commas');
  }
  const query = new URLSearchParams(match[2] ?? '');
  const prefix = query.get('prefix') ?? options.prefix;
  const memjs: typeof Memjs = await importDriver(() => import('memjs'), 'Memcached', 'memjs');
  const Client = memjs.Client ?? (memjs as unknown as { default: typeof Memjs }).default.Client;
  // Failures reach the caller as typed errors, so memjs's own console logging is turned off.
  const client = Client.create(servers.join(','), { timeout: 1, conntimeout: 2, keepAlive: true, logger: { log: () => undefined }, ...options.client });
  const { client: _ignored, ...rest } = options;
  try {
    return new MemcachedStore({ ...rest, client, ...(prefix === null || prefix === undefined ? {} : { prefix }) }, () => client.close());
  } catch (error) {
    client.close();
    throw error;
  }
}

function readReply(response: unknown): Reply | null {
  const r = response as { header?: { status?: unknown; cas?: unknown }; val?: unknown } | null | undefined;
  const status = r?.header?.status;
  if (typeof status !== 'number') return null;
  const cas = Buffer.isBuffer(r?.header?.cas) ? r.header.cas : Buffer.alloc(8);
  const value = Buffer.isBuffer(r?.val) ? r.val : Buffer.alloc(0);
  return { status, cas, value };
}

function decodeRecord(value: Buffer): Decoded {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch {
    return { kind: 'corrupt' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { kind: 'corrupt' };
  const record = parsed as Partial<Record<keyof LiveRecord | 't', unknown>>;
  if ('t' in record) return isInteger(record.t) ? { kind: 'tombstone', until: record.t } : { kind: 'corrupt' };
  const { c, l, i, a, u, v, f } = record;
  if (!isInteger(c) || !isInteger(l) || !isInteger(i) || !isInteger(a) || !isInteger(v) || (typeof u !== 'string' && u !== null)) return { kind: 'corrupt' };
  if (typeof f !== 'object' || f === null || Array.isArray(f)) return { kind: 'corrupt' };
  const fields = Object.create(null) as Record<string, StoredField>;
  for (const [name, entry] of Object.entries(f)) {
    if (!Array.isArray(entry) || entry.length !== 2) return { kind: 'corrupt' };
    const [fieldValue, stamp] = entry as unknown[];
    if ((typeof fieldValue !== 'string' && fieldValue !== null) || typeof stamp !== 'string') return { kind: 'corrupt' };
    fields[name] = { value: fieldValue, stamp };
  }
  return { kind: 'live', session: { createdAt: c, lastSeenAt: l, idleTimeout: i, absoluteExpiresAt: a, userId: u, version: v, fields } };
}

/** Per-field last writer wins by stamp; lastSeenAt only moves forward; the version rises. */
function merge(session: StoredSession, delta: SessionDelta): void {
  for (const [name, change] of Object.entries(delta.fields ?? {})) {
    const current = session.fields[name];
    if (!current || change.stamp > current.stamp) session.fields[name] = { value: change.value, stamp: change.stamp };
  }
  if (delta.lastSeenAt !== undefined) session.lastSeenAt = Math.max(session.lastSeenAt, delta.lastSeenAt);
  if (delta.userId !== undefined) session.userId = delta.userId;
  session.version += 1;
}

function isInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

/** Random (full-jitter) exponential backoff, so contending writers spread out. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(50, 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}
