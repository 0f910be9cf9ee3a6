// A private redis-server for the benchmarks: a free port on loopback, nothing persisted, killed and
// removed by stop().
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts redis-server and resolves once it answers: `{ port, admin (an ioredis client), Redis, version, stop() }`. */
export async function startRedis() {
  try {
    await promisify(execFile)('redis-server', ['--version']);
  } catch {
    throw new Error('redis-server was not found on PATH: install Redis 7 (apt-get install redis-server) to run the benchmarks');
  }
  const port = await freePort();
  const dir = mkdtempSync(join(os.tmpdir(), 'es-bench-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'], { stdio: 'ignore' });
  const { Redis } = await import('ioredis');
  const admin = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  for (let attempt = 0; ; attempt++) {
    try {
      await admin.connect();
      await admin.ping();
      break;
    } catch (error) {
      if (attempt > 100) throw new Error(`redis-server did not start: ${error.message}`);
      admin.disconnect();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    port,
    admin,
    Redis,
    version: /redis_version:(\S+)/.exec(await admin.info('server'))?.[1],
    async stop() {
      admin.disconnect();
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
