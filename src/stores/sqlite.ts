import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { configError, SessionError } from '../core/errors.js';
import { publishCorrupt } from '../core/telemetry.js';
import type { ApplyResult, Clock, SessionDelta, SessionMeta, SessionStore, StoreCapabilities, StoredField, StoredSession, StoredSummary } from '../core/types.js';
import { expiresAt, systemClock } from '../core/types.js';

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

const STORE = 'sqlite';
const BUSY_TIMEOUT_MS = 5000;

/**
 * Applied in order, each in the same transaction as the version bump; never edit a shipped one.
 * Table names are prefixed because an application-owned database has tables of its own.
 * `tombstone_until` is non-null for destroyed sessions; `expires_at` is kept as
 * min(last_seen_at + idle_timeout, absolute_expires_at) so expiry is one indexed comparison.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE elastic_sessions (
     key TEXT PRIMARY KEY,
     created_at INTEGER NOT NULL,
     last_seen_at INTEGER NOT NULL,
     idle_timeout INTEGER NOT NULL,
     absolute_expires_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     user_id TEXT,
     version INTEGER NOT NULL,
     tombstone_until INTEGER
   ) WITHOUT ROWID;
   CREATE TABLE elastic_session_fields (
     key TEXT NOT NULL,
     name TEXT NOT NULL,
     value TEXT,
     stamp TEXT NOT NULL,
     PRIMARY KEY (key, name)
   ) WITHOUT ROWID;
   CREATE INDEX elastic_sessions_dead_at ON elastic_sessions (coalesce(tombstone_until, expires_at));
   CREATE INDEX elastic_sessions_user ON elastic_sessions (user_id) WHERE user_id IS NOT NULL;`,
];

/** The schema version this code writes and understands. */
export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length;

const META_COLUMNS = 'created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, user_id, version';
const LIVE = 'tombstone_until IS NULL AND expires_at > ?';
const TOMBSTONE = 'tombstone_until = absolute_expires_at + ?, user_id = NULL';

type Row = unknown[];
type StoredMeta = SessionMeta & { version: number };

/**
 * The embedded default store: one SQLite file in WAL mode, shared safely by several processes
 * and connections. SQLite has no TTL, so expired sessions and dead tombstones are removed by
 * `sweep`. A dead record (expired, or a tombstone past its time) no longer holds its key:
 * `create` replaces it.
 */
export class SqliteStore implements SessionStore {
  readonly name = STORE;
  readonly capabilities: StoreCapabilities = { nativeTtl: false, cas: true, userIndex: true, sweep: true };
  readonly #db: Database.Database;
  readonly #owned: boolean;
  readonly #clock: Clock;
  readonly #sql: ReturnType<typeof prepareStatements>;
  readonly #create: (key: string, session: StoredSession) => boolean;
  readonly #apply: (key: string, delta: SessionDelta) => ApplyResult;
  readonly #destroy: (key: string, graceMs: number) => boolean;
  readonly #destroyByUser: (userId: string, graceMs: number) => number;
  readonly #sweep: (limit: number) => number;
  #closed = false;

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
    this.#sweep = immediate(this.#sweepIn.bind(this));
  }

  async load(key: string): Promise<StoredSession | null> {
    return this.#run('load', () => {
      // One statement, so the meta and the fields come from one snapshot even while others write.
      const rows = this.#sql.load.all(key, this.#clock()) as Row[];
      if (rows.length === 0) return null;
      const session = readSession(rows);
      if (!session) publishCorrupt(STORE);
      return session;
    });
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    return this.#run('create', () => this.#create(key, session));
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    return this.#run('apply', () => this.#apply(key, delta));
  }

  async destroy(key: string, tombstoneGraceMs: number): Promise<boolean> {
    return this.#run('destroy', () => this.#destroy(key, tombstoneGraceMs));
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

  async destroyByUser(userId: string, tombstoneGraceMs: number): Promise<number> {
    return this.#run('destroyByUser', () => this.#destroyByUser(userId, tombstoneGraceMs));
  }

  async sweep(limit: number): Promise<number> {
    return this.#run('sweep', () => {
      // SQLite reads a negative LIMIT as "no limit".
      if (!Number.isSafeInteger(limit) || limit < 0) throw new SessionError('ESESS_INVALID_INPUT', { message: 'sweep() limit must be a non-negative integer' });
      return this.#sweep(limit);
    });
  }

  async scan(cursor: string | null, limit: number): Promise<{ keys: string[]; cursor: string | null }> {
    return this.#run('scan', () => {
      if (!Number.isSafeInteger(limit) || limit < 1) throw new SessionError('ESESS_INVALID_INPUT', { message: 'scan() limit must be a positive integer' });
      const keys = this.#sql.scan.all(cursor ?? '', this.#clock(), limit) as string[];
      return { keys, cursor: keys.length === limit ? (keys.at(-1) ?? null) : null };
    });
  }

  /**
   * For metrics: records (sessions and tombstones), live sessions, and the database file size
   * (page_count x page_size). Counting scans the sessions table: call it seldom.
   */
  async usage(): Promise<{ keys: number; sessions: number; bytes: number }> {
    return this.#run('usage', () => {
      const [keys, sessions] = this.#db
        .prepare('SELECT count(*), coalesce(sum(tombstone_until IS NULL AND expires_at > ?), 0) FROM elastic_sessions')
        .safeIntegers(false)
        .raw()
        .get(this.#clock()) as [number, number];
      const pages = Number(this.#db.pragma('page_count', { simple: true }));
      const pageSize = Number(this.#db.pragma('page_size', { simple: true }));
      return { keys, sessions, bytes: pages * pageSize };
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owned) this.#db.close();
  }

  #run<T>(operation: string, fn: () => T): T {
    if (this.#closed) throw new SessionError('ESESS_STORE_CLOSED', { context: { store: STORE } });
    try {
      return fn();
    } catch (error) {
      if (error instanceof SessionError) throw error;
      throw new SessionError('ESESS_STORE_UNAVAILABLE', { cause: error, context: { store: STORE, operation, ...sqliteCode(error) } });
    }
  }

  // The *In methods run inside their transaction, so they read the clock after any wait for the lock.
  #createIn(key: string, session: StoredSession): boolean {
    const deadAt = this.#sql.deadAt.get(key);
    if (deadAt !== undefined) {
      if (typeof deadAt === 'number' && deadAt > this.#clock()) return false;
      this.#sql.deleteFields.run(key);
      this.#sql.deleteSession.run(key);
    }
    const { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, version } = session;
    this.#sql.insertSession.run(key, createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, expiresAt(session), userId ?? null, version);
    for (const [name, field] of Object.entries(session.fields)) this.#sql.putField.run(key, name, field.value, field.stamp);
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
    const userId = delta.userId === undefined ? meta.userId : delta.userId;
    const version = meta.version + 1;
    this.#sql.update.run(lastSeenAt, expiresAt({ ...meta, lastSeenAt }), userId, version, key);
    return { status: 'ok', version };
  }

  #destroyIn(key: string, graceMs: number): boolean {
    if (this.#sql.tombstone.run(graceMs, key, this.#clock()).changes === 0) return false;
    this.#sql.deleteFields.run(key);
    return true;
  }

  #destroyByUserIn(userId: string, graceMs: number): number {
    const keys = this.#sql.tombstoneUser.all(graceMs, userId, this.#clock());
    for (const key of keys) this.#sql.deleteFields.run(key);
    return keys.length;
  }

  #sweepIn(limit: number): number {
    const keys = this.#sql.dead.all(this.#clock(), limit);
    for (const key of keys) {
      this.#sql.deleteFields.run(key);
      this.#sql.deleteSession.run(key);
    }
    return keys.length;
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

function migrate(db: Database.Database): void {
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS elastic_session_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)');
    const found: unknown = db.prepare('SELECT version FROM elastic_session_schema WHERE id = 1').pluck().get() ?? 0;
    if (typeof found !== 'number' || !Number.isSafeInteger(found) || found < 0) {
      throw new SessionError('ESESS_CONFIG', { message: 'The session database has an unreadable schema version', context: { store: STORE } });
    }
    if (found > MIGRATIONS.length) {
      throw new SessionError('ESESS_CONFIG', {
        message: `The session database has schema version ${found}, newer than this elastic-session understands (${MIGRATIONS.length}); upgrade elastic-session`,
        context: { store: STORE, schemaVersion: found, supportedVersion: MIGRATIONS.length },
      });
    }
    if (found === MIGRATIONS.length) return;
    for (const migration of MIGRATIONS.slice(found)) db.exec(migration);
    db.prepare('INSERT INTO elastic_session_schema (id, version) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version').run(MIGRATIONS.length);
  }).immediate();
}

function prepareStatements(db: Database.Database) {
  // The application may have turned on safe integers for its connection; we want plain numbers.
  const prepare = (sql: string) => db.prepare(sql).safeIntegers(false);
  return {
    load: prepare(
      `SELECT ${META_COLUMNS}, name, value, stamp
       FROM elastic_sessions LEFT JOIN elastic_session_fields USING (key)
       WHERE key = ? AND ${LIVE}`,
    ).raw(),
    meta: prepare(`SELECT ${META_COLUMNS} FROM elastic_sessions WHERE key = ? AND ${LIVE}`).raw(),
    deadAt: prepare('SELECT coalesce(tombstone_until, expires_at) FROM elastic_sessions WHERE key = ?').pluck(),
    insertSession: prepare(
      `INSERT INTO elastic_sessions (key, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, user_id, version)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    putField: prepare(
      `INSERT INTO elastic_session_fields (key, name, value, stamp) VALUES (?, ?, ?, ?)
       ON CONFLICT (key, name) DO UPDATE SET value = excluded.value, stamp = excluded.stamp
       WHERE excluded.stamp > elastic_session_fields.stamp`,
    ),
    update: prepare('UPDATE elastic_sessions SET last_seen_at = ?, expires_at = ?, user_id = ?, version = ? WHERE key = ?'),
    tombstone: prepare(`UPDATE elastic_sessions SET ${TOMBSTONE} WHERE key = ? AND ${LIVE}`),
    tombstoneUser: prepare(`UPDATE elastic_sessions SET ${TOMBSTONE} WHERE user_id = ? AND ${LIVE} RETURNING key`).pluck(),
    listByUser: prepare(`SELECT key, created_at, last_seen_at, expires_at FROM elastic_sessions WHERE user_id = ? AND ${LIVE} ORDER BY created_at`).raw(),
    dead: prepare('SELECT key FROM elastic_sessions WHERE coalesce(tombstone_until, expires_at) <= ? ORDER BY coalesce(tombstone_until, expires_at) LIMIT ?').pluck(),
    scan: prepare(`SELECT key FROM elastic_sessions WHERE key > ? AND ${LIVE} ORDER BY key LIMIT ?`).pluck(),
    deleteSession: prepare('DELETE FROM elastic_sessions WHERE key = ?'),
    deleteFields: prepare('DELETE FROM elastic_session_fields WHERE key = ?'),
  };
}

/** Meta from the first row, fields from every row (the LEFT JOIN gives one all-null field for none). */
function readSession(rows: Row[]): StoredSession | null {
  const meta = readMeta(rows[0] as Row);
  if (!meta) return null;
  const fields = Object.create(null) as Record<string, StoredField>;
  for (const row of rows) {
    const name = row[7];
    const value = row[8];
    const stamp = row[9];
    if (name === null && rows.length === 1) break;
    if (typeof name !== 'string' || (typeof value !== 'string' && value !== null) || typeof stamp !== 'string') return null;
    fields[name] = { value, stamp };
  }
  return { ...meta, fields };
}

/** A row of META_COLUMNS, or null when any column holds what this store never writes. */
function readMeta(row: Row): StoredMeta | null {
  const [createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, expires, userId, version] = row;
  if (!isTime(createdAt) || !isTime(lastSeenAt) || !isTime(idleTimeout) || !isTime(absoluteExpiresAt) || !isTime(expires)) return null;
  if ((typeof userId !== 'string' && userId !== null) || typeof version !== 'number' || !Number.isSafeInteger(version)) return null;
  return { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, version };
}

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
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
