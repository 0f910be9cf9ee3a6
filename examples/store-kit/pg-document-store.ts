// A session store over one PostgreSQL table: each key's whole state as a JSON document with a
// version for compare-and-swap. The backend is three statements; the rules, checks, lifecycle and
// replica merge come from elastic-session/kit. docs/writing-a-store.md walks through it.
import type pg from 'pg';
import { SessionError, expiresAt } from 'elastic-session';
import type { ApplyResult, KeyState, LiveState, MergeOutcome, SessionDelta, SessionStore, StoredSession, TombstoneState, Watermark } from 'elastic-session';
import {
  casLoop, checkDelta, checkForeignState, checkGrace, checkRecord, checkStamp, checkSweepLimit, copyState, mergeDelta, mergeForeign,
  mergeWatermarks, publishCorrupt, RETRY, settle, StoreShell, tombstoneOf, watermarkAt,
} from 'elastic-session/kit';

const ATTEMPTS = 32;
const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
type Doc = LiveState | TombstoneState | (Watermark & { kind: 'watermark' });

export async function pgDocumentStore({ pool, table = 'session_documents', clock = Date.now }: { pool: pg.Pool; table?: string; clock?: () => number }): Promise<SessionStore> {
  if (!TABLE_NAME.test(table)) throw new SessionError('ESESS_CONFIG', { message: 'Invalid option "table": a lower-case SQL name' });
  await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (key text PRIMARY KEY, doc text NOT NULL, version bigint NOT NULL, until bigint NOT NULL)`);
  return new PgDocumentStore(pool, table, clock);
}

class PgDocumentStore implements SessionStore {
  readonly name = 'pg-document';
  readonly capabilities = { nativeTtl: false, cas: true, userIndex: false, sweep: true, scan: false, replica: true };
  readonly #shell = new StoreShell(this.name);
  constructor(readonly pool: pg.Pool, readonly table: string, readonly clock: () => number) {}

  // --- the backend: read a document, write it if nobody else did meanwhile ---
  /** The stored state of a row (`null` when absent or unreadable) and its version (0: no row). */
  async #get(key: string): Promise<{ state: Doc | null; version: number }> {
    const { rows } = await this.pool.query(`SELECT doc, version FROM ${this.table} WHERE key = $1`, [key]);
    if (rows.length === 0) return { state: null, version: 0 };
    try {
      return { state: checked(key, JSON.parse(rows[0].doc)), version: Number(rows[0].version) };
    } catch {
      publishCorrupt(this.name);
      return { state: null, version: Number(rows[0].version) };
    }
  }

  /** Writes `value` if the row is still at `version` (0: if there is no row); whether it did. */
  async #put(key: string, value: Doc, until: number, version: number): Promise<boolean> {
    const doc = JSON.stringify(value);
    const { rowCount } = version === 0
      ? await this.pool.query(`INSERT INTO ${this.table} VALUES ($1, $2, 1, $3) ON CONFLICT DO NOTHING`, [key, doc, until])
      : await this.pool.query(`UPDATE ${this.table} SET doc = $2, until = $3, version = version + 1 WHERE key = $1 AND version = $4`, [key, doc, until, version]);
    return rowCount === 1;
  }

  /** One compare-and-swap step: read the (settled) state, let `step` decide, write what it returns. */
  #cas<T>(operation: string, key: string, step: (state: Doc | null) => { write?: Doc; result: T } | Promise<{ write?: Doc; result: T }>): Promise<T> {
    return this.#shell.run(operation, () => casLoop(this.name, operation, ATTEMPTS, async () => {
      const { state, version } = await this.#get(key);
      const { write, result } = await step(state?.kind === 'watermark' ? state : settle(state, null, this.clock()));
      if (write === undefined) return result;
      return (await this.#put(key, write, untilOf(write), version)) ? result : RETRY;
    }));
  }

  // --- the contract ---
  async load(key: string): Promise<StoredSession | null> {
    const state = await this.readState(key);
    return state?.kind === 'live' ? state.record : null;
  }

  async create(key: string, record: StoredSession): Promise<boolean> {
    checkRecord(record);
    return this.#cas('create', key, (state) => (state ? { result: false } : { write: { kind: 'live' as const, record }, result: true }));
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    checkDelta(delta);
    return this.#cas<ApplyResult>('apply', key, (state) => {
      if (state?.kind !== 'live') return { result: { status: 'gone' } };
      const { record } = state;
      if (delta.expectVersion !== undefined && delta.expectVersion !== record.version) return { result: { status: 'conflict', version: record.version } };
      mergeDelta(record, delta);
      return { write: state, result: { status: 'ok', version: record.version } };
    });
  }

  async destroy(key: string, graceMs: number, stamp = ''): Promise<boolean> {
    checkGrace(graceMs);
    checkStamp(stamp, 'A destroy stamp', true);
    return this.#cas('destroy', key, (state) => (state?.kind === 'live' ? { write: tombstoneOf(state.record, stamp, graceMs), result: true } : { result: false }));
  }

  async listByUser(): Promise<never> {
    throw new SessionError('ESESS_UNSUPPORTED', { message: 'The pg-document store has no user index', context: { store: this.name } });
  }
  destroyByUser = this.listByUser;

  async sweep(limit: number): Promise<number> {
    checkSweepLimit(limit, this.name);
    return this.#shell.run('sweep', async () => {
      const sql = `DELETE FROM ${this.table} WHERE key IN (SELECT key FROM ${this.table} WHERE until <= $1 LIMIT $2)`;
      return (await this.pool.query(sql, [this.clock(), limit])).rowCount ?? 0;
    });
  }

  async readState(key: string): Promise<KeyState> {
    return this.#shell.run('readState', async () => settle(asState((await this.#get(key)).state), null, this.clock()));
  }

  async mergeState(key: string, foreign: LiveState | TombstoneState): Promise<MergeOutcome> {
    checkForeignState(foreign);
    return this.#cas('mergeState', key, async (state) => {
      const { next, outcome } = await mergeForeign(asState(state), foreign, (userId) => this.readWatermark(userId), this.clock());
      // Nothing left (an expired record on a free key) needs no write; dead rows are swept.
      return outcome.changed && next !== null ? { write: next, result: outcome } : { result: outcome };
    });
  }

  async readWatermark(userId: string): Promise<Watermark | null> {
    return this.#shell.run('readWatermark', async () => {
      const { state } = await this.#get(watermarkKey(userId));
      return state?.kind === 'watermark' && state.until > this.clock() ? { stamp: state.stamp, until: state.until } : null;
    });
  }

  /** Keeps the watermark for sessions that arrive later; without a user index it destroys none now. */
  async mergeWatermark(userId: string, stamp: string): Promise<number> {
    checkStamp(stamp, 'A watermark stamp');
    return this.#cas('mergeWatermark', watermarkKey(userId), async (state) => {
      const current = state?.kind === 'watermark' ? { stamp: state.stamp, until: state.until } : null;
      return { write: { kind: 'watermark' as const, ...(mergeWatermarks(current, watermarkAt(stamp)) as Watermark) }, result: 0 };
    });
  }

  async close(): Promise<void> {
    this.#shell.close(); // the pool is the application's
  }
}

/** Watermark rows share the table: a key with a colon cannot be a base64url store key. */
const watermarkKey = (userId: string): string => `w:${userId}`;

/** A stored document is checked like a foreign state: anything else is corrupt. */
function checked(key: string, doc: Doc): Doc {
  if (!key.startsWith('w:')) return copyState(checkForeignState(doc as LiveState | TombstoneState));
  if (doc.kind !== 'watermark' || !Number.isSafeInteger(doc.until)) throw new Error('not a watermark');
  checkStamp(doc.stamp, 'A watermark stamp');
  return doc;
}

const asState = (doc: Doc | null): KeyState => (doc?.kind === 'watermark' ? null : doc);

/** When a row's content is dead and may be swept. */
const untilOf = (value: Doc): number => (value.kind === 'live' ? expiresAt(value.record) : value.until);
