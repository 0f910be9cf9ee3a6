import { createHash } from 'node:crypto';

/**
 * Production-mode checks shared by every option that takes secret key material (cookie-signing
 * secrets, `hashKey`, encryption keys): with `NODE_ENV=production`, keys copied from the
 * documentation and keys no random generator produces in practice are refused at startup.
 */

/**
 * Encryption keys that appear in the documentation (base64url of 32 bytes). Refused in
 * production mode, like any key with visibly low entropy.
 */
export const EXAMPLE_ENCRYPTION_KEYS: readonly string[] = [
  'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  'ZXhhbXBsZS1rZXktZG8tbm90LXVzZS1pbi1wcm9kdWM',
  'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY',
];

/**
 * Cookie secrets and hash keys that appear in the documentation and examples (docs/security.md
 * lists them), and placeholders people paste from other libraries' READMEs. Compared exactly.
 */
export const EXAMPLE_SECRETS: readonly string[] = [
  'example-session-secret-do-not-use-in-production',
  'example-hash-key-do-not-use-in-production-0123456789',
  '0123456789abcdef0123456789abcdef',
  'change-me-to-a-long-random-string-of-32-bytes',
  // The encryption examples, decoded and as text: someone may reuse them as a secret.
  ...EXAMPLE_ENCRYPTION_KEYS,
  ...EXAMPLE_ENCRYPTION_KEYS.map((key) => Buffer.from(key, 'base64url').toString('latin1')),
];

/**
 * Key bytes written as base64url (the form `openssl rand 32 | basenc --base64url` prints; a
 * trailing `=` is dropped), or null unless the text is the one canonical spelling of exactly
 * `bytes` bytes: base64url has several spellings of the same bytes, and a key must have one.
 */
export function decodeKey(text: string, bytes: number): Buffer | null {
  const trimmed = text.trim().replace(/=+$/, '');
  if (!/^[A-Za-z0-9_-]+$/.test(trimmed)) return null;
  const key = Buffer.from(trimmed, 'base64url');
  return key.length === bytes && key.toString('base64url') === trimmed ? key : null;
}

/** Whether the process runs in production mode (`NODE_ENV=production`). */
export function isProductionMode(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.NODE_ENV === 'production';
}

/**
 * A documented example encryption key (32 raw bytes), or bytes no random generator produces in
 * practice. 32 random bytes have about 30 distinct values; fewer than 12 is more than 13
 * standard deviations off.
 */
export function isWeakKey(key: Buffer): boolean {
  if (EXAMPLE_ENCRYPTION_KEYS.includes(key.toString('base64url'))) return true;
  if (guessableDigests().has(key.toString('hex'))) return true;
  return new Set(key).size < 12;
}

/**
 * A cookie secret or hash key (text or bytes, at least 32 bytes) from the documentation, or with
 * visibly low entropy: one repeated byte, fewer than 12 distinct byte values (9 for hex text), or
 * a short pattern repeated (`'0123456789abcdef'.repeat(2)`). The thresholds are lower than the 16
 * one might expect because secrets are often hex text, which has only 16 possible characters: a
 * 64-character `openssl rand -hex 32` secret misses one of them in about a quarter of draws, and a
 * 32-character one (16 random bytes) has fewer than 12 distinct in about 2 % of draws, fewer than
 * 9 in about 4 in a million.
 *
 * Also weak: text a person made up ({@link isPassphraseLike}) and the digest of a guessable input
 * (MD5, SHA-1 or SHA-2 of a common password, placeholder or documented example, as hex, base64 or
 * raw bytes, with or without the newline `echo` adds). Hex as such is not weak: it is what
 * `openssl rand -hex 32` prints, and a digest of anything not on that list looks the same.
 */
export function isWeakSecret(secret: string | Buffer): boolean {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  const text = bytes.toString('latin1');
  if (EXAMPLE_SECRETS.includes(text) || EXAMPLE_SECRETS.includes(bytes.toString('utf8').trim())) return true;
  if (new Set(bytes).size < (/^[0-9a-f]+$/i.test(text) ? 9 : 12)) return true;
  if (isPeriodic(bytes)) return true;
  if (isGuessableDigest(text, bytes)) return true;
  return /^[\x20-\x7e]+$/.test(text) && isPassphraseLike(text);
}

/**
 * Text a person typed rather than a generator printed: words separated by spaces (no usual
 * encoding of random bytes, hex, base64, base64url or base32, contains a space), lowercase
 * letters only (`correcthorsebatterystaple...`, with or without `-`, `_` or `.` between words),
 * words joined by separators (`My-Session-Secret-2024`) or in camel case (`MySuperSecretKey`).
 * Random base64url of 32 bytes or more matches none of these in practice (the least unlikely,
 * lowercase letters and separators only, about once in 10^11 draws).
 */
export function isPassphraseLike(text: string): boolean {
  if (/\S\s+\S/.test(text)) return true;
  if (/^[a-z]+(?:[-_.][a-z]+)*$/.test(text)) return true;
  if (/^[a-z]*(?:[A-Z][a-z]{2,})+\d{0,4}[!?.]?$/.test(text)) return true;
  const words = text.split(/[-_.,:;+~]+/).filter((word) => word !== '');
  if (words.length >= 3 && words.every((word) => /^(?:[a-z]+|[A-Z][a-z]*|[A-Z]+|\d+)$/.test(word))) return true;
  // Mostly words, with a few other tokens between them (`Tr0ub4dor&3-is-my-favourite-password`).
  const wordy = words.filter((word) => /^(?:[a-z]{2,}|[A-Z][a-z]+)$/.test(word));
  return wordy.length >= 3 && wordy.reduce((sum, word) => sum + word.length, 0) * 2 >= text.length;
}

/**
 * Inputs people hash to make a random-looking secret (`echo -n changeme | sha256sum`): the digest
 * is as guessable as the input. Not a password list, the few that show up as secrets.
 */
const GUESSABLE_INPUTS: readonly string[] = [
  '', 'secret', 'Secret', 'SECRET', 'password', 'Password', 'passw0rd', 'password1', 'password123', 'changeme', 'change-me', 'changeit',
  'session', 'session-secret', 'session_secret', 'sessionsecret', 'session secret', 'secret-key', 'secret_key', 'secretkey', 'secret key',
  'mysecret', 'my-secret', 'my secret', 'supersecret', 'super-secret', 'super secret', 'topsecret', 'keyboard cat', 'shhhhh',
  'cookie-secret', 'cookie_secret', 'jwt-secret', 'jwt_secret', 'jwtsecret', 'hash-key', 'hashkey', 'key', 'token', 'salt',
  'admin', 'administrator', 'root', 'user', 'test', 'testing', 'dev', 'development', 'staging', 'prod', 'production', 'default',
  'example', 'sample', 'demo', 'elastic-session', 'elastic_session', 'elasticsession', 'letmein', 'welcome', 'qwerty', 'iloveyou',
  'hunter2', 'abc123', 'monkey', 'dragon', 'master', 'hello', 'hello world', 'helloworld', 'foo', 'bar', 'foobar', 'baz', 'none',
  'null', 'undefined', '0', '1', '123', '1234', '12345', '123456', '1234567', '12345678', '123456789', '1234567890',
];

const DIGESTS = ['md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512'] as const;

let digests: Set<string> | undefined;

/** Lowercase hex of every digest of every guessable input (and documented example), once. */
function guessableDigests(): Set<string> {
  if (digests) return digests;
  digests = new Set();
  for (const input of [...GUESSABLE_INPUTS, ...EXAMPLE_SECRETS]) {
    for (const variant of [input, `${input}\n`]) {
      for (const algorithm of DIGESTS) digests.add(createHash(algorithm).update(variant, 'utf8').digest('hex'));
    }
  }
  return digests;
}

/** The secret is such a digest: as hex text, base64 or base64url text, or raw bytes. */
function isGuessableDigest(text: string, bytes: Buffer): boolean {
  const known = guessableDigests();
  if (/^[0-9a-f]+$/i.test(text)) return known.has(text.toLowerCase());
  if (/^[A-Za-z0-9+/_-]+=*$/.test(text) && known.has(Buffer.from(text.replace(/=+$/, ''), 'base64').toString('hex'))) return true;
  return known.has(bytes.toString('hex'));
}

/** Whether the bytes are one shorter run repeated (a period of at most half the length). */
function isPeriodic(bytes: Buffer): boolean {
  for (let period = 1; period <= bytes.length / 2; period++) {
    let repeats = true;
    for (let i = period; i < bytes.length && repeats; i++) repeats = bytes[i] === bytes[i - period];
    if (repeats) return true;
  }
  return false;
}
