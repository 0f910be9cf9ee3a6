import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { configError, SessionError } from '../core/errors.js';
import { decodeKey, isProductionMode, isWeakKey } from '../core/secrets.js';
import { publishCorrupt } from '../core/telemetry.js';
import type { ApplyResult, SessionDelta, SessionStore, StoreCapabilities, StoredField, StoredSession, StoredSummary } from '../core/types.js';

/**
 * Encryption at rest as a store made of a store: every field value is sealed with AES-256-GCM
 * before it reaches the inner store and opened after it comes back. Field names, clock stamps,
 * timestamps and the user ID stay in clear, so every store keeps merging deltas field by field
 * (last writer by stamp wins) and indexing users without ever seeing session contents.
 *
 * A sealed value is `v1.<kid>.<iv>.<ciphertext+tag>` (base64url parts): a fresh 96-bit random IV
 * per write, the full 128-bit tag, and associated data binding it to its store key, field name
 * and key ID, so a value copied to another session, another field or relabelled with another key
 * ID does not open. A value that does not open makes the whole record unreadable: it is counted
 * on the corrupt channel and loads as absent (fail closed).
 */

/** AES-256 key size in bytes. */
export const ENCRYPTION_KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const FORMAT = 'v1';
const KID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
const B64URL = /^[A-Za-z0-9_-]+$/;
/** Re-encrypted values carry their original stamp plus this suffix: newer than the original, older than any later write. */
const REENCRYPTED_SUFFIX = '.r';
const STALE_CACHE_ENTRIES = 10_000;

export interface EncryptionKey {
  /** Key ID: 1 to 32 characters of `A-Z a-z 0-9 _ -`. Stored with every value it seals. */
  kid: string;
  /** Exactly 32 random bytes. */
  key: Buffer;
}

export { EXAMPLE_ENCRYPTION_KEYS, isProductionMode, isWeakKey } from '../core/secrets.js';

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

export interface EncryptedStoreOptions {
  /** Newest first: the first encrypts, every listed key decrypts. `kid:KEY` strings or `{ kid, key }`. */
  keys: readonly (string | EncryptionKey)[];
  /** Refuse example and low-entropy keys. @default NODE_ENV === 'production' */
  production?: boolean;
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

/** Keys of live records in key order, for walking a whole store (re-encryption, audits). */
export interface ScanPage {
  keys: string[];
  /** Pass back to get the next page; null when the walk is complete. */
  cursor: string | null;
}

type Scannable = SessionStore & { scan(cursor: string | null, limit: number): Promise<ScanPage> };

export function canScan(store: SessionStore): store is Scannable {
  return typeof (store as Partial<Scannable>).scan === 'function';
}

/**
 * A `SessionStore` that encrypts every field value of `inner`. Keys rotate by prepending a new
 * one: new writes use it, old values keep opening with the old key, and a field sealed under an
 * old key is re-encrypted when its session is next written (or by `reencrypt()` / the CLI's
 * `elastic-session reencrypt`); drop the old key once no value uses it.
 */
export class EncryptedStore implements SessionStore {
  readonly name: string;
  readonly capabilities: StoreCapabilities;
  readonly inner: SessionStore;
  readonly #cipher: FieldCipher;
  /** Store key → fields loaded under an old key, already re-sealed; merged into the next write. */
  readonly #stale = new Map<string, Record<string, StoredField>>();

  constructor(inner: SessionStore, options: EncryptedStoreOptions) {
    if (!inner || typeof inner.load !== 'function') throw configError('inner', 'a SessionStore is required');
    if (!options || typeof options !== 'object') throw configError('keys', 'encryption options { keys } are required');
    const keys = parseEncryptionKeys(options.keys, 'keys', options.production ?? isProductionMode());
    this.inner = inner;
    this.name = inner.name;
    this.capabilities = inner.capabilities;
    this.#cipher = new FieldCipher(keys);
  }

  /** The key ID new writes use. */
  get currentKeyId(): string {
    return this.#cipher.current;
  }

  async load(key: string): Promise<StoredSession | null> {
    const stored = await this.inner.load(key);
    if (!stored) return null;
    const opened = this.#open(key, stored);
    if (!opened) {
      publishCorrupt(this.name);
      return null;
    }
    if (Object.keys(opened.stale).length > 0) this.#remember(key, opened.stale);
    return opened.session;
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    return this.inner.create(key, { ...session, fields: this.#sealFields(key, session.fields) });
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    const fields = this.#sealFields(key, delta.fields);
    const stale = this.#stale.get(key);
    if (stale) {
      this.#stale.delete(key);
      // Per-field ordering keeps this safe: a field written meanwhile has a newer stamp and wins.
      for (const [name, field] of Object.entries(stale)) if (!Object.hasOwn(fields, name)) fields[name] = field;
    }
    return this.inner.apply(key, { ...delta, fields });
  }

  async destroy(key: string, tombstoneGraceMs: number): Promise<boolean> {
    this.#stale.delete(key);
    return this.inner.destroy(key, tombstoneGraceMs);
  }

  listByUser(userId: string): Promise<StoredSummary[]> {
    return this.inner.listByUser(userId);
  }

  destroyByUser(userId: string, tombstoneGraceMs: number): Promise<number> {
    return this.inner.destroyByUser(userId, tombstoneGraceMs);
  }

  sweep(limit: number): Promise<number> {
    return this.inner.sweep(limit);
  }

  /** Walks the inner store when it can (see `canScan`). */
  scan(cursor: string | null, limit: number): Promise<ScanPage> {
    if (!canScan(this.inner)) {
      return Promise.reject(new SessionError('ESESS_UNSUPPORTED', { message: `The ${this.inner.name} store cannot be walked (no scan)`, context: { store: this.inner.name } }));
    }
    return this.inner.scan(cursor, limit);
  }

  async close(): Promise<void> {
    this.#stale.clear();
    await this.inner.close();
  }

  /**
   * Re-seals under the current key every field of one record that an older key sealed, without
   * touching its activity time. Returns how many fields were rewritten (0 when none or gone);
   * an unreadable record is left alone and counted as corrupt.
   */
  async reencrypt(key: string): Promise<number> {
    const stored = await this.inner.load(key);
    if (!stored) return 0;
    const opened = this.#open(key, stored);
    if (!opened) {
      publishCorrupt(this.name);
      return 0;
    }
    this.#stale.delete(key);
    const count = Object.keys(opened.stale).length;
    if (count === 0) return 0;
    const result = await this.inner.apply(key, { fields: opened.stale });
    return result.status === 'ok' ? count : 0;
  }

  #sealFields(key: string, fields: Record<string, StoredField>): Record<string, StoredField> {
    const sealed = Object.create(null) as Record<string, StoredField>;
    for (const [name, field] of Object.entries(fields)) {
      sealed[name] = { value: field.value === null ? null : this.#cipher.seal(key, name, field.value), stamp: field.stamp };
    }
    return sealed;
  }

  /** The record with its values opened, and its old-key fields re-sealed; null when any value does not open. */
  #open(key: string, stored: StoredSession): { session: StoredSession; stale: Record<string, StoredField> } | null {
    const fields = Object.create(null) as Record<string, StoredField>;
    const stale = Object.create(null) as Record<string, StoredField>;
    for (const [name, field] of Object.entries(stored.fields)) {
      if (field.value === null) {
        fields[name] = { value: null, stamp: field.stamp };
        continue;
      }
      const opened = this.#cipher.open(key, name, field.value);
      if ('failure' in opened) return null;
      fields[name] = { value: opened.plaintext, stamp: field.stamp };
      if (opened.kid !== this.#cipher.current) {
        stale[name] = { value: this.#cipher.seal(key, name, opened.plaintext), stamp: `${field.stamp}${REENCRYPTED_SUFFIX}` };
      }
    }
    return { session: { ...stored, fields }, stale };
  }

  #remember(key: string, stale: Record<string, StoredField>): void {
    this.#stale.delete(key);
    this.#stale.set(key, stale);
    if (this.#stale.size > STALE_CACHE_ENTRIES) {
      const oldest = this.#stale.keys().next();
      if (!oldest.done) this.#stale.delete(oldest.value);
    }
  }
}

/** Wraps a store so that every field value is encrypted at rest. */
export function encryptedStore(inner: SessionStore, options: EncryptedStoreOptions): EncryptedStore {
  return new EncryptedStore(inner, options);
}

export interface ReencryptProgress {
  /** Records visited, over all passes. */
  scanned: number;
  /** Records that had at least one field under an old key. */
  rewritten: number;
  /** Fields re-sealed. */
  fields: number;
  /** Walks of the whole store so far. */
  passes: number;
  /** The last walk found nothing left to re-seal. */
  clean: boolean;
}

export interface ReencryptOptions {
  /** Records per `scan` page. @default 500 */
  batch?: number;
  /**
   * Walks at most this many times: until one finds nothing to re-seal. That last, clean walk is
   * the proof that the old keys can go; it also catches what a walk misses (records moved by a
   * Redis resharding or failover during it, records written meanwhile by an instance still
   * running with the old key first). @default 3
   */
  maxPasses?: number;
  signal?: AbortSignal;
  /** Called after every page. */
  onProgress?: (progress: ReencryptProgress) => void;
}

/**
 * Walks every live record of an encrypted store and re-seals what older keys sealed, in pages
 * of `batch`, again and again until a walk finds nothing left (or `maxPasses` is reached:
 * `clean` is then false). Safe while the application runs: each rewrite is a per-field delta
 * that loses to any write made meanwhile. Requires an inner store that can `scan`.
 */
export async function reencryptAll(store: EncryptedStore, options: ReencryptOptions = {}): Promise<ReencryptProgress> {
  const batch = options.batch ?? 500;
  if (!Number.isSafeInteger(batch) || batch < 1) throw configError('batch', 'must be a positive integer');
  const maxPasses = options.maxPasses ?? 3;
  if (!Number.isSafeInteger(maxPasses) || maxPasses < 1) throw configError('maxPasses', 'must be a positive integer');
  const progress: ReencryptProgress = { scanned: 0, rewritten: 0, fields: 0, passes: 0, clean: false };
  while (!progress.clean && progress.passes < maxPasses) {
    const rewrittenBefore = progress.rewritten;
    progress.passes++;
    let cursor: string | null = null;
    do {
      options.signal?.throwIfAborted();
      const page: ScanPage = await store.scan(cursor, batch);
      for (const key of page.keys) {
        const fields = await store.reencrypt(key);
        progress.scanned++;
        if (fields > 0) {
          progress.rewritten++;
          progress.fields += fields;
        }
      }
      options.onProgress?.({ ...progress });
      cursor = page.cursor;
    } while (cursor !== null);
    progress.clean = progress.rewritten === rewrittenBefore;
  }
  return progress;
}
