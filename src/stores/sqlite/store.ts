import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { configError, SessionError } from '../../core/errors.js';
import { covers, mergeWatermarks, newer, revokedTombstone, watermarkAt } from '../../core/record.js';
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
import { checkDelta, checkForeignState, checkGrace, checkLimit, checkRecord, checkStamp, checkSweepLimit } from '../kit/checks.js';
import { mergeForeignSync } from '../kit/replica.js';
import { StoreShell } from '../kit/shell.js';
import type { Row } from './rows.js';
import { isTime, readKeyState, readMeta, readRecord, readWatermarkRow } from './rows.js';
import { migrate, STORE } from './schema.js';
import type { Statements } from './statements.js';
import { prepareStatements } from './statements.js';

export interface SqliteStoreOptions {
  /** File path; ':memory:' allowed for tests. Parent folder is created if missing. */
  path?: string;
  /**
   * Or an already open better-sqlite3 Database (the application owns it; close() then does not
   * close it, and its journal mode and busy timeout are left as the application set them).
   */
  database?: Database.Database;
  /** @default Date.now */
  clock?: Clock;
  /**
   * PRAGMA synchronous: 'full' (default, durable across power loss) or 'normal'. Applied to an
   * application-owned `database` only when given.
   */
  synchronous?: 'full' | 'normal';
}

const BUSY_TIMEOUT_MS = 5000;

/**
 * The embedded default store: one SQLite file in WAL mode, shared safely by several processes
 * and connections. SQLite has no TTL, so expired sessions, dead tombstones and dead revoke
 * watermarks are removed by `sweep`. A dead record (expired, or a tombstone past its time) no
 * longer holds its key: `create` replaces it. Every read-then-write runs in one IMMEDIATE
 * transaction, so the replica powers are atomic across every process sharing the file.
 */
export class SqliteStore implements SessionStore {
  readonly name = STORE;
  readonly capabilities: StoreCapabilities = { nativeTtl: false, cas: true, userIndex: true, sweep: true, scan: true, replica: true };
  readonly #db: Database.Database;
  readonly #owned: boolean;
  readonly #clock: Clock;
  readonly #sql: Statements;
  readonly #shell = new StoreShell(STORE, {
    classify: (error, operation) => new SessionError('ESESS_STORE_UNAVAILABLE', { cause: error, context: { store: STORE, operation, ...sqliteCode(error) } }),
  });
  readonly #create: (key: string, session: StoredSession) => boolean;
  readonly #apply: (key: string, delta: SessionDelta) => ApplyResult;
  readonly #destroy: (key: string, graceMs: number, stamp: string) => boolean;
  readonly #destroyByUser: (userId: string, graceMs: number, stamp: string | undefined) => number;
  readonly #mergeState: (key: string, state: LiveState | TombstoneState) => MergeOutcome;
  readonly #mergeWatermark: (userId: string, stamp: string) => number;
  readonly #sweep: (limit: number) => number;

  constructor(options: SqliteStoreOptions) {
    const { path, database, synchronous } = options;
    if ((path === undefined) === (database === undefined)) throw configError(path === undefined ? 'path' : 'database', 'give exactly one of "path" or "database"');
    if (path !== undefined && (typeof path !== 'string' || path === '')) throw configError('path', 'must be a file path or ":memory:"');
    if (database !== undefined && (typeof database?.prepare !== 'function' || !database.open)) throw configError('database', 'must be an open better-sqlite3 Database');
    if (database?.readonly) throw configError('database', 'must not be read-only');
    if (synchronous !== undefined && synchronous !== 'full' && synchronous !== 'normal') throw configError('synchronous', 'must be "full" or "normal"');
    if (options.clock !== undefined && typeof options.clock !== 'function') throw configError('clock', 'must be a function returning milliseconds');
    this.#clock = options.clock ?? systemClock;
    this.#owned = database === undefined;
    this.#db = database ?? openFile(path as string);
    try {
      if (this.#owned) this.#db.pragma('journal_mode = WAL');
      if (this.#owned || synchronous) this.#db.pragma(`synchronous = ${synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      migrate(this.#db);
      this.#sql = prepareStatements(this.#db);
    } catch (error) {
      if (this.#owned) this.#db.close();
      throw openError(error, this.#owned ? 'path' : 'database');
    }
    // IMMEDIATE takes the write lock up front: a read-then-write transaction that had to upgrade
    // its lock could fail with SQLITE_BUSY without waiting for the busy timeout.
    const immediate = <A extends unknown[], R>(fn: (...args: A) => R): ((...args: A) => R) => {
      const transaction = this.#db.transaction(fn);
      return (...args) => transaction.immediate(...args);
    };
    this.#create = immediate(this.#createIn.bind(this));
    this.#apply = immediate(this.#applyIn.bind(this));
    this.#destroy = immediate(this.#destroyIn.bind(this));
    this.#destroyByUser = immediate(this.#destroyByUserIn.bind(this));
    this.#mergeState = immediate(this.#mergeStateIn.bind(this));
    this.#mergeWatermark = immediate(this.#mergeWatermarkIn.bind(this));
    this.#sweep = immediate(this.#sweepIn.bind(this));
  }

  async load(key: string): Promise<StoredSession | null> {
    return this.#run('load', () => {
      const rows = this.#sql.load.all(key, this.#clock()) as Row[];
      if (rows.length === 0) return null;
      const session = readRecord(rows);
      if (!session) publishCorrupt(STORE);
      return session;
    });
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    return this.#run('create', () => this.#create(key, checkRecord(session)));
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    return this.#run('apply', () => this.#apply(key, checkDelta(delta)));
  }

  async destroy(key: string, tombstoneGraceMs: number, stamp = ''): Promise<boolean> {
    return this.#run('destroy', () => this.#destroy(key, checkGrace(tombstoneGraceMs), checkStamp(stamp, 'A destroy stamp', true)));
  }

  async listByUser(userId: string): Promise<StoredSummary[]> {
    return this.#run('listByUser', () => {
      const summaries: StoredSummary[] = [];
      for (const [key, createdAt, lastSeenAt, expires] of this.#sql.listByUser.all(userId, this.#clock()) as Row[]) {
        if (typeof key === 'string' && isTime(createdAt) && isTime(lastSeenAt) && isTime(expires)) summaries.push({ key, createdAt, lastSeenAt, expiresAt: expires });
        else publishCorrupt(STORE);
      }
      return summaries;
    });
  }

  async destroyByUser(userId: string, tombstoneGraceMs: number, stamp?: string): Promise<number> {
    return this.#run('destroyByUser', () => {
      checkGrace(tombstoneGraceMs);
      if (stamp !== undefined) checkStamp(stamp, 'A revoke stamp');
      return this.#destroyByUser(userId, tombstoneGraceMs, stamp);
    });
  }

  async sweep(limit: number): Promise<number> {
    return this.#run('sweep', () => {
      // SQLite reads a negative LIMIT as "no limit".
      checkSweepLimit(limit, STORE);
      return this.#sweep(limit);
    });
  }

  async scan(cursor: string | null, limit: number): Promise<{ keys: string[]; cursor: string | null }> {
    return this.#run('scan', () => {
      const keys = this.#sql.scan.all(cursor ?? '', this.#clock(), checkLimit(limit, STORE)) as string[];
      return { keys, cursor: keys.length === limit ? (keys.at(-1) ?? null) : null };
    });
  }

  async readState(key: string): Promise<KeyState> {
    return this.#run('readState', () => this.#stateIn(key, this.#clock()));
  }

  async mergeState(key: string, state: LiveState | TombstoneState): Promise<MergeOutcome> {
    return this.#run('mergeState', () => this.#mergeState(key, checkForeignState(state)));
  }

  async readWatermark(userId: string): Promise<Watermark | null> {
    return this.#run('readWatermark', () => this.#watermarkIn(userId, this.#clock()));
  }

  async mergeWatermark(userId: string, stamp: string): Promise<number> {
    return this.#run('mergeWatermark', () => this.#mergeWatermark(userId, checkStamp(stamp, 'A watermark stamp')));
  }

  /**
   * For metrics: records (sessions and tombstones), live sessions, sessions past their deadline
   * that the sweep has not removed yet (so an expiry counts when it happens), and the database
   * file size (page_count x page_size). Counting scans the sessions table: call it seldom.
   */
  async usage(): Promise<{ keys: number; sessions: number; expired: number; bytes: number }> {
    return this.#run('usage', () => {
      const now = this.#clock();
      const [keys, sessions, expired] = this.#db
        .prepare('SELECT count(*), coalesce(sum(tombstone_until IS NULL AND expires_at > ?), 0), coalesce(sum(tombstone_until IS NULL AND expires_at <= ?), 0) FROM elastic_sessions')
        .safeIntegers(false)
        .raw()
        .get(now, now) as [number, number, number];
      const pages = Number(this.#db.pragma('page_count', { simple: true }));
      const pageSize = Number(this.#db.pragma('page_size', { simple: true }));
      return { keys, sessions, expired, bytes: pages * pageSize };
    });
  }

  async close(): Promise<void> {
    if (this.#shell.close() && this.#owned) this.#db.close();
  }

  #run<T>(operation: string, fn: () => T): Promise<T> {
    return this.#shell.run(operation, async () => fn());
  }

  // The *In methods run inside their transaction, so they read the clock after any wait for the lock.
  #createIn(key: string, session: StoredSession): boolean {
    const deadAt = this.#sql.deadAt.get(key);
    if (deadAt !== undefined) {
      if (typeof deadAt === 'number' && deadAt > this.#clock()) return false;
      this.#remove(key);
    }
    this.#insert(key, session);
    return true;
  }

  #applyIn(key: string, delta: SessionDelta): ApplyResult {
    const row = this.#sql.meta.get(key, this.#clock()) as Row | undefined;
    if (!row) return { status: 'gone' };
    const meta = readMeta(row);
    if (!meta) {
      publishCorrupt(STORE);
      return { status: 'gone' };
    }
    if (delta.expectVersion !== undefined && delta.expectVersion !== meta.version) return { status: 'conflict', version: meta.version };
    // Per-field last-writer-wins happens in the upsert's WHERE, so deltas never read fields.
    for (const [name, field] of Object.entries(delta.fields)) this.#sql.putField.run(key, name, field.value, field.stamp);
    const lastSeenAt = delta.lastSeenAt === undefined ? meta.lastSeenAt : Math.max(meta.lastSeenAt, delta.lastSeenAt);
    // The principal is a register of its own: only a strictly newer stamp moves it (as `mergeDelta`).
    const principal = delta.userId !== undefined && delta.userStamp !== undefined && newer(delta.userStamp, meta.userStamp);
    const userId = principal ? (delta.userId ?? null) : meta.userId;
    const userStamp = principal ? (delta.userStamp as string) : meta.userStamp;
    const version = meta.version + 1;
    this.#sql.update.run(lastSeenAt, expiresAt({ ...meta, lastSeenAt }), userId, userStamp, version, key);
    return { status: 'ok', version };
  }

  #destroyIn(key: string, graceMs: number, stamp: string): boolean {
    if (this.#sql.tombstone.run(graceMs, stamp, key, this.#clock()).changes === 0) return false;
    this.#sql.deleteFields.run(key);
    return true;
  }

  #destroyByUserIn(userId: string, graceMs: number, stamp: string | undefined): number {
    const now = this.#clock();
    if (stamp !== undefined) this.#raiseWatermark(userId, stamp, now);
    const keys = this.#sql.tombstoneUser.all(graceMs, stamp ?? '', userId, now) as string[];
    for (const key of keys) this.#sql.deleteFields.run(key);
    return keys.length;
  }

  #stateIn(key: string, now: number): KeyState {
    const state = readKeyState(this.#sql.state.all(key) as Row[], now);
    if (state !== undefined) return state;
    publishCorrupt(STORE);
    return null;
  }

  /**
   * The merge rules of `src/core/record.ts` on the row and the watermark as this transaction
   * reads them (the kit's `mergeForeign`, synchronous as better-sqlite3 transactions must be).
   * An unreadable row counts as nothing, so a replica's state repairs it.
   */
  #mergeStateIn(key: string, foreign: LiveState | TombstoneState): MergeOutcome {
    const now = this.#clock();
    const current = this.#stateIn(key, now);
    const { next, outcome } = mergeForeignSync(current, foreign, (user) => this.#watermarkIn(user, now), now);
    if (!outcome.changed) return outcome;
    if (next === null) {
      this.#remove(key);
    } else if (next.kind === 'tombstone') {
      this.#sql.deleteFields.run(key);
      this.#sql.putTombstone.run(key, next.until, next.stamp);
    } else if (current?.kind === 'live') {
      const { record } = next;
      const { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, userStamp, version } = record;
      this.#sql.rewrite.run(createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, expiresAt(record), userId, userStamp, version, key);
      // Merged fields are a superset of the stored ones (deletions are stamped nulls): write the changed ones.
      for (const [name, field] of Object.entries(record.fields)) {
        const stored = current.record.fields[name];
        if (stored?.stamp !== field.stamp || stored.value !== field.value) this.#sql.setField.run(key, name, field.value, field.stamp);
      }
    } else {
      this.#remove(key);
      this.#insert(key, next.record);
    }
    return outcome;
  }

  #watermarkIn(userId: string, now: number): Watermark | null {
    const row = this.#sql.watermark.get(userId, now) as Row | undefined;
    if (row === undefined) return null;
    const watermark = readWatermarkRow(row);
    if (!watermark) publishCorrupt(STORE);
    return watermark;
  }

  #raiseWatermark(userId: string, stamp: string, now: number): Watermark {
    const watermark = mergeWatermarks(this.#watermarkIn(userId, now), watermarkAt(stamp)) as Watermark;
    this.#sql.putWatermark.run(userId, watermark.stamp, watermark.until);
    return watermark;
  }

  /** The user's live sessions that the raised watermark covers become their `revokedTombstone`, decided by the core's `covers`. */
  #mergeWatermarkIn(userId: string, stamp: string): number {
    const now = this.#clock();
    const watermark = this.#raiseWatermark(userId, stamp, now);
    let count = 0;
    for (const [key, ...row] of this.#sql.userMeta.all(userId, now) as Row[]) {
      const meta = readMeta(row);
      if (!meta) {
        publishCorrupt(STORE);
        continue;
      }
      const record = { ...meta, fields: {} };
      if (!covers(watermark, record)) continue;
      const tombstone = revokedTombstone(record);
      this.#sql.deleteFields.run(key);
      this.#sql.putTombstone.run(key, tombstone.until, tombstone.stamp);
      count++;
    }
    return count;
  }

  #sweepIn(limit: number): number {
    const now = this.#clock();
    const keys = this.#sql.dead.all(now, limit) as string[];
    for (const key of keys) this.#remove(key);
    // Counted with the records, so a caller that sweeps until a batch comes back short reaches them too.
    const watermarks = keys.length < limit ? this.#sql.deadWatermarks.run(now, limit - keys.length).changes : 0;
    return keys.length + watermarks;
  }

  #insert(key: string, session: StoredSession): void {
    const { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, userStamp, version } = session;
    this.#sql.insertSession.run(key, createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, expiresAt(session), userId ?? null, userStamp, version);
    for (const [name, field] of Object.entries(session.fields)) this.#sql.putField.run(key, name, field.value, field.stamp);
  }

  #remove(key: string): void {
    this.#sql.deleteFields.run(key);
    this.#sql.deleteSession.run(key);
  }
}

export function sqliteStore(options: SqliteStoreOptions): SqliteStore {
  return new SqliteStore(options);
}

function openFile(path: string): Database.Database {
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    return new Database(path, { timeout: BUSY_TIMEOUT_MS });
  } catch (error) {
    throw openError(error, 'path');
  }
}

function sqliteCode(error: unknown): { sqliteCode?: string } {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? { sqliteCode: code } : {};
}

function openError(error: unknown, option: 'path' | 'database'): SessionError {
  if (error instanceof SessionError) return error;
  const { sqliteCode: code } = sqliteCode(error);
  if (code === 'SQLITE_NOTADB') {
    return new SessionError('ESESS_CONFIG', { message: `Invalid option "${option}": not a SQLite database`, cause: error, context: { store: STORE, option } });
  }
  return new SessionError('ESESS_STORE_UNAVAILABLE', { message: 'Cannot open the SQLite session database', cause: error, context: { store: STORE, option, ...sqliteCode(error) } });
}
