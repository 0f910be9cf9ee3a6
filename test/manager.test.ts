import diagnostics from 'node:diagnostics_channel';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { published } from './helpers/channels.js';
import { CHANNELS, SessionManager, isSessionError } from '../src/index.js';
import type { SessionManagerOptions } from '../src/index.js';
import { storeKeyOf } from '../src/core/ids.js';
import { EXAMPLE_SECRETS, isWeakSecret } from '../src/core/secrets.js';
import { memoryStore } from '../src/stores/memory.js';
import { countingStore, total } from './helpers/counting-store.js';

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

  it('regenerate() keeps a per-session absolute timeout', async () => {
    const { sessions } = setup();
    const session = sessions.create({ data: { a: 1 }, absoluteTimeout: 600 });
    await sessions.save(session);
    now += 100_000;
    await sessions.regenerate(session);
    expect(session.absoluteExpiresAt.getTime()).toBe(now + 600_000);
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
