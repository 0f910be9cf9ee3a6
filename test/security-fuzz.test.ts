import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cookieValues, MAX_COOKIE_HEADER, MAX_COOKIE_PAIRS, serializeCookie, DEFAULT_COOKIE } from '../src/core/cookie.js';
import { isSessionError } from '../src/core/errors.js';
import { safeJsonParse } from '../src/core/json.js';
import { SessionManager } from '../src/core/manager.js';
import { memoryStore } from '../src/stores/memory.js';
import { createTokenIssuer } from '../src/tokens/index.js';
import { countingStore } from './helpers/service.js';

const SECRET = 'fuzz-suite-secret-0123456789abcdefghijklmnop';
const COOKIE = '__Host-sid';

/** A small seeded generator (xorshift32): the fuzz run is the same on every machine. */
function prng(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x100000000;
  };
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const NOISE = `${B64}.=;, "\\\t\r\n%+/\u0000\u00e9\u0430\u{1f600}{}[]:`;

function pick(random: () => number, text: string): string {
  return text[Math.floor(random() * text.length)] as string;
}

function randomText(random: () => number, alphabet: string, max: number): string {
  let out = '';
  const length = Math.floor(random() * max);
  for (let i = 0; i < length; i++) out += pick(random, alphabet);
  return out;
}

/** Mutates a string: flip, insert, delete, duplicate or truncate, a few times. */
function mutate(random: () => number, text: string): string {
  let out = text;
  const rounds = 1 + Math.floor(random() * 3);
  for (let r = 0; r < rounds; r++) {
    const at = Math.floor(random() * (out.length + 1));
    switch (Math.floor(random() * 6)) {
      case 0:
        out = out.slice(0, at) + pick(random, NOISE) + out.slice(at + 1);
        break;
      case 1:
        out = out.slice(0, at) + pick(random, B64) + out.slice(at);
        break;
      case 2:
        out = out.slice(0, at) + out.slice(at + 1);
        break;
      case 3:
        out = out.slice(0, at);
        break;
      case 4:
        out = out + out.slice(at);
        break;
      default:
        out = out.slice(0, at) + pick(random, B64) + out.slice(at + 1);
    }
  }
  return out;
}

describe('cookie header parsing (properties)', () => {
  const manager = new SessionManager({ store: memoryStore(), secrets: [SECRET] });

  it('cookieValues never throws, never returns more values than pairs it may look at, and respects the header limit', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 600, unit: 'binary' }), fc.string({ minLength: 1, maxLength: 20 }), (header, name) => {
        const values = cookieValues(header, name);
        expect(values.length).toBeLessThanOrEqual(MAX_COOKIE_PAIRS);
      }),
      { numRuns: 3000 },
    );
    expect(cookieValues(`a=1; ${'x'.repeat(MAX_COOKIE_HEADER)}`, 'a')).toEqual([]);
  });

  it('finds the session cookie among any other cookies (within the limits), in any position', () => {
    const session = manager.create();
    const signed = /^[^=]+=([^;]*)/.exec(manager.cookieFor(session))?.[1] as string;
    const otherName = fc.stringMatching(/^[A-Za-z0-9_]{1,12}$/).filter((name) => name !== COOKIE);
    const other = fc.tuple(otherName, fc.stringMatching(/^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{0,30}$/)).map(([n, v]) => `${n}=${v}`);
    fc.assert(
      fc.property(fc.array(other, { maxLength: 30 }), fc.nat(), (others, position) => {
        const pairs = [...others];
        pairs.splice(position % (pairs.length + 1), 0, `${COOKIE}=${signed}`);
        expect(manager.readCookie(pairs.join('; '))).toBe(session.id);
      }),
      { numRuns: 1000 },
    );
  });

  it('a serialized cookie parses back to its value', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/), (value) => {
        const setCookie = serializeCookie(DEFAULT_COOKIE, value, { expiresAt: Date.now() + 1000, now: Date.now() });
        expect(cookieValues((setCookie.split(';')[0] as string), DEFAULT_COOKIE.name)).toEqual([value]);
      }),
      { numRuns: 500 },
    );
  });
});

describe('JSON guard (properties)', () => {
  const json = fc.jsonValue({ maxDepth: 6 });

  it('parses any JSON without unsafe keys exactly as JSON.parse does', () => {
    fc.assert(
      fc.property(json, (value) => {
        const text = JSON.stringify(value);
        fc.pre(!/__proto__|"constructor"|"prototype"/.test(text));
        expect(safeJsonParse(text, 16)).toEqual(JSON.parse(text));
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses an unsafe key planted anywhere, in plain or \\u-escaped spelling, and never pollutes', () => {
    const unsafe = fc.constantFrom('"__proto__"', '"constructor"', '"prototype"', '"\\u005f_proto__"', '"\\u0063onstructor"', '"protot\\u0079pe"');
    fc.assert(
      fc.property(json, unsafe, fc.nat(), (value, key, seed) => {
        const root = { wrap: structuredClone(value) } as Record<string, unknown>;
        const objects: Record<string, unknown>[] = [];
        const walk = (node: unknown): void => {
          if (Array.isArray(node)) node.forEach(walk);
          else if (typeof node === 'object' && node !== null) {
            objects.push(node as Record<string, unknown>);
            Object.values(node).forEach(walk);
          }
        };
        walk(root);
        const target = objects[seed % objects.length] as Record<string, unknown>;
        Object.defineProperty(target, '@@planted@@', { value: { polluted: true }, enumerable: true });
        const text = JSON.stringify(root);
        fc.pre(text.split('"@@planted@@"').length === 2);
        const planted = text.replace('"@@planted@@"', key);
        try {
          safeJsonParse(planted, 64);
          throw new Error(`accepted ${planted}`);
        } catch (error) {
          expect(isSessionError(error, 'ESESS_UNSAFE_KEY'), String(error)).toBe(true);
        }
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      { numRuns: 1000 },
    );
  });

  it('throws only typed errors on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300, unit: 'binary' }), (text) => {
        try {
          safeJsonParse(text, 8);
        } catch (error) {
          expect(isSessionError(error)).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('bounded fuzz runs', () => {
  it('100,000 random and mutated cookie headers: readCookie never throws and accepts only the genuine cookie', () => {
    const store = countingStore(memoryStore());
    const manager = new SessionManager({ store, secrets: [SECRET, `old-${SECRET}`] });
    const valid = Array.from({ length: 4 }, () => manager.cookieFor(manager.create()).split(';')[0] as string);
    const ids = new Set(valid.map((cookie) => cookie.slice(COOKIE.length + 1).split('.')[0]));
    const random = prng(0x5eed1);
    let accepted = 0;
    const started = performance.now();
    for (let i = 0; i < 100_000; i++) {
      const base = valid[i % valid.length] as string;
      let header: string;
      switch (i % 4) {
        case 0:
          header = randomText(random, NOISE, 120);
          break;
        case 1:
          header = mutate(random, base);
          break;
        case 2:
          header = `${randomText(random, B64 + '=; ', 60)}; ${mutate(random, base)}; ${randomText(random, B64 + '=; ', 30)}`;
          break;
        default:
          header = `${COOKIE}=${randomText(random, B64, 44)}.${randomText(random, B64 + '.', 90)}`;
      }
      const id = manager.readCookie(header);
      if (id !== null) {
        expect(ids.has(id), header).toBe(true);
        accepted++;
      }
    }
    expect(store.calls).toEqual([]);
    expect(accepted).toBeGreaterThan(0);
    expect(performance.now() - started).toBeLessThan(15_000);
  });

  it('100,000 random and mutated tokens: verification rejects them all with ESESS_TOKEN_INVALID, with no store call', async () => {
    let now = Date.UTC(2030, 0, 1);
    const clock = () => now;
    const store = countingStore(memoryStore({ clock }));
    const manager = new SessionManager({ store, secrets: [SECRET], clock });
    const issuer = createTokenIssuer({
      manager,
      keys: [{ kid: 'ed', alg: 'EdDSA', key: generateKeyPairSync('ed25519').privateKey }, { kid: 'hs', alg: 'HS256', key: randomBytes(32) }],
      issuer: 'fuzz',
      audience: 'fuzz',
      clock,
    });
    const session = manager.create({ data: { a: 1 } });
    await manager.save(session);
    const token = (await issuer.issue(session.id)).accessToken;
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const random = prng(0xf00d);
    const headers = ['{"alg":"none"}', '{"alg":"NoNe","kid":"ed"}', '{"alg":"HS256","kid":"ed","typ":"at+jwt"}', '{"alg":"EdDSA","kid":"hs"}', '{"alg":"RS256","kid":"ed"}', '{"alg":"EdDSA","kid":"ed","jwk":{}}', '{"alg":"EdDSA","kid":"ed","crit":["b64"],"b64":false}', '{"alg":"EdDSA"}', '[]', 'null', '{"alg":"EdDSA","kid":"ed","typ":"at+jwt"'];
    const b64 = (text: string) => Buffer.from(text).toString('base64url');
    store.calls.length = 0;
    const reasons = new Map<string, number>();
    const started = performance.now();
    const batch: Promise<void>[] = [];
    for (let i = 0; i < 100_000; i++) {
      let candidate: string;
      switch (i % 5) {
        case 0:
          candidate = randomText(random, NOISE, 200);
          break;
        case 1:
          candidate = `${randomText(random, B64, 40)}.${randomText(random, B64, 80)}.${randomText(random, B64, 86)}`;
          break;
        case 2:
          candidate = `${b64(headers[i % headers.length] as string)}.${payload}.${signature}`;
          break;
        case 3:
          candidate = `${header}.${payload}.${mutate(random, signature)}`;
          break;
        default:
          candidate = i % 50 === 4 ? mutate(random, token) : `${mutate(random, header)}.${payload}.${signature}`;
      }
      if (candidate === token) continue;
      batch.push(
        issuer.verify(candidate).then(
          () => {
            throw new Error(`accepted a mutated token: ${candidate}`);
          },
          (error: unknown) => {
            if (!isSessionError(error, 'ESESS_TOKEN_INVALID')) throw new Error(`untyped failure for ${JSON.stringify(candidate)}: ${String(error)}`);
            const reason = String(error.context.reason);
            reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
          },
        ),
      );
      if (batch.length === 500) await Promise.all(batch.splice(0));
    }
    await Promise.all(batch);
    expect(store.calls).toEqual([]);
    expect(reasons.get('bad-signature') ?? 0).toBeGreaterThan(1000);
    expect(reasons.get('malformed') ?? 0).toBeGreaterThan(1000);
    expect(performance.now() - started).toBeLessThan(30_000);
    now += 1;
  }, 60_000);
});
