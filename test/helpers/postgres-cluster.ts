import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A throwaway PostgreSQL cluster on a free port, for tests that stop and restart the server. */
export interface PrivateCluster {
  url: string;
  start: () => Promise<void>;
  /** `pg_ctl stop -m immediate`: like a crash, no shutdown checkpoint. */
  crash: () => Promise<void>;
  /** Stops the server if it runs and removes every file. */
  destroy: () => Promise<void>;
}

/** initdb, pg_ctl and postgres: ES_TEST_PG_BIN, else `pg_config --bindir`, else Debian's layout. */
export async function binDir(): Promise<string> {
  if (process.env.ES_TEST_PG_BIN) return process.env.ES_TEST_PG_BIN;
  try {
    const { stdout } = await run('pg_config', ['--bindir']);
    if (existsSync(join(stdout.trim(), 'initdb'))) return stdout.trim();
  } catch {
    // fall through to the Debian layout
  }
  const versions = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a)) : [];
  for (const version of versions) if (existsSync(`/usr/lib/postgresql/${version}/bin/initdb`)) return `/usr/lib/postgresql/${version}/bin`;
  throw new Error('initdb not found: install the PostgreSQL server package (Debian: apt-get install postgresql-15) or set ES_TEST_PG_BIN to its bin folder');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * initdb refuses to run as root, so as root (CI) every server command runs as the `postgres`
 * OS user through runuser, in a temporary folder it owns.
 */
export async function createPrivateCluster(): Promise<PrivateCluster> {
  const bin = await binDir();
  const dir = await mkdtemp(join(tmpdir(), 'es-pg-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { stdout: uid } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(uid), Number(gid));
  }
  const pgRun = async (command: string, args: string[]) => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, command), ...args]] : [join(bin, command), args];
    return run(file, argv, { cwd: dir, timeout: 60_000 });
  };
  const port = await freePort();
  let running = false;
  try {
    await pgRun('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`initdb failed (${error instanceof Error ? error.message : String(error)})`, { cause: error });
  }
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c shared_buffers=16MB -c max_connections=30`;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start: async () => {
      await pgRun('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);
      running = true;
    },
    crash: async () => {
      await pgRun('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      running = false;
    },
    destroy: async () => {
      try {
        if (running) await pgRun('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}
