import { isIP } from 'node:net';
import type * as Mysql from 'mysql2/promise';
import type { PoolOptions } from 'mysql2/promise';
import { configError } from '../../core/errors.js';
import { importDriver } from '../kit/driver.js';
import { tlsFromUrl } from '../kit/tls-url.js';
import type { UrlTls } from '../kit/tls-url.js';
import { MysqlStore } from './store.js';
import type { MysqlStoreOptions } from './store.js';

/** URL TLS settings (see `tlsFromUrl`) as mysql2's `ssl` option; undefined for none or `disabled`. */
function mysqlSsl(settings: UrlTls | undefined): PoolOptions['ssl'] | undefined {
  if (settings === undefined || settings.mode === 'disabled') return undefined;
  const { mode, ...files } = settings;
  return { ...files, rejectUnauthorized: mode !== 'required', verifyIdentity: mode === 'verify-full' };
}

/**
 * Opens a store over its own pool from a URL (`mysql://user:pass@host:3306/db`), for the
 * session service and the CLI. The query parameter `table` names the table; `ssl-mode`,
 * `ssl-ca`, `ssl-cert` and `ssl-key` set TLS (see `tlsFromUrl`); the others go to mysql2.
 * `options.pool.ssl` replaces the URL's TLS settings. `close()` ends the pool.
 */
export async function openMysqlStore(url: string, options: Omit<MysqlStoreOptions, 'pool'> & { pool?: PoolOptions } = {}): Promise<MysqlStore> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw configError('store', 'is not a valid mysql:// URL');
  }
  if (parsed.protocol !== 'mysql:' && parsed.protocol !== 'mariadb:') throw configError('store', 'must be a mysql:// or mariadb:// URL');
  if (parsed.pathname.length <= 1) throw configError('store', 'must name a database (mysql://host:3306/DATABASE)');
  const table = parsed.searchParams.get('table') ?? options.table;
  parsed.searchParams.delete('table');
  const tls = await tlsFromUrl(parsed.searchParams);
  if (tls && parsed.searchParams.has('ssl')) throw configError('store', 'cannot combine mysql2\'s ssl parameter with ssl-mode, ssl-ca, ssl-cert or ssl-key');
  // mysql2 checks the certificate of a server reached by IP address against the name
  // "localhost", not the address: it would accept a certificate for localhost and refuse one for
  // the address. verify-full cannot be honoured there, so it is refused rather than weakened.
  if (tls?.mode === 'verify-full' && isIP(parsed.hostname.replace(/^\[|\]$/g, '')) !== 0) {
    throw configError('store', 'has ssl-mode=verify-full (the default with ssl-ca, ssl-cert or ssl-key) and an IP address as host: mysql2 cannot check a certificate against an IP address; connect by a host name the certificate names, or set ssl-mode=verify-ca');
  }
  const ssl = mysqlSsl(tls);
  parsed.protocol = 'mysql:';
  const mysql: typeof Mysql = await importDriver(() => import('mysql2/promise'), 'MySQL', 'mysql2');
  const createPool = mysql.createPool ?? (mysql as unknown as { default: typeof Mysql }).default.createPool;
  const pool = createPool({ uri: parsed.toString(), connectionLimit: 10, connectTimeout: 5000, enableKeepAlive: true, ...(ssl ? { ssl } : {}), ...options.pool });
  const { pool: _ignored, ...rest } = options;
  try {
    return new MysqlStore({ ...rest, pool, ...(table === null || table === undefined ? {} : { table }) }, () => pool.end());
  } catch (error) {
    await pool.end();
    throw error;
  }
}
