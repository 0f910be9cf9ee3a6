import { randomBytes } from 'node:crypto';
import { connect as netConnect, isIP } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ConnectionOptions } from 'node:tls';
import type * as Memjs from 'memjs';
import type { Client, ClientOptions, ServerOptions } from 'memjs';
import { configError, SessionError } from '../core/errors.js';
import { importDriver } from './driver.js';
import { backoff, mergeDelta } from './delta.js';
import { nodeTlsOptions, secureContext, tlsFromUrl } from './tls-url.js';
import { publishConflict, publishCorrupt } from '../core/telemetry.js';
import type { ApplyResult, Clock, SessionDelta, SessionStore, StoreCapabilities, StoredField, StoredSession, StoredSummary } from '../core/types.js';
import { expiresAt, systemClock } from '../core/types.js';

/** A server of a memjs Client as `scan()` reaches it for its key dump (memjs's `Server` is one). */
export interface MemcachedServerAddress {
  readonly host: string;
  readonly port: number;
  /** SASL credentials: memcached then speaks only the binary protocol, which cannot dump keys. */
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** A new connection as the client makes them (TLS for a `memcachedClient` with `tls`); plain TCP when absent. */
  openSocket?(): Socket;
}

/**
 * What the store uses of a memjs Client; any serializer works, the store bypasses it. With
 * `servers` (every memjs Client has them) the store can `scan()`; without, it has no `scan`.
 */
export type MemjsClient = Pick<Client<never, unknown>, 'perform' | 'incrSeq' | 'seq'> & { readonly servers?: readonly MemcachedServerAddress[] };

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
/** Walks whose key lists a store keeps at once (a walk's list goes when its last page is served). */
const MAX_WALKS = 4;
const SCAN_CURSOR_PREFIX = 'mc1.';
/** A dump connection with no data for this long fails (it covers connecting and the TLS handshake too). */
const DUMP_IDLE_TIMEOUT_MS = 10_000;
/** memcached runs one LRU crawl at a time and answers BUSY meanwhile (its own expiry crawls too). */
const DUMP_BUSY_ATTEMPTS = 50;
const DUMP_BUSY_WAIT_MS = 100;

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

/** A page of `scan()`. */
export interface MemcachedScanPage {
  keys: string[];
  cursor: string | null;
}

/**
 * Sessions in Memcached: one item per session holding the whole record as JSON. Memcached has
 * no server-side merge, so a delta is a bounded compare-and-swap loop (`get` with its CAS
 * token, merge by stamp here, `replace` with that token). Items expire natively; a destroyed
 * session is replaced by a tombstone item that lives until its absolute expiry plus the grace.
 *
 * Memcached is a cache: under memory pressure it evicts items, live sessions and tombstones
 * alike. An evicted session is simply gone (deltas never recreate it). It has no user index.
 *
 * `scan()` (for `elastic-session reencrypt`) exists when the client lists its servers and none
 * uses SASL: it reads `lru_crawler metadump hash` of every server (memcached 1.6 with the LRU
 * crawler, on by default) on a short-lived connection of its own, plain or TLS like the
 * client's. It walks the hash table, not the LRU lists (`metadump all`), because items move
 * between those lists while a crawl walks them and are then missed, even items that live
 * throughout. A dump is a snapshot: items written after it started may be missed (a second walk
 * finds them). The store keeps a walk's sorted key list (about 100 bytes a key)
 * until the walk ends, so a walk costs one dump per server; a cursor from another process or
 * store re-dumps and continues after the last key it returned.
 */
export class MemcachedStore implements SessionStore {
  readonly name = STORE;
  readonly capabilities: StoreCapabilities = { nativeTtl: true, cas: true, userIndex: false, sweep: false };
  /**
   * Up to `limit` keys of live sessions after `cursor`, in key order, and the next cursor (null
   * when the walk is done); pages may hold fewer keys. Absent when the servers cannot be dumped.
   */
  readonly scan?: (cursor: string | null, limit: number) => Promise<MemcachedScanPage>;
  readonly #client: MemjsClient;
  readonly #servers: readonly MemcachedServerAddress[];
  /** Walk ID → the store keys its dump found, sorted. */
  readonly #walks = new Map<string, string[]>();
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
    const servers = options.client.servers;
    this.#servers = Array.isArray(servers) && servers.length > 0 && servers.every(canDump) ? servers : [];
    if (this.#servers.length > 0) this.scan = (cursor, limit) => this.#scan(cursor, limit);
  }

  async load(key: string): Promise<StoredSession | null> {
    return this.#live('load', key);
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
      mergeDelta(session, delta);
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

  /** Memcached has no index to find a user's sessions by, so this store refuses user calls. */
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
    this.#walks.clear();
    this.#onClose?.();
  }

  async #scan(cursor: string | null, limit: number): Promise<MemcachedScanPage> {
    this.#open();
    if (!Number.isSafeInteger(limit) || limit < 1) throw new SessionError('ESESS_INVALID_INPUT', { message: 'scan() limit must be a positive integer', context: { store: STORE } });
    const { walk, after } = cursor === null ? { walk: randomBytes(12).toString('base64url'), after: null } : decodeScanCursor(cursor);
    const keys = this.#walks.get(walk) ?? this.#remember(walk, await this.#dump());
    const start = after === null ? 0 : firstAfter(keys, after);
    const batch = keys.slice(start, start + limit);
    const live = await Promise.all(batch.map(async (key) => (await this.#live('scan', key, false)) !== null));
    const page = batch.filter((_, i) => live[i]);
    if (start + batch.length >= keys.length) {
      this.#walks.delete(walk);
      return { keys: page, cursor: null };
    }
    return { keys: page, cursor: encodeScanCursor(walk, batch[batch.length - 1] as string) };
  }

  /** The store keys of every server's dump, without duplicates (an item may sit on two servers after a failover), sorted. */
  async #dump(): Promise<string[]> {
    const lists = await Promise.all(this.#servers.map((server) => dumpKeys(server, this.#prefix)));
    return [...new Set(lists.flat())].sort();
  }

  #remember(walk: string, keys: string[]): string[] {
    this.#walks.set(walk, keys);
    if (this.#walks.size > MAX_WALKS) this.#walks.delete(this.#walks.keys().next().value as string);
    return keys;
  }

  /** The live session under `key`, or null; `count`: whether an unreadable item is published as corrupt. */
  async #live(operation: string, key: string, count = true): Promise<StoredSession | null> {
    const reply = await this.#send(operation, OP.get, this.#key(key));
    if (reply.status === STATUS.notFound) return null;
    const record = this.#decode(reply.value, count);
    return record.kind === 'live' && this.#isLive(record.session) ? record.session : null;
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

/** Options of `memcachedClient`: memjs's client and server options, and TLS. */
export interface MemcachedClientOptions extends ClientOptions, ServerOptions {
  /**
   * `tls.connect` options for every connection to every server, e.g. `{ ca }` to trust a private
   * CA and `cert` and `key` for a client certificate (mutual TLS). The server certificate must
   * chain to a trusted CA (`rejectUnauthorized` stays true unless you set it) and name the host
   * as written in the server list (Node's `checkServerIdentity`); SNI names that host unless it
   * is an IP address or `servername` is given. Checked here: unusable PEM is ESESS_CONFIG.
   * @default plain TCP
   */
  tls?: ConnectionOptions;
}

/**
 * A memjs Client for the store, over TLS when `options.tls` is given (memjs itself only speaks
 * plain TCP; memcached 1.6 serves TLS with `-Z`). `servers` is memjs's list,
 * `[user:pass@]host[:port],...`. Unlike a plain memjs client, a connection the server closes
 * while requests wait fails them (memjs would leave them waiting for ever). A failed handshake
 * (untrusted or misnamed server certificate, refused client certificate) fails the operation
 * like any connection failure (ESESS_STORE_UNAVAILABLE through the store); nothing ever falls
 * back to plain TCP. The store's `scan()` dumps keys over the same kind of connection.
 *
 * @example
 * const client = await memcachedClient('cache1:11211,cache2:11211', { tls: { ca: readFileSync('ca.pem') } });
 * const store = memcachedStore({ client });
 */
export async function memcachedClient(servers: string, options: MemcachedClientOptions = {}): Promise<Client> {
  const { tls, ...clientOptions } = options ?? {};
  if (tls !== undefined && (typeof tls !== 'object' || tls === null)) throw configError('tls', 'must be tls.connect options such as { ca }');
  return connectingClient(servers, clientOptions, tls === undefined ? null : { ...tls, secureContext: tls.secureContext ?? secureContext(tls, 'tls') });
}

/** A memjs Client over `ConnectingServer`s: TLS with `tls`, else plain TCP. */
async function connectingClient(servers: string, options: ClientOptions & ServerOptions, tls: ConnectionOptions | null): Promise<Client> {
  if (typeof servers !== 'string' || servers.trim() === '') throw configError('servers', 'must list servers as host:port, separated by commas');
  const memjs = await loadMemjs();
  const ConnectingServer = connectingServerClass(memjs.Server);
  // memjs parses the list; its plain servers are read, never connected.
  const parsed = memjs.Client.create(servers, options).servers;
  return new memjs.Client(parsed.map((server) => new ConnectingServer(server.host, server.port, server.username, server.password, options, tls)), options);
}

/**
 * Opens a store over its own memjs client from a URL: `memcached://host:port,host:port`
 * (optionally `user:pass@` before the hosts for SASL, and `?prefix=` to change the key prefix).
 * Keys are spread over the servers by memjs's hashing. `close()` closes the client.
 *
 * TLS: `ssl-mode` (`disabled`, `required`: encrypted but unverified, `verify-ca`: the
 * certificate chains to a trusted CA, `verify-full`: and names the host; the default when any
 * `ssl-*` is given), `ssl-ca` (PEM file of the CAs to trust instead of Node's), `ssl-cert` and
 * `ssl-key` (PEM files of a client certificate), as for MySQL. `options.client.tls` (tls.connect
 * options) replaces them.
 *
 * @example
 * await openMemcachedStore('memcached://cache1:11211,cache2:11211?ssl-ca=/etc/ssl/cache-ca.pem');
 */
export async function openMemcachedStore(url: string, options: Omit<MemcachedStoreOptions, 'client'> & { client?: ClientOptions & ServerOptions & { tls?: ConnectionOptions } } = {}): Promise<MemcachedStore> {
  const match = /^memcached:\/\/([^/?#]+)\/?(?:\?([^#]*))?$/i.exec(url);
  if (!match?.[1]) throw configError('store', 'must be a memcached://host:port[,host:port...] URL');
  const servers = match[1].split(',');
  for (const server of servers) {
    if (!/^(?:[^@:\s]+:[^@\s]*@)?[^@:,\s]+(?::\d{1,5})?$/.test(server)) throw configError('store', 'must list servers as host:port, separated by commas');
  }
  const query = new URLSearchParams(match[2] ?? '');
  const prefix = query.get('prefix') ?? options.prefix;
  const fromUrl = await tlsFromUrl(query);
  const { tls: given, ...clientOptions } = options.client ?? {};
  const tls = given ?? (fromUrl && nodeTlsOptions(fromUrl));
  // Failures reach the caller as typed errors, so memjs's own console logging is turned off.
  const settings = { timeout: 1, conntimeout: 2, keepAlive: true, logger: { log: () => undefined }, ...clientOptions };
  const client = await connectingClient(servers.join(','), settings, tls ? { ...tls, secureContext: tls.secureContext ?? secureContext(tls, 'client.tls') } : null);
  const { client: _ignored, ...rest } = options;
  try {
    return new MemcachedStore({ ...rest, client, ...(prefix === null || prefix === undefined ? {} : { prefix }) }, () => client.close());
  } catch (error) {
    client.close();
    throw error;
  }
}

async function loadMemjs(): Promise<typeof Memjs> {
  const memjs: typeof Memjs = await importDriver(() => import('memjs'), 'Memcached', 'memjs');
  return memjs.Client ? memjs : (memjs as unknown as { default: typeof Memjs }).default;
}

/** The memjs 1.3 Server state that `sock` below manages (its types mark it read-only or leave it out). */
interface ServerState {
  _socket?: Socket;
  connected: boolean;
  timeoutSet: boolean;
  connectCallbacks: ((socket: Socket) => void)[];
  options: { conntimeout: number; keepAlive: boolean; keepAliveDelay: number };
}

/**
 * A memjs Server that opens its connections itself: TLS with `tls`, plain TCP without. The class
 * extends the memjs that was loaded, so it is made at run time.
 */
function connectingServerClass(Server: typeof Memjs.Server) {
  return class ConnectingServer extends Server {
    readonly #tls: ConnectionOptions | null;

    constructor(host: string, port: number, username: string | undefined, password: string | undefined, options: ServerOptions, tls: ConnectionOptions | null) {
      super(host, port, username, password, options);
      this.#tls = tls;
    }

    openSocket(): Socket {
      if (this.#tls === null) return netConnect({ host: this.host, port: this.port });
      const sni = this.#tls.servername === undefined && isIP(this.host) === 0 ? { servername: this.host } : {};
      return tlsConnect({ ...this.#tls, ...sni, host: this.host, port: this.port });
    }

    /**
     * memjs has no hook for how it connects (no TLS): its `sock` calls `net.connect` itself. A new connection is made here
     * as memjs 1.3 makes it (server.js, `sock`, first case) but with `openSocket`; an existing one
     * goes to memjs. Unlike memjs, a connection the server closes without an error fails the
     * requests waiting on it (memjs would leave them waiting for ever).
     */
    override sock(sasl: boolean, go: (socket: Socket) => void): void {
      const state = this as unknown as ServerState;
      if (state._socket) return super.sock(sasl, go);
      const socket = this.openSocket();
      state.connected = false;
      state._socket = socket;
      socket.once(this.#tls === null ? 'connect' : 'secureConnect', () => {
        this.once('authenticated', () => {
          if (state._socket !== socket) return;
          state.connected = true;
          socket.setTimeout(0);
          state.timeoutSet = false;
          go(socket);
          for (const callback of state.connectCallbacks) callback(socket);
          state.connectCallbacks = [];
        });
        socket.on('data', (data: Buffer) => this.responseHandler(data));
        if (this.username && this.password) this.listSasl();
        else this.emit('authenticated');
      });
      socket.on('error', (error) => this.error(error));
      socket.on('close', () => {
        if (state._socket !== socket) return;
        state.connected = false;
        state.timeoutSet = false;
        delete state._socket;
        this.error(new Error('memcached closed the connection'));
      });
      state.timeoutSet = true;
      socket.setTimeout(state.options.conntimeout * 1000, () => {
        state.timeoutSet = false;
        if (!state.connected) this.error(new Error('socket timed out connecting to server.'));
      });
      socket.setKeepAlive(state.options.keepAlive, state.options.keepAliveDelay * 1000);
    }
  };
}

/** Whether `scan()` can dump this server: it has an address and no SASL (which disables memcached's text protocol). */
function canDump(server: MemcachedServerAddress): boolean {
  return typeof server?.host === 'string' && Number.isInteger(server.port) && !(server.username && server.password);
}

/** The store keys (item keys under `prefix`, without it) in one server's `lru_crawler metadump hash`. */
async function dumpKeys(server: MemcachedServerAddress, prefix: string): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    const keys = await metadump(server, prefix);
    if (keys !== 'busy') return keys;
    if (attempt >= DUMP_BUSY_ATTEMPTS) {
      throw new SessionError('ESESS_STORE_UNAVAILABLE', { message: 'Memcached kept answering BUSY to lru_crawler metadump (another crawl is running); try again', context: { store: STORE, operation: 'scan' } });
    }
    await new Promise((resolve) => setTimeout(resolve, DUMP_BUSY_WAIT_MS));
  }
}

/** One metadump on a connection of its own: the keys, or 'busy' when another crawl runs. */
function metadump(server: MemcachedServerAddress, prefix: string): Promise<string[] | 'busy'> {
  return new Promise((resolve, reject) => {
    const socket = server.openSocket?.() ?? netConnect(server.port, server.host);
    const keys: string[] = [];
    let buffered = '';
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      outcome();
    };
    const unavailable = (cause: Error) => settle(() => reject(new SessionError('ESESS_STORE_UNAVAILABLE', { cause, context: { store: STORE, operation: 'scan' } })));
    socket.setTimeout(DUMP_IDLE_TIMEOUT_MS, () => unavailable(new Error('lru_crawler metadump timed out')));
    socket.on('error', unavailable);
    socket.on('close', () => unavailable(new Error('memcached closed the connection before the end of the dump')));
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      let start = 0;
      // Key lines end with \n, memcached's own answers (END, BUSY, errors) with \r\n.
      for (let end = buffered.indexOf('\n'); end >= 0 && !settled; end = buffered.indexOf('\n', start)) {
        const line = buffered.slice(start, buffered[end - 1] === '\r' ? end - 1 : end);
        start = end + 1;
        const encoded = /^key=(\S+)/.exec(line)?.[1];
        if (line === 'END') settle(() => resolve(keys));
        else if (encoded !== undefined) {
          const item = decodeItemKey(encoded);
          if (item?.startsWith(prefix)) keys.push(item.slice(prefix.length));
        } else if (line.startsWith('BUSY') || line.startsWith('NOTSTARTED')) settle(() => resolve('busy'));
        else {
          const message = `Memcached cannot list its keys (it answered "${line.slice(0, 80)}" to lru_crawler metadump hash): scan() needs memcached 1.6 with the LRU crawler enabled`;
          settle(() => reject(new SessionError('ESESS_UNSUPPORTED', { message, context: { store: STORE, operation: 'scan' } })));
        }
      }
      buffered = buffered.slice(start);
    });
    socket.write('lru_crawler metadump hash\r\n');
  });
}

/** metadump URL-encodes keys. */
function decodeItemKey(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

/** The index of the first key after `key` in sorted `keys`. */
function firstAfter(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((keys[middle] as string) <= key) low = middle + 1;
    else high = middle;
  }
  return low;
}

function encodeScanCursor(walk: string, last: string): string {
  return `${SCAN_CURSOR_PREFIX}${Buffer.from(JSON.stringify([walk, last]), 'utf8').toString('base64url')}`;
}

function decodeScanCursor(cursor: string): { walk: string; after: string } {
  const invalid = () => new SessionError('ESESS_INVALID_INPUT', { message: 'scan() cursor is not one this store returned', context: { store: STORE } });
  if (typeof cursor !== 'string' || !cursor.startsWith(SCAN_CURSOR_PREFIX)) throw invalid();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor.slice(SCAN_CURSOR_PREFIX.length), 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || !parsed.every((part) => typeof part === 'string' && part.length > 0)) throw invalid();
  const [walk, after] = parsed as [string, string];
  return { walk, after };
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

function isInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

