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
 */
export function isWeakSecret(secret: string | Buffer): boolean {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  const text = bytes.toString('latin1');
  if (EXAMPLE_SECRETS.includes(text) || EXAMPLE_SECRETS.includes(bytes.toString('utf8').trim())) return true;
  if (new Set(bytes).size < (/^[0-9a-f]+$/i.test(text) ? 9 : 12)) return true;
  return isPeriodic(bytes);
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
