import { request as httpRequest } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/core/manager.js';
import { handleOf, storeKeyOf } from '../src/core/ids.js';
import { CHANNELS } from '../src/core/telemetry.js';
import { memoryStore } from '../src/stores/memory.js';
import { Client, fastifyApp, Latch, TARGETS } from './helpers/adapters.js';
import type { Target, Transport } from './helpers/adapters.js';
import { published } from './helpers/channels.js';

const SECRET = 'binding-proxy-test-secret-0123456789abcdefgh';
const KEY = 'binding-proxy-test-key-0123456789abcdefghijkl';
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';
/** Where a browser logs in from, as proxy headers say: anyone can write these. */
const CLAIMED = { 'x-forwarded-for': '203.0.113.7', forwarded: 'for=203.0.113.7' };
/** Proxy headers naming other networks than `CLAIMED`, in the forms proxies write them. */
const FORGED: Record<string, string>[] = [
  { 'x-forwarded-for': '198.51.100.1, 10.0.0.1', forwarded: 'for=198.51.100.1' },
  { 'x-forwarded-for': '[2001:db8:cafe::17]:4711', forwarded: 'for="[2001:db8:cafe::17]:4711";proto=https' },
  { forwarded: 'for=192.0.2.60, for=10.0.0.1' },
];
/** On loopback as the socket address of the login, but in another /24 (Linux routes all of 127/8 to lo). */
const OTHER_LOOPBACK = '127.0.1.2';

const anomalies = (fn: () => Promise<unknown>): Promise<unknown[]> => published(CHANNELS.anomaly, fn);

/** `fn`'s result and the messages published on `channel` while it ran. */
async function during<T>(channel: string, fn: () => Promise<T>): Promise<[T, unknown[]]> {
  const results: T[] = [];
  const messages = await published(channel, async () => results.push(await fn()));
  return [results[0] as T, messages];
}

interface Answer {
  status: number;
  setCookies: string[];
}

/**
 * What onChange: 'destroy' does when the network changed: one event, naming the principal, the
 * session's handle and the address the adapter read, and an anonymous answer that clears the cookie.
 */
function expectEndedByNetworkChange(moved: Answer, events: unknown[], ip: string, handle: string): void {
  expect(events).toEqual([{ signals: ['network'], action: 'destroy', at: expect.any(String) as unknown, userId: 'ada', handle, ip }]);
  expect(moved.status).toBe(401);
  expect(moved.setCookies).toEqual([expect.stringMatching(/Max-Age=0/)]);
}

/**
 * Binding signals behind every adapter setup, in destroy mode (a detected change ends the
 * session, so a false detection would be plain to see). Without `trustProxy`, the address is
 * the socket's and proxy headers are the client's own words; with it, the leftmost
 * X-Forwarded-For is the address.
 */
for (const target of TARGETS) {
  describe(`binding and trustProxy: ${target.name}`, () => {
    let manager: SessionManager;
    let latch: Latch;
    let app: Transport | null;

    beforeEach(() => {
      manager = new SessionManager({ store: memoryStore(), secrets: [SECRET], insecureLocalhostDevelopment: true });
      latch = new Latch();
      app = null;
    });

    afterEach(async () => {
      latch.release();
      await app?.close();
    });

    const start = async (trustProxy?: boolean): Promise<Transport> => {
      app = await target.start({ manager, ...(trustProxy === undefined ? {} : { trustProxy }), binding: { key: KEY, onChange: 'destroy' }, hooks: { latch } });
      return app;
    };
    const browserOn = (transport: Transport, headers: Record<string, string>) => new Client(transport, manager.cookie.name, { 'user-agent': FIREFOX, ...headers });
    const loggedIn = async (transport: Transport): Promise<Client> => {
      const browser = browserOn(transport, CLAIMED);
      expect((await browser.request('POST', '/login?user=ada')).status).toBe(200);
      return browser;
    };
    const storedOf = (browser: Client) => manager.load(manager.readCookie(browser.header ?? undefined) as string);

    it("without trustProxy (the default) X-Forwarded-For and Forwarded are ignored: forged addresses that change raise no anomaly and onChange: 'destroy' keeps the session", async () => {
      const transport = await start();
      const browser = await loggedIn(transport);
      const events = await anomalies(async () => {
        for (const headers of FORGED) {
          const reply = await browserOn(transport, headers).request('GET', '/me', browser.header);
          expect(reply.status).toBe(200);
          expect(reply.json()).toEqual({ user: 'ada', items: {} });
          expect(reply.setCookies).toEqual([]);
        }
      });
      expect(events).toEqual([]);
      expect((await storedOf(browser))?.userId).toBe('ada');
    });

    it("with trustProxy: true the leftmost X-Forwarded-For is the address (Forwarded is not read): its change raises the network anomaly and onChange: 'destroy' ends the session", async () => {
      const transport = await start(true);
      const browser = await loggedIn(transport);
      const cookie = browser.header;
      const [moved, events] = await during(CHANNELS.anomaly, async () => {
        const sameForwardedFor = await browserOn(transport, { ...CLAIMED, forwarded: 'for=198.51.100.1' }).request('GET', '/me', cookie);
        expect(sameForwardedFor.status).toBe(200);
        return browserOn(transport, { ...CLAIMED, 'x-forwarded-for': '198.51.100.1, 10.0.0.1' }).request('GET', '/me', cookie);
      });
      expectEndedByNetworkChange(moved, events, '198.51.100.1', handleOfCookie(cookie));
      expect(await storedOf(browser)).toBeNull();
    });

    if (target.name.endsWith(' over http')) {
      it("with trustProxy: false the socket's address is the client's: the same browser from another network raises the anomaly whatever the proxy headers claim, and onChange: 'destroy' ends the session", async () => {
        const transport = await start(false);
        const [browser, served] = await during('http.server.request.start', () => loggedIn(transport));
        const server = (served[0] as { server: Server }).server.address() as AddressInfo;
        const headers = { 'user-agent': FIREFOX, ...CLAIMED, cookie: browser.header ?? '' };
        const [moved, events] = await during(CHANNELS.anomaly, async () => {
          expect((await requestFrom('127.0.0.1', server, '/me', headers)).status).toBe(200);
          return requestFrom(OTHER_LOOPBACK, server, '/me', headers);
        });
        expectEndedByNetworkChange(moved, events, OTHER_LOOPBACK, handleOfCookie(browser.header));
        expect(await storedOf(browser)).toBeNull();
      });
    }
  });
}

/** The opaque handle of the session a Cookie header names (these managers have no hashKey). */
function handleOfCookie(header: string | null): string {
  const id = (header ?? '').split('=')[1]?.split('.')[0] ?? '';
  return handleOf(storeKeyOf(id));
}

/** One GET over a fresh connection from `localAddress`, so the server sees that socket address. */
function requestFrom(localAddress: string, server: AddressInfo, path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: server.address, port: server.port, path, headers, localAddress, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, setCookies: res.headers['set-cookie'] ?? [] }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function targetNamed(name: string): Target {
  const target = TARGETS.find((candidate) => candidate.name === name);
  if (target === undefined) throw new Error(`no adapter setup named "${name}" in test/helpers/adapters.ts`);
  return target;
}

describe('binding in the setups without a network socket (inject, app.request)', () => {
  let manager: SessionManager;
  let latch: Latch;

  beforeEach(() => {
    manager = new SessionManager({ store: memoryStore(), secrets: [SECRET], insecureLocalhostDevelopment: true });
    latch = new Latch();
  });

  afterEach(() => {
    latch.release();
  });

  it("Fastify's inject: the address is inject's remoteAddress (127.0.0.1 unless given), and a request injected from another network raises the anomaly", async () => {
    const fastify = await fastifyApp({ manager, trustProxy: false, binding: { key: KEY, onChange: 'destroy' }, hooks: { latch } });
    try {
      const login = await fastify.inject({ method: 'POST', url: '/login?user=ada', headers: { 'user-agent': FIREFOX, ...CLAIMED } });
      const cookie = String(login.headers['set-cookie']).split(';')[0] as string;
      const me = (remoteAddress: string) => fastify.inject({ method: 'GET', url: '/me', headers: { 'user-agent': FIREFOX, ...CLAIMED, cookie }, remoteAddress });
      const events = await anomalies(async () => {
        expect((await me('127.0.0.1')).statusCode).toBe(200);
        expect((await me('198.51.100.1')).statusCode).toBe(401);
      });
      expect(events).toMatchObject([{ signals: ['network'], action: 'destroy', userId: 'ada', ip: '198.51.100.1' }]);
    } finally {
      await fastify.close();
    }
  });

  it("Hono's app.request: there is no socket, so without trustProxy the address is unknown and the session is bound to its User-Agent alone", async () => {
    const transport = await targetNamed('hono via app.request').start({ manager, binding: { key: KEY }, hooks: { latch } });
    try {
      const browser = new Client(transport, manager.cookie.name, { 'user-agent': FIREFOX, ...CLAIMED });
      expect((await browser.request('POST', '/login?user=ada')).status).toBe(200);
      const stored = await manager.load(manager.readCookie(browser.header ?? undefined) as string);
      expect(Object.keys(stored?.get('_binding') as Record<string, string>)).toEqual(['user-agent']);
    } finally {
      await transport.close();
    }
  });
});
