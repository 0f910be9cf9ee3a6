import { resolve } from 'node:path';
import { SessionError } from '../core/errors.js';
import type { SessionStore } from '../core/types.js';
import { optionError } from './config.js';

/** A parsed `--store` URL. */
export type StoreSpec =
  | { scheme: 'memory'; url: string }
  /** `path` is absolute, or `:memory:` for a private in-memory SQLite database. */
  | { scheme: 'sqlite'; url: string; path: string };

interface SqliteModule {
  sqliteStore(options: { path?: string }): SessionStore;
}

/** Schemes that later versions (or other packages) serve; named in the error so users know it is not a typo. */
const PLANNED_SCHEMES = new Set(['redis:', 'rediss:', 'postgres:', 'postgresql:', 'memcached:', 'nats:']);

/**
 * The URL with any credentials removed, for messages. A store URL may carry a password
 * (`redis://:pw@host`), which must never reach a log line.
 */
export function redactStoreUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/?#]*@/i, '$1***@');
}

/**
 * Parses a store URL: `sqlite:PATH` (relative to `cwd`; `sqlite:///abs/path` also works),
 * `sqlite::memory:`, or `memory:`.
 */
export function parseStoreUrl(value: unknown, option: string, cwd = process.cwd()): StoreSpec {
  if (typeof value !== 'string' || value.trim() === '') throw optionError(option, 'must be a store URL such as sqlite:./data/sessions.db or memory:');
  const url = value.trim();
  const scheme = /^([a-z][a-z0-9+.-]*:)/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'memory:') {
    if (url.length !== 'memory:'.length) throw optionError(option, 'must be exactly "memory:" for the memory store');
    return { scheme: 'memory', url: 'memory:' };
  }
  if (scheme === 'sqlite:') {
    let path = url.slice('sqlite:'.length);
    if (path.startsWith('//')) path = path.slice(2);
    if (path === '') throw optionError(option, 'needs a file path after "sqlite:" (e.g. sqlite:./data/sessions.db)');
    if (path.includes('\0')) throw optionError(option, 'has an invalid file path');
    return { scheme: 'sqlite', url, path: path === ':memory:' ? path : resolve(cwd, path) };
  }
  if (scheme !== undefined && PLANNED_SCHEMES.has(scheme)) {
    throw optionError(option, `uses ${scheme} which this version of elastic-session serve does not support yet (supported: sqlite:, memory:)`);
  }
  throw optionError(option, 'must start with sqlite: or memory: (e.g. sqlite:./data/sessions.db)');
}

/** Whether sessions in this store survive a restart of the service. */
export function isDurable(spec: StoreSpec): boolean {
  return spec.scheme === 'sqlite' && spec.path !== ':memory:';
}

/**
 * Opens the store a spec names. Store modules load lazily, so a missing optional driver is a
 * clear error naming the store URL instead of a crash at startup.
 */
export async function openStore(spec: StoreSpec): Promise<SessionStore> {
  if (spec.scheme === 'memory') {
    const { memoryStore } = await import('../stores/memory.js');
    return memoryStore();
  }
  let sqlite: SqliteModule;
  try {
    sqlite = await import('../stores/sqlite.js');
  } catch (error) {
    throw new SessionError('ESESS_CONFIG', {
      message: `store ${redactStoreUrl(spec.url)}: the SQLite store cannot be loaded; it needs the optional dependency better-sqlite3 (npm install better-sqlite3)`,
      cause: error,
      context: { option: 'store' },
    });
  }
  try {
    return sqlite.sqliteStore({ path: spec.path });
  } catch (error) {
    const code = error instanceof SessionError && error.code === 'ESESS_CONFIG' ? 'ESESS_CONFIG' : 'ESESS_STORE_UNAVAILABLE';
    const reason = error instanceof SessionError ? `: ${error.message}` : '';
    throw new SessionError(code, { message: `store ${redactStoreUrl(spec.url)} cannot be opened${reason}`, cause: error, context: { store: 'sqlite' } });
  }
}

/** Parses and opens a store URL in one step (for apps and examples that take the service's `--store` URLs). */
export async function openStoreUrl(url: string, option = 'store'): Promise<SessionStore> {
  return openStore(parseStoreUrl(url, option));
}
