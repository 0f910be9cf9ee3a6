import { configError } from '../../core/errors.js';
import { formatStamp } from '../../core/hlc.js';
import { isProductionMode } from '../../core/secrets.js';
import { publishCorrupt } from '../../core/telemetry.js';
import type {
  ApplyResult,
  KeyState,
  LiveState,
  MergeOutcome,
  SessionDelta,
  SessionStore,
  StoreCapabilities,
  StoredField,
  StoredSession,
  StoredSummary,
  TombstoneState,
  Watermark,
} from '../../core/types.js';
import { FieldCipher, parseEncryptionKeys, REENCRYPTED_SUFFIX } from './cipher.js';
import type { EncryptionKey } from './cipher.js';
import { invalidInput } from '../kit/checks.js';
import { canScan } from './reencrypt.js';
import type { ScanPage } from './reencrypt.js';

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
 *
 * What the inner store keeps in clear is authenticated by two reserved fields, sealed like the
 * others: `$es.principal` (the user ID, written with the principal's own stamp, so it merges
 * exactly like the principal register) and `$es.deadlines` (creation time, idle timeout and
 * absolute expiry, fixed at creation). A record whose clear `userId`, `userStamp` or deadlines
 * disagree with them is unreadable, so a store writer cannot hand a session another identity or a
 * longer life. `lastSeenAt` stays unauthenticated (see docs/security.md).
 */

const STALE_CACHE_ENTRIES = 10_000;
const RESERVED = '$es.';
const PRINCIPAL = `${RESERVED}principal`;
const DEADLINES = `${RESERVED}deadlines`;
/** The reserved names this store owns. Other `$es.` names are the manager's (`$es.auth`): sealed and passed on like data. */
const OWN = new Set([PRINCIPAL, DEADLINES]);

export interface EncryptedStoreOptions {
  /** Newest first: the first encrypts, every listed key decrypts. `kid:KEY` strings or `{ kid, key }`. */
  keys: readonly (string | EncryptionKey)[];
  /** Refuse example and low-entropy keys. @default NODE_ENV === 'production' */
  production?: boolean;
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
  /** Walks the inner store; present when it can be walked. */
  readonly scan?: (cursor: string | null, limit: number) => Promise<ScanPage>;
  readonly readState?: (key: string) => Promise<KeyState>;
  readonly mergeState?: (key: string, state: LiveState | TombstoneState) => Promise<MergeOutcome>;
  readonly readWatermark?: (userId: string) => Promise<Watermark | null>;
  readonly mergeWatermark?: (userId: string, stamp: string) => Promise<number>;

  constructor(inner: SessionStore, options: EncryptedStoreOptions) {
    if (!inner || typeof inner.load !== 'function') throw configError('inner', 'a SessionStore is required');
    if (!options || typeof options !== 'object') throw configError('keys', 'encryption options { keys } are required');
    const keys = parseEncryptionKeys(options.keys, 'keys', options.production ?? isProductionMode());
    this.inner = inner;
    this.name = inner.name;
    this.capabilities = inner.capabilities;
    this.#cipher = new FieldCipher(keys);
    if (canScan(inner)) this.scan = (cursor, limit) => inner.scan(cursor, limit);
    const { readState, mergeState, readWatermark, mergeWatermark } = inner;
    if (inner.capabilities.replica && readState && mergeState && readWatermark && mergeWatermark) {
      // The replica powers show and take plaintext, like every other call: a replica layer above
      // this store exchanges plaintext and each store seals with its own keyring; a layer below it
      // (between this store and the inner one) moves ciphertext untouched.
      this.readState = async (key) => this.#openState(key, await readState.call(inner, key));
      this.mergeState = async (key, state) => mergeState.call(inner, key, state.kind === 'live' ? await this.#sealState(key, state) : state);
      this.readWatermark = (userId) => readWatermark.call(inner, userId);
      this.mergeWatermark = (userId, stamp) => mergeWatermark.call(inner, userId, stamp);
    }
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
    return this.inner.create(key, { ...session, fields: this.#sealFields(key, { ...userFields(session.fields), ...bindingFields(session) }) });
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    const plain = userFields(delta.fields);
    if (delta.userId !== undefined) plain[PRINCIPAL] = { value: JSON.stringify(delta.userId), stamp: stampOf(delta.userStamp) };
    const fields = this.#sealFields(key, plain);
    const stale = this.#stale.get(key);
    if (stale) {
      this.#stale.delete(key);
      // Per-field ordering keeps this safe: a field written meanwhile has a newer stamp and wins.
      for (const [name, field] of Object.entries(stale)) if (!Object.hasOwn(fields, name)) fields[name] = field;
    }
    return this.inner.apply(key, { ...delta, fields });
  }

  async destroy(key: string, tombstoneGraceMs: number, stamp?: string): Promise<boolean> {
    this.#stale.delete(key);
    return this.inner.destroy(key, tombstoneGraceMs, stamp);
  }

  listByUser(userId: string): Promise<StoredSummary[]> {
    return this.inner.listByUser(userId);
  }

  destroyByUser(userId: string, tombstoneGraceMs: number, stamp?: string): Promise<number> {
    return this.inner.destroyByUser(userId, tombstoneGraceMs, stamp);
  }

  sweep(limit: number): Promise<number> {
    return this.inner.sweep(limit);
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

  /**
   * The record with its values opened and its reserved fields checked and removed, and its
   * old-key fields re-sealed; null when any value does not open or the clear metadata disagrees.
   */
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
    const principal = fields[PRINCIPAL];
    const deadlines = fields[DEADLINES];
    if (principal?.value !== JSON.stringify(stored.userId) || principal.stamp.replace(/(?:\.r)+$/, '') !== stored.userStamp) return null;
    if (deadlines?.value !== deadlinesOf(stored)) return null;
    const data = Object.create(null) as Record<string, StoredField>;
    for (const [name, field] of Object.entries(fields)) if (!OWN.has(name)) data[name] = field;
    return { session: { ...stored, fields: data }, stale };
  }

  #openState(key: string, state: KeyState): KeyState {
    if (state?.kind !== 'live') return state;
    const opened = this.#open(key, state.record);
    if (opened) return { kind: 'live', record: opened.session };
    publishCorrupt(this.name);
    return null;
  }

  /**
   * Seals a foreign live state. A field this store already holds with the same stamp and the
   * same plaintext keeps its ciphertext, so merging the same state twice changes nothing (a fresh
   * seal would differ by its random nonce).
   */
  async #sealState(key: string, state: LiveState): Promise<LiveState> {
    const current = await this.inner.load(key);
    const plain = { ...userFields(state.record.fields), ...bindingFields(state.record) };
    const fields = this.#sealFields(key, plain);
    for (const [name, field] of Object.entries(plain)) {
      const held = current?.fields[name];
      if (!held || held.stamp !== field.stamp || held.value === null || field.value === null) continue;
      const opened = this.#cipher.open(key, name, held.value);
      if ('plaintext' in opened && opened.plaintext === field.value) fields[name] = { value: held.value, stamp: held.stamp };
    }
    return { kind: 'live', record: { ...state.record, fields } };
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

/** A caller's fields, refusing the reserved names. */
function userFields(fields: Record<string, StoredField>): Record<string, StoredField> {
  const out = Object.create(null) as Record<string, StoredField>;
  for (const [name, field] of Object.entries(fields ?? {})) {
    if (OWN.has(name)) throw invalidInput(`The field names "${PRINCIPAL}" and "${DEADLINES}" are reserved by encryptedStore`);
    out[name] = field;
  }
  return out;
}

/** The reserved fields that authenticate a record's clear principal and deadlines. */
function bindingFields(record: StoredSession): Record<string, StoredField> {
  return {
    [PRINCIPAL]: { value: JSON.stringify(record.userId), stamp: stampOf(record.userStamp) },
    // Fixed at creation: a stamp of its own that every replica computes alike.
    [DEADLINES]: { value: deadlinesOf(record), stamp: formatStamp(record.createdAt, 0, '0') },
  };
}

function deadlinesOf(record: Pick<StoredSession, 'createdAt' | 'idleTimeout' | 'absoluteExpiresAt'>): string {
  return JSON.stringify([record.createdAt, record.idleTimeout, record.absoluteExpiresAt]);
}

function stampOf(stamp: string | undefined): string {
  if (!stamp) throw invalidInput('encryptedStore binds the principal to its stamp: the record or delta needs a userStamp');
  return stamp;
}

/** Wraps a store so that every field value is encrypted at rest. */
export function encryptedStore(inner: SessionStore, options: EncryptedStoreOptions): EncryptedStore {
  return new EncryptedStore(inner, options);
}
