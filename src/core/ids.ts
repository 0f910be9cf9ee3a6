import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { configError } from './errors.js';

/** 32 random bytes as base64url: 43 characters. */
export const ID_LENGTH = 43;
const ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const SIGNED_PATTERN = /^([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{43})$/;
const MIN_SECRET_BYTES = 32;

export function generateId(): string {
  return randomBytes(32).toString('base64url');
}

export function isWellFormedId(value: string): boolean {
  return ID_PATTERN.test(value);
}

/**
 * Store key of a session ID: HMAC-SHA-256 with `hashKey` when given, SHA-256 otherwise.
 * IDs carry 256 bits of entropy, so even the unkeyed hash cannot be inverted; a dump of the
 * store never yields a usable cookie.
 */
export function storeKeyOf(id: string, hashKey?: Buffer): string {
  const hash = hashKey ? createHmac('sha256', hashKey) : createHash('sha256');
  return hash.update(id).digest('base64url');
}

/** Opaque, non-secret handle for listing a user's sessions; cannot be turned back into a key or ID. */
export function handleOf(storeKey: string): string {
  return createHash('sha256').update('handle:').update(storeKey).digest('base64url').slice(0, 22);
}

export type RejectReason = 'malformed' | 'bad-signature';

/**
 * Signs and verifies cookie values `ID.TAG`. The first secret signs; every secret verifies,
 * so secrets rotate by prepending a new one and dropping the old one later.
 */
export class Keyring {
  readonly #keys: readonly Buffer[];

  constructor(secrets: readonly (string | Buffer)[], option = 'secrets') {
    if (!Array.isArray(secrets) || secrets.length === 0) throw configError(option, 'at least one secret is required (generate one with: openssl rand -base64 32)');
    this.#keys = secrets.map((secret: unknown, index) => {
      if (typeof secret !== 'string' && !Buffer.isBuffer(secret)) {
        throw configError(option, `secret #${index + 1} is ${secret === undefined ? 'undefined (an unset environment variable?)' : `a ${secret === null ? 'null' : typeof secret}`}; secrets are strings or Buffers of at least ${MIN_SECRET_BYTES} bytes`);
      }
      const key = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
      if (key.length < MIN_SECRET_BYTES) {
        throw configError(option, `secret #${index + 1} is ${key.length} bytes; at least ${MIN_SECRET_BYTES} are required`);
      }
      return key;
    });
  }

  sign(id: string): string {
    return `${id}.${this.#tag(this.#keys[0] as Buffer, id)}`;
  }

  /**
   * The ID inside a signed value and whether the newest key signed it (else it should be re-signed),
   * or why it was rejected. Costs no store call.
   */
  verify(value: string): { id: string; current: boolean } | { reason: RejectReason } {
    const match = SIGNED_PATTERN.exec(value);
    if (!match) return { reason: 'malformed' };
    const id = match[1] as string;
    // Compare the encoded text, not decoded bytes: base64url has several spellings of one tag.
    const given = Buffer.from(match[2] as string, 'latin1');
    for (const [index, key] of this.#keys.entries()) {
      const expected = Buffer.from(this.#tag(key, id), 'latin1');
      if (given.length === expected.length && timingSafeEqual(given, expected)) return { id, current: index === 0 };
    }
    return { reason: 'bad-signature' };
  }

  #tag(key: Buffer, id: string): string {
    return createHmac('sha256', key).update(id).digest('base64url');
  }
}
