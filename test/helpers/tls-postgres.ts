import { execFile } from 'node:child_process';
import { chmod, chown, copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { binDir, freePort } from './postgres-cluster.js';
import type { TestPki } from './tls.js';

const run = promisify(execFile);

export interface TlsPostgres {
  /** `postgres://postgres@127.0.0.1:PORT/postgres`, without TLS parameters. */
  url: string;
  stop(): Promise<void>;
}

/**
 * A private PostgreSQL server with `ssl=on` and a certificate from the test CA, which accepts
 * TCP connections only over TLS (`hostssl`). As root, server commands run as the `postgres` user.
 */
export async function startTlsPostgres(pki: TestPki): Promise<TlsPostgres> {
  const bin = await binDir();
  const dir = await mkdtemp(join(tmpdir(), 'es-pg-tls-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  let owner: { uid: number; gid: number } | null = null;
  if (asRoot) {
    const { stdout: uid } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    owner = { uid: Number(uid), gid: Number(gid) };
    await chown(dir, owner.uid, owner.gid);
  }
  const pgRun = (command: string, args: string[]) => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, command), ...args]] : [join(bin, command), args];
    return run(file, argv, { cwd: dir, timeout: 60_000 });
  };
  const port = await freePort();
  try {
    await pgRun('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    const cert = join(dir, 'server.crt');
    const key = join(dir, 'server.key');
    await copyFile(pki.server.certPath, cert);
    await copyFile(pki.server.keyPath, key);
    await chmod(key, 0o600);
    if (owner) {
      await chown(cert, owner.uid, owner.gid);
      await chown(key, owner.uid, owner.gid);
    }
    const hba = join(data, 'pg_hba.conf');
    await writeFile(hba, 'local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n');
    if (owner) await chown(hba, owner.uid, owner.gid);
    const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c shared_buffers=16MB -c max_connections=20 -c ssl=on -c ssl_cert_file=${cert} -c ssl_key_file=${key}`;
    await pgRun('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`the TLS PostgreSQL server could not start (${error instanceof Error ? error.message : String(error)})`, { cause: error });
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      try {
        await pgRun('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}
