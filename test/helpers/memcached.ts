import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { freePort } from './postgres-cluster.js';
import type { Issued } from './tls.js';

export interface TestMemcached {
  port: number;
  url: string;
  stop: () => Promise<void>;
}

export interface MemcachedOptions {
  /** `-I`: the item size limit. */
  itemSize?: string;
  port?: number;
  /** Speak only TLS (`-Z`, memcached built with TLS) with this certificate and key. */
  tls?: Issued;
  /** With `tls`: require client certificates from this CA (`ssl_verify_mode=2`). */
  clientCa?: Issued;
  /** More command-line arguments. */
  args?: readonly string[];
}

/**
 * A private `memcached` on a free loopback port (or `port`; UDP off), stopped by `stop()`.
 * Fails with a message saying how to install it when missing. As root it runs as `nobody`; it
 * reads the TLS files before switching, so they may stay private to root.
 */
export async function startMemcached(options: MemcachedOptions = {}): Promise<TestMemcached> {
  const port = options.port ?? (await freePort());
  const args = ['-p', String(port), '-U', '0', '-l', '127.0.0.1', '-m', '64', ...(options.args ?? [])];
  if (options.itemSize) args.push('-I', options.itemSize);
  if (options.tls) {
    const clientCa = options.clientCa ? `,ssl_ca_cert=${options.clientCa.certPath},ssl_verify_mode=2` : '';
    args.push('-Z', '-o', `ssl_chain_cert=${options.tls.certPath},ssl_key=${options.tls.keyPath}${clientCa}`);
  }
  // memcached refuses to run as root without naming a user to switch to.
  if (process.getuid?.() === 0) args.push('-u', 'nobody');
  const child: ChildProcess = spawn(process.env.ES_TEST_MEMCACHED ?? 'memcached', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (error) => reject(new Error(`memcached could not be started (${error.message}): install it (Debian: apt-get install memcached) or set ES_TEST_MEMCACHED`, { cause: error })));
    child.once('exit', (code) => reject(new Error(`memcached exited with code ${code}: ${stderr.trim()}`)));
  });
  failed.catch(() => undefined);
  for (let attempt = 0; ; attempt++) {
    const ready = await Promise.race([canConnect(port), failed]);
    if (ready) break;
    if (attempt > 200) {
      child.kill();
      throw new Error(`memcached did not listen on port ${port}: ${stderr.trim()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return {
    port,
    url: `memcached://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
