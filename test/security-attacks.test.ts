import { createHmac, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_COOKIE_HEADER } from '../src/core/cookie.js';
import { isSessionError } from '../src/core/errors.js';
import { storeKeyOf } from '../src/core/ids.js';
import { jsonDepth, safeJsonParse } from '../src/core/json.js';
import { SessionManager } from '../src/core/manager.js';
import { memoryStore } from '../src/stores/memory.js';
import { Client, Latch, probeStore, TARGETS } from './helpers/adapters.js';
import type { ProbedStore, Transport } from './helpers/adapters.js';

const SECRET = 'attack-suite-secret-0123456789abcdefghijklmn';
const COOKIE = '__Host-sid';

/** Cookie values an attacker can make from a valid one, without the secret. */
function cookieAttacks(valid: string): [string, string][] {
  const [id = '', tag = ''] = valid.split('.');
  const flip = (text: string, at: number) => text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const respelled = tag.slice(0, -1) + (alphabet[alphabet.indexOf(tag.at(-1) as string) ^ 1] as string);
  return [
    ['forged (a fresh ID with a random tag)', `${randomBytes(32).toString('base64url')}.${randomBytes(32).toString('base64url')}`],
    ['forged (a fresh ID signed with a guessed secret)', `${id}.${createHmac('sha256', 'secret').update(id).digest('base64url')}`],
    ['tampered ID, original tag', `${flip(id, 3)}.${tag}`],
    ['tampered tag', `${id}.${flip(tag, 10)}`],
    ['truncated tag', `${id}.${tag.slice(0, 20)}`],
    ['tag of length 0', `${id}.`],
    ['tag one character long', `${id}.A`],
    ['tag 44 characters long (extended)', `${id}.${tag}A`],
    ['tag 1000 characters long', `${id}.${'A'.repeat(1000)}`],
    ['extended with a third part', `${valid}.extra`],
    ['re-encoded tag (another spelling of the same bytes)', `${id}.${respelled}`],
    ['re-encoded as base64 with padding', `${id}.${Buffer.from(tag, 'base64url').toString('base64')}`],
    ['percent-encoded', encodeURIComponent(`${id}.${tag}`).replace(/\./g, '%2E')],
    ['the ID alone', id],
    ['the tag alone', tag],
    ['empty', ''],
    ['quoted and padded', `" ${valid} "`],
    ['a unicode lookalike (Cyrillic a)', `\u0430${id.slice(1)}.${tag}`],
    ['a Latin-1 lookalike', `\u00e1${id.slice(1)}.${tag}`],
    ['NUL bytes', `${id}\u0000.${tag}`],
  ];
}

describe('attacks on the manager', () => {
  let now: number;
  let probe: ProbedStore;
  let manager: SessionManager;

  beforeEach(() => {
    now = Date.UTC(2030, 0, 1);
    const clock = () => now;
    probe = probeStore(memoryStore({ clock }));
    manager = new SessionManager({ store: probe.store, secrets: [SECRET], clock, idleTimeout: 600, absoluteTimeout: 3600 });
  });

  async function stored(data: Record<string, unknown> = { role: 'user' }) {
    const session = manager.create({ data });
    const { setCookie } = await manager.save(session);
    const value = /^[^=]+=([^;]*)/.exec(setCookie ?? '')?.[1] as string;
    return { session, value };
  }

  it('every forged, tampered, truncated, extended, re-encoded and oversized cookie yields a fresh session, no error and no store call', async () => {
    const { session, value } = await stored();
    for (const [name, attack] of cookieAttacks(value)) {
      probe.reset();
      expect(manager.readCookie(`${COOKIE}=${attack}`), name).toBeNull();
      const fresh = await manager.fromCookie(`${COOKIE}=${attack}`);
      expect(fresh.isNew, name).toBe(true);
      expect(fresh.id, name).not.toBe(session.id);
      expect(probe.total(), name).toBe(0);
    }
    const oversized = `${COOKIE}=${value}; pad=${'x'.repeat(MAX_COOKIE_HEADER)}`;
    expect(manager.readCookie(oversized)).toBeNull();
    const crowded = `${Array.from({ length: 70 }, (_, i) => `c${i}=1`).join('; ')}; ${COOKIE}=${value}`;
    expect(manager.readCookie(crowded)).toBeNull();
  });

  it('compares tags of every length from 0 to 100 without an exception', () => {
    const id = randomBytes(32).toString('base64url');
    for (let length = 0; length <= 100; length++) {
      expect(() => manager.readCookie(`${COOKIE}=${id}.${'A'.repeat(length)}`)).not.toThrow();
      expect(manager.readCookie(`${COOKIE}=${id}.${'A'.repeat(length)}`)).toBeNull();
    }
  });

  it('duplicate cookie names: the first valid one wins, whatever its position', async () => {
    const { session, value } = await stored();
    const forged = `${randomBytes(32).toString('base64url')}.${randomBytes(32).toString('base64url')}`;
    expect(manager.readCookie(`${COOKIE}=${forged}; ${COOKIE}=${value}`)).toBe(session.id);
    expect(manager.readCookie(`${COOKIE}=${value}; ${COOKIE}=${forged}`)).toBe(session.id);
  });

  it('strict mode: a well-formed, validly signed ID the store does not know is never adopted', async () => {
    const planted = randomBytes(32).toString('base64url');
    const signed = `${planted}.${createHmac('sha256', SECRET).update(planted).digest('base64url')}`;
    expect(manager.readCookie(`${COOKIE}=${signed}`)).toBe(planted);
    const session = await manager.fromCookie(`${COOKIE}=${signed}`);
    expect(session.isNew).toBe(true);
    expect(session.id).not.toBe(planted);
    session.set('x', 1);
    await manager.save(session);
    expect(await manager.load(planted)).toBeNull();
  });

  it('fixation: an ID planted before login is never the ID after login, and dies at login', async () => {
    const { session: planted, value } = await stored({ visits: 1 });
    const victim = await manager.fromCookie(`${COOKIE}=${value}`);
    expect(victim.id).toBe(planted.id);
    await manager.regenerate(victim);
    victim.userId = 'victim';
    await manager.save(victim);
    expect(victim.id).not.toBe(planted.id);
    expect(await manager.load(planted.id)).toBeNull();
    expect((await manager.fromCookie(`${COOKIE}=${value}`)).isNew).toBe(true);
  });

  it('replay of a cookie after logout and after regenerate yields a fresh anonymous session', async () => {
    const { session, value } = await stored();
    await manager.regenerate(session);
    const replayed = await manager.fromCookie(`${COOKIE}=${value}`);
    expect(replayed.isNew).toBe(true);
    const current = manager.cookieFor(session).split(';')[0] as string;
    await manager.destroy(session);
    expect((await manager.fromCookie(current)).isNew).toBe(true);
  });

  it('logout racing in-flight writes: the session stays logged out', async () => {
    const { session } = await stored();
    const inFlight = await Promise.all(Array.from({ length: 10 }, () => manager.load(session.id)));
    const late = (await manager.load(session.id))!;
    probe.writeDelayMs = 5;
    const writes = inFlight.map((copy, i) => {
      copy?.set(`f${i}`, i);
      return manager.save(copy!).then(
        () => 'saved',
        (error: unknown) => (isSessionError(error, 'ESESS_GONE') ? 'gone' : 'other'),
      );
    });
    const logout = manager.destroy(session.id);
    const outcomes = await Promise.all(writes);
    await logout;
    expect(outcomes).not.toContain('other');
    probe.writeDelayMs = 0;
    expect(await manager.load(session.id)).toBeNull();
    late.set('late', true);
    await expect(manager.save(late)).rejects.toMatchObject({ code: 'ESESS_GONE' });
    expect(await manager.load(session.id)).toBeNull();
  });

  it('idle and absolute expiry under a fake clock', async () => {
    const { session } = await stored();
    now += 599_000;
    expect(await manager.load(session.id)).not.toBeNull();
    now += 601_000;
    expect(await manager.load(session.id)).toBeNull();
    const { session: active } = await stored();
    for (let i = 0; i < 12; i++) {
      now += 300_000;
      const loaded = await manager.load(active.id);
      if (i < 11) {
        expect(loaded, `minute ${(i + 1) * 5}`).not.toBeNull();
        await manager.touch(loaded!);
      } else {
        expect(loaded, 'past the absolute timeout').toBeNull();
      }
    }
  });

  const pollution: [string, string][] = [
    ['__proto__', '{"__proto__":{"polluted":true}}'],
    ['constructor.prototype', '{"constructor":{"prototype":{"polluted":true}}}'],
    ['unicode-escaped __proto__', '{"\\u005f\\u005fproto\\u005f\\u005f":{"polluted":true}}'],
    ['unicode-escaped constructor', '{"\\u0063onstructor":{"prototype":{"polluted":true}}}'],
    ['nested __proto__', '{"a":[{"b":{"__proto__":{"polluted":true}}}]}'],
  ];

  for (const [name, json] of pollution) {
    it(`refuses ${name} at every JSON entry of the manager`, async () => {
      expect(() => safeJsonParse(json, 16)).toThrow(expect.objectContaining({ code: 'ESESS_UNSAFE_KEY' }));
      const parsed = JSON.parse(json) as Record<string, unknown>;
      const session = manager.create();
      session.set('payload', parsed);
      await expect(manager.save(session)).rejects.toMatchObject({ code: expect.stringMatching(/ESESS_UNSAFE_KEY|ESESS_NOT_SERIALIZABLE/) });
      const { session: victim } = await stored();
      await probe.store.apply(storeKeyOf(victim.id), { fields: { payload: { value: json, stamp: 'ffffffffffff.0000.00000000' } } });
      expect(await manager.load(victim.id)).toBeNull();
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });
  }

  it('refuses __proto__, constructor and prototype as field names', async () => {
    for (const field of ['__proto__', 'constructor', 'prototype']) {
      const session = manager.create();
      session.set(field, 1);
      await expect(manager.save(session)).rejects.toMatchObject({ code: 'ESESS_UNSAFE_KEY' });
    }
  });

  it('refuses huge and deeply nested payloads before parsing them', () => {
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    const started = performance.now();
    expect(() => safeJsonParse(deep, 16)).toThrow(expect.objectContaining({ code: 'ESESS_TOO_DEEP' }));
    expect(performance.now() - started).toBeLessThan(500);
    expect(jsonDepth('{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')).toBe(1);
    const session = manager.create();
    session.set('big', 'x'.repeat(70_000));
    return expect(manager.save(session)).rejects.toMatchObject({ code: 'ESESS_TOO_LARGE' });
  });
});

/** The same attacks over real HTTP, through every adapter. */
for (const target of TARGETS.filter((t) => t.name.includes('over http'))) {
  describe(`attacks through ${target.name}`, () => {
    let probe: ProbedStore;
    let transport: Transport;
    let latch: Latch;
    const client = () => new Client(transport, COOKIE, { 'x-forwarded-proto': 'https' });

    beforeEach(async () => {
      probe = probeStore(memoryStore());
      const manager = new SessionManager({ store: probe.store, secrets: [SECRET] });
      latch = new Latch();
      transport = await target.start({ manager, trustProxy: true, hooks: { latch } });
    });

    afterEach(async () => {
      latch.release();
      await transport.close();
    });

    it('forged and altered cookies: never a 500, never the victim session, no store call', async () => {
      const victim = client();
      await victim.request('POST', '/items/gold');
      await victim.request('POST', '/login?user=victim');
      const value = victim.cookie as string;
      // fetch sends only visible Latin-1 header bytes.
      for (const [name, attack] of cookieAttacks(value).filter(([, text]) => /^[\x20-\x7e\x80-\xff]*$/.test(text))) {
        probe.reset();
        const reply = await client().request('GET', '/me', `${COOKIE}=${attack}`);
        expect(reply.status, name).toBe(401);
        expect(probe.total(), name).toBe(0);
      }
      const oversized = await client().request('GET', '/me', `${COOKIE}=${value}; pad=${'x'.repeat(MAX_COOKIE_HEADER)}`);
      expect(oversized.status).toBe(401);
    });

    it('fixation: a planted session ID is not the ID after login, and replays after login and logout are anonymous', async () => {
      const attacker = client();
      await attacker.request('POST', '/items/bait');
      const planted = attacker.cookie as string;
      const victim = client();
      victim.cookie = planted;
      expect((await victim.request('POST', '/login?user=victim')).status).toBe(200);
      expect(victim.cookie).not.toBe(planted);
      expect((await attacker.request('GET', '/me')).status).toBe(401);
      const loggedIn = victim.cookie as string;
      expect((await victim.request('POST', '/logout')).status).toBe(204);
      expect((await client().request('GET', '/me', `${COOKIE}=${loggedIn}`)).status).toBe(401);
    });

    it('a response that sets the session cookie is never cacheable', async () => {
      const reply = await client().request('POST', '/items/x');
      expect(reply.setCookies.length).toBe(1);
      expect(reply.header('cache-control')).toMatch(/no-store/);
    });
  });
}
