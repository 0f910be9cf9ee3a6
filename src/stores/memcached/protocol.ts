import type { Socket } from 'node:net';
import type { Client } from 'memjs';
import { SessionError } from '../../core/errors.js';

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

export const STORE = 'memcached';
export const OP = { get: 0x00, set: 0x01, add: 0x02, replace: 0x03, delete: 0x04 } as const;
export const STATUS = { ok: 0x00, notFound: 0x01, exists: 0x02, tooLarge: 0x03, notStored: 0x05 } as const;

export interface Reply {
  status: number;
  cas: Buffer;
  value: Buffer;
}

/**
 * One binary-protocol request through memjs (which routes by key and reconnects). `value` (with
 * its `exptime`) for storage commands; `cas` makes the command conditional on that item version.
 */
export function send(client: MemjsClient, operation: string, opcode: number, item: string, value?: Buffer, exptime?: number, cas?: Buffer): Promise<Reply> {
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
  client.incrSeq();
  const seq = client.seq;
  request.writeUInt32BE(seq, 12);
  cas?.copy(request, 16);
  extras.copy(request, 24);
  key.copy(request, 24 + extras.length);
  body.copy(request, 24 + extras.length + key.length);
  return new Promise((resolve, reject) => {
    client.perform(item, request, seq, (error: Error | null, response?: unknown) => {
      const reply = readReply(response);
      if (error || !reply) reject(new SessionError('ESESS_STORE_UNAVAILABLE', { cause: error ?? undefined, context: { store: STORE, operation } }));
      else resolve(reply);
    });
  });
}

/** A conditional write lost to another writer (or the item went meanwhile): read again. */
export function lostRace(status: number): boolean {
  return status === STATUS.exists || status === STATUS.notFound || status === STATUS.notStored;
}

export function statusError(operation: string, status: number, maxItemBytes: number): SessionError {
  if (status === STATUS.tooLarge) {
    return new SessionError('ESESS_TOO_LARGE', { message: 'Session record exceeds the memcached item size limit', context: { store: STORE, operation, maxItemBytes } });
  }
  return new SessionError('ESESS_STORE_UNAVAILABLE', { message: `Memcached answered with status ${status}`, context: { store: STORE, operation, status } });
}

function readReply(response: unknown): Reply | null {
  const r = response as { header?: { status?: unknown; cas?: unknown }; val?: unknown } | null | undefined;
  const status = r?.header?.status;
  if (typeof status !== 'number') return null;
  const cas = Buffer.isBuffer(r?.header?.cas) ? r.header.cas : Buffer.alloc(8);
  const value = Buffer.isBuffer(r?.val) ? r.val : Buffer.alloc(0);
  return { status, cas, value };
}
