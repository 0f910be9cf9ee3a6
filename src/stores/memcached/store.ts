import { createHash, randomBytes } from 'node:crypto';
import { configError, SessionError } from '../../core/errors.js';
import { covers, mergeDelta, mergeWatermarks, revokedTombstone, tombstoneOf, watermarkAt } from '../../core/record.js';
import { publishCorrupt } from '../../core/telemetry.js';
import type {
  ApplyResult,
  Clock,
  KeyState,
  LiveState,
  MergeOutcome,
  SessionDelta,
  SessionStore,
  StoreCapabilities,
  StoredSession,
  StoredSummary,
  TombstoneState,
  Watermark,
} from '../../core/types.js';
import { expiresAt, systemClock } from '../../core/types.js';
import { casLoop, RETRY } from '../kit/cas.js';
import { checkDelta, checkForeignState, checkGrace, checkLimit, checkRecord, checkStamp, invalidInput } from '../kit/checks.js';
import { mergeForeign } from '../kit/replica.js';
import { StoreShell } from '../kit/shell.js';
import { decodeRecord, encodeLive, encodeTombstone, encodeWatermark } from './codec.js';
import type { Decoded } from './codec.js';
import { lostRace, OP, send, STATUS, statusError, STORE } from './protocol.js';
import type { MemcachedServerAddress, MemjsClient, Reply } from './protocol.js';
import { canDump, decodeScanCursor, dumpKeys, encodeScanCursor, firstAfter } from './scan.js';
import type { MemcachedScanPage } from './scan.js';

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

/** memcached reads an expiration beyond 30 days as an absolute Unix time. */
const RELATIVE_LIMIT_SECONDS = 30 * 24 * 3600;
/** Item header, CAS and suffix bytes memcached keeps beside key and value. */
const ITEM_OVERHEAD = 64;
const MAX_KEY_BYTES = 250;
/** Walks whose key lists a store keeps at once (a walk's list goes when its last page is served). */
const MAX_WALKS = 4;
/** Watermark items: `<prefix>wm:<sha256(userId), base64url>`; store keys as the manager makes them (base64url) never hold a ':'. */
const WATERMARK_MARKER = 'wm:';

/**
 * Sessions in Memcached: one item per session holding the whole record as JSON. Memcached has
 * no server-side merge, so a delta is a bounded compare-and-swap loop (`get` with its CAS
 * token, merge by stamp here, `replace` with that token). Items expire natively; a destroyed
 * session is replaced by a tombstone item that lives until its absolute expiry plus the grace.
 *
 * Memcached is a cache: under memory pressure it evicts items, live sessions and tombstones
 * alike. An evicted session is simply gone (deltas never recreate it). It has no user index.
 * A user's revoke watermark is an item of its own: `mergeWatermark` keeps it (and kills no
 * session, having no index to find them by), and `mergeState` settles arriving records against it.
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
  readonly capabilities: StoreCapabilities;
  /**
   * Up to `limit` keys of live sessions after `cursor`, in key order, and the next cursor (null
   * when the walk is done); pages may hold fewer keys. Absent when the servers cannot be dumped.
   */
  readonly scan?: (cursor: string | null, limit: number) => Promise<MemcachedScanPage>;
  readonly #client: MemjsClient;
  readonly #servers: readonly MemcachedServerAddress[];
  /** Walk ID → the store keys its dump found, sorted. */
  readonly #walks = new Map<string, string[]>();
  readonly #shell = new StoreShell(STORE);
  readonly #prefix: string;
  readonly #maxAttempts: number;
  readonly #maxItemBytes: number;
  readonly #clock: Clock;
  readonly #onClose: (() => void) | undefined;

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
    if (this.#servers.length > 0) this.scan = (cursor, limit) => this.#shell.run('scan', () => this.#scan(cursor, limit));
    this.capabilities = { nativeTtl: true, cas: true, userIndex: false, sweep: false, scan: this.scan !== undefined, replica: true };
  }

  async load(key: string): Promise<StoredSession | null> {
    return this.#shell.run('load', async () => this.#live('load', key));
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    return this.#shell.run('create', async () => {
      checkRecord(session);
      const item = this.#key(key);
      const value = this.#encode(item, session);
      const exptime = this.#exptime(expiresAt(session));
      return casLoop(STORE, 'create', this.#maxAttempts, async () => {
        const added = await this.#send('create', OP.add, item, value, exptime);
        if (added.status === STATUS.ok) return true;
        if (added.status !== STATUS.exists && added.status !== STATUS.notStored) throw this.#statusError('create', added.status);
        // Taken: by a live record or tombstone (the key stays taken), or by one that is dead by
        // our clock but not yet by memcached's (it is replaced).
        const found = await this.#send('create', OP.get, item);
        if (found.status === STATUS.notFound) return RETRY;
        const record = this.#decode(found.value, false);
        if (this.#stateOf(record) !== null || record.kind === 'watermark') return false;
        const replaced = await this.#send('create', OP.replace, item, value, exptime, found.cas);
        if (replaced.status === STATUS.ok) return true;
        if (replaced.status !== STATUS.exists && replaced.status !== STATUS.notFound) throw this.#statusError('create', replaced.status);
        return RETRY;
      });
    });
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    return this.#shell.run('apply', async () => {
      checkDelta(delta);
      const item = this.#key(key);
      return casLoop<ApplyResult>(STORE, 'apply', this.#maxAttempts, async () => {
        const found = await this.#send('apply', OP.get, item);
        if (found.status === STATUS.notFound) return { status: 'gone' };
        const session = this.#liveOf(this.#decode(found.value));
        if (!session) return { status: 'gone' };
        if (delta.expectVersion !== undefined && delta.expectVersion !== session.version) return { status: 'conflict', version: session.version };
        mergeDelta(session, delta);
        const replaced = await this.#send('apply', OP.replace, item, this.#encode(item, session), this.#exptime(expiresAt(session)), found.cas);
        if (replaced.status === STATUS.ok) return { status: 'ok', version: session.version };
        // Deleted or expired between our get and replace: gone, like any other reader would see.
        if (replaced.status === STATUS.notFound) return { status: 'gone' };
        if (replaced.status !== STATUS.exists) throw this.#statusError('apply', replaced.status);
        return RETRY;
      });
    });
  }

  async destroy(key: string, tombstoneGraceMs: number, stamp = ''): Promise<boolean> {
    return this.#shell.run('destroy', async () => {
      checkGrace(tombstoneGraceMs);
      checkStamp(stamp, 'A destroy stamp', true);
      return this.#kill('destroy', this.#key(key), (session) => tombstoneOf(session, stamp, tombstoneGraceMs));
    });
  }

  /** Memcached has no index to find a user's sessions by, so this store refuses user calls. */
  async listByUser(_userId: string): Promise<StoredSummary[]> {
    throw this.#unsupported('listByUser');
  }

  async destroyByUser(_userId: string, _tombstoneGraceMs: number, _stamp?: string): Promise<number> {
    throw this.#unsupported('destroyByUser');
  }

  /** Nothing to do: memcached expires items itself. */
  async sweep(_limit: number): Promise<number> {
    this.#shell.open('sweep');
    return 0;
  }

  async readState(key: string): Promise<KeyState> {
    return this.#shell.run('readState', async () => {
      const found = await this.#send('readState', OP.get, this.#key(key));
      return found.status === STATUS.notFound ? null : this.#stateOf(this.#decode(found.value));
    });
  }

  /**
   * Merges in a compare-and-swap loop: `get` with its CAS token, `mergeForeign` here, then the
   * result written on that token (`add` when the key had no item, `delete` when nothing is left).
   */
  async mergeState(key: string, state: LiveState | TombstoneState): Promise<MergeOutcome> {
    return this.#shell.run('mergeState', async () => {
      checkForeignState(state);
      const item = this.#key(key);
      const { next, outcome } = await casLoop(STORE, 'mergeState', this.#maxAttempts, async () => {
        const found = await this.#send('mergeState', OP.get, item);
        const present = found.status !== STATUS.notFound;
        const current = present ? this.#stateOf(this.#decode(found.value)) : null;
        const merged = await mergeForeign(current, state, (user) => this.#watermark('mergeState', user), this.#clock());
        if (!merged.outcome.changed) return merged;
        const written = await this.#writeState('mergeState', item, merged.next, present ? found.cas : null);
        if (written.status === STATUS.ok || (merged.next === null && written.status === STATUS.notFound)) return merged;
        if (lostRace(written.status)) return RETRY;
        throw this.#statusError('mergeState', written.status);
      });
      // A revoke raised after the merge read the watermark: the record it just wrote must die too.
      const user = next?.kind === 'live' ? next.record.userId : null;
      if (!outcome.changed || next?.kind !== 'live' || user === null) return outcome;
      const watermark = await this.#watermark('mergeState', user);
      if (!covers(watermark, next.record)) return outcome;
      const killed = await this.#kill('mergeState', item, (session) => (session.userId === user && covers(watermark, session) ? revokedTombstone(session) : null));
      return killed ? { state: 'tombstone', changed: true } : outcome;
    });
  }

  async readWatermark(userId: string): Promise<Watermark | null> {
    return this.#shell.run('readWatermark', async () => this.#watermark('readWatermark', userId));
  }

  /**
   * Raises the user's watermark item (compare-and-swap). Without a user index no session is
   * found to destroy now: returns 0, and records of the user arriving later through
   * `mergeState` die if the watermark covers them.
   */
  async mergeWatermark(userId: string, stamp: string): Promise<number> {
    return this.#shell.run('mergeWatermark', async () => {
      checkStamp(stamp, 'A watermark stamp');
      const item = this.#watermarkItem(userId);
      await casLoop(STORE, 'mergeWatermark', this.#maxAttempts, async () => {
        const found = await this.#send('mergeWatermark', OP.get, item);
        const present = found.status !== STATUS.notFound;
        const stored = present ? this.#aliveWatermark(this.#decode(found.value)) : null;
        const raised = mergeWatermarks(stored, watermarkAt(stamp)) as Watermark;
        if (stored?.stamp === raised.stamp && stored.until === raised.until) return raised;
        const value = encodeWatermark(raised);
        const exptime = this.#exptime(raised.until);
        const written = await (present ? this.#send('mergeWatermark', OP.replace, item, value, exptime, found.cas) : this.#send('mergeWatermark', OP.add, item, value, exptime));
        if (written.status === STATUS.ok) return raised;
        if (lostRace(written.status)) return RETRY;
        throw this.#statusError('mergeWatermark', written.status);
      });
      return 0;
    });
  }

  async close(): Promise<void> {
    if (!this.#shell.close()) return;
    this.#walks.clear();
    this.#onClose?.();
  }

  async #scan(cursor: string | null, limit: number): Promise<MemcachedScanPage> {
    checkLimit(limit, STORE);
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

  /**
   * Replaces the live session of `item` by the tombstone `decide` gives it (none: leave it) in a
   * compare-and-swap loop. Destroy must win: after losing the race this often, it overwrites
   * whatever is there. Whether it destroyed a live session.
   */
  async #kill(operation: string, item: string, decide: (session: StoredSession) => TombstoneState | null): Promise<boolean> {
    return casLoop(STORE, operation, this.#maxAttempts, async (attempt) => {
      const found = await this.#send(operation, OP.get, item);
      if (found.status === STATUS.notFound) return false;
      const session = this.#liveOf(this.#decode(found.value));
      const tombstone = session && decide(session);
      if (!tombstone) return false;
      const last = attempt >= this.#maxAttempts;
      const value = encodeTombstone(tombstone.stamp, tombstone.until);
      const written = await this.#send(operation, last ? OP.set : OP.replace, item, value, this.#exptime(tombstone.until), last ? undefined : found.cas);
      if (written.status === STATUS.ok) return true;
      if (written.status === STATUS.notFound) return false;
      if (written.status !== STATUS.exists) throw this.#statusError(operation, written.status);
      return RETRY;
    });
  }

  /**
   * Writes a changed merged state on the CAS token of the item it was merged with (`null`: the
   * key had no item, so the state was nothing and `next` is not).
   */
  #writeState(operation: string, item: string, next: KeyState, cas: Buffer | null): Promise<Reply> {
    if (next === null) return this.#send(operation, OP.delete, item, undefined, undefined, cas ?? undefined);
    const value = next.kind === 'live' ? this.#encode(item, next.record) : encodeTombstone(next.stamp, next.until);
    const exptime = this.#exptime(next.kind === 'live' ? expiresAt(next.record) : next.until);
    return cas === null ? this.#send(operation, OP.add, item, value, exptime) : this.#send(operation, OP.replace, item, value, exptime, cas);
  }

  /** The live session under `key`, or null; `count`: whether an unreadable item is published as corrupt. */
  async #live(operation: string, key: string, count = true): Promise<StoredSession | null> {
    const reply = await this.#send(operation, OP.get, this.#key(key));
    if (reply.status === STATUS.notFound) return null;
    return this.#liveOf(this.#decode(reply.value, count));
  }

  async #watermark(operation: string, userId: string): Promise<Watermark | null> {
    const found = await this.#send(operation, OP.get, this.#watermarkItem(userId));
    return found.status === STATUS.notFound ? null : this.#aliveWatermark(this.#decode(found.value));
  }

  #aliveWatermark(decoded: Decoded): Watermark | null {
    return decoded.kind === 'watermark' && decoded.watermark.until > this.#clock() ? decoded.watermark : null;
  }

  /** What `readState` shows of an item: a live session by our clock, a tombstone before its time, else nothing. */
  #stateOf(decoded: Decoded): KeyState {
    if (decoded.kind === 'live') return expiresAt(decoded.session) > this.#clock() ? { kind: 'live', record: decoded.session } : null;
    if (decoded.kind === 'tombstone') return decoded.until > this.#clock() ? { kind: 'tombstone', stamp: decoded.stamp, until: decoded.until } : null;
    return null;
  }

  #liveOf(decoded: Decoded): StoredSession | null {
    const state = this.#stateOf(decoded);
    return state?.kind === 'live' ? state.record : null;
  }

  #unsupported(operation: string): SessionError {
    this.#shell.open(operation);
    return new SessionError('ESESS_UNSUPPORTED', { message: 'The memcached store has no user index', context: { store: STORE, operation } });
  }

  #key(key: string): string {
    const item = this.#prefix + key;
    if (typeof key !== 'string' || Buffer.byteLength(item) > MAX_KEY_BYTES) throw invalidInput(`Store keys must be strings of at most ${MAX_KEY_BYTES} bytes with the prefix`);
    return item;
  }

  #watermarkItem(userId: string): string {
    if (typeof userId !== 'string') throw invalidInput('userId must be a string', STORE);
    return `${this.#prefix}${WATERMARK_MARKER}${createHash('sha256').update(userId, 'utf8').digest('base64url')}`;
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
    const value = encodeLive(session);
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
    return statusError(operation, status, this.#maxItemBytes);
  }

  #send(operation: string, opcode: number, item: string, value?: Buffer, exptime?: number, cas?: Buffer): Promise<Reply> {
    this.#shell.open(operation);
    return send(this.#client, operation, opcode, item, value, exptime, cas);
  }
}

export function memcachedStore(options: MemcachedStoreOptions): MemcachedStore {
  return new MemcachedStore(options);
}
