import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { configError } from '../../core/errors.js';
import { decodeKey, isProductionMode, isWeakKey } from '../../core/secrets.js';

/** AES-256 key size in bytes. */
export const ENCRYPTION_KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const FORMAT = 'v1';
const KID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
const B64URL = /^[A-Za-z0-9_-]+$/;
/** Re-encrypted values carry their original stamp plus this suffix: newer than the original, older than any later write. */
export const REENCRYPTED_SUFFIX = '.r';

export interface EncryptionKey {
  /** Key ID: 1 to 32 characters of `A-Z a-z 0-9 _ -`. Stored with every value it seals. */
  kid: string;
  /** Exactly 32 random bytes. */
  key: Buffer;
}

export { EXAMPLE_ENCRYPTION_KEYS, isProductionMode, isWeakKey } from '../../core/secrets.js';

/**
 * Parses encryption keys written as `kid:KEY` (KEY: 32 bytes in base64url), newest first: the
 * first encrypts, all decrypt. Refuses duplicate key IDs, wrong lengths and non-canonical
 * encodings; in production mode also example and low-entropy keys. Messages name the option and
 * the key's position, never the key.
 */
export function parseEncryptionKeys(specs: readonly (string | EncryptionKey)[], option = 'keys', production = isProductionMode()): EncryptionKey[] {
  if (!Array.isArray(specs) || specs.length === 0) throw configError(option, 'at least one encryption key (kid:KEY) is required');
  const seen = new Set<string>();
  return specs.map((spec, index) => {
    const which = `key #${index + 1}`;
    let kid: string;
    let key: Buffer;
    if (typeof spec === 'string') {
      const colon = spec.indexOf(':');
      if (colon < 0) throw configError(option, `${which} must be written kid:KEY (KEY: ${ENCRYPTION_KEY_BYTES} bytes in base64url; generate one with: openssl rand 32 | basenc --base64url)`);
      kid = spec.slice(0, colon).trim();
      const decoded = decodeKey(spec.slice(colon + 1), ENCRYPTION_KEY_BYTES);
      if (decoded === null) throw configError(option, `${which} must be exactly ${ENCRYPTION_KEY_BYTES} bytes in base64url (43 characters)`);
      key = decoded;
    } else if (spec !== null && typeof spec === 'object' && typeof spec.kid === 'string' && Buffer.isBuffer(spec.key)) {
      kid = spec.kid;
      key = Buffer.from(spec.key);
      if (key.length !== ENCRYPTION_KEY_BYTES) throw configError(option, `${which} must be exactly ${ENCRYPTION_KEY_BYTES} bytes`);
    } else {
      throw configError(option, `${which} must be a "kid:KEY" string or { kid, key: Buffer }`);
    }
    if (!KID_PATTERN.test(kid)) throw configError(option, `${which} needs a key ID of 1 to 32 characters A-Z a-z 0-9 _ -`);
    if (seen.has(kid)) throw configError(option, `key ID "${kid}" is listed twice`);
    seen.add(kid);
    if (production && isWeakKey(key)) {
      throw configError(option, `${which} (kid "${kid}") is an example or low-entropy key, refused in production (NODE_ENV=production); generate one with: openssl rand 32 | basenc --base64url`);
    }
    return { kid, key };
  });
}

/** A new random key in the `kid:KEY` form. */
export function generateEncryptionKey(kid: string): string {
  if (!KID_PATTERN.test(kid)) throw configError('kid', 'must be 1 to 32 characters A-Z a-z 0-9 _ -');
  return `${kid}:${randomBytes(ENCRYPTION_KEY_BYTES).toString('base64url')}`;
}

/** Why a sealed value did not open. Never carries key material or contents. */
export type OpenFailure = 'format' | 'unknown-kid' | 'authentication';

/** The sealed form of one field value, or why it cannot be opened. */
export class FieldCipher {
  readonly #keys: ReadonlyMap<string, Buffer>;
  readonly current: string;

  constructor(keys: readonly EncryptionKey[]) {
    this.#keys = new Map(keys.map(({ kid, key }) => [kid, key]));
    this.current = (keys[0] as EncryptionKey).kid;
  }

  seal(storeKey: string, field: string, plaintext: string): string {
    const kid = this.current;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#keys.get(kid) as Buffer, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(associatedData(storeKey, field, kid));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${FORMAT}.${kid}.${iv.toString('base64url')}.${body.toString('base64url')}`;
  }

  /** The plaintext and the key ID that sealed it, or why it does not open. Never throws. */
  open(storeKey: string, field: string, sealed: string): { plaintext: string; kid: string } | { failure: OpenFailure } {
    const parts = sealed.split('.');
    if (parts.length !== 4 || parts[0] !== FORMAT) return { failure: 'format' };
    const [, kid, ivText, bodyText] = parts as [string, string, string, string];
    const key = this.#keys.get(kid);
    if (key === undefined) return { failure: 'unknown-kid' };
    if (!B64URL.test(ivText) || !B64URL.test(bodyText)) return { failure: 'format' };
    const iv = Buffer.from(ivText, 'base64url');
    const body = Buffer.from(bodyText, 'base64url');
    // One spelling per value: a re-encoded IV or body is a different, unauthenticated text.
    if (iv.length !== IV_BYTES || body.length < TAG_BYTES || iv.toString('base64url') !== ivText || body.toString('base64url') !== bodyText) {
      return { failure: 'format' };
    }
    try {
      // authTagLength pins the tag to 16 bytes: GCM would otherwise accept a truncated tag.
      const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(associatedData(storeKey, field, kid));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      const plain = Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]);
      return { plaintext: plain.toString('utf8'), kid };
    } catch {
      return { failure: 'authentication' };
    }
  }
}

function associatedData(storeKey: string, field: string, kid: string): Buffer {
  return Buffer.from(`elastic-session/${FORMAT}\0${storeKey}\0${field}\0${kid}`, 'utf8');
}
