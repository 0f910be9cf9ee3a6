import type * as Pg from 'pg';
import type { PoolConfig } from 'pg';
import { configError } from '../../core/errors.js';
import { importDriver } from '../kit/driver.js';
import { PostgresStore } from './store.js';
import type { PostgresStoreOptions } from './store.js';

/**
 * Opens a store over its own pool from a URL (`postgres://user:pass@host:5432/db`), for the
 * session service and the CLI. Query parameters `schema` and `table` choose the tables; the
 * others go to `pg` (`sslmode`, ...). `close()` ends the pool.
 */
export async function openPostgresStore(url: string, options: Omit<PostgresStoreOptions, 'pool'> & { pool?: PoolConfig } = {}): Promise<PostgresStore> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw configError('store', 'is not a valid postgres:// URL');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') throw configError('store', 'must be a postgres:// or postgresql:// URL');
  const schema = parsed.searchParams.get('schema') ?? options.schema;
  const table = parsed.searchParams.get('table') ?? options.table;
  parsed.searchParams.delete('schema');
  parsed.searchParams.delete('table');
  const pg: typeof Pg = await importDriver(() => import('pg'), 'PostgreSQL', 'pg');
  const pool = new pg.Pool({ connectionTimeoutMillis: 5000, ...options.pool, connectionString: parsed.toString() });
  // An idle connection that dies (server restart) is reported on the pool; the next query
  // reports it to its caller, so the event itself needs no action.
  pool.on('error', () => undefined);
  const { pool: _ignored, ...rest } = options;
  try {
    return new PostgresStore({ ...rest, pool, ...(schema === null ? {} : { schema }), ...(table === null ? {} : { table }) }, () => pool.end());
  } catch (error) {
    await pool.end();
    throw error;
  }
}
