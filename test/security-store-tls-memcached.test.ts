import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:tls';
import type memjs from 'memjs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SessionError } from '../src/core/errors.js';
import { SessionManager } from '../src/core/manager.js';
import { memcachedStore, memcachedClient, openMemcachedStore } from '../src/stores/memcached.js';
import { runStoreConformance } from '../src/testing/index.js';
import { startMemcached } from './helpers/memcached.js';
import type { TestMemcached } from './helpers/memcached.js';
import { startService } from './helpers/service.js';
import { createTestPki, issueServerCertificate, rootMessage, sessionRoundTrip } from './helpers/tls.js';
import type { TestPki } from './helpers/tls.js';

const SECRET = 'store-tls-test-secret-0123456789abcdefghijk';
const silent = { logger: { log: () => undefined } };

/** `?ssl-...` query parameters from file paths. */
function tls(params: Record<string, string>): string {
  return `?${new URLSearchParams(params).toString()}`;
}

let pki: TestPki;
/** TLS only, with a certificate for 127.0.0.1 and localhost. */
let server: TestMemcached;
/** TLS only, and a client certificate from the test CA is required. */
let mutual: TestMemcached;
/** TLS only, with certificates from the test CA that name another host, or only 127.0.0.1. */
let misnamed: TestMemcached;
let namesOnlyIp: TestMemcached;
/** Plain TCP. */
let plain: TestMemcached;
let client: memjs.Client;

beforeAll(async () => {
  pki = createTestPki();
  const elsewhere = issueServerCertificate(pki, 'memcached-elsewhere', ['DNS:elsewhere.example']);
  const onlyIp = issueServerCertificate(pki, 'memcached-ip', ['IP:127.0.0.1']);
  [server, mutual, misnamed, namesOnlyIp, plain] = await Promise.all([
    startMemcached({ tls: pki.server }),
    startMemcached({ tls: pki.server, clientCa: pki.ca }),
    startMemcached({ tls: elsewhere }),
    startMemcached({ tls: onlyIp }),
    startMemcached(),
  ]);
  client = await memcachedClient(`127.0.0.1:${server.port}`, { tls: { ca: pki.ca.cert }, ...silent });
}, 60_000);

afterAll(async () => {
  client?.close();
  await Promise.all([server, mutual, misnamed, namesOnlyIp, plain].map((running) => running?.stop()));
  pki?.cleanup();
});

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'memcached over TLS',
  fakeClock: true,
  capabilities: { nativeTtl: true, cas: true, userIndex: false, sweep: false, scan: true, replica: true },
  multiClient: true,
  corrupts: true,
  setup: async ({ clock }) => ({
    store: memcachedStore({ client, clock }),
    connect: () => openMemcachedStore(`${server.url}${tls({ 'ssl-ca': pki.ca.certPath })}`, { clock }),
    corrupt: async (key) => {
      await client.set(`es:${key}`, '{"c": "not a session"', { expires: 3600 });
    },
  }),
});

describe('store connections over TLS (Memcached ssl-mode)', () => {
  /** 'ok' after a session round trip and a walk that finds it, or the error the store failed with. */
  const attempt = (url: string) =>
    sessionRoundTrip(
      // A prefix of its own, so the walk finds exactly this session.
      () => openMemcachedStore(url.replace(/\?|$/, `/?prefix=tls-${randomBytes(4).toString('hex')}:&`), { client: { retries: 1 } }),
      SECRET,
      async (store) => ((await store.scan?.(null, 10))?.keys.length === 1 ? null : 'the walk did not find the session'),
    );

  it('ssl-mode=verify-full with the test CA as ssl-ca works (create, update, load, scan, destroy); it is the default once a CA is given', async () => {
    expect(await attempt(`${server.url}${tls({ 'ssl-mode': 'verify-full', 'ssl-ca': pki.ca.certPath })}`)).toBe('ok');
    expect(await attempt(`${server.url}${tls({ 'ssl-ca': pki.ca.certPath })}`)).toBe('ok');
    expect(await attempt(`memcached://localhost:${server.port}${tls({ 'ssl-ca': pki.ca.certPath })}`), 'a host name the certificate names').toBe('ok');
  });

  it('the server speaks only TLS: a plain client gets ESESS_STORE_UNAVAILABLE', async () => {
    for (const url of [server.url, `${server.url}${tls({ 'ssl-mode': 'disabled' })}`]) {
      expect(await attempt(url)).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', context: { store: 'memcached' } });
    }
  });

  it('TLS never falls back to plain TCP: a plain server is ESESS_STORE_UNAVAILABLE, whatever the mode', async () => {
    for (const mode of ['required', 'verify-full']) {
      const result = await attempt(`${plain.url}${tls({ 'ssl-mode': mode, 'ssl-ca': pki.ca.certPath })}`);
      expect(result).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
    }
  });

  it('verify-full and verify-ca refuse a server certificate from an untrusted CA; required encrypts without checking', async () => {
    for (const mode of ['verify-full', 'verify-ca']) {
      const result = await attempt(`${server.url}${tls({ 'ssl-mode': mode, 'ssl-ca': pki.rogueCa.certPath })}`);
      expect(result).toBeInstanceOf(SessionError);
      expect(result).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', context: { store: 'memcached' } });
      expect(rootMessage(result)).toMatch(/certificate/i);
    }
    // Node's own CAs do not include the test CA either.
    expect(await attempt(`${server.url}${tls({ 'ssl-mode': 'verify-full' })}`)).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
    expect(await attempt(`${server.url}${tls({ 'ssl-mode': 'required' })}`)).toBe('ok');
  });

  it('verify-full refuses a certificate from the trusted CA that does not name the host (an IP address or a host name); verify-ca accepts it', async () => {
    const verifyFull: Record<string, string>[] = [{ 'ssl-mode': 'verify-full', 'ssl-ca': pki.ca.certPath }, { 'ssl-ca': pki.ca.certPath }];
    for (const url of [misnamed.url, `memcached://localhost:${namesOnlyIp.port}`]) {
      for (const params of verifyFull) {
        const refused = await attempt(`${url}${tls(params)}`);
        expect(refused).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', context: { store: 'memcached' } });
        expect(rootMessage(refused)).toMatch(/does not match certificate's altnames/);
      }
      expect(await attempt(`${url}${tls({ 'ssl-mode': 'verify-ca', 'ssl-ca': pki.ca.certPath })}`)).toBe('ok');
    }
  });

  it('with ssl_verify_mode=2, connects only with a client certificate from the CA (ssl-cert, ssl-key)', async () => {
    const ca = pki.ca.certPath;
    expect(await attempt(`${mutual.url}${tls({ 'ssl-ca': ca, 'ssl-cert': pki.client.certPath, 'ssl-key': pki.client.keyPath })}`)).toBe('ok');
    const refused: Record<string, string>[] = [{ 'ssl-ca': ca }, { 'ssl-ca': ca, 'ssl-cert': pki.rogueClient.certPath, 'ssl-key': pki.rogueClient.keyPath }];
    for (const params of refused) {
      const result = await attempt(`${mutual.url}${tls(params)}`);
      expect(result).toBeInstanceOf(SessionError);
      expect(result).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', context: { store: 'memcached' } });
    }
  });

  it('memcachedClient() passes mutual TLS to the store, its key walk included; scan() over an untrusted server fails', async () => {
    const mtls = await memcachedClient(`127.0.0.1:${mutual.port}`, { tls: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key }, ...silent });
    const rogue = await memcachedClient(`127.0.0.1:${server.port}`, { tls: { ca: pki.rogueCa.cert }, ...silent });
    try {
      const prefix = `mtls-${randomBytes(4).toString('hex')}:`;
      const store = memcachedStore({ client: mtls, prefix });
      const manager = new SessionManager({ store, secrets: [SECRET] });
      const session = manager.create({ data: { mutual: true } });
      await manager.save(session);
      expect((await manager.load(session.id))?.get('mutual')).toBe(true);
      expect((await store.scan!(null, 10)).keys).toHaveLength(1);
      await expect(memcachedStore({ client: rogue }).scan!(null, 10)).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', context: { operation: 'scan' } });
    } finally {
      mtls.close();
      rogue.close();
    }
  });

  it('a request in flight when the server closes the TLS connection fails with ESESS_STORE_UNAVAILABLE instead of waiting for ever', async () => {
    // A real memcached cannot be made to close a connection with a request in flight at a chosen
    // moment; this TLS server does it on the first request (memjs alone would wait for ever).
    const closing = createServer({ cert: pki.server.cert, key: pki.server.key }, (socket) => socket.once('data', () => socket.end()));
    await new Promise<void>((resolve) => closing.listen(0, '127.0.0.1', resolve));
    const { port } = closing.address() as { port: number };
    const store = await openMemcachedStore(`memcached://127.0.0.1:${port}${tls({ 'ssl-ca': pki.ca.certPath })}`, { client: { retries: 1 } });
    try {
      await expect(store.load('k'.repeat(43))).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', context: { store: 'memcached', operation: 'load' } });
    } finally {
      await store.close();
      await new Promise((resolve) => closing.close(resolve));
    }
  });

  it('the session service opens a memcached:// URL with TLS parameters: a request creates a session and another reads it', async () => {
    const running = await startService({ store: `${server.url}${tls({ 'ssl-ca': pki.ca.certPath })}`, secret: SECRET, sweepIntervalMs: 0 });
    try {
      const created = await running.request('POST', '/v1/sessions', { json: { data: { over: 'tls' } } });
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as { id: string };
      const read = await running.request('GET', `/v1/sessions/${id}`);
      expect(read.status).toBe(200);
      expect(((await read.json()) as { data: unknown }).data).toEqual({ over: 'tls' });
    } finally {
      await running.close();
    }
  });

  it('bad TLS settings are ESESS_CONFIG when the store or client is made, naming the option', async () => {
    const notPem = join(pki.dir, 'not-a-certificate.pem');
    writeFileSync(notPem, 'not a certificate\n');
    const cases: Record<string, string>[] = [
      { 'ssl-mode': 'verify-identity-please' },
      { 'ssl-ca': join(pki.dir, 'missing.pem') },
      { 'ssl-ca': pki.ca.certPath, 'ssl-cert': pki.client.certPath },
      { 'ssl-mode': 'disabled', 'ssl-ca': pki.ca.certPath },
      { 'ssl-ca': '' },
      { 'ssl-ca': pki.ca.certPath, 'ssl-cert': notPem, 'ssl-key': pki.client.keyPath },
    ];
    for (const params of cases) {
      await expect(openMemcachedStore(`${server.url}${tls(params)}`)).rejects.toMatchObject({ code: 'ESESS_CONFIG', context: { option: 'store' } });
    }
    await expect(memcachedClient(`127.0.0.1:${server.port}`, { tls: { cert: 'not pem', key: 'not pem' } })).rejects.toMatchObject({ code: 'ESESS_CONFIG', context: { option: 'tls' } });
    await expect(memcachedClient('', { tls: {} })).rejects.toMatchObject({ code: 'ESESS_CONFIG', context: { option: 'servers' } });
  });
});
