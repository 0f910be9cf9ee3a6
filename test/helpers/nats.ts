import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './postgres-cluster.js';

/** The NATS server (with JetStream) that the NATS tests share. */
export const NATS_URL = process.env.ES_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

const NATS_MISSING = 'nats-server could not be started: install NATS Server 2.9 or later (Debian: apt-get install nats-server; or https://github.com/nats-io/nats-server/releases) or set ES_TEST_NATS_SERVER';
const READY_TIMEOUT_MS = 10_000;

export interface TestNats {
  readonly port: number;
  readonly url: string;
  /** kill -9: JetStream keeps only what it acknowledged (written to its files before the answer). */
  kill(): Promise<void>;
  /** Starts it again on the same port and storage folder. */
  start(): Promise<void>;
  /** Kills it and removes its folder. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * A private `nats-server` on a free loopback port with JetStream on file storage in a temporary
 * folder (or without JetStream), ready when the server says so.
 */
export async function startNats(options: { jetstream?: boolean; tls?: { certPath: string; keyPath: string; clientCaPath?: string } } = {}): Promise<TestNats> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'es-nats-'));
  const tls = options.tls
    ? ['--tls', '--tlscert', options.tls.certPath, '--tlskey', options.tls.keyPath, ...(options.tls.clientCaPath ? ['--tlsverify', '--tlscacert', options.tls.clientCaPath] : [])]
    : [];
  const args = ['-a', '127.0.0.1', '-p', String(port), ...(options.jetstream === false ? [] : ['-js', '-sd', dir]), ...tls];
  let child: ChildProcess | null = null;
  const server: TestNats = {
    port,
    url: `nats://127.0.0.1:${port}`,
    async kill() {
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      }
    },
    async start() {
      await server.kill();
      child = await launch(args);
    },
    async stop() {
      await server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}

/** Resolves once the server logs "Server is ready" (JetStream has recovered its streams by then). */
function launch(args: string[]): Promise<ChildProcess> {
  const child = spawn(process.env.ES_TEST_NATS_SERVER ?? 'nats-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nats-server did not get ready within ${READY_TIMEOUT_MS} ms: ${log.trim()}`));
    }, READY_TIMEOUT_MS);
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    child.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('Server is ready')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('error', (error) => fail(new Error(`${NATS_MISSING} (${error.message})`, { cause: error })));
    child.once('exit', (code) => fail(new Error(`nats-server exited with code ${code}: ${log.trim()}`)));
  });
}
