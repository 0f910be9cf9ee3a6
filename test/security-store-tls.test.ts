import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/core/manager.js';
import { openPostgresStore } from '../src/stores/postgres.js';
import { openRedisStore } from '../src/stores/redis.js';
import { encryptedStore, generateEncryptionKey } from '../src/stores/encrypted.js';
import { createTestPki } from './helpers/tls.js';
import type { TestPki } from './helpers/tls.js';
import { startTlsPostgres } from './helpers/tls-postgres.js';
import type { TlsPostgres } from './helpers/tls-postgres.js';

const SECRET = 'store-tls-test-secret-0123456789abcdefghijk';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A private redis-server that speaks only TLS, with certificates from the test CA. */
async function startTlsRedis(pki: TestPki, requireClientCert: boolean): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const args = [
    '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
    '--tls-cert-file', pki.server.certPath, '--tls-key-file', pki.server.keyPath, '--tls-ca-cert-file', pki.ca.certPath,
    '--tls-auth-clients', requireClientCert ? 'yes' : 'no',
    '--save', '', '--appendonly', 'no', '--dir', pki.dir,
  ];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`redis-server with TLS did not start:\n${output}`)), 15_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error('redis-server was not found on PATH: install Redis 7 with TLS (apt-get install redis-server) to run these tests', { cause: error }));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}:\n${output}`));
    });
  });
  return { port, child };
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

describe('store connections over TLS (rediss://)', () => {
  let pki: TestPki;
  let plain: { port: number; child: ChildProcess };
  let mutual: { port: number; child: ChildProcess };

  beforeAll(async () => {
    pki = createTestPki();
    [plain, mutual] = await Promise.all([startTlsRedis(pki, false), startTlsRedis(pki, true)]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([stop(plain?.child), stop(mutual?.child)]);
    pki?.cleanup();
  });

  it('a session round-trips through an encrypted store over rediss:// verified against the test CA', async () => {
    const inner = await openRedisStore(`rediss://127.0.0.1:${plain.port}?prefix=tls-${randomBytes(4).toString('hex')}:`, { clientOptions: { tls: { ca: pki.ca.cert, servername: 'localhost' } } });
    const manager = new SessionManager({ store: encryptedStore(inner, { keys: [generateEncryptionKey('t1')] }), secrets: [SECRET] });
    try {
      const session = manager.create({ data: { over: 'tls' } });
      await manager.save(session);
      session.set('more', 1);
      await manager.save(session);
      expect((await manager.load(session.id))?.toJSON()).toEqual({ over: 'tls', more: 1 });
      await manager.destroy(session.id);
      expect(await manager.load(session.id)).toBeNull();
    } finally {
      await manager.close();
    }
  });

  /** 'ok', or the error a store operation failed with; no retries, so a TLS failure surfaces. */
  async function attempt(url: string, tls: Record<string, unknown>): Promise<string> {
    const store = await openRedisStore(url, { clientOptions: { tls, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 5000 } });
    try {
      await store.load('k'.repeat(43));
      return 'ok';
    } catch (error) {
      let cause: unknown = error;
      while (cause instanceof Error && cause.cause !== undefined) cause = cause.cause;
      return String(cause instanceof Error ? cause.message : cause);
    } finally {
      await store.close().catch(() => {});
    }
  }

  it('refuses a server whose certificate does not chain to a trusted CA', async () => {
    const url = `rediss://127.0.0.1:${plain.port}`;
    expect(await attempt(url, { ca: pki.ca.cert })).toBe('ok');
    expect(await attempt(url, { ca: pki.rogueCa.cert })).not.toBe('ok');
  });

  it('with tls-auth-clients yes, connects only with a client certificate from the CA (mTLS)', async () => {
    const url = `rediss://127.0.0.1:${mutual.port}`;
    expect(await attempt(url, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key })).toBe('ok');
    expect(await attempt(url, { ca: pki.ca.cert })).not.toBe('ok');
    expect(await attempt(url, { ca: pki.ca.cert, cert: pki.rogueClient.cert, key: pki.rogueClient.key })).not.toBe('ok');
  });
});

describe('store connections over TLS (PostgreSQL sslmode)', () => {
  let pki: TestPki;
  let server: TlsPostgres;

  beforeAll(async () => {
    pki = createTestPki();
    server = await startTlsPostgres(pki);
  }, 90_000);

  afterAll(async () => {
    await server?.stop();
    pki?.cleanup();
  });

  /** 'ok', or the innermost error of a store operation. */
  async function attempt(url: string): Promise<string> {
    let store: Awaited<ReturnType<typeof openPostgresStore>> | undefined;
    try {
      store = await openPostgresStore(url, { table: `tls_${randomBytes(4).toString('hex')}` });
      const manager = new SessionManager({ store, secrets: [SECRET] });
      const session = manager.create({ data: { over: 'tls' } });
      await manager.save(session);
      return (await manager.load(session.id))?.get('over') === 'tls' ? 'ok' : 'lost';
    } catch (error) {
      let cause: unknown = error;
      while (cause instanceof Error && cause.cause !== undefined) cause = cause.cause;
      return String(cause instanceof Error ? cause.message : cause);
    } finally {
      await store?.close().catch(() => {});
    }
  }

  it('sslmode=verify-full with the test CA as sslrootcert works', async () => {
    expect(await attempt(`${server.url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(pki.ca.certPath)}`)).toBe('ok');
  });

  it('verify-full refuses a server certificate from an untrusted CA; the server refuses plain connections', async () => {
    expect(await attempt(`${server.url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(pki.rogueCa.certPath)}`)).not.toBe('ok');
    expect(await attempt(`${server.url}?sslmode=disable`)).toMatch(/no encryption|pg_hba|reject/i);
  });
});
