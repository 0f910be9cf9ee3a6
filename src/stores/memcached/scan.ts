import { connect as netConnect } from 'node:net';
import { SessionError } from '../../core/errors.js';
import type { MemcachedServerAddress } from './protocol.js';
import { STORE } from './protocol.js';

/**
 * The key walk of `scan()`: `lru_crawler metadump hash` of every server, on a short-lived
 * connection of its own, and the cursors that continue a walk.
 */

/** A page of `scan()`. */
export interface MemcachedScanPage {
  keys: string[];
  cursor: string | null;
}

const SCAN_CURSOR_PREFIX = 'mc1.';
/** A dump connection with no data for this long fails (it covers connecting and the TLS handshake too). */
const DUMP_IDLE_TIMEOUT_MS = 10_000;
/** memcached runs one LRU crawl at a time and answers BUSY meanwhile (its own expiry crawls too). */
const DUMP_BUSY_ATTEMPTS = 50;
const DUMP_BUSY_WAIT_MS = 100;

/** Whether `scan()` can dump this server: it has an address and no SASL (which disables memcached's text protocol). */
export function canDump(server: MemcachedServerAddress): boolean {
  return typeof server?.host === 'string' && Number.isInteger(server.port) && !(server.username && server.password);
}

/** The store keys (item keys under `prefix`, without it) in one server's `lru_crawler metadump hash`. */
export async function dumpKeys(server: MemcachedServerAddress, prefix: string): Promise<string[]> {
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
export function firstAfter(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((keys[middle] as string) <= key) low = middle + 1;
    else high = middle;
  }
  return low;
}

export function encodeScanCursor(walk: string, last: string): string {
  return `${SCAN_CURSOR_PREFIX}${Buffer.from(JSON.stringify([walk, last]), 'utf8').toString('base64url')}`;
}

export function decodeScanCursor(cursor: string): { walk: string; after: string } {
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
