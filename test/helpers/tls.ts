import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SessionManager } from '../../src/core/manager.js';
import type { SessionStore } from '../../src/core/types.js';

/** A certificate and its key, as PEM, and where they were written. */
export interface Issued {
  cert: Buffer;
  key: Buffer;
  certPath: string;
  keyPath: string;
}

export interface TestPki {
  dir: string;
  ca: Issued;
  /** For 127.0.0.1 and localhost, signed by `ca`. */
  server: Issued;
  /** A client certificate signed by `ca` (for mTLS). */
  client: Issued;
  /** Another CA nobody trusts, and a client certificate it signed. */
  rogueCa: Issued;
  rogueClient: Issued;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed (the TLS tests need the openssl command: apt-get install openssl):\n${stderr}`);
  }
}

function issued(dir: string, name: string): Issued {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  return { cert: readFileSync(certPath), key: readFileSync(keyPath), certPath, keyPath };
}

function makeCa(dir: string, name: string): Issued {
  openssl(['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return issued(dir, name);
}

function makeLeaf(dir: string, name: string, ca: string, extensions: string): Issued {
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
  return issued(dir, name);
}

function serverExtensions(subjectAltNames: readonly string[]): string {
  return `subjectAltName=${subjectAltNames.join(',')}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`;
}

/**
 * Another server certificate from the test CA of `pki`, naming exactly `subjectAltNames`
 * (`'DNS:localhost'`, `'IP:127.0.0.1'`), for host-name checks. Written to `pki.dir` as NAME.crt/.key.
 */
export function issueServerCertificate(pki: TestPki, name: string, subjectAltNames: readonly string[]): Issued {
  return makeLeaf(pki.dir, name, 'test-ca', serverExtensions(subjectAltNames));
}

/** A private certificate authority made by the test, with server and client certificates. */
export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'elastic-session-pki-'));
  const ca = makeCa(dir, 'test-ca');
  const server = makeLeaf(dir, 'server', 'test-ca', serverExtensions(['IP:127.0.0.1', 'DNS:localhost']));
  const client = makeLeaf(dir, 'client', 'test-ca', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  const rogueCa = makeCa(dir, 'rogue-ca');
  const rogueClient = makeLeaf(dir, 'rogue-client', 'rogue-ca', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  return { dir, ca, server, client, rogueCa, rogueClient, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface HttpsResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTPS request trusting `ca`, optionally presenting a client certificate. */
export function httpsRequest(url: string, options: { ca: Buffer; method?: string; json?: unknown; headers?: Record<string, string>; client?: Issued }): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const body = options.json === undefined ? undefined : JSON.stringify(options.json);
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        ca: options.ca,
        ...(options.client ? { cert: options.client.cert, key: options.client.key } : {}),
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }), ...options.headers },
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A session created, updated, loaded and destroyed through `open()`'s store, which is then
 * closed: 'ok', or the error it failed with (`check` may add a store-specific step).
 */
export async function sessionRoundTrip(open: () => Promise<SessionStore>, secret: string, check?: (store: SessionStore) => Promise<string | null>): Promise<'ok' | Error> {
  let store: SessionStore | undefined;
  try {
    store = await open();
    const manager = new SessionManager({ store, secrets: [secret] });
    const session = manager.create({ data: { over: 'tls' } });
    await manager.save(session);
    session.set('more', 1);
    await manager.save(session);
    const loaded = await manager.load(session.id);
    if (JSON.stringify(loaded?.toJSON()) !== JSON.stringify({ over: 'tls', more: 1 })) return new Error('the session did not round-trip');
    const problem = (await check?.(store)) ?? null;
    if (problem !== null) return new Error(problem);
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
export function rootMessage(error: unknown): string {
  let cause: unknown = error;
  while (cause instanceof Error && cause.cause !== undefined) cause = cause.cause;
  return cause instanceof Error ? cause.message : String(cause);
}
