/** What a token may carry and why one is refused: the reasons callers see, and the custom claims issuers add. */
import { errors as joseErrors } from 'jose';
import { SessionError } from '../core/errors.js';
import { isUnsafeKey } from '../core/json.js';
import { publishTokenRejected } from '../core/telemetry.js';

/** Why a token was refused: stable, safe to show to the caller, never carrying the token. */
export type TokenRejectReason =
  | 'malformed'
  | 'too-large'
  | 'alg-not-allowed'
  | 'embedded-key'
  | 'unknown-key'
  | 'bad-signature'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-issuer'
  | 'wrong-audience'
  | 'wrong-type'
  | 'missing-claim'
  | 'revoked'
  | 'family-revoked'
  | 'session-gone'
  | 'unknown-token'
  | 'refresh-reused';

export type CustomClaims = Record<string, string | number | boolean>;

const CLAIM_NAME = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;
const RESERVED_CLAIMS = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'fam', 'typ', 'cnf', 'sid', 'azp', 'scope_set']);
const MAX_CUSTOM_CLAIMS = 16;
const MAX_CLAIM_VALUE = 256;

/** The rejection, counted on the token-rejected channel (the reason only, never the token). */
export function tokenError(reason: TokenRejectReason): SessionError {
  publishTokenRejected(reason);
  return new SessionError('ESESS_TOKEN_INVALID', { message: `Token rejected: ${reason}`, context: { reason } });
}

/** Custom claims for a new token family: a few short values under names no registered claim has. */
export function checkClaims(claims: CustomClaims | undefined): CustomClaims {
  const checked: CustomClaims = {};
  if (claims === undefined) return checked;
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw invalidClaims('claims must be an object of strings, numbers and booleans');
  const entries = Object.entries(claims);
  if (entries.length > MAX_CUSTOM_CLAIMS) throw invalidClaims(`at most ${MAX_CUSTOM_CLAIMS} claims`);
  for (const [name, value] of entries) {
    if (!CLAIM_NAME.test(name) || RESERVED_CLAIMS.has(name) || isUnsafeKey(name)) throw invalidClaims('claim names are 1 to 32 letters, digits and _ and not registered JWT claims');
    const ok = typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value)) || (typeof value === 'string' && value.length <= MAX_CLAIM_VALUE);
    if (!ok) throw invalidClaims(`claim values are booleans, finite numbers or strings of at most ${MAX_CLAIM_VALUE} characters`);
    checked[name] = value;
  }
  return checked;
}

function invalidClaims(message: string): SessionError {
  return new SessionError('ESESS_INVALID_INPUT', { message, context: { field: 'claims' } });
}

/** The reason for a failure of jose's verification. */
export function reasonOf(error: unknown): TokenRejectReason {
  if (error instanceof joseErrors.JWTExpired) return 'expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'nbf':
      case 'iat':
        return error.reason === 'missing' ? 'missing-claim' : 'not-yet-valid';
      case 'iss':
        return error.reason === 'missing' ? 'missing-claim' : 'wrong-issuer';
      case 'aud':
        return error.reason === 'missing' ? 'missing-claim' : 'wrong-audience';
      case 'typ':
        return 'wrong-type';
      default:
        return 'missing-claim';
    }
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad-signature';
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'alg-not-allowed';
  return 'malformed';
}
