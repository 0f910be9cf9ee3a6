import { randomBytes } from 'node:crypto';
import { decodeProtectedHeader, exportJWK, jwtVerify, SignJWT } from 'jose';
import type { JWK, JWTPayload } from 'jose';
import { configError, SessionError } from '../core/errors.js';
import { HybridClock } from '../core/hlc.js';
import { handleOf, storeKeyOf } from '../core/ids.js';
import { isUnsafeKey, safeJsonParse } from '../core/json.js';
import type { SessionManager } from '../core/manager.js';
import { publishCorrupt } from '../core/telemetry.js';
import type { Clock, SessionStore, StoredSession } from '../core/types.js';
import { expiresAt, systemClock, TOMBSTONE_GRACE_MS } from '../core/types.js';
import { checkClaims, reasonOf, tokenError } from './claims.js';
import type { CustomClaims } from './claims.js';
import { checkTokenKeys } from './keys.js';
import type { TokenAlgorithm, TokenKey, TokenKeyInput } from './keys.js';
import { DEFAULT_TOKEN_OPTIONS, MAX_ACCESS_TTL, MAX_LEEWAY, MAX_TOKEN_LENGTH } from './limits.js';
import { readField, readString, tokenKey, tokenRecord } from './records.js';

export { DEFAULT_TOKEN_OPTIONS, MAX_ACCESS_TTL, MAX_LEEWAY, MAX_TOKEN_LENGTH } from './limits.js';

export interface TokenIssuerOptions {
  /** The sessions tokens are issued for. */
  manager: SessionManager;
  /**
   * The manager's `hashKey` (the service passes `storeHashKey(secret)`), so the issuer can find
   * a session's record from its ID. A mismatch is reported as ESESS_CONFIG on the first issue.
   */
  hashKey?: string | Buffer;
  /** Where refresh tokens, token families and the `jti` denylist live. Needs compare-and-swap. @default manager.store */
  store?: SessionStore;
  /** Newest first: the first signs, all verify (selected by `kid`, each only with its own `alg`). */
  keys: readonly TokenKeyInput[];
  /** `iss` of issued tokens, required on verification. */
  issuer: string;
  /** `aud` of issued tokens; verification requires one of them. */
  audience: string | readonly string[];
  /** Access token lifetime in seconds. @default 300 */
  accessTtl?: number;
  /** Refresh token lifetime in seconds (never beyond the session's absolute expiry). @default 86400 */
  refreshTtl?: number;
  /** Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. @default 30 */
  leeway?: number;
  /** @default Date.now */
  clock?: Clock;
  /** Refuse example and low-entropy HS256 secrets. @default NODE_ENV === 'production' */
  production?: boolean;
}

/** The JWT `typ` of access tokens (RFC 9068). */
export const ACCESS_TOKEN_TYPE = 'at+jwt';

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const OPAQUE_TOKEN = /^[A-Za-z0-9_-]{43}$/;
const EMBEDDED_KEY_HEADERS = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'];

export interface TokenPair {
  accessToken: string;
  /** Opaque, single use: each refresh returns a new one and spends the old. */
  refreshToken: string;
  /** Seconds until the access token expires. */
  expiresIn: number;
  tokenType: 'Bearer';
}

/** A session as a verified access token shows it: by handle, never by ID. */
export interface TokenSession {
  handle: string;
  userId: string | null;
  data: Record<string, unknown>;
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
  absoluteExpiresAt: Date;
}

export interface VerifiedToken {
  claims: JWTPayload & { fam: string; jti: string; sub: string };
  session: TokenSession;
}

interface LiveFamily {
  session: StoredSession;
  sessionKey: string;
  claims: CustomClaims;
}

function seconds(option: string, value: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) throw configError(option, `must be a whole number of seconds from 0 to ${max}`);
  return value;
}

/**
 * Token mode: short-lived signed access tokens (JWT, `typ: at+jwt`) and opaque single-use
 * refresh tokens for a session, for callers that cannot hold a cookie.
 *
 * - Access tokens carry the session's handle (`sub`), a random `jti`, a token family (`fam`)
 *   and the configured `iss`/`aud`. Verification takes the algorithm from configuration (the
 *   key named by `kid` with its own `alg`), rejects `none`, embedded or remote keys (`jwk`,
 *   `jku`, `x5u`, `x5c`), checks `exp`/`nbf`/`iat` with a small leeway, then checks that the
 *   `jti` is not revoked, the family is alive and the session is alive. Forged tokens cost no
 *   store call.
 * - Refresh tokens are 256-bit random strings; the store keeps only a digest. Each is spent on
 *   use (compare-and-swap); presenting a spent one revokes its whole family.
 * - Destroying, regenerating or revoking the session makes its tokens fail: the family record
 *   points at the session's record, and verification finds it gone.
 */
export class TokenIssuer {
  readonly #manager: SessionManager;
  readonly #store: SessionStore;
  readonly #hashKey: Buffer | undefined;
  readonly #keys: readonly TokenKey[];
  readonly #byKid: ReadonlyMap<string, TokenKey>;
  readonly #issuer: string;
  readonly #audience: string[];
  readonly #accessTtl: number;
  readonly #refreshTtl: number;
  readonly #leeway: number;
  readonly #clock: Clock;
  readonly #hlc: HybridClock;

  constructor(options: TokenIssuerOptions) {
    if (!options || typeof options.manager?.load !== 'function') throw configError('manager', 'a SessionManager is required');
    this.#manager = options.manager;
    this.#store = options.store ?? options.manager.store;
    if (!this.#store.capabilities.cas) throw configError('store', `token mode needs a store with compare-and-swap; the ${this.#store.name} store has none`);
    this.#hashKey = options.hashKey === undefined ? undefined : Buffer.from(options.hashKey);
    this.#keys = checkTokenKeys(options.keys, 'keys', options.production);
    this.#byKid = new Map(this.#keys.map((key) => [key.kid, key]));
    if (typeof options.issuer !== 'string' || options.issuer.length === 0 || options.issuer.length > 256) throw configError('issuer', 'must be a string of 1 to 256 characters');
    this.#issuer = options.issuer;
    const audience = typeof options.audience === 'string' ? [options.audience] : [...(options.audience ?? [])];
    if (audience.length === 0 || !audience.every((value) => typeof value === 'string' && value.length > 0 && value.length <= 256)) {
      throw configError('audience', 'must be one or more strings of 1 to 256 characters');
    }
    this.#audience = audience;
    this.#accessTtl = seconds('accessTtl', options.accessTtl ?? DEFAULT_TOKEN_OPTIONS.accessTtl, MAX_ACCESS_TTL);
    if (this.#accessTtl < 1) throw configError('accessTtl', 'must be at least 1 second');
    this.#refreshTtl = seconds('refreshTtl', options.refreshTtl ?? DEFAULT_TOKEN_OPTIONS.refreshTtl, 366 * 24 * 3600);
    if (this.#refreshTtl < 1) throw configError('refreshTtl', 'must be at least 1 second');
    this.#leeway = seconds('leeway', options.leeway ?? DEFAULT_TOKEN_OPTIONS.leeway, MAX_LEEWAY);
    this.#clock = options.clock ?? systemClock;
    this.#hlc = new HybridClock(this.#clock);
  }

  /**
   * The public verification keys as a JWK Set (RFC 7517), for resource servers that verify access
   * tokens themselves: they then check signature and claims but not revocation or session
   * liveness, which only `verify()` does. HS256 keys are secret and never listed.
   */
  async jwks(): Promise<{ keys: (JWK & { kid: string; alg: TokenAlgorithm; use: 'sig' })[] }> {
    const keys = [];
    for (const key of this.#keys) {
      if (key.alg === 'HS256') continue;
      const { kty, crv, x, y } = await exportJWK(key.verifyKey);
      keys.push({ kty, crv, x, ...(y === undefined ? {} : { y }), kid: key.kid, alg: key.alg, use: 'sig' as const } as JWK & { kid: string; alg: TokenAlgorithm; use: 'sig' });
    }
    return { keys };
  }

  /** The algorithms verification accepts: exactly those of the configured keys. */
  get algorithms(): TokenAlgorithm[] {
    return [...new Set(this.#keys.map((key) => key.alg))];
  }

  /**
   * Issues an access and a refresh token for a live session (a new token family). Throws
   * ESESS_NOT_FOUND when the session is unknown, expired or destroyed, and ESESS_TOO_LARGE when
   * the claims would make an access token longer than verification accepts (`MAX_TOKEN_LENGTH`).
   */
  async issue(sessionId: string, options: { claims?: CustomClaims } = {}): Promise<TokenPair> {
    const claims = checkClaims(options.claims);
    const now = this.#clock();
    const sessionKey = storeKeyOf(typeof sessionId === 'string' ? sessionId : '', this.#hashKey);
    let record = await this.#call(() => this.#store.load(sessionKey));
    if (!record || expiresAt(record) <= now) {
      record = null;
      // Tell a wrong hashKey apart from an unknown session: the manager finds the session, we do not.
      if (await this.#manager.load(sessionId)) throw configError('hashKey', "must be the SessionManager's hashKey (the service uses storeHashKey(secret))");
    }
    if (!record) throw new SessionError('ESESS_NOT_FOUND', { message: 'No live session has this ID' });
    const family = randomBytes(16).toString('base64url');
    // Signed before anything is stored: a token too large for verify() never gets a family.
    const signed = await this.#sign(family, handleOf(sessionKey), claims, record.absoluteExpiresAt, now);
    const stamp = this.#hlc.now();
    const created = await this.#call(() =>
      this.#store.create(
        tokenKey('fam', family),
        tokenRecord(now, record.absoluteExpiresAt, { s: { value: JSON.stringify(sessionKey), stamp }, c: { value: JSON.stringify(claims), stamp } }, stamp),
      ),
    );
    if (!created) throw new SessionError('ESESS_STORE_UNAVAILABLE', { message: 'Store refused a fresh token family', context: { store: this.#store.name } });
    return this.#pair(family, handleOf(sessionKey), claims, record.absoluteExpiresAt, now, signed);
  }

  /**
   * Spends a refresh token and returns a new pair in the same family. A spent token presented
   * again revokes the family (every access and refresh token of it) and is refused with
   * `refresh-reused`.
   */
  async refresh(refreshToken: unknown): Promise<TokenPair> {
    if (typeof refreshToken !== 'string' || !OPAQUE_TOKEN.test(refreshToken)) throw tokenError('malformed');
    const now = this.#clock();
    const key = tokenKey('rt', refreshToken);
    const record = await this.#call(() => this.#store.load(key));
    if (!record || expiresAt(record) <= now) throw tokenError('unknown-token');
    const family = readString(record, 'f');
    if (family === null) {
      publishCorrupt(this.#store.name);
      throw tokenError('unknown-token');
    }
    if (readField(record, 'spent') === true) {
      await this.#revokeFamily(family);
      throw tokenError('refresh-reused');
    }
    const spent = await this.#call(() => this.#store.apply(key, { fields: { spent: { value: 'true', stamp: this.#hlc.now() } }, expectVersion: record.version }));
    if (spent.status === 'conflict') {
      // Another request spent it between our read and write: one of the two is a replay.
      await this.#revokeFamily(family);
      throw tokenError('refresh-reused');
    }
    if (spent.status === 'gone') throw tokenError('unknown-token');
    const { session, sessionKey, claims } = await this.#liveFamily(family, now);
    return this.#pair(family, handleOf(sessionKey), claims, session.absoluteExpiresAt, now);
  }

  /**
   * Verifies an access token and returns its claims and the session it belongs to. Throws
   * ESESS_TOKEN_INVALID with a `reason` for anything else; never throws another kind of error
   * for bad input (store failures are ESESS_STORE_UNAVAILABLE).
   */
  async verify(accessToken: unknown): Promise<VerifiedToken> {
    const claims = await this.#verifySignature(accessToken);
    const now = this.#clock();
    const [denied, live] = await Promise.all([
      this.#call(() => this.#store.load(tokenKey('jti', claims.jti))),
      this.#liveFamily(claims.fam, now).catch((error: unknown) => error),
    ]);
    if (denied && expiresAt(denied) > now) throw tokenError('revoked');
    if (live instanceof Error) throw live;
    const { session, sessionKey } = live as LiveFamily;
    if (handleOf(sessionKey) !== claims.sub) throw tokenError('family-revoked');
    return { claims, session: this.#view(sessionKey, session) };
  }

  /**
   * Revokes one access token by its `jti` until it would have expired anyway. The token must
   * carry a valid signature from a configured key; an expired one needs no revocation.
   */
  async revokeAccessToken(accessToken: unknown): Promise<void> {
    let claims: VerifiedToken['claims'];
    try {
      claims = await this.#verifySignature(accessToken);
    } catch (error) {
      if (error instanceof SessionError && error.code === 'ESESS_TOKEN_INVALID' && error.context.reason === 'expired') return;
      throw error;
    }
    const now = this.#clock();
    const until = ((claims.exp ?? 0) + this.#leeway) * 1000;
    if (until <= now) return;
    await this.#call(() => this.#store.create(tokenKey('jti', claims.jti), tokenRecord(now, until, {}, this.#hlc.now())));
  }

  /** Revokes the family of a refresh token: every access and refresh token issued with it. */
  async revokeRefreshToken(refreshToken: unknown): Promise<void> {
    if (typeof refreshToken !== 'string' || !OPAQUE_TOKEN.test(refreshToken)) throw tokenError('malformed');
    const record = await this.#call(() => this.#store.load(tokenKey('rt', refreshToken)));
    const family = record ? readString(record, 'f') : null;
    if (family !== null) await this.#revokeFamily(family);
  }

  async #revokeFamily(family: string): Promise<void> {
    await this.#call(() => this.#store.destroy(tokenKey('fam', family), TOMBSTONE_GRACE_MS));
  }

  /** Checks signature, algorithm, header and claims; no store call. */
  async #verifySignature(token: unknown): Promise<VerifiedToken['claims']> {
    if (typeof token !== 'string') throw tokenError('malformed');
    if (token.length > MAX_TOKEN_LENGTH) throw tokenError('too-large');
    if (!COMPACT_JWS.test(token)) throw tokenError('malformed');
    // base64url has several spellings of the same bytes (unused low bits): accept only the
    // canonical one, so no two token strings verify as the same token.
    if (!token.split('.').every(isCanonicalBase64url)) throw tokenError('malformed');
    let header: Record<string, unknown>;
    try {
      header = decodeProtectedHeader(token) as Record<string, unknown>;
    } catch {
      throw tokenError('malformed');
    }
    if (EMBEDDED_KEY_HEADERS.some((name) => Object.hasOwn(header, name))) throw tokenError('embedded-key');
    const alg = header.alg;
    if (typeof alg !== 'string' || !this.algorithms.includes(alg as TokenAlgorithm)) throw tokenError('alg-not-allowed');
    const key = typeof header.kid === 'string' ? this.#byKid.get(header.kid) : undefined;
    if (!key) throw tokenError('unknown-key');
    // Each key verifies only with its own algorithm: a public key never doubles as an HMAC secret.
    if (key.alg !== alg) throw tokenError('alg-not-allowed');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key.verifyKey, {
        algorithms: [key.alg],
        issuer: this.#issuer,
        audience: this.#audience,
        typ: ACCESS_TOKEN_TYPE,
        clockTolerance: this.#leeway,
        maxTokenAge: this.#accessTtl,
        currentDate: new Date(this.#clock()),
        requiredClaims: ['exp', 'iat', 'jti', 'sub'],
      }));
    } catch (error) {
      throw tokenError(reasonOf(error));
    }
    const { jti, sub, fam } = payload as Record<string, unknown>;
    if (typeof jti !== 'string' || typeof sub !== 'string' || typeof fam !== 'string' || jti.length > 64 || fam.length > 64) throw tokenError('missing-claim');
    // jose only asks for numbers: `1e309` parses as Infinity and never expires. A NumericDate this
    // issuer writes is a whole number of seconds, so anything else was not written by it.
    for (const claim of ['exp', 'iat', 'nbf'] as const) {
      const value = payload[claim];
      if (value !== undefined && !(Number.isSafeInteger(value) && (value as number) >= 0)) throw tokenError('malformed');
    }
    return payload as VerifiedToken['claims'];
  }

  async #liveFamily(family: string, now: number): Promise<LiveFamily> {
    const record = await this.#call(() => this.#store.load(tokenKey('fam', family)));
    if (!record || expiresAt(record) <= now) throw tokenError('family-revoked');
    const sessionKey = readString(record, 's');
    const claims = readField(record, 'c');
    if (sessionKey === null || typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
      publishCorrupt(this.#store.name);
      throw tokenError('family-revoked');
    }
    const session = await this.#call(() => this.#store.load(sessionKey));
    if (!session || expiresAt(session) <= now) throw tokenError('session-gone');
    return { session, sessionKey, claims: claims as CustomClaims };
  }

  async #pair(family: string, handle: string, claims: CustomClaims, sessionEnd: number, now: number, signed?: { accessToken: string; expiresIn: number }): Promise<TokenPair> {
    const { accessToken, expiresIn } = signed ?? (await this.#sign(family, handle, claims, sessionEnd, now));
    const refreshToken = randomBytes(32).toString('base64url');
    const refreshEnd = Math.min(now + this.#refreshTtl * 1000, sessionEnd);
    const stamp = this.#hlc.now();
    const created = await this.#call(() => this.#store.create(tokenKey('rt', refreshToken), tokenRecord(now, refreshEnd, { f: { value: JSON.stringify(family), stamp } }, stamp)));
    if (!created) throw new SessionError('ESESS_STORE_UNAVAILABLE', { message: 'Store refused a fresh refresh token', context: { store: this.#store.name } });
    return { accessToken, refreshToken, expiresIn, tokenType: 'Bearer' };
  }

  /**
   * Signs an access token. Refuses one longer than verify() accepts (`MAX_TOKEN_LENGTH`): custom
   * claims, a long issuer or many audiences can add up past it, and the caller would be handed a
   * token that can never be used.
   */
  async #sign(family: string, handle: string, claims: CustomClaims, sessionEnd: number, now: number): Promise<{ accessToken: string; expiresIn: number }> {
    const key = this.#keys[0] as TokenKey;
    const iat = Math.floor(now / 1000);
    const expiresIn = Math.max(1, Math.min(this.#accessTtl, Math.floor((sessionEnd - now) / 1000)));
    const accessToken = await new SignJWT({ ...claims, fam: family })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: ACCESS_TOKEN_TYPE })
      .setIssuer(this.#issuer)
      .setAudience(this.#audience.length === 1 ? (this.#audience[0] as string) : this.#audience)
      .setSubject(handle)
      .setJti(randomBytes(16).toString('base64url'))
      .setIssuedAt(iat)
      .setExpirationTime(iat + expiresIn)
      .sign(key.signKey as Parameters<SignJWT['sign']>[0]);
    if (accessToken.length > MAX_TOKEN_LENGTH) {
      throw new SessionError('ESESS_TOO_LARGE', {
        message: `The access token would be ${accessToken.length} characters, over the ${MAX_TOKEN_LENGTH} that verification accepts: use fewer or shorter claims`,
        context: { limit: 'MAX_TOKEN_LENGTH', maxTokenLength: MAX_TOKEN_LENGTH, length: accessToken.length },
      });
    }
    return { accessToken, expiresIn };
  }

  #view(sessionKey: string, record: StoredSession): TokenSession {
    const data: Record<string, unknown> = {};
    try {
      for (const [field, stored] of Object.entries(record.fields)) {
        if (stored.value === null) continue;
        if (isUnsafeKey(field)) throw new SessionError('ESESS_UNSAFE_KEY');
        data[field] = safeJsonParse(stored.value, this.#manager.limits.maxDepth);
      }
    } catch {
      publishCorrupt(this.#store.name);
      throw tokenError('session-gone');
    }
    return {
      handle: handleOf(sessionKey),
      userId: record.userId,
      data,
      createdAt: new Date(record.createdAt),
      lastSeenAt: new Date(record.lastSeenAt),
      expiresAt: new Date(expiresAt(record)),
      absoluteExpiresAt: new Date(record.absoluteExpiresAt),
    };
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      if (error instanceof SessionError) throw error;
      throw new SessionError('ESESS_STORE_UNAVAILABLE', { cause: error, context: { store: this.#store.name } });
    }
  }
}

export function createTokenIssuer(options: TokenIssuerOptions): TokenIssuer {
  return new TokenIssuer(options);
}

function isCanonicalBase64url(segment: string): boolean {
  return Buffer.from(segment, 'base64url').toString('base64url') === segment;
}

