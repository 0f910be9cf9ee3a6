import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { CompactSign, exportJWK, SignJWT } from 'jose';
import { beforeEach, describe, expect, it } from 'vitest';
import { isSessionError } from '../src/core/errors.js';
import { SessionManager } from '../src/core/manager.js';
import type { SessionStore } from '../src/core/types.js';
import { encryptedStore, generateEncryptionKey } from '../src/stores/encrypted.js';
import { memoryStore } from '../src/stores/memory.js';
import { createTokenIssuer, tokenKeyFromPem, tokenKeyFromSecret } from '../src/tokens/index.js';
import type { TokenIssuer, TokenKeyInput, TokenRejectReason } from '../src/tokens/index.js';
import { countingStore } from './helpers/service.js';

const SECRET = 'tokens-test-secret-0123456789abcdefghijkl';
const HASH_KEY = randomBytes(32);
const ISSUER = 'https://sessions.example';
const AUDIENCE = 'api.example';

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Expects a token rejection with this reason. */
async function rejected(promise: Promise<unknown>, reason: TokenRejectReason): Promise<void> {
  try {
    await promise;
  } catch (error) {
    expect(isSessionError(error, 'ESESS_TOKEN_INVALID'), String(error)).toBe(true);
    expect((error as { context: { reason: string } }).context.reason).toBe(reason);
    return;
  }
  throw new Error(`expected a rejection with reason ${reason}`);
}

describe('token mode', () => {
  let now: number;
  const clock = () => now;
  let store: SessionStore & { calls: string[] };
  let manager: SessionManager;
  let edKey: KeyObject;
  let issuer: TokenIssuer;
  let keys: TokenKeyInput[];

  const makeIssuer = (overrides: Partial<Parameters<typeof createTokenIssuer>[0]> = {}) =>
    createTokenIssuer({ manager, hashKey: HASH_KEY, keys, issuer: ISSUER, audience: AUDIENCE, accessTtl: 300, refreshTtl: 3600, leeway: 10, clock, ...overrides });

  beforeEach(() => {
    now = Date.UTC(2030, 0, 1);
    store = countingStore(memoryStore({ clock }));
    manager = new SessionManager({ store, secrets: [SECRET], hashKey: HASH_KEY, clock });
    edKey = generateKeyPairSync('ed25519').privateKey;
    keys = [{ kid: 'ed1', alg: 'EdDSA', key: edKey }];
    issuer = makeIssuer();
  });

  async function liveSession(data: Record<string, unknown> = { cart: ['a'] }, userId: string | null = 'alice') {
    const session = manager.create({ data, userId });
    await manager.save(session);
    return session;
  }

  /** Signs an access token as an attacker who holds `key` would, with any header and claims. */
  function forge(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject | Uint8Array): Promise<string> {
    const payload = new TextEncoder().encode(JSON.stringify(claims));
    return new CompactSign(payload).setProtectedHeader(header as { alg: string }).sign(key);
  }

  function claimsOf(token: string): Record<string, unknown> {
    return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>;
  }

  it('issues a signed access token (typ at+jwt) naming the session by handle, never by ID, and verifies it', async () => {
    const session = await liveSession();
    const pair = await issuer.issue(session.id);
    expect(pair).toMatchObject({ tokenType: 'Bearer', expiresIn: 300 });
    expect(pair.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(pair.accessToken).not.toContain(session.id);
    const header = JSON.parse(Buffer.from(pair.accessToken.split('.')[0] as string, 'base64url').toString()) as Record<string, unknown>;
    expect(header).toEqual({ alg: 'EdDSA', kid: 'ed1', typ: 'at+jwt' });
    const claims = claimsOf(pair.accessToken);
    expect(JSON.stringify(claims)).not.toContain(session.id);
    expect(claims).toMatchObject({ iss: ISSUER, aud: AUDIENCE, exp: (claims.iat as number) + 300 });
    const verified = await issuer.verify(pair.accessToken);
    expect(verified.session).toMatchObject({ userId: 'alice', data: { cart: ['a'] } });
    expect(verified.claims.sub).toBe(verified.session.handle);
  });

  it('refuses to issue for an unknown or destroyed session (ESESS_NOT_FOUND)', async () => {
    await expect(issuer.issue(randomBytes(32).toString('base64url'))).rejects.toMatchObject({ code: 'ESESS_NOT_FOUND' });
    const session = await liveSession();
    await manager.destroy(session);
    await expect(issuer.issue(session.id)).rejects.toMatchObject({ code: 'ESESS_NOT_FOUND' });
  });

  it("reports a hashKey that is not the manager's as ESESS_CONFIG", async () => {
    const session = await liveSession();
    await expect(makeIssuer({ hashKey: randomBytes(32) }).issue(session.id)).rejects.toMatchObject({ code: 'ESESS_CONFIG' });
  });

  describe('forged and altered access tokens', () => {
    let token: string;
    let claims: Record<string, unknown>;

    beforeEach(async () => {
      token = (await issuer.issue((await liveSession()).id)).accessToken;
      claims = claimsOf(token);
    });

    for (const alg of ['none', 'None', 'NoNe', 'NONE', 'nOnE']) {
      it(`rejects alg "${alg}" with and without a signature`, async () => {
        const unsigned = `${b64({ alg, kid: 'ed1', typ: 'at+jwt' })}.${b64(claims)}.`;
        await rejected(issuer.verify(unsigned), 'malformed');
        await rejected(issuer.verify(`${unsigned}${token.split('.')[2]}`), 'alg-not-allowed');
      });
    }

    it('rejects HS256 signed with the public key (RS/HS key confusion)', async () => {
      const publicPem = Buffer.from(createPublicKey(edKey).export({ format: 'pem', type: 'spki' }));
      const forged = await forge({ alg: 'HS256', kid: 'ed1', typ: 'at+jwt' }, claims, publicPem);
      await rejected(issuer.verify(forged), 'alg-not-allowed');
    });

    it('rejects HS256 against an EdDSA key even when HS256 is configured for another key', async () => {
      const hmac = randomBytes(32);
      keys = [{ kid: 'ed1', alg: 'EdDSA', key: edKey }, { kid: 'hs1', alg: 'HS256', key: hmac }];
      const both = makeIssuer();
      const publicDer = createPublicKey(edKey).export({ format: 'der', type: 'spki' });
      await rejected(both.verify(await forge({ alg: 'HS256', kid: 'ed1', typ: 'at+jwt' }, claims, publicDer)), 'alg-not-allowed');
      await rejected(both.verify(await forge({ alg: 'EdDSA', kid: 'hs1', typ: 'at+jwt' }, claims, generateKeyPairSync('ed25519').privateKey)), 'alg-not-allowed');
    });

    it('rejects a token signed by a key the attacker embedded in the header (jwk) or points to (jku, x5u, x5c)', async () => {
      const attacker = generateKeyPairSync('ed25519');
      const jwk = await exportJWK(attacker.publicKey);
      await rejected(issuer.verify(await forge({ alg: 'EdDSA', kid: 'ed1', typ: 'at+jwt', jwk }, claims, attacker.privateKey)), 'embedded-key');
      await rejected(issuer.verify(await forge({ alg: 'EdDSA', typ: 'at+jwt', jwk }, claims, attacker.privateKey)), 'embedded-key');
      await rejected(issuer.verify(await forge({ alg: 'EdDSA', kid: 'ed1', typ: 'at+jwt', jku: 'https://attacker.example/jwks' }, claims, attacker.privateKey)), 'embedded-key');
      await rejected(issuer.verify(await forge({ alg: 'EdDSA', kid: 'ed1', typ: 'at+jwt', x5u: 'https://attacker.example/cert' }, claims, attacker.privateKey)), 'embedded-key');
      await rejected(issuer.verify(await forge({ alg: 'EdDSA', kid: 'ed1', typ: 'at+jwt', x5c: ['MIIB'] }, claims, attacker.privateKey)), 'embedded-key');
    });

    it('rejects a token signed by another key under a known kid, or naming an unknown kid', async () => {
      const attacker = generateKeyPairSync('ed25519').privateKey;
      await rejected(issuer.verify(await forge({ alg: 'EdDSA', kid: 'ed1', typ: 'at+jwt' }, claims, attacker)), 'bad-signature');
      await rejected(issuer.verify(await forge({ alg: 'EdDSA', kid: 'ed9', typ: 'at+jwt' }, claims, attacker)), 'unknown-key');
      await rejected(issuer.verify(await forge({ alg: 'EdDSA', typ: 'at+jwt' }, claims, attacker)), 'unknown-key');
    });

    it('rejects a tampered payload, header or signature', async () => {
      const [h, p, s] = token.split('.') as [string, string, string];
      await rejected(issuer.verify(`${h}.${b64({ ...claims, sub: 'someone-else' })}.${s}`), 'bad-signature');
      await rejected(issuer.verify(`${b64({ alg: 'EdDSA', kid: 'ed1', typ: 'at+jwt', extra: 1 })}.${p}.${s}`), 'bad-signature');
      const flipped = Buffer.from(s, 'base64url');
      flipped[5] = (flipped[5] as number) ^ 1;
      await rejected(issuer.verify(`${h}.${p}.${flipped.toString('base64url')}`), 'bad-signature');
    });

    it('rejects truncated, extended, re-encoded and oversized tokens', async () => {
      await rejected(issuer.verify(token.slice(0, -10)), 'bad-signature');
      await rejected(issuer.verify(token.split('.').slice(0, 2).join('.')), 'malformed');
      await rejected(issuer.verify(`${token}.extra`), 'malformed');
      await rejected(issuer.verify(`${token}AA`), 'bad-signature');
      await rejected(issuer.verify(`${token}=`), 'malformed');
      // Regression (found by the fuzz run): base64url has spare low bits in its last character,
      // so a re-spelled signature decoded to the same bytes and verified.
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const respelled = token.slice(0, -1) + (alphabet[alphabet.indexOf(token.at(-1) as string) ^ 1] as string);
      await rejected(issuer.verify(respelled), 'malformed');
      if (/[-_]/.test(token)) await rejected(issuer.verify(token.replace(/-/g, '+').replace(/_/g, '/')), 'malformed');
      await rejected(issuer.verify(`${token.split('.')[0]}.${'A'.repeat(5000)}.x`), 'too-large');
      await rejected(issuer.verify(''), 'malformed');
      await rejected(issuer.verify(42), 'malformed');
      await rejected(issuer.verify(null), 'malformed');
    });

    it('rejects a wrong audience, issuer or type', async () => {
      const sign = (over: Record<string, unknown>, header: Record<string, unknown> = {}) => forge({ alg: 'EdDSA', kid: 'ed1', typ: 'at+jwt', ...header }, { ...claims, ...over }, edKey);
      await rejected(issuer.verify(await sign({ aud: 'other-api' })), 'wrong-audience');
      await rejected(issuer.verify(await sign({ iss: 'https://evil.example' })), 'wrong-issuer');
      await rejected(issuer.verify(await sign({}, { typ: 'JWT' })), 'wrong-type');
      await rejected(issuer.verify(await sign({ aud: undefined })), 'missing-claim');
      await rejected(issuer.verify(await sign({ jti: undefined })), 'missing-claim');
      await rejected(issuer.verify(await sign({ fam: undefined })), 'missing-claim');
    });

    it('accepts an expired token within the leeway and rejects it after', async () => {
      now += 300_000 + 5_000;
      expect((await issuer.verify(token)).session).toBeTruthy();
      now += 6_000;
      await rejected(issuer.verify(token), 'expired');
    });

    it('rejects tokens not yet valid (nbf or iat in the future beyond the leeway)', async () => {
      const iat = claims.iat as number;
      const sign = (over: Record<string, unknown>) => forge({ alg: 'EdDSA', kid: 'ed1', typ: 'at+jwt' }, { ...claims, ...over }, edKey);
      await rejected(issuer.verify(await sign({ nbf: iat + 60 })), 'not-yet-valid');
      await rejected(issuer.verify(await sign({ iat: iat + 60, exp: iat + 300 })), 'not-yet-valid');
      expect(await issuer.verify(await sign({ nbf: iat + 5 }))).toBeTruthy();
    });

    it('rejects a token whose lifetime is longer than configured once it is older than that', async () => {
      const iat = claims.iat as number;
      const long = await forge({ alg: 'EdDSA', kid: 'ed1', typ: 'at+jwt' }, { ...claims, exp: iat + 86_400 }, edKey);
      now += 400_000;
      await rejected(issuer.verify(long), 'expired');
    });

    it('rejects exp 1e309 (Infinity) and any non-integer or non-finite exp, iat or nbf, even validly signed (regression, #13 item 9)', async () => {
      const header = { alg: 'EdDSA', kid: 'ed1', typ: 'at+jwt' };
      // JSON.stringify cannot write 1e309: the payload text is spliced by hand, as an attacker would.
      const raw = (claim: string, text: string) => {
        const payload = JSON.stringify({ ...claims, [claim]: 0 }).replace(`"${claim}":0`, `"${claim}":${text}`);
        return new CompactSign(new TextEncoder().encode(payload)).setProtectedHeader(header).sign(edKey);
      };
      expect(JSON.parse(Buffer.from((await raw('exp', '1e309')).split('.')[1] as string, 'base64url').toString()).exp).toBe(Infinity);
      await rejected(issuer.verify(await raw('exp', '1e309')), 'malformed');
      const iat = claims.iat as number;
      await rejected(issuer.verify(await raw('exp', `${iat + 60}.5`)), 'malformed');
      await rejected(issuer.verify(await raw('iat', `${iat}.25`)), 'malformed');
      await rejected(issuer.verify(await raw('nbf', `${iat - 1}.5`)), 'malformed');
      await rejected(issuer.verify(await raw('nbf', '-1e309')), 'malformed');
      expect(await issuer.verify(await raw('nbf', String(iat)))).toBeTruthy();
    });

    it('costs no store call for a forged, expired or malformed token', async () => {
      const before = store.calls.length;
      const attacker = generateKeyPairSync('ed25519').privateKey;
      await rejected(issuer.verify(await forge({ alg: 'EdDSA', kid: 'ed1', typ: 'at+jwt' }, claims, attacker)), 'bad-signature');
      await rejected(issuer.verify('a.b.c'), 'malformed');
      now += 3_600_000;
      await rejected(issuer.verify(token), 'expired');
      expect(store.calls.length).toBe(before);
    });
  });

  describe('revocation', () => {
    it('revokes one access token by jti until it would have expired; others of the family stay valid', async () => {
      const session = await liveSession();
      const first = await issuer.issue(session.id);
      const second = await issuer.refresh(first.refreshToken);
      await issuer.revokeAccessToken(first.accessToken);
      await rejected(issuer.verify(first.accessToken), 'revoked');
      expect(await issuer.verify(second.accessToken)).toBeTruthy();
    });

    it('the jti denylist entry expires with the token', async () => {
      const session = await liveSession(undefined, null);
      const pair = await issuer.issue(session.id);
      await issuer.revokeAccessToken(pair.accessToken);
      now += 300_000 + 10_001;
      await rejected(issuer.verify(pair.accessToken), 'expired');
      expect(await (store as SessionStore).sweep(1000)).toBeGreaterThanOrEqual(1);
    });

    it('destroying the session makes its access and refresh tokens fail', async () => {
      const session = await liveSession();
      const pair = await issuer.issue(session.id);
      await manager.destroy(session.id);
      await rejected(issuer.verify(pair.accessToken), 'session-gone');
      await rejected(issuer.refresh(pair.refreshToken), 'session-gone');
    });

    it('logging a user out everywhere makes the tokens of all their sessions fail', async () => {
      const pairs = [];
      for (let i = 0; i < 3; i++) pairs.push(await issuer.issue((await liveSession({ i }, 'bob')).id));
      const other = await issuer.issue((await liveSession({}, 'carol')).id);
      expect(await manager.revokeUser('bob')).toBe(3);
      for (const pair of pairs) await rejected(issuer.verify(pair.accessToken), 'session-gone');
      expect(await issuer.verify(other.accessToken)).toBeTruthy();
    });

    it('regenerating the session (privilege change) makes tokens issued before it fail', async () => {
      const session = await liveSession();
      const pair = await issuer.issue(session.id);
      await manager.regenerate(session);
      await rejected(issuer.verify(pair.accessToken), 'session-gone');
      expect(await issuer.verify((await issuer.issue(session.id)).accessToken)).toBeTruthy();
    });

    it('the session expiring (idle) makes its tokens fail', async () => {
      const session = manager.create({ data: { a: 1 }, idleTimeout: 60 });
      await manager.save(session);
      const pair = await issuer.issue(session.id);
      expect(pair.expiresIn).toBe(300);
      now += 61_000;
      await rejected(issuer.verify(pair.accessToken), 'session-gone');
    });
  });

  describe('refresh tokens', () => {
    it('are single use and rotate: a new pair each time, in the same family', async () => {
      const session = await liveSession();
      const first = await issuer.issue(session.id);
      const second = await issuer.refresh(first.refreshToken);
      expect(second.refreshToken).not.toBe(first.refreshToken);
      expect(claimsOf(second.accessToken).fam).toBe(claimsOf(first.accessToken).fam);
      const third = await issuer.refresh(second.refreshToken);
      expect(await issuer.verify(third.accessToken)).toBeTruthy();
    });

    it('reuse of a spent refresh token is refused and revokes the whole family', async () => {
      const session = await liveSession();
      const first = await issuer.issue(session.id);
      const second = await issuer.refresh(first.refreshToken);
      const unrelated = await issuer.issue(session.id);
      await rejected(issuer.refresh(first.refreshToken), 'refresh-reused');
      await rejected(issuer.verify(first.accessToken), 'family-revoked');
      await rejected(issuer.verify(second.accessToken), 'family-revoked');
      await rejected(issuer.refresh(second.refreshToken), 'family-revoked');
      expect(await issuer.verify(unrelated.accessToken)).toBeTruthy();
      expect(await manager.load(session.id)).not.toBeNull();
    });

    it('two concurrent uses of one refresh token: at most one succeeds, and the family is revoked', async () => {
      const session = await liveSession();
      const pair = await issuer.issue(session.id);
      const results = await Promise.allSettled(Array.from({ length: 5 }, () => issuer.refresh(pair.refreshToken)));
      const won = results.filter((result) => result.status === 'fulfilled');
      expect(won.length).toBeLessThanOrEqual(1);
      for (const result of results) if (result.status === 'rejected') expect(isSessionError(result.reason, 'ESESS_TOKEN_INVALID')).toBe(true);
      await rejected(issuer.verify(pair.accessToken), 'family-revoked');
    });

    it('revoking a refresh token revokes its family', async () => {
      const pair = await issuer.issue((await liveSession()).id);
      await issuer.revokeRefreshToken(pair.refreshToken);
      await rejected(issuer.verify(pair.accessToken), 'family-revoked');
      await rejected(issuer.refresh(pair.refreshToken), 'family-revoked');
    });

    it('unknown, malformed and expired refresh tokens are refused', async () => {
      await rejected(issuer.refresh(randomBytes(32).toString('base64url')), 'unknown-token');
      await rejected(issuer.refresh('short'), 'malformed');
      await rejected(issuer.refresh({}), 'malformed');
      const pair = await issuer.issue((await liveSession()).id);
      now += 3_600_001;
      await rejected(issuer.refresh(pair.refreshToken), 'unknown-token');
    });

    it('the store holds only digests of refresh tokens, and no session ID', async () => {
      const inner = memoryStore({ clock });
      const seen: string[] = [];
      const recording: SessionStore = new Proxy(inner, {
        get(target, property, receiver) {
          const value: unknown = Reflect.get(target, property, receiver);
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            seen.push(JSON.stringify(args));
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
      manager = new SessionManager({ store: recording, secrets: [SECRET], hashKey: HASH_KEY, clock });
      const session = await liveSession();
      const local = makeIssuer();
      const pair = await local.issue(session.id);
      await local.refresh(pair.refreshToken);
      const all = seen.join('\n');
      expect(all).not.toContain(pair.refreshToken);
      expect(all).not.toContain(session.id);
      expect(all).not.toContain(pair.accessToken);
    });
  });

  describe('over encryptedStore', () => {
    it('issues, verifies, refreshes and revokes: token records stamp their empty principal as sessions do', async () => {
      const sealed = encryptedStore(memoryStore({ clock }), { keys: [generateEncryptionKey('t1')] });
      manager = new SessionManager({ store: sealed, secrets: [SECRET], hashKey: HASH_KEY, clock });
      issuer = makeIssuer();
      const pair = await issuer.issue((await liveSession()).id);
      expect((await issuer.verify(pair.accessToken)).session.userId).toBe('alice');
      const next = await issuer.refresh(pair.refreshToken);
      await rejected(issuer.refresh(pair.refreshToken), 'refresh-reused');
      await rejected(issuer.verify(next.accessToken), 'family-revoked');
      const other = await issuer.issue((await liveSession()).id);
      await issuer.revokeAccessToken(other.accessToken);
      await rejected(issuer.verify(other.accessToken), 'revoked');
    });
  });

  describe('token size', () => {
    const bigClaims = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`claim${i}`, 'x'.repeat(256)]));

    it('never signs a token its own verify would refuse as too large: issue throws ESESS_TOO_LARGE and stores nothing (regression, #13 item 9)', async () => {
      const session = await liveSession();
      const before = store.calls.filter((call) => call === 'create').length;
      await expect(issuer.issue(session.id, { claims: bigClaims })).rejects.toMatchObject({ code: 'ESESS_TOO_LARGE', status: 413, message: expect.stringMatching(/over the 4096/) });
      expect(store.calls.filter((call) => call === 'create').length).toBe(before);
      // A long issuer and many audiences count too.
      const wide = makeIssuer({ issuer: 'i'.repeat(256), audience: Array.from({ length: 12 }, (_, i) => `${i}${'a'.repeat(250)}`) });
      await expect(wide.issue(session.id)).rejects.toMatchObject({ code: 'ESESS_TOO_LARGE' });
    });

    it('every token it does sign, up to the limit, verifies and refreshes', async () => {
      const session = await liveSession();
      const claims = Object.fromEntries(Object.entries(bigClaims).slice(0, 10));
      const pair = await issuer.issue(session.id, { claims });
      expect(pair.accessToken.length).toBeGreaterThan(2600);
      expect((await issuer.verify(pair.accessToken)).claims).toMatchObject(claims);
      const next = await issuer.refresh(pair.refreshToken);
      expect((await issuer.verify(next.accessToken)).claims).toMatchObject(claims);
    });
  });

  describe('configuration', () => {
    it('refuses HS256 keys shorter than 256 bits, and public keys for HMAC', () => {
      expect(() => makeIssuer({ keys: [{ kid: 'h', alg: 'HS256', key: randomBytes(31) }] })).toThrow(/at least 32 bytes/);
      expect(() => makeIssuer({ keys: [{ kid: 'h', alg: 'HS256', key: generateKeyPairSync('ed25519').publicKey }] })).toThrow(/HS256/);
      expect(makeIssuer({ keys: [{ kid: 'h', alg: 'HS256', key: randomBytes(32) }] }).algorithms).toEqual(['HS256']);
    });

    it('refuses algorithms outside EdDSA, ES256, HS256, keys of the wrong type, and a verify-only first key', () => {
      expect(() => makeIssuer({ keys: [{ kid: 'n', alg: 'none' as 'EdDSA', key: edKey }] })).toThrow(/alg/);
      expect(() => makeIssuer({ keys: [{ kid: 'r', alg: 'RS256' as 'EdDSA', key: edKey }] })).toThrow(/alg/);
      expect(() => makeIssuer({ keys: [{ kid: 'e', alg: 'ES256', key: edKey }] })).toThrow(/P-256/);
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      expect(makeIssuer({ keys: [{ kid: 'e', alg: 'ES256', key: ec.privateKey }] }).algorithms).toEqual(['ES256']);
      expect(() => makeIssuer({ keys: [{ kid: 'e', alg: 'ES256', key: ec.publicKey }] })).toThrow(/first key/);
      expect(() => makeIssuer({ leeway: 3600 })).toThrow(/leeway/);
      expect(() => makeIssuer({ accessTtl: 86_400 })).toThrow(/accessTtl/);
      expect(() => makeIssuer({ audience: [] })).toThrow(/audience/);
    });

    it('ES256 tokens round-trip; a retired key still verifies until it is removed', async () => {
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      keys = [{ kid: 'es-old', alg: 'ES256', key: ec.privateKey }];
      const old = makeIssuer();
      const session = await liveSession();
      const token = (await old.issue(session.id)).accessToken;
      keys = [{ kid: 'ed-new', alg: 'EdDSA', key: edKey }, { kid: 'es-old', alg: 'ES256', key: ec.publicKey }];
      expect(await makeIssuer().verify(token)).toBeTruthy();
      keys = [{ kid: 'ed-new', alg: 'EdDSA', key: edKey }];
      await rejected(makeIssuer().verify(token), 'alg-not-allowed');
    });

    it('jwks() lists public keys only: never a private part, never an HS256 secret', async () => {
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      keys = [{ kid: 'es', alg: 'ES256', key: ec.privateKey }, { kid: 'ed', alg: 'EdDSA', key: edKey }, { kid: 'hs', alg: 'HS256', key: randomBytes(32) }];
      const { keys: listed } = await makeIssuer().jwks();
      expect(listed.map((key) => key.kid)).toEqual(['es', 'ed']);
      expect(listed[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
      for (const key of listed) expect(key).not.toHaveProperty('d');
    });

    it('tokenKeyFromSecret derives the same Ed25519 key from the same secret, another from another', () => {
      const a = tokenKeyFromSecret(SECRET);
      expect(tokenKeyFromSecret(SECRET).kid).toBe(a.kid);
      expect(tokenKeyFromSecret(`${SECRET}x`).kid).not.toBe(a.kid);
      expect(a.alg).toBe('EdDSA');
    });

    it('signs with SignJWT-compatible output that a standard verifier accepts', async () => {
      const pair = await issuer.issue((await liveSession()).id);
      const { jwtVerify, createLocalJWKSet } = await import('jose');
      const jwk = { ...(await exportJWK(createPublicKey(edKey))), kid: 'ed1', alg: 'EdDSA' };
      const { payload } = await jwtVerify(pair.accessToken, createLocalJWKSet({ keys: [jwk] }), { issuer: ISSUER, audience: AUDIENCE, currentDate: new Date(now) });
      expect(payload.iss).toBe(ISSUER);
      expect(SignJWT).toBeTypeOf('function');
    });
  });
});

describe('token keys from PEM', () => {
  const pemOf = (key: KeyObject, type: 'pkcs8' | 'sec1' = 'pkcs8') => key.export({ format: 'pem', type }) as string;

  it('takes the algorithm from the key type: Ed25519 → EdDSA, P-256 → ES256 (PKCS#8 or SEC1)', () => {
    const ed = generateKeyPairSync('ed25519');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(tokenKeyFromPem(pemOf(ed.privateKey))).toMatchObject({ alg: 'EdDSA', kid: expect.stringMatching(/^[\w-]{16}$/) });
    expect(tokenKeyFromPem(Buffer.from(pemOf(ec.privateKey)))).toMatchObject({ alg: 'ES256' });
    expect(tokenKeyFromPem(pemOf(ec.privateKey, 'sec1')).alg).toBe('ES256');
    // The kid is a digest of the public key: stable across instances given the same file.
    expect(tokenKeyFromPem(pemOf(ed.privateKey)).kid).toBe(tokenKeyFromPem(pemOf(ed.privateKey)).kid);
    expect(tokenKeyFromPem(pemOf(ed.privateKey)).kid).not.toBe(tokenKeyFromPem(pemOf(ec.privateKey)).kid);
  });

  it('refuses other key types, public keys, encrypted keys and non-PEM, naming the option and never quoting the key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const ed = generateKeyPairSync('ed25519');
    const encrypted = ed.privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pass-phrase' }) as string;
    const bad = [pemOf(rsa.privateKey), pemOf(p384.privateKey), ed.publicKey.export({ format: 'pem', type: 'spki' }) as string, encrypted, 'not a key', ''];
    for (const pem of bad) {
      let message = '';
      try {
        tokenKeyFromPem(pem, '--token-key');
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/"--token-key"/);
      if (pem.length > 80) expect(message).not.toContain(pem.slice(40, 80));
    }
  });

  it('signs tokens that verify, with the key type\'s algorithm in the header', async () => {
    const manager = new SessionManager({ store: memoryStore(), secrets: [SECRET], hashKey: HASH_KEY });
    const key = tokenKeyFromPem(pemOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey));
    const issuer = createTokenIssuer({ manager, hashKey: HASH_KEY, keys: [key], issuer: ISSUER, audience: AUDIENCE });
    const session = manager.create({ data: { a: 1 } });
    await manager.save(session);
    const pair = await issuer.issue(session.id);
    const header = JSON.parse(Buffer.from(pair.accessToken.split('.')[0] as string, 'base64url').toString()) as { alg: string; kid: string };
    expect(header).toMatchObject({ alg: 'ES256', kid: key.kid });
    expect((await issuer.verify(pair.accessToken)).session.handle).toBeTypeOf('string');
  });
});

describe('weak HS256 secrets (security round 2, item 8)', () => {
  const manager = new SessionManager({ store: memoryStore(), secrets: [randomBytes(32).toString('base64url')] });
  const issuerWith = (key: Uint8Array, production: boolean) =>
    createTokenIssuer({ manager, keys: [{ kid: 'hs', alg: 'HS256', key }], issuer: 'https://id.example', audience: 'api', production });

  it('refuses 32 zero bytes, a password and a digest of one in production, naming the key but never quoting it', () => {
    const password = Buffer.from('correct horse battery staple, my password!', 'utf8');
    for (const weak of [new Uint8Array(32), password]) {
      let error: unknown;
      try {
        issuerWith(weak, true);
      } catch (caught) {
        error = caught;
      }
      expect(isSessionError(error, 'ESESS_CONFIG')).toBe(true);
      expect((error as Error).message).toMatch(/key #1 \(kid "hs"\) is an example or low-entropy HS256 secret/);
      expect((error as Error).message).not.toContain('horse');
    }
  });

  it('accepts a random HS256 secret in production, and a weak one outside it (tests)', () => {
    expect(() => issuerWith(randomBytes(32), true)).not.toThrow();
    expect(() => issuerWith(new Uint8Array(32), false)).not.toThrow();
  });
});
