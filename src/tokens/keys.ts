import { createHash, createPrivateKey, createPublicKey, hkdfSync, KeyObject } from 'node:crypto';
import { configError } from '../core/errors.js';
import { isProductionMode, isWeakSecret } from '../core/secrets.js';

/** Signature algorithms token mode accepts. `none` and every RSA/PS algorithm are not among them. */
export type TokenAlgorithm = 'EdDSA' | 'ES256' | 'HS256';

export const TOKEN_ALGORITHMS: readonly TokenAlgorithm[] = ['EdDSA', 'ES256', 'HS256'];

/** HS256 keys shorter than this are refused (RFC 7518 §3.2: at least the hash size). */
export const MIN_HMAC_KEY_BYTES = 32;

export interface TokenKeyInput {
  /** Key ID put in the token header; selects among the configured keys, nothing else. */
  kid: string;
  alg: TokenAlgorithm;
  /**
   * EdDSA (Ed25519) / ES256 (P-256): a private `KeyObject` (signs and verifies) or a public one
   * (verifies only, for a key being retired). HS256: at least 32 secret bytes.
   */
  key: KeyObject | Uint8Array;
}

/** A validated key: what it verifies with and, when it can, what it signs with. */
export interface TokenKey {
  kid: string;
  alg: TokenAlgorithm;
  signKey: KeyObject | Uint8Array | null;
  verifyKey: KeyObject | Uint8Array;
}

const KID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Validates token keys once, at startup. The first key signs; every key verifies tokens carrying its `kid`. */
export function checkTokenKeys(keys: readonly TokenKeyInput[], option = 'keys', production = isProductionMode()): TokenKey[] {
  if (!Array.isArray(keys) || keys.length === 0) throw configError(option, 'at least one token key is required');
  const seen = new Set<string>();
  const checked = keys.map((input, index) => {
    const which = `key #${index + 1}`;
    if (typeof input !== 'object' || input === null) throw configError(option, `${which} must be { kid, alg, key }`);
    if (typeof input.kid !== 'string' || !KID_PATTERN.test(input.kid)) throw configError(option, `${which} needs a kid of 1 to 64 characters A-Z a-z 0-9 _ -`);
    if (seen.has(input.kid)) throw configError(option, `kid "${input.kid}" is listed twice`);
    seen.add(input.kid);
    if (!TOKEN_ALGORITHMS.includes(input.alg)) throw configError(option, `${which} has alg ${String(input.alg).slice(0, 16)}; allowed: ${TOKEN_ALGORITHMS.join(', ')}`);
    const key = checkKey(input, which, option);
    // Production mode: an HS256 secret of zero bytes, a password or a digest of one is refused, as cookie secrets are.
    if (production && key.alg === 'HS256' && isWeakSecret(Buffer.from(secretBytes(key.verifyKey)))) {
      throw configError(option, `${which} (kid "${key.kid}") is an example or low-entropy HS256 secret, refused in production (NODE_ENV=production); generate one with: openssl rand -base64 32`);
    }
    return key;
  });
  if ((checked[0] as TokenKey).signKey === null) throw configError(option, 'the first key signs new tokens, so it must be a private (or HS256 secret) key');
  return checked;
}

function secretBytes(key: KeyObject | Uint8Array): Uint8Array {
  return key instanceof KeyObject ? key.export() : key;
}

function checkKey(input: TokenKeyInput, which: string, option: string): TokenKey {
  const { kid, alg, key } = input;
  if (alg === 'HS256') {
    if (key instanceof KeyObject) {
      if (key.type !== 'secret') throw configError(option, `${which}: HS256 needs secret bytes, not a ${key.type} key (that would be key confusion)`);
      if ((key.symmetricKeySize ?? 0) < MIN_HMAC_KEY_BYTES) throw configError(option, `${which}: HS256 keys must be at least ${MIN_HMAC_KEY_BYTES} bytes (256 bits)`);
      return { kid, alg, signKey: key, verifyKey: key };
    }
    if (!(key instanceof Uint8Array) || key.length < MIN_HMAC_KEY_BYTES) throw configError(option, `${which}: HS256 keys must be at least ${MIN_HMAC_KEY_BYTES} bytes (256 bits)`);
    const bytes = new Uint8Array(key);
    return { kid, alg, signKey: bytes, verifyKey: bytes };
  }
  if (!(key instanceof KeyObject) || key.type === 'secret') throw configError(option, `${which}: ${alg} needs a private or public KeyObject`);
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (alg === 'EdDSA' && type !== 'ed25519') throw configError(option, `${which}: EdDSA needs an Ed25519 key`);
  if (alg === 'ES256' && (type !== 'ec' || curve !== 'prime256v1')) throw configError(option, `${which}: ES256 needs a P-256 key`);
  return key.type === 'private' ? { kid, alg, signKey: key, verifyKey: createPublicKey(key) } : { kid, alg, signKey: null, verifyKey: key };
}

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * An Ed25519 signing key derived from a secret (HKDF-SHA-256), so that every instance sharing
 * the secret signs and verifies with the same key without another setting. Its `kid` is a
 * digest of the public key: rotating the secret rotates the token key.
 */
export function tokenKeyFromSecret(secret: string | Uint8Array): TokenKeyInput {
  const material = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  if (material.length < 32) throw configError('secret', 'must be at least 32 bytes');
  const seed = Buffer.from(hkdfSync('sha256', material, Buffer.alloc(0), 'elastic-session/token-signing/ed25519', 32));
  const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const publicDer = createPublicKey(key).export({ format: 'der', type: 'spki' });
  const kid = createHash('sha256').update(publicDer).digest('base64url').slice(0, 16);
  return { kid, alg: 'EdDSA', key };
}

/**
 * A signing key from a PEM private key (PKCS#8 or SEC1): Ed25519 signs with EdDSA, P-256 with
 * ES256; the algorithm follows the key type, nothing else is accepted. Its `kid` is a digest of
 * the public key, like the derived key's. Messages name the option, never the key.
 */
export function tokenKeyFromPem(pem: string | Buffer, option = 'key'): TokenKeyInput {
  if (typeof pem !== 'string' && !Buffer.isBuffer(pem)) throw configError(option, 'must be a PEM private key (Ed25519 or P-256)');
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw configError(option, 'must be an unencrypted PEM private key (Ed25519 or P-256); generate one with: openssl genpkey -algorithm ed25519');
  }
  let alg: TokenAlgorithm;
  if (key.asymmetricKeyType === 'ed25519') alg = 'EdDSA';
  else if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') alg = 'ES256';
  else throw configError(option, `is a ${key.asymmetricKeyType ?? 'unknown'} key; token signing keys must be Ed25519 (EdDSA) or P-256 (ES256)`);
  const publicDer = createPublicKey(key).export({ format: 'der', type: 'spki' });
  const kid = createHash('sha256').update(publicDer).digest('base64url').slice(0, 16);
  return { kid, alg, key };
}
