import diagnostics from 'node:diagnostics_channel';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { published } from './helpers/channels.js';
import { CHANNELS, SessionManager, isSessionError } from '../src/index.js';
import type { SessionManagerOptions, SessionStore, StoredSession } from '../src/index.js';
import { handleOf, storeKeyOf } from '../src/core/ids.js';
import { EXAMPLE_SECRETS, isWeakSecret } from '../src/core/secrets.js';
import { publishTokenRejected } from '../src/core/telemetry.js';
import { memoryStore } from '../src/stores/memory.js';
import { sqliteStore } from '../src/stores/sqlite.js';
import { countingStore, total } from './helpers/counting-store.js';
import { builtCli } from './helpers/service.js';

const SECRET = 'a'.repeat(32);
const OLD_SECRET = 'b'.repeat(32);

let now = 1_700_000_000_000;
const clock = () => now;

function setup(options: Partial<SessionManagerOptions> = {}) {
  const counted = countingStore(memoryStore({ clock }));
  const sessions = new SessionManager({ store: counted.store, secrets: [SECRET], clock, ...options });
  return { sessions, ...counted };
}

/** `name=value` of a Set-Cookie header, as a browser would send it back. */
function cookieHeader(setCookie: string | null): string {
  expect(setCookie).toBeTruthy();
  return (setCookie as string).split(';')[0] as string;
}

beforeEach(() => {
  now = 1_700_000_000_000;
});

describe('configuration', () => {
  it('refuses secrets shorter than 32 bytes and names the option', () => {
    expect(() => new SessionManager({ store: memoryStore(), secrets: ['short'] })).toThrow(/"secrets".*at least 32/);
    expect(() => new SessionManager({ store: memoryStore(), secrets: [] })).toThrow(/secrets/);
  });

  it('refuses absurd timeouts and fractions, naming the option', () => {
    expect(() => new SessionManager({ store: memoryStore(), secrets: [SECRET], idleTimeout: 0 })).toThrow(/idleTimeout/);
    expect(() => new SessionManager({ store: memoryStore(), secrets: [SECRET], absoluteTimeout: 1e12 })).toThrow(/absoluteTimeout/);
    expect(() => new SessionManager({ store: memoryStore(), secrets: [SECRET], touchAfter: 2 })).toThrow(/touchAfter/);
    expect(() => new SessionManager({ store: memoryStore(), secrets: [SECRET], limits: { maxBytes: -1 } })).toThrow(/limits.maxBytes/);
  });

  it('defaults to __Host- prefixed, Secure, HttpOnly, SameSite=Lax cookies on path /', async () => {
    const { sessions } = setup();
    const session = sessions.create({ data: { a: 1 } });
    const { setCookie } = await sessions.save(session);
    expect(setCookie).toMatch(/^__Host-sid=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}; Path=\/; Expires=.*; Max-Age=86400; HttpOnly; Secure; SameSite=Lax$/);
  });

  it('allows plain-http cookies only with insecureLocalhostDevelopment', () => {
    expect(() => new SessionManager({ store: memoryStore(), secrets: [SECRET], cookie: { secure: false } })).toThrow(/cookie.secure/);
    const dev = new SessionManager({ store: memoryStore(), secrets: [SECRET], insecureLocalhostDevelopment: true });
    expect(dev.cookie).toMatchObject({ name: 'sid', secure: false });
    expect(() => new SessionManager({ store: memoryStore(), secrets: [SECRET], cookie: { domain: 'example.com' } })).toThrow(/__Host-/);
  });
});

describe('cookies', () => {
  it('reads back the ID it signed', async () => {
    const { sessions } = setup();
    const session = sessions.create({ data: { a: 1 } });
    const { setCookie } = await sessions.save(session);
    expect(sessions.readCookie(`other=1; ${cookieHeader(setCookie)}; x=y`)).toBe(session.id);
  });

  it('verifies with every listed secret and signs with the first (rotation)', async () => {
    const old = new SessionManager({ store: memoryStore(), secrets: [OLD_SECRET] });
    const rotated = new SessionManager({ store: memoryStore(), secrets: [SECRET, OLD_SECRET] });
    const retired = new SessionManager({ store: memoryStore(), secrets: [SECRET] });
    const session = old.create();
    const header = cookieHeader(old.cookieFor(session));
    expect(rotated.readCookie(header)).toBe(session.id);
    expect(retired.readCookie(header)).toBeNull();
    expect(old.readCookie(cookieHeader(rotated.cookieFor(session)))).toBeNull();
  });

  it('rejects tampered, truncated, extended, re-encoded and garbage cookies with zero store calls', async () => {
    const { sessions, calls } = setup();
    const session = sessions.create({ data: { a: 1 } });
    const value = cookieHeader((await sessions.save(session)).setCookie).slice('__Host-sid='.length);
    const reasons: string[] = [];
    const onReject = (message: unknown) => reasons.push((message as { reason: string }).reason);
    diagnostics.subscribe(CHANNELS.cookieRejected, onReject);
    const before = total(calls);
    const lastTagChar = value.at(-1) as string;
    const reencoded = value.slice(0, -1) + String.fromCharCode(lastTagChar.charCodeAt(0) ^ 1);
    const bad = [
      value.slice(0, -1),
      `${value}A`,
      `${value.slice(0, 10)}X${value.slice(11)}`,
      reencoded,
      `${session.id}.`,
      '',
      '%00%ff',
      'x'.repeat(5000),
      `${value}.${value}`,
    ];
    for (const candidate of bad) {
      const found = await sessions.fromCookie(`__Host-sid=${candidate}`);
      expect(found.isNew).toBe(true);
      expect(found.id).not.toBe(session.id);
    }
    diagnostics.unsubscribe(CHANNELS.cookieRejected, onReject);
    expect(total(calls)).toBe(before);
    expect(reasons).toContain('malformed');
    expect(reasons).toContain('bad-signature');
  });

  it('ignores a Cookie header over the size limit', () => {
    const { sessions } = setup();
    expect(sessions.readCookie(`a=${'x'.repeat(9000)}`)).toBeNull();
  });

  it('takes the first valid value when the cookie name is duplicated', async () => {
    const { sessions } = setup();
    const first = sessions.create({ data: { n: 1 } });
    const second = sessions.create({ data: { n: 2 } });
    const a = cookieHeader((await sessions.save(first)).setCookie);
    const b = cookieHeader((await sessions.save(second)).setCookie);
    expect(sessions.readCookie(`__Host-sid=forged; ${b}; ${a}`)).toBe(second.id);
  });
});

describe('lifecycle', () => {
  it('never stores an untouched new session and sets no cookie for it', async () => {
    const { sessions, calls } = setup();
    const session = await sessions.fromCookie(undefined);
    expect(await sessions.save(session)).toEqual({ setCookie: null });
    expect(total(calls)).toBe(0);
  });

  it('stores a new session on its first write, under a hash of its ID', async () => {
    const { sessions, store } = setup();
    const session = sessions.create({ data: { cart: ['apple'] }, userId: 'alice' });
    await sessions.save(session);
    expect(await store.load(session.id)).toBeNull();
    const stored = await store.load(storeKeyOf(session.id));
    expect(stored?.userId).toBe('alice');
    expect(JSON.stringify(stored)).not.toContain(session.id);
  });

  it('writes only the changed fields of an existing session', async () => {
    const { sessions, deltas } = setup();
    const session = sessions.create({ data: { a: 1, b: 2, c: 3 } });
    await sessions.save(session);
    const loaded = await sessions.load(session.id);
    loaded?.set('b', 20);
    loaded?.delete('c');
    await sessions.save(loaded!);
    expect(Object.keys(deltas.at(-1)?.fields ?? {}).sort()).toEqual(['b', 'c']);
    expect(deltas.at(-1)?.fields.c?.value).toBeNull();
    expect((await sessions.load(session.id))?.toJSON()).toEqual({ a: 1, b: 20 });
  });

  it('saves a value mutated in place once it is marked changed', async () => {
    const { sessions } = setup();
    const session = sessions.create({ data: { cart: ['a'] } });
    await sessions.save(session);
    const loaded = (await sessions.load(session.id))!;
    (loaded.get('cart') as string[]).push('b');
    loaded.markChanged('cart');
    await sessions.save(loaded);
    expect((await sessions.load(session.id))?.get('cart')).toEqual(['a', 'b']);
  });

  it('a field changed while its save is in flight is written by the next save', async () => {
    const { sessions } = setup();
    const session = sessions.create({ data: { a: 1 } });
    await sessions.save(session);
    const loaded = (await sessions.load(session.id))!;
    loaded.set('a', 2);
    const saving = sessions.save(loaded);
    loaded.set('a', 3);
    loaded.set('b', 1);
    await saving;
    expect(loaded.isDirty).toBe(true);
    await sessions.save(loaded);
    expect((await sessions.load(session.id))?.toJSON()).toEqual({ a: 3, b: 1 });
  });

  it('a read-only request writes lastSeenAt only after the touchAfter fraction of the idle window', async () => {
    const { sessions, calls } = setup({ idleTimeout: 1000, touchAfter: 0.5 });
    const session = sessions.create({ data: { a: 1 } });
    await sessions.save(session);
    now += 400_000;
    await sessions.save((await sessions.load(session.id))!);
    expect(calls.apply ?? 0).toBe(0);
    now += 200_000;
    await sessions.save((await sessions.load(session.id))!);
    expect(calls.apply).toBe(1);
    now += 900_000;
    expect(await sessions.load(session.id)).not.toBeNull();
  });

  it('is dead after the idle timeout without activity', async () => {
    const { sessions } = setup({ idleTimeout: 60 });
    const session = sessions.create({ data: { a: 1 } });
    await sessions.save(session);
    now += 59_000;
    expect(await sessions.load(session.id)).not.toBeNull();
    now += 2_000;
    expect(await sessions.load(session.id)).toBeNull();
  });

  it('is dead at the absolute timeout however active', async () => {
    const { sessions } = setup({ idleTimeout: 60, absoluteTimeout: 300, touchAfter: 0 });
    const session = sessions.create({ data: { a: 1 } });
    await sessions.save(session);
    for (let i = 0; i < 5; i++) {
      now += 50_000;
      const loaded = await sessions.load(session.id);
      expect(loaded).not.toBeNull();
      await sessions.save(loaded!);
    }
    now += 50_001;
    expect(await sessions.load(session.id)).toBeNull();
  });

  it('regenerate() moves the data to a new ID, kills the old one and sends the new cookie', async () => {
    const { sessions } = setup();
    const session = sessions.create({ data: { cart: ['a'] } });
    await sessions.save(session);
    const oldId = session.id;
    await sessions.regenerate(session);
    const { setCookie } = await sessions.save(session);
    expect(sessions.readCookie(cookieHeader(setCookie))).toBe(session.id);
    expect(await sessions.load(oldId)).toBeNull();
    expect((await sessions.load(session.id))?.get('cart')).toEqual(['a']);
  });

  it('regenerate() keeps the absolute expiry; renewAbsolute starts a new window of the absolute timeout', async () => {
    const { sessions } = setup({ absoluteTimeout: 3600 });
    const session = sessions.create({ data: { a: 1 }, absoluteTimeout: 600 });
    const t0 = now;
    await sessions.save(session);
    now += 100_000;
    await sessions.regenerate(session);
    expect(session.absoluteExpiresAt.getTime()).toBe(t0 + 600_000);
    now += 100_000;
    await sessions.regenerate(session, { renewAbsolute: true });
    expect(session.absoluteExpiresAt.getTime()).toBe(now + 3_600_000);
  });

  it('regenerating on every privilege change never keeps a session past its absolute timeout', async () => {
    // Regression (security round 2, item 4): regenerate used to open a new absolute window each time.
    const { sessions } = setup();
    const session = sessions.create({ data: { a: 1 }, absoluteTimeout: 5 });
    await sessions.save(session);
    now += 2_000;
    await sessions.regenerate(session);
    now += 2_000;
    await sessions.regenerate(session);
    now += 2_000;
    expect(await sessions.load(session.id)).toBeNull();
    await expect(sessions.regenerate(session)).rejects.toMatchObject({ code: 'ESESS_GONE' });
  });

  it('regenerate() of a session destroyed meanwhile fails as gone and leaves no successor alive', async () => {
    const { sessions, store } = setup();
    const session = sessions.create({ data: { a: 1 }, userId: 'alice' });
    await sessions.save(session);
    const loaded = (await sessions.load(session.id))!;
    await sessions.destroy(session.id);
    await expect(sessions.regenerate(loaded)).rejects.toMatchObject({ code: 'ESESS_GONE' });
    expect(await sessions.listUserSessions('alice')).toEqual([]);
    expect(await store.listByUser('alice')).toEqual([]);
  });

  it('save({ storeEmpty: true }) stores a new session that holds nothing yet', async () => {
    const { sessions } = setup();
    const session = sessions.create();
    const { setCookie } = await sessions.save(session, { storeEmpty: true });
    expect(setCookie).toBeTruthy();
    expect((await sessions.load(session.id))?.toJSON()).toEqual({});
  });

  it('regenerate({ keepData: false }) starts empty', async () => {
    const { sessions } = setup();
    const session = sessions.create({ data: { cart: ['a'] } });
    await sessions.save(session);
    await sessions.regenerate(session, { keepData: false });
    session.set('fresh', true);
    await sessions.save(session);
    expect((await sessions.load(session.id))?.toJSON()).toEqual({ fresh: true });
  });

  it('a planted duplicate cookie for a dead session does not shadow the live one behind it', async () => {
    // Regression (security round 2, item 7): the first validly signed cookie won even when its session was dead.
    const { sessions } = setup({ cookie: { name: 'sid' }, insecureLocalhostDevelopment: true });
    const dead = sessions.create({ data: { attacker: true } });
    await sessions.save(dead);
    await sessions.destroy(dead);
    const victim = sessions.create({ data: { victim: true } });
    await sessions.save(victim);
    const header = `${cookieHeader(sessions.cookieFor(dead))}; ${cookieHeader(sessions.cookieFor(victim))}`;
    expect((await sessions.fromCookie(header)).id).toBe(victim.id);
    expect(sessions.readCookies(header).map((c) => c.id)).toEqual([dead.id, victim.id]);
  });

  it('tries at most three validly signed duplicates of the session cookie', async () => {
    const { sessions, calls } = setup({ cookie: { name: 'sid' }, insecureLocalhostDevelopment: true });
    const planted = Array.from({ length: 5 }, () => cookieHeader(sessions.cookieFor(sessions.create()))).join('; ');
    const before = total(calls);
    expect((await sessions.fromCookie(planted)).isNew).toBe(true);
    expect(total(calls) - before).toBe(3);
  });

  it('a session found through a cookie signed by an older secret gets a cookie signed by the newest on its next save', async () => {
    // Regression (security round 2, item 8): old-secret cookies were never re-signed, so an old secret could never go.
    const OLD = 'o'.repeat(32);
    const NEW = 'n'.repeat(32);
    const store = memoryStore({ clock });
    const before = new SessionManager({ store, secrets: [OLD], clock });
    const session = before.create({ data: { a: 1 } });
    const { setCookie: oldCookie } = await before.save(session);
    const rotated = new SessionManager({ store, secrets: [NEW, OLD], clock });
    const loaded = await rotated.fromCookie(cookieHeader(oldCookie));
    expect(loaded.id).toBe(session.id);
    const { setCookie } = await rotated.save(loaded);
    expect(setCookie, 'a read-only request re-signs too').toBeTruthy();
    const onlyNew = new SessionManager({ store, secrets: [NEW], clock });
    expect((await onlyNew.fromCookie(cookieHeader(setCookie))).id).toBe(session.id);
    const again = await rotated.fromCookie(cookieHeader(setCookie));
    expect((await rotated.save(again)).setCookie, 'a current cookie is not sent again').toBeNull();
  });

  it('a cookie path with a control character, a space or a ";" is refused at startup, not at the first response', () => {
    // Regression (security round 2, item 10): "\u0007" passed the check and crashed the first Set-Cookie.
    for (const path of ['/a\u0007b', '/a b', '/a;b', '/a\r\nX: y', 'relative']) {
      expect(() => setup({ cookie: { name: 'sid', path }, insecureLocalhostDevelopment: true }), JSON.stringify(path)).toThrow(/"cookie.path"/);
    }
    const { sessions } = setup({ cookie: { name: 'sid', path: '/app/~x' }, insecureLocalhostDevelopment: true });
    expect(sessions.cookieFor(sessions.create())).toContain('Path=/app/~x');
  });

  it('a missing or undefined secret is a configuration error naming the option', () => {
    const store = memoryStore();
    expect(() => new SessionManager({ store, secrets: [undefined as unknown as string] })).toThrow(/"secrets": secret #1 is undefined/);
    expect(() => new SessionManager({ store } as unknown as SessionManagerOptions)).toThrow(/"secrets": at least one secret is required/);
    expect(() => new SessionManager({ store, secrets: [42 as unknown as string] })).toThrow(/secret #1 is a number/);
  });

  it('a stored record beyond the size or field-count limits loads as absent and is counted as corrupt', async () => {
    // Regression (security round 2, item 5): writes were bounded, loads were not.
    const { sessions, store } = setup({ limits: { maxFields: 10, maxBytes: 1000 } });
    const wide = sessions.create({ data: { a: 1 } });
    const big = sessions.create({ data: { a: 1 } });
    await sessions.save(wide);
    await sessions.save(big);
    const stamp = `${(now + 1).toString(16).padStart(12, '0')}.0000.00000000`;
    const many = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`f${i}`, { value: '1', stamp }]));
    await store.apply(storeKeyOf(wide.id), { fields: many });
    await store.apply(storeKeyOf(big.id), { fields: { a: { value: JSON.stringify('x'.repeat(1000)), stamp } } });
    const corrupt = await published(CHANNELS.corrupt, async () => {
      expect(await sessions.load(wide.id)).toBeNull();
      expect(await sessions.load(big.id)).toBeNull();
    });
    expect(corrupt).toHaveLength(2);
    const fits = sessions.create({ data: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`f${i}`, i])) });
    await sessions.save(fits);
    expect((await sessions.load(fits.id))?.get('f9')).toBe(9);
  });

  it('a planted, never-stored ID is not adopted', async () => {
    const { sessions } = setup();
    const planted = sessions.create();
    const header = cookieHeader(sessions.cookieFor(planted));
    const session = await sessions.fromCookie(header);
    expect(session.isNew).toBe(true);
    expect(session.id).not.toBe(planted.id);
  });

  it('destroy() is final: a save racing it fails as gone and the session stays dead', async () => {
    const { sessions } = setup();
    const session = sessions.create({ data: { a: 1 } });
    await sessions.save(session);
    const inFlight = (await sessions.load(session.id))!;
    const loggingOut = (await sessions.load(session.id))!;
    await sessions.destroy(loggingOut);
    expect((await sessions.save(loggingOut)).setCookie).toMatch(/^__Host-sid=; Path=\/; Expires=Thu, 01 Jan 1970/);
    inFlight.set('b', 2);
    await expect(sessions.save(inFlight)).rejects.toMatchObject({ code: 'ESESS_GONE' });
    expect(await sessions.load(session.id)).toBeNull();
  });

  it('update() retries on conflict and gives up with ESESS_CONFLICT', async () => {
    const { sessions } = setup({ maxRetries: 3 });
    const session = sessions.create({ data: { n: 0 } });
    await sessions.save(session);
    let calls = 0;
    const error = await sessions
      .update(session.id, async (s) => {
        calls++;
        const rival = (await sessions.load(session.id))!;
        rival.set('n', 100 + calls);
        await sessions.save(rival);
        s.set('n', (s.get('n') as number) + 1);
      })
      .catch((e: unknown) => e);
    expect(isSessionError(error, 'ESESS_CONFLICT')).toBe(true);
    expect(calls).toBe(3);
    expect(await sessions.update('unknown', () => undefined)).toBeNull();
  });

  it('save({ expectVersion }) refuses a stale version', async () => {
    const { sessions } = setup();
    const session = sessions.create({ data: { n: 0 } });
    await sessions.save(session);
    const loaded = (await sessions.load(session.id))!;
    loaded.set('n', 1);
    await expect(sessions.save(loaded, { expectVersion: loaded.version + 1 })).rejects.toMatchObject({ code: 'ESESS_CONFLICT', status: 409 });
  });
});

describe('data limits and safety', () => {
  it('refuses data over maxBytes, maxFields or maxDepth with typed errors', async () => {
    const { sessions } = setup({ limits: { maxBytes: 1000, maxFields: 3, maxDepth: 3 } });
    await expect(sessions.save(sessions.create({ data: { big: 'x'.repeat(2000) } }))).rejects.toMatchObject({ code: 'ESESS_TOO_LARGE', status: 413 });
    await expect(sessions.save(sessions.create({ data: { a: 1, b: 2, c: 3, d: 4 } }))).rejects.toMatchObject({ code: 'ESESS_TOO_LARGE' });
    await expect(sessions.save(sessions.create({ data: { deep: { a: { b: { c: { d: 1 } } } } } }))).rejects.toMatchObject({ code: 'ESESS_TOO_DEEP' });
    await expect(sessions.save(sessions.create({ data: { ok: { a: { b: 1 } } } }))).resolves.toBeTruthy();
  });

  it('counts the size of the whole session, not only the fields changed now', async () => {
    const { sessions } = setup({ limits: { maxBytes: 1000 } });
    const session = sessions.create({ data: { a: 'x'.repeat(600) } });
    await sessions.save(session);
    const loaded = (await sessions.load(session.id))!;
    loaded.set('b', 'y'.repeat(600));
    await expect(sessions.save(loaded)).rejects.toMatchObject({ code: 'ESESS_TOO_LARGE' });
  });

  it('refuses values JSON cannot carry faithfully', async () => {
    const { sessions } = setup();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const value of [() => 1, 10n, Number.NaN, new Date(), new Map(), cyclic, Symbol('s')]) {
      await expect(sessions.save(sessions.create({ data: { v: value } }))).rejects.toMatchObject({ code: 'ESESS_NOT_SERIALIZABLE' });
    }
  });

  it('refuses prototype keys as field names and inside values', async () => {
    const { sessions } = setup();
    const polluted = JSON.parse('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
    await expect(sessions.save(sessions.create({ data: { v: polluted } }))).rejects.toMatchObject({ code: 'ESESS_UNSAFE_KEY' });
    const session = sessions.create();
    session.set('constructor' as string, 1);
    await expect(sessions.save(session)).rejects.toMatchObject({ code: 'ESESS_UNSAFE_KEY' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('treats a stored field with a prototype key as corrupt: absent and counted', async () => {
    const { sessions, store } = setup();
    const session = sessions.create({ data: { a: 1 } });
    await sessions.save(session);
    await store.apply(storeKeyOf(session.id), { fields: { a: { value: '{"__proto__":{"x":1}}', stamp: 'ffffffffffff.0000.00000000' } } });
    const corrupt = await published(CHANNELS.corrupt, async () => expect(await sessions.load(session.id)).toBeNull());
    expect(corrupt).toHaveLength(1);
  });

  it('load() of a malformed ID returns null without a store call', async () => {
    const { sessions, calls } = setup();
    for (const id of ['', 'short', 'x'.repeat(43) + '=', '../../etc/passwd', 'a'.repeat(10_000)]) expect(await sessions.load(id)).toBeNull();
    expect(total(calls)).toBe(0);
  });
});

describe('store failures', () => {
  let restore: (() => void) | undefined;
  afterEach(() => restore?.());

  it('a broken store is an ESESS_STORE_UNAVAILABLE error with the cause, never a silent null', async () => {
    const { sessions, down } = setup();
    const session = sessions.create({ data: { a: 1 } });
    await sessions.save(session);
    down(true);
    restore = () => down(false);
    const error = await sessions.load(session.id).catch((e: unknown) => e);
    expect(isSessionError(error, 'ESESS_STORE_UNAVAILABLE')).toBe(true);
    expect((error as Error).cause).toBeInstanceOf(Error);
    expect((error as Error).message).not.toContain(session.id);
    expect(JSON.stringify((error as { context: unknown }).context)).toBe('{"store":"memory","operation":"load"}');
    down(false);
    expect(await sessions.load(session.id)).not.toBeNull();
  });
});

describe('user index', () => {
  it('lists sessions of a user as opaque handles and revokes one or all', async () => {
    const { sessions } = setup();
    const made = [];
    for (let i = 0; i < 3; i++) {
      const session = sessions.create({ data: { i }, userId: 'alice' });
      await sessions.save(session);
      made.push(session);
    }
    const listed = await sessions.listUserSessions('alice');
    expect(listed).toHaveLength(3);
    for (const entry of listed) {
      expect(entry.handle).toMatch(/^[A-Za-z0-9_-]{22}$/);
      for (const session of made) {
        expect(entry.handle).not.toBe(session.id);
        expect(session.id).not.toContain(entry.handle);
        expect(storeKeyOf(session.id)).not.toContain(entry.handle);
      }
    }
    expect(await sessions.revokeUserSession('alice', listed[0]!.handle)).toBe(true);
    expect(await sessions.revokeUserSession('alice', listed[0]!.handle)).toBe(false);
    expect(await sessions.listUserSessions('alice')).toHaveLength(2);
    expect(await sessions.revokeUser('alice')).toBe(2);
    for (const session of made) expect(await sessions.load(session.id)).toBeNull();
  });
});

describe('telemetry', () => {
  it('publishes lifecycle and store events without IDs, keys or contents', async () => {
    const payloads: string[] = [];
    const record = (message: unknown) => payloads.push(JSON.stringify(message));
    const names = [CHANNELS.session, CHANNELS.cookieRejected, CHANNELS.corrupt, CHANNELS.conflict];
    for (const name of names) diagnostics.subscribe(name, record);
    const channel = diagnostics.tracingChannel(CHANNELS.store);
    const handlers = { start: record, end: record, asyncStart: record, asyncEnd: record, error: record };
    channel.subscribe(handlers);
    try {
      const { sessions } = setup();
      const session = sessions.create({ data: { secret: 'top-secret-content' }, userId: 'alice' });
      await sessions.save(session);
      const loaded = (await sessions.load(session.id))!;
      await sessions.regenerate(loaded);
      await sessions.destroy(loaded);
      sessions.readCookie('__Host-sid=garbage');
      const all = payloads.join('\n');
      expect(all).toContain('"type":"created"');
      expect(all).toContain('"operation":"load"');
      for (const secret of [session.id, loaded.id, storeKeyOf(session.id), 'top-secret-content']) expect(all).not.toContain(secret);
    } finally {
      for (const name of names) diagnostics.unsubscribe(name, record);
      channel.unsubscribe(handlers);
    }
  });
});

describe('security events', () => {
  const iso = () => new Date(now).toISOString();
  const ip = '203.0.113.9';

  it('lifecycle events carry the time, the principal, the opaque handle and the caller\'s address; never the ID, key or contents', async () => {
    const { sessions } = setup();
    const handle = (id: string) => handleOf(storeKeyOf(id));
    const ids: string[] = [];
    const events = await published(CHANNELS.session, async () => {
      const session = sessions.create({ data: { secret: 'top-secret-content' }, userId: 'alice' });
      await sessions.save(session, {}, { ip });
      ids.push(session.id);
      now += 1000;
      session.set('n', 1);
      session.markAuthenticated({ method: 'password' });
      await sessions.save(session, {}, { ip });
      now += 1000;
      await sessions.regenerate(session, {}, { ip });
      ids.push(session.id);
      await sessions.destroy(session, { ip });
      const other = sessions.create({ data: { a: 1 }, userId: 'alice' });
      await sessions.save(other);
      ids.push(other.id);
      const [listed] = await sessions.listUserSessions('alice');
      await sessions.revokeUserSession('alice', listed!.handle, { ip });
      const third = sessions.create({ data: { a: 1 }, userId: 'alice' });
      await sessions.save(third);
      await sessions.revokeUser('alice', { ip });
    });
    const [first, regenerated, other] = ids as [string, string, string];
    const t0 = now - 2000;
    const at = (ms: number) => new Date(ms).toISOString();
    expect(events).toEqual([
      { type: 'created', store: 'memory', at: at(t0), userId: 'alice', handle: handle(first), ip },
      { type: 'updated', store: 'memory', at: at(t0 + 1000), userId: 'alice', handle: handle(first), ip },
      { type: 'authenticated', store: 'memory', at: at(t0 + 1000), userId: 'alice', handle: handle(first), ip, method: 'password', level: 'aal1' },
      { type: 'regenerated', store: 'memory', at: at(t0 + 2000), userId: 'alice', handle: handle(regenerated), previousHandle: handle(first), ip },
      { type: 'destroyed', store: 'memory', at: at(t0 + 2000), userId: 'alice', handle: handle(regenerated), ip },
      { type: 'created', store: 'memory', at: at(t0 + 2000), userId: 'alice', handle: handle(other) },
      { type: 'revoked', store: 'memory', at: at(t0 + 2000), userId: 'alice', handle: handle(other), ip, count: 1 },
      { type: 'created', store: 'memory', at: at(t0 + 2000), userId: 'alice', handle: expect.any(String) as unknown },
      { type: 'revoked', store: 'memory', at: at(t0 + 2000), userId: 'alice', ip, count: 1 },
    ]);
    const all = JSON.stringify(events);
    for (const id of ids) {
      expect(all).not.toContain(id);
      expect(all).not.toContain(storeKeyOf(id));
    }
    expect(all).not.toContain('top-secret-content');
  });

  it('a session found past its deadline on load is reported expired with its principal, handle and the caller\'s address', async () => {
    // The store's clock stands still, so it hands back a record the manager's clock finds dead.
    const start = now;
    const sessions = new SessionManager({ store: memoryStore({ clock: () => start }), secrets: [SECRET], clock, idleTimeout: 60 });
    const session = sessions.create({ data: { a: 1 }, userId: 'bob' });
    await sessions.save(session);
    now += 61_000;
    const events = await published(CHANNELS.session, async () => expect(await sessions.load(session.id, { ip })).toBeNull());
    expect(events).toEqual([{ type: 'expired', store: 'memory', at: iso(), userId: 'bob', handle: sessions.handleOf(session), ip, reason: 'idle' }]);
  });

  it('the SIEM subscriber in docs/observability.md writes one JSON line per security event, with its subject (against the built package, in a fresh process)', () => {
    const doc = readFileSync(new URL('../docs/observability.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## Security events to a SIEM'));
    const snippet = /```js\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
    expect(snippet.split('\n').filter((line) => line.trim() !== '').length).toBeLessThanOrEqual(10);
    const dist = pathToFileURL(`${dirname(dirname(builtCli()))}/`).href;
    const dir = mkdtempSync(join(tmpdir(), 'elastic-session-siem-'));
    try {
      const out = join(dir, 'events.jsonl');
      const script = [
        snippet.replace("from 'elastic-session'", `from '${dist}index.js'`).replace("'/var/log/app/session-events.jsonl'", JSON.stringify(out)),
        `import { memoryStore } from '${dist}stores/memory.js';`,
        `const sessions = createSessionManager({ store: memoryStore(), secrets: ['${SECRET}'] });`,
        "const session = sessions.create({ data: { a: 1 }, userId: 'u-42' });",
        "await sessions.save(session, {}, { ip: '198.51.100.23' });",
        "sessions.readCookie('__Host-sid=garbage', { ip: '203.0.113.9' });",
        'out.end();',
      ].join('\n').replace(`import { CHANNELS } from '${dist}index.js';`, `import { CHANNELS, createSessionManager } from '${dist}index.js';`);
      const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
      expect(result.stderr).toBe('');
      const lines = readFileSync(out, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines).toEqual([
        { kind: 'session', type: 'created', store: 'memory', at: expect.any(String) as unknown, userId: 'u-42', handle: expect.stringMatching(/^[\w-]{22}$/) as unknown, ip: '198.51.100.23' },
        { kind: 'cookie-rejected', reason: 'malformed', at: expect.any(String) as unknown, ip: '203.0.113.9' },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a sweep reports its time and count', async () => {
    const { sessions } = setup();
    await sessions.save(sessions.create({ data: { a: 1 } }));
    now += 2 * 86_400_000;
    const events = await published(CHANNELS.session, () => sessions.sweep());
    expect(events).toEqual([{ type: 'expired', store: 'memory', at: iso(), count: expect.any(Number) as unknown }]);
  });

  it("a rejected cookie reports the time and the caller's address, never the cookie", async () => {
    const { sessions } = setup();
    const forged = `${'A'.repeat(43)}.${'B'.repeat(43)}`;
    const events = await published(CHANNELS.cookieRejected, async () => {
      sessions.readCookies(`__Host-sid=${forged}; __Host-sid=garbage`, { ip });
      sessions.readCookie(`a=${'x'.repeat(9000)}`);
    });
    expect(events).toEqual([
      { reason: 'bad-signature', at: iso(), ip },
      { reason: 'malformed', at: iso(), ip },
      { reason: 'header-too-large', at: iso() },
    ]);
  });

  it('a rejected token reports its time, and the subject the token layer knows', async () => {
    const events = await published(CHANNELS.tokenRejected, async () => {
      publishTokenRejected('expired');
      publishTokenRejected('revoked', () => ({ at: now, userId: 'alice', handle: 'h'.repeat(22), ip }));
    });
    expect(events).toEqual([
      { reason: 'expired', at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) as unknown },
      { reason: 'revoked', at: iso(), userId: 'alice', handle: 'h'.repeat(22), ip },
    ]);
  });
});

describe('authentication state', () => {
  it('an anonymous session was never marked: no authentication, and authenticatedWithin is false', async () => {
    const { sessions } = setup();
    const session = sessions.create({ data: { a: 1 } });
    expect(session.authenticatedAt).toBeNull();
    expect(session.authentication).toBeNull();
    expect(session.authenticatedWithin(Infinity)).toBe(false);
    await sessions.save(session);
    expect((await sessions.load(session.id))?.authentication).toBeNull();
  });

  it('markAuthenticated is stored in the record as the reserved $es.auth field, replicates like a field and stays out of the data', async () => {
    const inner = memoryStore({ clock });
    const sessions = new SessionManager({ store: inner, secrets: [SECRET], clock });
    const session = sessions.create({ data: { a: 1 } });
    session.markAuthenticated({ method: 'webauthn', level: 'aal2' });
    expect(session.isDirty).toBe(true);
    await sessions.save(session);
    const raw = (await inner.load(storeKeyOf(session.id))) as StoredSession;
    expect(Object.keys(raw.fields).sort()).toEqual(['$es.auth', 'a']);
    expect(JSON.parse(raw.fields['$es.auth']!.value as string)).toEqual({ at: now, method: 'webauthn', level: 'aal2' });
    expect(raw.fields['$es.auth']!.stamp).toMatch(/\S/);
    const loaded = (await sessions.load(session.id))!;
    expect(loaded.authentication).toEqual({ at: new Date(now), method: 'webauthn', level: 'aal2' });
    expect(loaded.authenticatedAt).toEqual(new Date(now));
    expect(loaded.keys()).toEqual(['a']);
    expect(loaded.toJSON()).toEqual({ a: 1 });
    expect(loaded.get('$es.auth' as 'a')).toBeUndefined();
    expect(loaded.isDirty).toBe(false);
  });

  it('stepping up: marking again with a higher level replaces the authentication, and checks judge the latest one', async () => {
    const { sessions } = setup();
    const session = sessions.create({ data: { a: 1 } });
    session.markAuthenticated({ method: 'password' });
    await sessions.save(session);
    expect(session.authenticatedWithin(60)).toBe(true);
    expect(session.authenticatedWithin(60, { level: 'aal2' })).toBe(false);
    now += 30_000;
    const loaded = (await sessions.load(session.id))!;
    loaded.markAuthenticated({ method: 'otp', level: 'aal2' });
    await sessions.save(loaded);
    const stepped = (await sessions.load(session.id))!;
    expect(stepped.authentication).toEqual({ at: new Date(now), method: 'otp', level: 'aal2' });
    expect(stepped.authenticatedWithin(60, { level: 'aal2' })).toBe(true);
    expect(stepped.authenticatedWithin(60, { level: 'aal3' })).toBe(false);
    now += 61_000;
    expect(stepped.authenticatedWithin(60)).toBe(false);
    expect(stepped.authenticatedWithin(120, { level: 'aal1' })).toBe(true);
  });

  it('an authentication stamped in the future beyond the tolerated clock skew does not count as recent', async () => {
    const inner = memoryStore({ clock });
    const sessions = new SessionManager({ store: inner, secrets: [SECRET], clock });
    const session = sessions.create({ data: { a: 1 } });
    await sessions.save(session);
    const stamp = `${'9'.repeat(13)}`;
    await inner.apply(storeKeyOf(session.id), { fields: { '$es.auth': { value: JSON.stringify({ at: now + 3_600_000, method: 'password', level: 'aal3' }), stamp } } });
    const loaded = (await sessions.load(session.id))!;
    expect(loaded.authentication?.level).toBe('aal3');
    expect(loaded.authenticatedWithin(86_400)).toBe(false);
  });

  it('regenerate keeps the authentication (the login flow); keepData: false starts the new ID unauthenticated', async () => {
    const { sessions } = setup();
    const session = sessions.create({ data: { a: 1 } });
    session.markAuthenticated({ method: 'password', level: 'aal2' });
    await sessions.save(session);
    await sessions.regenerate(session);
    expect((await sessions.load(session.id))?.authentication?.level).toBe('aal2');
    await sessions.regenerate(session, { keepData: false });
    expect(session.authentication).toBeNull();
    const fresh = (await sessions.load(session.id))!;
    expect(fresh.authentication).toBeNull();
    expect(fresh.keys()).toEqual([]);
  });

  it('a mark made before regenerate() is written with the new ID and announced once', async () => {
    const { sessions } = setup();
    const session = sessions.create({ data: { a: 1 } });
    await sessions.save(session);
    session.markAuthenticated({ method: 'sso' });
    const events = await published(CHANNELS.session, () => sessions.regenerate(session));
    expect(events.map((event) => (event as { type: string }).type)).toEqual(['regenerated', 'authenticated']);
    expect(session.isDirty).toBe(false);
    expect((await sessions.load(session.id))?.authentication?.method).toBe('sso');
  });

  it('counts against no size limit: a session at maxFields and maxBytes can still be marked and loaded', async () => {
    const { sessions } = setup({ limits: { maxFields: 2, maxBytes: 64 } });
    const session = sessions.create({ data: { a: 'x'.repeat(25), b: 'y'.repeat(25) } });
    session.markAuthenticated({ method: 'password', level: 'aal3' });
    await sessions.save(session);
    const loaded = (await sessions.load(session.id))!;
    expect(loaded.authentication?.level).toBe('aal3');
    expect(loaded.keys()).toEqual(['a', 'b']);
  });

  it('refuses user writes to names under the reserved "$es." prefix with ESESS_INVALID_INPUT', async () => {
    const { sessions } = setup();
    await expect(sessions.save(sessions.create({ data: { '$es.auth': { at: now, method: 'forged', level: 'aal3' } } }))).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    const session = sessions.create({ data: { a: 1 } });
    await sessions.save(session);
    session.set('$es.auth' as 'a', JSON.stringify({ at: now, method: 'forged', level: 'aal3' }));
    await expect(sessions.save(session)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    session.delete('$es.auth' as 'a');
    await expect(sessions.save(session)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    expect((await sessions.load(session.id))?.authentication).toBeNull();
  });

  it('a malformed $es.auth in a record makes it unreadable (counted as corrupt); other reserved names never become data', async () => {
    const inner = memoryStore({ clock });
    const sessions = new SessionManager({ store: inner, secrets: [SECRET], clock });
    const session = sessions.create({ data: { a: 1 } });
    await sessions.save(session);
    const key = storeKeyOf(session.id);
    const stamp = '9'.repeat(13);
    await inner.apply(key, { fields: { '$es.future': { value: '"x"', stamp } } });
    expect((await sessions.load(session.id))?.keys()).toEqual(['a']);
    for (const value of ['{"at":1,"method":"has space","level":"aal1"}', '{"at":1,"method":"password","level":"aal9"}', '"password"', `{"at":1,"method":"${'m'.repeat(300)}","level":"aal1"}`]) {
      const other = sessions.create({ data: { a: 1 } });
      await sessions.save(other);
      await inner.apply(storeKeyOf(other.id), { fields: { '$es.auth': { value, stamp } } });
      const corrupt = await published(CHANNELS.corrupt, async () => expect(await sessions.load(other.id)).toBeNull());
      expect(corrupt, value).toHaveLength(1);
    }
  });

  it('markAuthenticated validates its input', () => {
    const { sessions } = setup();
    const session = sessions.create();
    for (const input of [{ method: '' }, { method: 'a b' }, { method: 'x'.repeat(33) }, { method: 'password', level: 'aal4' }, { method: 'password', level: 2 }, {}]) {
      expect(() => session.markAuthenticated(input as { method: string }), JSON.stringify(input)).toThrow(expect.objectContaining({ code: 'ESESS_INVALID_INPUT' }) as Error);
    }
    expect(session.authentication).toBeNull();
    expect(() => session.authenticatedWithin(-1)).toThrow(expect.objectContaining({ code: 'ESESS_INVALID_INPUT' }) as Error);
    expect(() => session.authenticatedWithin(60, { level: 'aal0' as 'aal1' })).toThrow(expect.objectContaining({ code: 'ESESS_INVALID_INPUT' }) as Error);
  });
});

/** A real store whose user index is hidden, as a store without one (Memcached) reports. */
function withoutUserIndex(inner: SessionStore): SessionStore {
  return {
    name: 'no-index',
    capabilities: { ...inner.capabilities, userIndex: false },
    load: (key) => inner.load(key),
    create: (key, session) => inner.create(key, session),
    apply: (key, delta) => inner.apply(key, delta),
    destroy: (key, grace, stamp) => inner.destroy(key, grace, stamp),
    listByUser: (userId) => inner.listByUser(userId),
    destroyByUser: (userId, grace, stamp) => inner.destroyByUser(userId, grace, stamp),
    sweep: (limit) => inner.sweep(limit),
    close: () => inner.close(),
  };
}

describe('maxSessionsPerUser', () => {
  it('is validated at startup, and a store without a user index refuses it naming the option', () => {
    expect(() => new SessionManager({ store: withoutUserIndex(memoryStore()), secrets: [SECRET], maxSessionsPerUser: 3 })).toThrow(/"maxSessionsPerUser".*user index.*no-index/);
    expect(() => new SessionManager({ store: withoutUserIndex(memoryStore()), secrets: [SECRET] })).not.toThrow();
    for (const bad of [0, 1.5, -1, Number.NaN]) expect(() => new SessionManager({ store: memoryStore(), secrets: [SECRET], maxSessionsPerUser: bad })).toThrow(/"maxSessionsPerUser"/);
    expect(() => new SessionManager({ store: memoryStore(), secrets: [SECRET], maxSessionsPerUser: 2, onTooManySessions: 'drop' as 'refuse' })).toThrow(/"onTooManySessions"/);
  });

  /** When set, the store's clock stands still there: it then lists sessions the manager's clock finds dead. */
  let storeFrozenAt: number | null = null;
  const storeClock = () => storeFrozenAt ?? now;
  const stores: [string, () => { store: SessionStore; cleanup: () => void }][] = [
    ['memory', () => ({ store: memoryStore({ clock: storeClock }), cleanup: () => undefined })],
    [
      'sqlite',
      () => {
        const dir = mkdtempSync(join(tmpdir(), 'elastic-session-limit-'));
        return { store: sqliteStore({ path: join(dir, 's.db'), clock: storeClock }), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
      },
    ],
  ];

  for (const [name, open] of stores) {
    describe(`over the ${name} store`, () => {
      let store: SessionStore;
      let cleanup: () => void;
      beforeEach(() => {
        ({ store, cleanup } = open());
      });
      afterEach(async () => {
        storeFrozenAt = null;
        await store.close();
        cleanup();
      });
      const managerWith = (options: Partial<SessionManagerOptions>) => new SessionManager({ store, secrets: [SECRET], clock, maxSessionsPerUser: 2, ...options });
      /** A stored session of `userId`, created now; the clock then moves on a second. */
      const sessionOf = async (sessions: SessionManager, userId: string) => {
        const session = sessions.create({ data: { n: 1 }, userId });
        await sessions.save(session);
        now += 1000;
        return session;
      };

      it("'evict-oldest' (the default): binding one session too many destroys the user's oldest, and says so", async () => {
        const sessions = managerWith({});
        const first = await sessionOf(sessions, 'alice');
        const second = await sessionOf(sessions, 'alice');
        const bob = await sessionOf(sessions, 'bob');
        const third = await sessionOf(sessions, 'alice');
        expect(await sessions.load(first.id)).toBeNull();
        for (const live of [second, third, bob]) expect(await sessions.load(live.id)).not.toBeNull();
        expect((await sessions.listUserSessions('alice')).map(({ handle }) => handle).sort()).toEqual([sessions.handleOf(second), sessions.handleOf(third)].sort());
      });

      it("'evict-oldest' publishes a revoked event per evicted session, with the reason", async () => {
        const sessions = managerWith({});
        const first = await sessionOf(sessions, 'alice');
        await sessionOf(sessions, 'alice');
        const events = await published(CHANNELS.session, () => sessionOf(sessions, 'alice'));
        expect(events.filter((event) => (event as { type: string }).type === 'revoked')).toEqual([
          { type: 'revoked', store: name, at: expect.any(String) as unknown, userId: 'alice', handle: handleOf(storeKeyOf(first.id)), reason: 'session-limit', count: 1 },
        ]);
      });

      it('the session being bound is never the one evicted, however old it is; a principal set on an existing session binds it too', async () => {
        const sessions = managerWith({});
        const old = sessions.create({ data: { n: 1 } });
        await sessions.save(old);
        now += 1000;
        const second = await sessionOf(sessions, 'alice');
        const third = await sessionOf(sessions, 'alice');
        old.userId = 'alice';
        await sessions.save(old);
        expect(await sessions.load(old.id)).not.toBeNull();
        expect(await sessions.load(second.id)).toBeNull();
        expect(await sessions.load(third.id)).not.toBeNull();
      });

      it('expired sessions do not count, even while a store still lists them, and regenerate of a bound session evicts nothing', async () => {
        const sessions = managerWith({ idleTimeout: 60 });
        storeFrozenAt = now;
        const first = await sessionOf(sessions, 'alice');
        now += 61_000;
        const second = await sessionOf(sessions, 'alice');
        const third = await sessionOf(sessions, 'alice');
        expect(await store.listByUser('alice')).toHaveLength(3);
        expect(await sessions.load(first.id)).toBeNull();
        for (const live of [second, third]) expect(await sessions.load(live.id)).not.toBeNull();
        storeFrozenAt = null;
        const loaded = (await sessions.load(third.id))!;
        await sessions.regenerate(loaded);
        for (const live of [second, loaded]) expect(await sessions.load(live.id)).not.toBeNull();
      });

      it("'refuse': a save beyond the limit fails with ESESS_TOO_MANY_SESSIONS, writes nothing and leaves the principal unset", async () => {
        const sessions = managerWith({ onTooManySessions: 'refuse' });
        const first = await sessionOf(sessions, 'alice');
        await sessionOf(sessions, 'alice');
        const fresh = sessions.create({ data: { n: 1 }, userId: 'alice' });
        await expect(sessions.save(fresh)).rejects.toMatchObject({ code: 'ESESS_TOO_MANY_SESSIONS', status: 409, context: { maxSessionsPerUser: 2 } });
        expect(fresh.userId).toBeNull();
        expect(await sessions.load(fresh.id)).toBeNull();

        const anonymous = sessions.create({ data: { n: 1 } });
        await sessions.save(anonymous);
        anonymous.userId = 'alice';
        anonymous.set('n', 2);
        await expect(sessions.save(anonymous)).rejects.toMatchObject({ code: 'ESESS_TOO_MANY_SESSIONS' });
        expect(anonymous.userId).toBeNull();
        expect((await sessions.load(anonymous.id))?.get('n')).toBe(1);
        // Without the principal, the rest of the change goes through.
        await sessions.save(anonymous);
        expect((await sessions.load(anonymous.id))?.toJSON()).toEqual({ n: 2 });
        expect((await sessions.load(anonymous.id))?.userId).toBeNull();
        expect(await sessions.listUserSessions('alice')).toHaveLength(2);

        // A regenerate that would bind the principal is refused too, and the old ID lives on.
        anonymous.userId = 'alice';
        await expect(sessions.regenerate(anonymous)).rejects.toMatchObject({ code: 'ESESS_TOO_MANY_SESSIONS' });
        expect(await sessions.load(anonymous.id)).not.toBeNull();

        await sessions.destroy(first);
        anonymous.userId = 'alice';
        await sessions.save(anonymous);
        expect((await sessions.load(anonymous.id))?.userId).toBe('alice');
      });
    });
  }
});

describe('production mode (NODE_ENV=production)', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });
  const make = (options: Partial<SessionManagerOptions>) => () => new SessionManager({ store: memoryStore(), secrets: [randomBytes(32).toString('base64url')], ...options });

  it("refuses a test-suite-style secret like 'a'.repeat(32) only in production mode", () => {
    expect(make({ secrets: [SECRET] })).not.toThrow();
    vi.stubEnv('NODE_ENV', 'production');
    expect(make({ secrets: [SECRET] })).toThrow(/"secrets".*secret #1 .*low-entropy.*production/);
    expect(make({ secrets: [randomBytes(32).toString('base64url'), OLD_SECRET] })).toThrow(/"secrets".*secret #2/);
    expect(make({ secrets: [SECRET], production: false })).not.toThrow();
    vi.stubEnv('NODE_ENV', 'test');
    expect(make({ secrets: [SECRET], production: true })).toThrow(/"secrets"/);
  });

  it('refuses example and low-entropy secrets and hashKeys, naming the option but never quoting the value', () => {
    vi.stubEnv('NODE_ENV', 'production');
    const weak = [...EXAMPLE_SECRETS.filter((secret) => Buffer.byteLength(secret) >= 32), Buffer.alloc(32, 7), 'abcdefghij'.repeat(4), '0123456789abcdef'.repeat(2), 'Zq3!'.repeat(10)];
    for (const secret of weak) {
      let message = '';
      try {
        make({ secrets: [secret] })();
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message, String(secret)).toMatch(/"secrets"/);
      expect(message).not.toContain(String(secret));
      expect(make({ hashKey: secret })).toThrow(/"hashKey".*production/);
    }
  });

  it('accepts random secrets in every usual encoding, hex included', () => {
    vi.stubEnv('NODE_ENV', 'production');
    for (let i = 0; i < 200; i++) {
      for (const secret of [randomBytes(32), randomBytes(32).toString('base64'), randomBytes(32).toString('hex'), randomBytes(16).toString('hex'), randomBytes(24).toString('base64url')]) {
        expect(isWeakSecret(secret)).toBe(false);
      }
    }
    expect(make({ secrets: [randomBytes(32).toString('hex')], hashKey: randomBytes(32) })).not.toThrow();
  });
});
