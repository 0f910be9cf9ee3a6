import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/core/manager.js';
import { SessionError } from '../src/core/errors.js';
import { openMysqlStore } from '../src/stores/mysql.js';
import { createTestPki } from './helpers/tls.js';
import type { TestPki } from './helpers/tls.js';
import { startTlsMariadb } from './helpers/tls-mariadb.js';
import type { TlsMariadb } from './helpers/tls-mariadb.js';

const SECRET = 'store-tls-test-secret-0123456789abcdefghijk';

/** `?ssl-...` query parameters from file paths. */
function tls(params: Record<string, string>): string {
  return `?${new URLSearchParams(params).toString()}`;
}

describe('store connections over TLS (MySQL/MariaDB ssl-mode)', () => {
  let pki: TestPki;
  let server: TlsMariadb;

  beforeAll(async () => {
    pki = createTestPki();
    server = await startTlsMariadb(pki);
  }, 90_000);

  afterAll(async () => {
    await server?.stop();
    pki?.cleanup();
  });

  /** 'ok' after a session round trip, or the error the store failed with. */
  async function attempt(url: string): Promise<'ok' | SessionError | Error> {
    let store: Awaited<ReturnType<typeof openMysqlStore>> | undefined;
    try {
      store = await openMysqlStore(url, { table: `tls_${randomBytes(4).toString('hex')}`, pool: { connectionLimit: 2, connectTimeout: 5000 } });
      const manager = new SessionManager({ store, secrets: [SECRET] });
      const session = manager.create({ data: { over: 'tls' } });
      await manager.save(session);
      session.set('more', 1);
      await manager.save(session);
      const loaded = await manager.load(session.id);
      if (JSON.stringify(loaded?.toJSON()) !== JSON.stringify({ over: 'tls', more: 1 })) return new Error('the session did not round-trip');
      await manager.destroy(session.id);
      if ((await manager.load(session.id)) !== null) return new Error('the session survived destroy');
      return 'ok';
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    } finally {
      await store?.close().catch(() => {});
    }
  }

  /** The innermost cause's message. */
  function rootMessage(error: unknown): string {
    let cause: unknown = error;
    while (cause instanceof Error && cause.cause !== undefined) cause = cause.cause;
    return cause instanceof Error ? cause.message : String(cause);
  }

  it('ssl-mode=verify-full with the test CA as ssl-ca works (create, update, load, destroy)', async () => {
    expect(await attempt(`${server.url}${tls({ 'ssl-mode': 'verify-full', 'ssl-ca': pki.ca.certPath })}`)).toBe('ok');
    // verify-full is the default once a CA is given.
    expect(await attempt(`${server.url}${tls({ 'ssl-ca': pki.ca.certPath })}`)).toBe('ok');
  });

  it('the server refuses a plain connection: ESESS_STORE_UNAVAILABLE with the MySQL code', async () => {
    for (const url of [server.url, `${server.url}${tls({ 'ssl-mode': 'disabled' })}`]) {
      const result = await attempt(url);
      expect(result).toBeInstanceOf(SessionError);
      expect(result).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', context: { store: 'mysql' } });
      expect(rootMessage(result)).toMatch(/insecure transport|secure_transport|access denied/i);
    }
  });

  it('verify-full and verify-ca refuse a server certificate from an untrusted CA; required encrypts without checking', async () => {
    for (const mode of ['verify-full', 'verify-ca']) {
      const result = await attempt(`${server.url}${tls({ 'ssl-mode': mode, 'ssl-ca': pki.rogueCa.certPath })}`);
      expect(result).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
      expect(rootMessage(result)).toMatch(/certificate/i);
    }
    // Node's own CAs do not include the test CA either.
    expect(await attempt(`${server.url}${tls({ 'ssl-mode': 'verify-full' })}`)).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
    expect(await attempt(`${server.url}${tls({ 'ssl-mode': 'verify-ca', 'ssl-ca': pki.ca.certPath })}`)).toBe('ok');
    expect(await attempt(`${server.url}${tls({ 'ssl-mode': 'required' })}`)).toBe('ok');
  });

  it('a REQUIRE X509 account connects only with a client certificate from the CA (ssl-cert, ssl-key)', async () => {
    const ca = pki.ca.certPath;
    expect(await attempt(`${server.x509Url}${tls({ 'ssl-ca': ca, 'ssl-cert': pki.client.certPath, 'ssl-key': pki.client.keyPath })}`)).toBe('ok');
    expect(await attempt(`${server.x509Url}${tls({ 'ssl-ca': ca })}`)).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
    expect(await attempt(`${server.x509Url}${tls({ 'ssl-ca': ca, 'ssl-cert': pki.rogueClient.certPath, 'ssl-key': pki.rogueClient.keyPath })}`)).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
  });

  it('bad TLS parameters are ESESS_CONFIG when the store opens', async () => {
    const base = server.url;
    const cases: Record<string, string>[] = [
      { 'ssl-mode': 'verify-identity-please' },
      { 'ssl-ca': `${pki.dir}/missing.pem` },
      { 'ssl-ca': pki.ca.certPath, 'ssl-cert': pki.client.certPath },
      { 'ssl-mode': 'disabled', 'ssl-ca': pki.ca.certPath },
      { 'ssl-ca': '' },
    ];
    for (const params of cases) {
      await expect(openMysqlStore(`${base}${tls(params)}`)).rejects.toMatchObject({ code: 'ESESS_CONFIG', context: { option: 'store' } });
    }
    await expect(openMysqlStore(`${base}${tls({ 'ssl-ca': pki.ca.certPath })}&ssl=${encodeURIComponent('{"rejectUnauthorized":false}')}`)).rejects.toMatchObject({ code: 'ESESS_CONFIG' });
  });
});
