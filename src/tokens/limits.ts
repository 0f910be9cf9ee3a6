/** Token mode defaults and bounds, apart from the issuer so configuration can read them without loading jose. */

export const DEFAULT_TOKEN_OPTIONS = {
  /** Access token lifetime, seconds. */
  accessTtl: 300,
  /** Refresh token lifetime, seconds (never beyond the session's absolute expiry). */
  refreshTtl: 86_400,
  /** Clock skew tolerated on exp, nbf and iat, seconds. */
  leeway: 30,
} as const;

/** Longest access token lifetime accepted: access tokens are meant to be short-lived. */
export const MAX_ACCESS_TTL = 3600;
/** Most clock skew tolerated, in seconds. */
export const MAX_LEEWAY = 300;
/** Longest token accepted for verification, in characters. */
export const MAX_TOKEN_LENGTH = 4096;
