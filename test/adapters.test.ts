import diagnostics from 'node:diagnostics_channel';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import express from 'express';
import { requireRecentAuth as expressRecentAuth } from '../src/adapters/express.js';
import { requireRecentAuth as fastifyRecentAuth } from '../src/adapters/fastify.js';
import { requireRecentAuth as honoRecentAuth } from '../src/adapters/hono.js';
import { requireRecentAuth as nodeRecentAuth } from '../src/adapters/node-http.js';
import { handleOf, storeKeyOf } from '../src/core/ids.js';
import { SessionManager } from '../src/core/manager.js';
import type { SessionManagerOptions } from '../src/core/manager.js';
import { CHANNELS } from '../src/core/telemetry.js';
import type { AnomalyEvent } from '../src/core/telemetry.js';
import type { BindingOptions } from '../src/security/binding.js';
import { memoryStore } from '../src/stores/memory.js';
import { Client, Latch, probeStore, RECENT_AUTH_SECONDS, TARGETS } from './helpers/adapters.js';
import { published } from './helpers/channels.js';
import type { ProbedStore, Transport } from './helpers/adapters.js';

const SECRET = 'adapter-suite-secret-0123456789abcdefghijkl';
const COOKIE = '__Host-sid';
const IDLE_SECONDS = 600;
const ABSOLUTE_SECONDS = 3600;
const BINDING_KEY = 'adapter-suite-binding-key-0123456789abcdefgh';
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';
const CURL = 'curl/8.5.0';

/** The opaque handle of the session a client's cookie names (these managers have no hashKey). */
function handleOfClient(client: Client): string {
  return handleOf(storeKeyOf((client.cookie ?? '').split('.')[0] ?? ''));
}

/**
 * The behaviour every adapter promises, over each transport it can be driven by. The apps run
 * with Secure cookies behind a trusted TLS-terminating proxy, as in production: the client
 * sends `X-Forwarded-Proto: https`.
 */
for (const target of TARGETS) {
  describe(`adapter behaviour: ${target.name}`, () => {
    let now: number;
    let probe: ProbedStore;
    let manager: SessionManager;
    let transport: Transport;
    let latch: Latch;
    let client: Client;
    const newClient = () => new Client(transport, COOKIE, { 'x-forwarded-proto': 'https' });

    beforeEach(async () => {
      now = Date.UTC(2030, 0, 1);
      const clock = () => now;
      probe = probeStore(memoryStore({ clock }));
      manager = new SessionManager({ store: probe.store, secrets: [SECRET], clock, idleTimeout: IDLE_SECONDS, absoluteTimeout: ABSOLUTE_SECONDS });
      latch = new Latch();
      transport = await target.start({ manager, trustProxy: true, hooks: { latch } });
      client = newClient();
    });

    afterEach(async () => {
      latch.release();
      await transport.close();
    });

    /** Logs in as `user` with one item, then forgets the store calls made so far. */
    const loggedIn = async (user = 'ada') => {
      expect((await client.request('POST', '/items/apple')).status).toBe(200);
      expect((await client.request('POST', `/login?user=${user}`)).status).toBe(200);
      probe.reset();
    };

    it('a request that never touches the session costs no store call and sets no cookie', async () => {
      const anonymous = await client.request('GET', '/health');
      expect(anonymous.status).toBe(200);
      expect(anonymous.setCookies).toEqual([]);
      expect(probe.total()).toBe(0);

      await loggedIn();
      const withCookie = await client.request('GET', '/health');
      expect(withCookie.status).toBe(200);
      expect(withCookie.setCookies).toEqual([]);
      expect(probe.writes()).toBe(0);
      // Lazy adapters read nothing; eager ones (Express/Fastify default) load once when a valid cookie comes.
      expect(probe.reads()).toBe(target.lazy ? 0 : 1);
    });

    it('an untouched new session is never stored and gets no cookie', async () => {
      const reply = await client.request('GET', '/me');
      expect(reply.status).toBe(401);
      expect(reply.setCookies).toEqual([]);
      expect(probe.total()).toBe(0);
    });

    it('creates the session on its first write and sends a Secure, uncacheable cookie', async () => {
      const reply = await client.request('POST', '/items/apple');
      expect(reply.status).toBe(200);
      expect(reply.json()).toEqual({ name: 'apple', count: 1 });
      expect(probe.calls).toEqual({ create: 1 });
      expect(reply.setCookies).toHaveLength(1);
      expect(reply.setCookies[0]).toMatch(/^__Host-sid=[\w-]{43}\.[\w-]{43}; Path=\/; Expires=.*; HttpOnly; Secure; SameSite=Lax$/);
      expect(reply.header('cache-control')).toBe('no-store');
    });

    it('reads a session without writing it (no write while the sliding refresh is not due)', async () => {
      await loggedIn();
      const reply = await client.request('GET', '/me');
      expect(reply.status).toBe(200);
      expect(reply.json()).toEqual({ user: 'ada', items: { apple: 1 } });
      expect(reply.setCookies).toEqual([]);
      expect(probe.calls).toEqual({ load: 1 });
    });

    it('writes the sliding refresh once the throttle allows, and only then', async () => {
      await loggedIn();
      now += (IDLE_SECONDS / 2) * 1000;
      await client.request('GET', '/me');
      expect(probe.calls).toEqual({ load: 1, apply: 1 });
      expect(Object.keys(probe.deltas[0]?.fields ?? {})).toEqual([]);
      await client.request('GET', '/me');
      expect(probe.calls).toEqual({ load: 2, apply: 1 });
    });

    it('modifies a session by writing only the changed field', async () => {
      await loggedIn();
      const reply = await client.request('POST', '/items/pear');
      expect(reply.json()).toEqual({ name: 'pear', count: 1 });
      await client.request('POST', '/items/pear');
      expect(probe.deltas.map((delta) => Object.keys(delta.fields))).toEqual([['item:pear'], ['item:pear']]);
      expect(reply.setCookies).toEqual([]);
      expect((await client.request('GET', '/me')).json()).toEqual({ user: 'ada', items: { apple: 1, pear: 2 } });
    });

    it('saves in-place changes to a field read in the request, and nothing for a read-only request', async () => {
      await client.request('POST', '/cart?add=tea');
      await client.request('POST', '/cart?add=milk');
      probe.reset();
      await client.request('POST', '/cart?add=jam');
      expect(probe.deltas.map((delta) => Object.keys(delta.fields))).toEqual([['cart']]);
      const reply = await client.request('GET', '/cart');
      expect(reply.json()).toEqual({ cart: ['tea', 'milk', 'jam'] });
      expect(probe.calls).toEqual({ load: 2, apply: 1 });
    });

    it('keeps every field when 50 parallel requests each set a different one', async () => {
      await loggedIn();
      const names = Array.from({ length: 50 }, (_, i) => `n${i}`);
      const replies = await Promise.all(names.map((name) => client.request('POST', `/items/${name}`)));
      expect(replies.map((reply) => reply.status)).toEqual(names.map(() => 200));
      const { items } = (await client.request('GET', '/me')).json() as { items: Record<string, number> };
      expect(items).toEqual({ apple: 1, ...Object.fromEntries(names.map((name) => [name, 1])) });
    });

    it('regenerate issues a new ID, keeps the data and kills the old cookie', async () => {
      await client.request('POST', '/items/apple');
      const before = client.header;
      const login = await client.request('POST', '/login?user=ada');
      expect(login.status).toBe(200);
      expect(login.setCookies).toHaveLength(1);
      expect(client.header).not.toBe(before);
      expect((await client.request('GET', '/me')).json()).toEqual({ user: 'ada', items: { apple: 1 } });
      const stale = await client.request('GET', '/me', before);
      expect(stale.status).toBe(401);
      // The old ID stays dead even for a write: it starts a new session instead of reviving it.
      const write = await client.request('POST', '/items/plum', before);
      expect(write.status).toBe(200);
      expect(write.setCookies[0]).not.toContain((before as string).split('=')[1]);
      expect((await client.request('GET', '/me', before)).status).toBe(401);
    });

    it('destroy clears the cookie and stays final while in-flight writes of the session finish', async () => {
      await loggedIn();
      const cookie = client.header;
      const inFlight = ['x1', 'x2', 'x3', 'x4', 'x5'].map((name) => client.request('POST', `/items/${name}?hold=1`, cookie));
      await latch.arrivals(5);
      const logout = await client.request('POST', '/logout');
      expect(logout.status).toBe(204);
      expect(logout.setCookies).toHaveLength(1);
      expect(logout.setCookies[0]).toMatch(/^__Host-sid=; .*Max-Age=0/);
      expect(client.cookie).toBeNull();
      latch.release();
      const replies = await Promise.all(inFlight);
      // Destroy wins: the late writes are dropped, without an error and without touching the cookie.
      for (const reply of replies) {
        expect(reply.status).toBe(200);
        expect(reply.setCookies).toEqual([]);
      }
      expect(probe.calls.apply).toBe(5);
      expect(probe.calls.create ?? 0).toBe(0);
      expect((await client.request('GET', '/me', cookie)).status).toBe(401);
      const id = manager.readCookie(cookie ?? undefined);
      expect(id).not.toBeNull();
      expect(await manager.load(id as string)).toBeNull();
    });

    it('logout sends Clear-Site-Data only when asked to, and every cookie-setting reply is no-store', async () => {
      await loggedIn();
      const plain = await client.request('POST', '/logout');
      expect(plain.header('cache-control')).toBe('no-store');
      expect(plain.header('clear-site-data')).toBeNull();

      const clearing = await target.start({ manager, trustProxy: true, clearSiteData: true, hooks: { latch } });
      try {
        const other = new Client(clearing, COOKIE, { 'x-forwarded-proto': 'https' });
        expect((await other.request('POST', '/login?user=ada')).header('clear-site-data')).toBeNull();
        const logout = await other.request('POST', '/logout');
        expect(logout.setCookies[0]).toMatch(/Max-Age=0/);
        expect(logout.header('clear-site-data')).toBe('"cookies"');
      } finally {
        await clearing.close();
      }
    });

    it('an idle session expires', async () => {
      await loggedIn();
      now += (IDLE_SECONDS - 1) * 1000;
      expect((await client.request('GET', '/me')).status).toBe(200);
      now += (IDLE_SECONDS + 1) * 1000;
      expect((await client.request('GET', '/me')).status).toBe(401);
    });

    it('a session dies at its absolute expiry however active it is', async () => {
      await loggedIn();
      for (let elapsed = 0; elapsed < ABSOLUTE_SECONDS - 300; elapsed += 300) {
        now += 300_000;
        expect((await client.request('GET', '/me')).status).toBe(200);
      }
      now += 600_000;
      expect((await client.request('GET', '/me')).status).toBe(401);
    });

    it('tampered, duplicated and oversized cookies give a fresh anonymous session with zero store reads', async () => {
      await loggedIn();
      const good = client.cookie as string;
      const [id, tag] = good.split('.') as [string, string];
      const flip = (text: string) => (text[0] === 'A' ? 'B' : 'A') + text.slice(1);
      const bad = [
        `${COOKIE}=${id}.${flip(tag)}`,
        `${COOKIE}=${flip(id)}.${tag}`,
        `${COOKIE}=${id}`,
        `${COOKIE}=${good}x`,
        `${COOKIE}=${id}.${flip(tag)}; ${COOKIE}=${flip(id)}.${tag}`,
        `${COOKIE}=garbage; ${COOKIE}=%00%ff; ${COOKIE}=`,
        `${COOKIE}=${good}; pad=${'x'.repeat(9000)}`,
        `${COOKIE}=${'a'.repeat(5000)}`,
      ];
      for (const header of bad) {
        const reply = await client.request('GET', '/me', header);
        expect(reply.status, header.slice(0, 60)).toBe(401);
        expect(reply.setCookies).toEqual([]);
      }
      expect(probe.total()).toBe(0);
      const write = await client.request('POST', '/items/fig', bad[0]);
      expect(write.status).toBe(200);
      expect(probe.calls).toEqual({ create: 1 });
    });

    it('stores the write before a redirect leaves, so the next request sees it', async () => {
      probe.writeDelayMs = 40;
      const first = await client.request('POST', '/redirect/apple');
      expect(first.status).toBe(303);
      expect(first.header('location')).toBe('/me');
      expect(first.setCookies).toHaveLength(1);
      expect((await client.request('GET', '/me')).json()).toEqual({ user: null, items: { apple: 1 } });
      const second = await client.request('POST', '/redirect/apple');
      expect(second.status).toBe(303);
      expect((await client.request('GET', '/me')).json()).toEqual({ user: null, items: { apple: 2 } });
    });

    it('fails with 503 while the store is down and recovers when it is back', async () => {
      await loggedIn();
      probe.down = true;
      const read = await client.request('GET', '/me');
      expect(read.status).toBe(503);
      const write = await client.request('POST', '/items/kiwi', null);
      expect(write.status).toBe(503);
      expect(write.setCookies).toEqual([]);
      expect(write.body).not.toContain('"count"');
      probe.down = false;
      const after = await client.request('GET', '/me');
      expect(after.status).toBe(200);
      expect(after.json()).toEqual({ user: 'ada', items: { apple: 1 } });
    });
    describe('authentication state and requireRecentAuth', () => {
      const iso = (ms: number) => new Date(ms).toISOString();
      const refusal = (detail: string) => ({ type: 'urn:elastic-session:error:ESESS_REAUTH_REQUIRED', title: 'Recent authentication required', status: 401, code: 'ESESS_REAUTH_REQUIRED', detail });

      it('an anonymous session was never authenticated, and a guarded route answers 401 problem+json (ESESS_REAUTH_REQUIRED) without running', async () => {
        await client.request('POST', '/items/apple');
        expect((await client.request('GET', '/authentication')).json()).toMatchObject({ authentication: null, authenticatedAt: null });
        const refused = await client.request('GET', '/sensitive');
        expect(refused.status).toBe(401);
        expect(refused.header('content-type')).toBe('application/problem+json');
        expect(refused.header('cache-control')).toBe('no-store');
        expect(refused.json()).toEqual(refusal(`Authentication within the last ${RECENT_AUTH_SECONDS} seconds is required`));
        // Without a cookie: refused too, and nothing is stored for it.
        probe.reset();
        const cookieless = await newClient().request('GET', '/sensitive');
        expect(cookieless.status).toBe(401);
        expect(cookieless.setCookies).toEqual([]);
        expect(probe.total()).toBe(0);
      });

      it('login marks the session authenticated: the guarded route passes for N seconds after, then answers 401 until the user authenticates again', async () => {
        await client.request('POST', '/items/apple');
        const loginAt = now;
        expect((await client.request('POST', '/login?user=ada&method=password')).status).toBe(200);
        expect((await client.request('GET', '/authentication')).json()).toEqual({
          authentication: { at: iso(loginAt), method: 'password', level: 'aal1' },
          authenticatedAt: iso(loginAt),
          // Not a data field: neither among the keys, nor in toJSON(), nor a property.
          keys: ['item:apple'],
          data: { 'item:apple': 1 },
          fields: ['item:apple'],
        });
        expect((await client.request('GET', '/sensitive')).json()).toEqual({ user: 'ada' });
        now += RECENT_AUTH_SECONDS * 1000;
        expect((await client.request('GET', '/sensitive')).status).toBe(200);
        now += 1000;
        expect((await client.request('GET', '/sensitive')).status).toBe(401);
        // Still logged in, only not recently: the rest of the session is untouched.
        expect((await client.request('GET', '/me')).json()).toEqual({ user: 'ada', items: { apple: 1 } });
        expect((await client.request('POST', '/authenticate?method=otp')).status).toBe(200);
        expect((await client.request('GET', '/sensitive')).status).toBe(200);
      });

      it('a level requirement refuses aal1, passes after a step-up to aal2, and judges the latest authentication', async () => {
        await client.request('POST', '/login?user=ada&method=password');
        const refused = await client.request('GET', '/sensitive/aal2');
        expect(refused.status).toBe(401);
        expect(refused.json()).toEqual(refusal(`Authentication within the last ${RECENT_AUTH_SECONDS} seconds at level aal2 or higher is required`));
        expect((await client.request('GET', '/sensitive')).status).toBe(200);
        expect((await client.request('POST', '/authenticate?method=webauthn&level=aal2')).status).toBe(200);
        expect((await client.request('GET', '/sensitive/aal2')).json()).toEqual({ user: 'ada', level: 'aal2' });
        expect((await client.request('POST', '/authenticate?method=password&level=aal1')).status).toBe(200);
        expect((await client.request('GET', '/sensitive/aal2')).status).toBe(401);
      });

      it('regenerate keeps the authentication (a second login without a new mark stays authenticated)', async () => {
        await client.request('POST', '/login?user=ada&method=webauthn&level=aal2');
        const before = client.header;
        await client.request('POST', '/login?user=ada');
        expect(client.header).not.toBe(before);
        expect((await client.request('GET', '/sensitive/aal2')).status).toBe(200);
      });

      it('refuses a malformed authentication method with 400', async () => {
        await client.request('POST', '/items/apple');
        expect((await client.request('POST', '/authenticate?method=bad%20method')).status).toBe(400);
      });
    });

    describe('maxSessionsPerUser (manager option)', () => {
      /** An app over a manager that allows each user two sessions, on the same store and clock. */
      const limited = async (onTooManySessions: SessionManagerOptions['onTooManySessions'], fixture: (app: Transport, limitedManager: SessionManager) => Promise<void>) => {
        const limitedManager = new SessionManager({ store: probe.store, secrets: [SECRET], clock: () => now, idleTimeout: IDLE_SECONDS, absoluteTimeout: ABSOLUTE_SECONDS, maxSessionsPerUser: 2, onTooManySessions });
        const app = await target.start({ manager: limitedManager, trustProxy: true, hooks: { latch } });
        try {
          await fixture(app, limitedManager);
        } finally {
          await app.close();
        }
      };
      const loginFrom = async (app: Transport): Promise<[Client, number]> => {
        const browser = new Client(app, COOKIE, { 'x-forwarded-proto': 'https' });
        expect((await browser.request('POST', '/items/apple')).status).toBe(200);
        const { status } = await browser.request('POST', '/login?user=ada');
        now += 1000;
        return [browser, status];
      };

      it("'evict-oldest' (the default): a third login of the user logs out the oldest of the other two", async () => {
        await limited(undefined, async (app, limitedManager) => {
          const [first] = await loginFrom(app);
          const [second] = await loginFrom(app);
          const [third, status] = await loginFrom(app);
          expect(status).toBe(200);
          expect((await first.request('GET', '/me')).status).toBe(401);
          for (const browser of [second, third]) expect((await browser.request('GET', '/me')).json()).toEqual({ user: 'ada', items: { apple: 1 } });
          expect((await limitedManager.listUserSessions('ada')).map(({ handle }) => handle).sort()).toEqual([handleOfClient(second), handleOfClient(third)].sort());
        });
      });

      it("'refuse': a third login fails with 409, sends no cookie and binds nothing; after a logout elsewhere it goes through", async () => {
        await limited('refuse', async (app, limitedManager) => {
          const [first] = await loginFrom(app);
          const [second] = await loginFrom(app);
          const [third, status] = await loginFrom(app);
          expect(status).toBe(409);
          expect(third.cookie).not.toBeNull();
          expect(await limitedManager.listUserSessions('ada')).toHaveLength(2);
          for (const browser of [first, second]) expect((await browser.request('GET', '/me')).json()).toEqual({ user: 'ada', items: { apple: 1 } });
          const refused = await new Client(app, COOKIE, { 'x-forwarded-proto': 'https' }).request('POST', '/login?user=ada');
          expect(refused.status).toBe(409);
          expect(refused.setCookies).toEqual([]);
          expect((await first.request('POST', '/logout')).status).toBe(204);
          const [, later] = await loginFrom(app);
          expect(later).toBe(200);
          expect(await limitedManager.listUserSessions('ada')).toHaveLength(2);
        });
      });
    });

    it('security events carry the time, the principal, the opaque handle and the client address the adapter read, never the ID', async () => {
      const browser = new Client(transport, COOKIE, { 'x-forwarded-proto': 'https', 'x-forwarded-for': '198.51.100.23, 10.0.0.1' });
      const handles: string[] = [];
      const ids: string[] = [];
      const rejected = await published(CHANNELS.cookieRejected, async () => {
        expect((await browser.request('GET', '/me', `${COOKIE}=forged`)).status).toBe(401);
      });
      expect(rejected).toEqual([{ reason: 'malformed', at: new Date(now).toISOString(), ip: '198.51.100.23' }]);
      const events = await published(CHANNELS.session, async () => {
        await browser.request('POST', '/items/apple');
        handles.push(handleOfClient(browser));
        ids.push((browser.cookie ?? '').split('.')[0] ?? '');
        now += 1000;
        await browser.request('POST', '/login?user=ada&method=password');
        handles.push(handleOfClient(browser));
        ids.push((browser.cookie ?? '').split('.')[0] ?? '');
        now += 1000;
        await browser.request('POST', '/logout');
      });
      const [anonymous, loggedIn] = handles as [string, string];
      const at = (offset: number) => new Date(now - 2000 + offset).toISOString();
      const from = { store: 'memory', ip: '198.51.100.23' };
      expect(events).toEqual([
        { type: 'created', ...from, at: at(0), handle: anonymous },
        { type: 'regenerated', ...from, at: at(1000), handle: loggedIn, previousHandle: anonymous },
        { type: 'updated', ...from, at: at(1000), userId: 'ada', handle: loggedIn },
        { type: 'authenticated', ...from, at: at(1000), userId: 'ada', handle: loggedIn, method: 'password', level: 'aal1' },
        { type: 'destroyed', ...from, at: at(2000), userId: 'ada', handle: loggedIn },
      ]);
      for (const id of ids) {
        expect(id).toHaveLength(43);
        expect(JSON.stringify(events)).not.toContain(id);
        expect(JSON.stringify(events)).not.toContain(storeKeyOf(id));
      }
    });

    describe('binding signals (adapter option)', () => {
      let events: AnomalyEvent[];
      const onAnomaly = (message: unknown): void => {
        events.push(message as AnomalyEvent);
      };
      beforeEach(() => {
        events = [];
        diagnostics.subscribe(CHANNELS.anomaly, onAnomaly);
      });
      afterEach(() => {
        diagnostics.unsubscribe(CHANNELS.anomaly, onAnomaly);
      });

      /** An app with binding on, a browser logged in through it, and a client with another User-Agent holding the same cookie. */
      const bound = async (binding: Omit<BindingOptions, 'key'>, fixture: (bound: Transport) => Promise<void>) => {
        const app = await target.start({ manager, trustProxy: true, binding: { key: BINDING_KEY, ...binding }, hooks: { latch } });
        try {
          await fixture(app);
        } finally {
          await app.close();
        }
      };
      /** What each event reported (which signals, what was done), without its subject. */
      const kinds = () => events.map(({ signals, action }) => ({ signals, action }));
      const browserOn = (app: Transport, userAgent: string, ip = '203.0.113.7') => new Client(app, COOKIE, { 'x-forwarded-proto': 'https', 'x-forwarded-for': `${ip}, 10.0.0.1`, 'user-agent': userAgent });

      it('stores the fingerprint when the session is first stored and raises no event while the client stays the same', async () => {
        await bound({}, async (app) => {
          const browser = browserOn(app, FIREFOX);
          await browser.request('POST', '/items/apple');
          expect(probe.deltas).toEqual([]);
          const id = manager.readCookie(browser.header ?? undefined) as string;
          const stored = (await manager.load(id))?.get('_binding') as Record<string, string>;
          expect(Object.keys(stored).sort()).toEqual(['network', 'user-agent']);
          expect(JSON.stringify(stored)).not.toContain('Firefox');
          probe.reset();
          // Same client, another host in its /24: nothing to report and nothing to write.
          const same = await browserOn(app, FIREFOX, '203.0.113.99').request('GET', '/me', browser.header);
          expect(same.status).toBe(200);
          expect(probe.calls).toEqual({ load: 1 });
          expect(events).toEqual([]);
        });
      });

      it("a request with another User-Agent or network raises the anomaly event and, with onChange: 'event', goes on", async () => {
        await bound({}, async (app) => {
          const browser = browserOn(app, FIREFOX);
          await browser.request('POST', '/items/apple');
          await browser.request('POST', '/login?user=ada');
          expect(events).toEqual([]);
          const other = await browserOn(app, CURL).request('GET', '/me', browser.header);
          expect(other.status).toBe(200);
          expect(kinds()).toEqual([{ signals: ['user-agent'], action: 'event' }]);
          const moved = await browserOn(app, CURL, '198.51.100.1').request('GET', '/me', browser.header);
          expect(moved.status).toBe(200);
          expect(kinds()).toEqual([
            { signals: ['user-agent'], action: 'event' },
            { signals: ['network'], action: 'event' },
          ]);
          // Who, which session, from where and when, so an operator can act: never the ID or the User-Agent.
          const [listed] = await manager.listUserSessions('ada');
          const subject = { at: new Date(now).toISOString(), userId: 'ada', handle: listed?.handle };
          expect(events).toEqual([
            { signals: ['user-agent'], action: 'event', ...subject, ip: '203.0.113.7' },
            { signals: ['network'], action: 'event', ...subject, ip: '198.51.100.1' },
          ]);
          expect(JSON.stringify(events)).not.toContain(CURL);
          expect(JSON.stringify(events)).not.toContain((browser.cookie ?? '').split('.')[0]);
          expect((await browser.request('GET', '/me')).json()).toEqual({ user: 'ada', items: { apple: 1 } });
        });
      });

      it("with onChange: 'destroy' another User-Agent ends the session: a fresh anonymous one, and the old cookie is dead", async () => {
        await bound({ onChange: 'destroy' }, async (app) => {
          const browser = browserOn(app, FIREFOX);
          await browser.request('POST', '/items/apple');
          await browser.request('POST', '/login?user=ada');
          const cookie = browser.header;
          const thief = browserOn(app, CURL);
          const stolen = await thief.request('GET', '/me', cookie);
          expect(stolen.status).toBe(401);
          expect(stolen.setCookies).toHaveLength(1);
          expect(stolen.setCookies[0]).toMatch(/^__Host-sid=; .*Max-Age=0/);
          expect(kinds()).toEqual([{ signals: ['user-agent'], action: 'destroy' }]);
          // Dead for everyone, the original client included, and a write starts a new session.
          expect((await browser.request('GET', '/me', cookie)).status).toBe(401);
          expect(await manager.load(manager.readCookie(cookie ?? undefined) as string)).toBeNull();
          const write = await thief.request('POST', '/items/fig', cookie);
          expect(write.status).toBe(200);
          expect(write.json()).toEqual({ name: 'fig', count: 1 });
          expect(write.setCookies[0]).not.toContain((cookie as string).split('=')[1]);
        });
      });

      it('login (regenerate) carries the fingerprint of the client that logs in to the new ID', async () => {
        await bound({ onChange: 'destroy' }, async (app) => {
          const browser = browserOn(app, FIREFOX);
          await browser.request('POST', '/items/apple');
          const before = browser.header;
          const fingerprint = (await manager.load(manager.readCookie(before ?? undefined) as string))?.get('_binding');
          expect((await browser.request('POST', '/login?user=ada')).status).toBe(200);
          expect(browser.header).not.toBe(before);
          const after = await manager.load(manager.readCookie(browser.header ?? undefined) as string);
          expect(after?.get('_binding')).toEqual(fingerprint);
          expect((await browser.request('GET', '/me')).json()).toEqual({ user: 'ada', items: { apple: 1 } });
          expect((await browserOn(app, CURL).request('GET', '/me', browser.header)).status).toBe(401);
          expect(kinds()).toEqual([{ signals: ['user-agent'], action: 'destroy' }]);
        });
      });

      it('refuses invalid binding options, naming them', async () => {
        await expect(Promise.resolve().then(() => target.start({ manager, trustProxy: true, binding: { key: 'short' }, hooks: { latch } }))).rejects.toThrow(/"binding\.key"/);
      });
    });
  });
}

describe('requireRecentAuth, whatever the adapter', () => {
  const guards = { express: expressRecentAuth, fastify: fastifyRecentAuth, hono: honoRecentAuth, 'node:http': nodeRecentAuth };

  it('validates its options once, at startup, naming them', () => {
    for (const [name, guard] of Object.entries(guards)) {
      for (const seconds of [0, -5, Number.NaN, Infinity, 1e12]) expect(() => guard(seconds), `${name} ${seconds}`).toThrow(/"requireRecentAuth\(seconds\)"/);
      expect(() => guard(60, { level: 'aal4' as 'aal1' }), name).toThrow(/"requireRecentAuth\.level".*aal1, aal2, aal3/);
      expect(() => guard(60, { level: 'aal3' }), name).not.toThrow();
    }
  });

  it('used without the session middleware, it fails as a usage error (500), never as a pass', async () => {
    const app = express();
    app.get('/x', expressRecentAuth(60), (_req, res) => {
      res.send('ran');
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const reply = await fetch(`http://127.0.0.1:${(server.address() as { port: number }).port}/x`);
      expect(reply.status).toBe(500);
      expect(await reply.text()).not.toContain('ran');
    } finally {
      server.close();
    }
    const hono = new Hono();
    hono.get('/x', honoRecentAuth(60), (c) => c.text('ran'));
    const answer = await hono.request('/x');
    expect(answer.status).toBe(500);
    expect(await answer.json()).toMatchObject({ code: 'ESESS_USAGE' });
  });
});
