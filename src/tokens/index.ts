export { createTokenIssuer, TokenIssuer, DEFAULT_TOKEN_OPTIONS, MAX_ACCESS_TTL, MAX_LEEWAY, MAX_TOKEN_LENGTH, ACCESS_TOKEN_TYPE } from './issuer.js';
export type { TokenIssuerOptions, TokenPair, TokenSession, VerifiedToken } from './issuer.js';
export { tokenError } from './claims.js';
export type { CustomClaims, TokenRejectReason } from './claims.js';
export { checkTokenKeys, tokenKeyFromPem, tokenKeyFromSecret, TOKEN_ALGORITHMS, MIN_HMAC_KEY_BYTES } from './keys.js';
export type { TokenAlgorithm, TokenKey, TokenKeyInput } from './keys.js';
