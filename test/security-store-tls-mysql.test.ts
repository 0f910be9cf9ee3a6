import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionError } from '../src/core/errors.js';
import { openMysqlStore } from '../src/stores/mysql.js';
import { createTestPki, issueServerCertificate, rootMessage, sessionRoundTrip } from './helpers/tls.js';
import type { TestPki } from './helpers/tls.js';
import { startTlsMariadb } from './helpers/tls-mariadb.js';
import type { TlsMariadb } from './helpers/tls-mariadb.js';

const SECRET = 'store-tls-test-secret-0123456789abcdefghijk';

/** `?ssl-...` query parameters from file paths. */
function tls(params: Record<string, string>): string {
  return `?${new URLSearchParams(params).toString()}`;
}

/** The same store URL with another host name for the same server. */
function atHost(url: string, host: string): string {
  const moved = new URL(url);
  moved.hostname = host;
  return moved.toString();
}

describe('store connections over TLS (MySQL/MariaDB ssl-mode)', () => {
  let pki: TestPki;
  let server: TlsMariadb;
  /** Servers whose certificates (from the same CA) name only `localhost`, or only `127.0.0.1`. */
  let namedLocalhost: TlsMariadb;
  let namedLoopbackIp: TlsMariadb;

  beforeAll(async () => {
    pki = createTestPki();
    server = await startTlsMariadb(pki);
    namedLocalhost = await startTlsMariadb(pki, issueServerCertificate(pki, 'server-localhost', ['DNS:localhost']));
    namedLoopbackIp = await startTlsMariadb(pki, issueServerCertificate(pki, 'server-127', ['IP:127.0.0.1']));
  }, 90_000);

  afterAll(async () => {
    await Promise.all([server?.stop(), namedLocalhost?.stop(), namedLoopbackIp?.stop()]);
    pki?.cleanup();
  });

  /** 'ok' after a session round trip, or the error the store failed with. */
  const attempt = (url: string) =>
    sessionRoundTrip(() => openMysqlStore(url, { table: `tls_${randomBytes(4).toString('hex')}`, pool: { connectionLimit: 2, connectTimeout: 5000 } }), SECRET);

  it('ssl-mode=verify-full with the test CA as ssl-ca works (create, update, load, destroy)', async () => {
    const byName = atHost(server.url, 'localhost');
    expect(await attempt(`${byName}${tls({ 'ssl-mode': 'verify-full', 'ssl-ca': pki.ca.certPath })}`)).toBe('ok');
    // verify-full is the default once a CA is given.
    expect(await attempt(`${byName}${tls({ 'ssl-ca': pki.ca.certPath })}`)).toBe('ok');
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
      const result = await attempt(`${atHost(server.url, 'localhost')}${tls({ 'ssl-mode': mode, 'ssl-ca': pki.rogueCa.certPath })}`);
      expect(result).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
      expect(rootMessage(result)).toMatch(/certificate/i);
    }
    // Node's own CAs do not include the test CA either.
    expect(await attempt(`${atHost(server.url, 'localhost')}${tls({ 'ssl-mode': 'verify-full' })}`)).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
    expect(await attempt(`${server.url}${tls({ 'ssl-mode': 'verify-ca', 'ssl-ca': pki.ca.certPath })}`)).toBe('ok');
    expect(await attempt(`${server.url}${tls({ 'ssl-mode': 'required' })}`)).toBe('ok');
  });

  it('verify-full checks the host name in the URL: a certificate from the trusted CA that does not name it is refused (ESESS_STORE_UNAVAILABLE) where verify-ca connects, and one that names it connects', async () => {
    const ca = pki.ca.certPath;
    const namesOnlyTheIp = atHost(namedLoopbackIp.url, 'localhost');
    const verifyFull: Record<string, string>[] = [{ 'ssl-mode': 'verify-full', 'ssl-ca': ca }, { 'ssl-ca': ca }];
    for (const params of verifyFull) {
      const refused = await attempt(`${namesOnlyTheIp}${tls(params)}`);
      expect(refused).toBeInstanceOf(SessionError);
      expect(refused).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', context: { store: 'mysql' } });
      expect(rootMessage(refused)).toMatch(/does not match certificate's altnames/);
    }
    expect(await attempt(`${namesOnlyTheIp}${tls({ 'ssl-mode': 'verify-ca', 'ssl-ca': ca })}`)).toBe('ok');
    expect(await attempt(`${atHost(namedLocalhost.url, 'localhost')}${tls({ 'ssl-mode': 'verify-full', 'ssl-ca': ca })}`)).toBe('ok');
  });

  it('verify-full to an IP address is refused when the store opens: mysql2 would check the certificate against "localhost", not the address', async () => {
    const ca = pki.ca.certPath;
    // Such a certificate names localhost only: mysql2 alone would accept it for 127.0.0.1.
    const verifyFull: Record<string, string>[] = [{ 'ssl-mode': 'verify-full', 'ssl-ca': ca }, { 'ssl-ca': ca }];
    for (const params of verifyFull) {
      const refused = await attempt(`${namedLocalhost.url}${tls(params)}`);
      expect(refused).toMatchObject({ code: 'ESESS_CONFIG', context: { option: 'store' } });
      expect((refused as SessionError).message).toMatch(/IP address as host.*ssl-mode=verify-ca/);
    }
    for (const named of [namedLocalhost, namedLoopbackIp]) expect(await attempt(`${named.url}${tls({ 'ssl-mode': 'verify-ca', 'ssl-ca': ca })}`)).toBe('ok');
  });

  it('a REQUIRE X509 account connects only with a client certificate from the CA (ssl-cert, ssl-key)', async () => {
    const ca = pki.ca.certPath;
    const x509 = atHost(server.x509Url, 'localhost');
    expect(await attempt(`${x509}${tls({ 'ssl-ca': ca, 'ssl-cert': pki.client.certPath, 'ssl-key': pki.client.keyPath })}`)).toBe('ok');
    expect(await attempt(`${x509}${tls({ 'ssl-ca': ca })}`)).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
    expect(await attempt(`${x509}${tls({ 'ssl-ca': ca, 'ssl-cert': pki.rogueClient.certPath, 'ssl-key': pki.rogueClient.keyPath })}`)).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
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
