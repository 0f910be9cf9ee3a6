import { hkdfSync, randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { checkSecrets, MIN_SECRET_BYTES, optionError } from './config.js';
import { decodeKey, isProductionMode, isWeakKey } from '../core/secrets.js';
import { isDurable } from './stores.js';
import type { StoreSpec } from './stores.js';
import type { ServiceLogger } from './log.js';

/** Name of the file, next to the SQLite database, that holds a generated secret. */
export const SECRET_FILE = 'elastic-session.secret';

export interface ResolvedSecrets {
  /** Newest first: the first signs, all verify. */
  secrets: string[];
  /** Where they came from: given as an option, read from or written to the secret file, or made up for this process only. */
  source: 'option' | 'file' | 'generated' | 'ephemeral';
  /** The secret file, when one is used. */
  file?: string;
}

export function generateSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The key for HMAC-SHA-256 store keys, derived from the service secret (HKDF-SHA-256) so the
 * cookie-signing key and the store-key hashing key differ. An application that shares a store
 * with the service passes `hashKey: storeHashKey(secret)` to its own `SessionManager` (or the
 * service's `hashKey`, when one is configured).
 */
export function storeHashKey(secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.alloc(0), 'elastic-session/store-key', 32));
}

/** Bytes of the service's `hashKey`, written in base64url. */
export const HASH_KEY_BYTES = 32;

/**
 * The configured store-key hash key (32 bytes in base64url), checked; in production mode
 * example and low-entropy keys are refused. Messages name the option, never the key.
 */
export function parseHashKey(value: unknown, option: string, production = isProductionMode()): Buffer {
  const key = typeof value === 'string' ? decodeKey(value, HASH_KEY_BYTES) : null;
  if (key === null) throw optionError(option, `must be exactly ${HASH_KEY_BYTES} bytes in base64url (43 characters; generate one with: openssl rand 32 | basenc --base64url)`);
  if (production && isWeakKey(key)) throw optionError(option, 'is an example or low-entropy key, refused in production (NODE_ENV=production)');
  return key;
}

export interface HashKeyOptions {
  /** The configured hash key, parsed. */
  hashKey: Buffer | undefined;
  /** How the user names the hash key and secret options, for messages. */
  hashKeyOption: string;
  secretOption: string;
}

/**
 * The key the service hashes store keys with: the configured one, else the one derived from
 * its only secret. It must never change while sessions live, so a rotation (several secrets)
 * needs it configured: deriving it from any one of them would end every session the day that
 * secret is dropped.
 */
export function serviceHashKey(secrets: readonly string[], options: HashKeyOptions): Buffer {
  if (options.hashKey !== undefined) return options.hashKey;
  const [only, ...others] = secrets;
  if (only !== undefined && others.length === 0) return storeHashKey(only);
  throw optionError(
    options.hashKeyOption,
    `is required with several secrets in ${options.secretOption}: store keys must not change when the secret rotates; set it to what "elastic-session hash-key" prints with the current secret`,
  );
}

export function secretFileOf(spec: StoreSpec): string | null {
  return spec.scheme === 'sqlite' && isDurable(spec) ? join(dirname(spec.path), SECRET_FILE) : null;
}

export interface ResolveSecretOptions {
  /** The configured secrets (newest first), if any. */
  given: readonly string[] | undefined;
  /** The option that configures it, for messages. */
  option: string;
  spec: StoreSpec | null;
  /** Write a new secret file when none exists (serve); otherwise a missing file yields null (inspect). */
  create: boolean;
  log: ServiceLogger;
}

/**
 * The configured secrets; else the one persisted next to the SQLite file (generated on the
 * first start); else, for stores that do not survive a restart, a secret for this process only.
 */
export async function resolveSecrets(options: ResolveSecretOptions): Promise<ResolvedSecrets | null> {
  if (options.given !== undefined) return { secrets: checkSecrets(options.given, options.option), source: 'option' };
  const file = options.spec ? secretFileOf(options.spec) : null;
  if (file === null && options.spec && isDurable(options.spec)) {
    // Every instance on a shared store must sign and hash with the same secret; none can be made up here.
    throw optionError(options.option, `is required with a ${options.spec.scheme} store: every instance must use the same secret`);
  }
  if (file === null) {
    if (!options.create) return null;
    // The memory store loses its sessions on restart anyway, and says so itself.
    if (options.spec?.scheme !== 'memory') {
      options.log.warn(`${options.option} is not set: using a random secret for this process only; sessions cannot be read after a restart`);
    }
    return { secrets: [generateSecret()], source: 'ephemeral' };
  }
  const existing = await readSecretFile(file, options.log);
  if (existing !== null) return { secrets: [existing], source: 'file', file };
  if (!options.create) return null;
  await mkdir(dirname(file), { recursive: true });
  const secret = generateSecret();
  try {
    await writeFile(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    // Another instance on the same database wrote it first: use theirs.
    if (isErrno(error, 'EEXIST')) {
      const theirs = await readSecretFile(file, options.log);
      if (theirs !== null) return { secrets: [theirs], source: 'file', file };
    }
    throw optionError(options.option, `is not set and the secret file ${file} cannot be written (${errnoOf(error)}); set it instead`);
  }
  options.log.info(`generated a new secret and saved it to ${file} (mode 0600); keep it with the database: sessions cannot be read without it`);
  return { secrets: [secret], source: 'generated', file };
}

async function readSecretFile(file: string, log: ServiceLogger): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return null;
    throw optionError(`secret file ${file}`, `cannot be read (${errnoOf(error)})`);
  }
  const secret = text.trim();
  if (Buffer.byteLength(secret, 'utf8') < MIN_SECRET_BYTES) throw optionError(`secret file ${file}`, `must hold a secret of at least ${MIN_SECRET_BYTES} bytes`);
  if (process.platform !== 'win32') {
    const { mode } = await stat(file);
    if ((mode & 0o077) !== 0) log.warn(`secret file ${file} is readable by other users; restrict it with: chmod 600 ${file}`);
  }
  return secret;
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

function errnoOf(error: unknown): string {
  const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
  return typeof code === 'string' ? code : 'unknown error';
}
