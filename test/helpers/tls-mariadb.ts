import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmod, chown, copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { freePort } from './postgres-cluster.js';
import type { Issued, TestPki } from './tls.js';

const run = promisify(execFile);

export interface TlsMariadb {
  /** `mysql://es:PASSWORD@127.0.0.1:PORT/es`: a user that must use TLS (`REQUIRE SSL`), without TLS parameters. */
  url: string;
  /** The same server and database for a user that must present a client certificate from the test CA (`REQUIRE X509`). */
  x509Url: string;
  stop(): Promise<void>;
}

/** The first of `names` found on PATH (or in /usr/sbin, which is not on every user's PATH). */
async function which(names: string[]): Promise<string> {
  for (const name of names) {
    for (const candidate of [name, `/usr/sbin/${name}`, `/usr/bin/${name}`]) {
      try {
        await run(candidate, ['--version'], { timeout: 10_000 });
        return candidate;
      } catch {
        // try the next one
      }
    }
  }
  throw new Error(`${names.join(' / ')} not found: install the MariaDB server package (Debian: apt-get install mariadb-server) to run the MySQL TLS tests`);
}

/**
 * A private MariaDB server on a free port of 127.0.0.1 with a certificate from the test CA
 * (`pki.server`, which names 127.0.0.1 and localhost, unless `certificate` is given) and
 * `require_secure_transport=ON`, in a temporary datadir. As root, the server runs as the `mysql`
 * OS user (through runuser). Setup goes through the server's own Unix socket, where the account
 * running the tests is the administrator (unix_socket authentication).
 */
export async function startTlsMariadb(pki: TestPki, certificate: Issued = pki.server): Promise<TlsMariadb> {
  const [installDb, server] = await Promise.all([which(['mariadb-install-db', 'mysql_install_db']), which(['mariadbd', 'mysqld'])]);
  const dir = await mkdtemp(join(tmpdir(), 'es-mariadb-tls-'));
  const data = join(dir, 'data');
  const socket = join(dir, 'sock');
  const pidFile = join(dir, 'mariadb.pid');
  const asRoot = process.getuid?.() === 0;
  let owner: { uid: number; gid: number } | null = null;
  const as = (file: string, args: string[]): [string, string[]] => (asRoot ? ['runuser', ['-u', 'mysql', '--', file, ...args]] : [file, args]);
  let child: ChildProcess | undefined;
  let output = '';

  const stop = async (): Promise<void> => {
    try {
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child?.once('exit', resolve));
        // The server itself (runuser may not pass signals on); runuser then reaps it and exits.
        // Its data is thrown away, so no clean shutdown.
        const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
        if (pid > 0 && pid !== child.pid) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        } else {
          child.kill('SIGKILL');
        }
        const timer = setTimeout(() => child?.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  try {
    if (asRoot) {
      const { stdout: uid } = await run('id', ['-u', 'mysql']);
      const { stdout: gid } = await run('id', ['-g', 'mysql']);
      owner = { uid: Number(uid), gid: Number(gid) };
      await chown(dir, owner.uid, owner.gid);
    }
    const files: Record<string, string> = { 'ca.crt': pki.ca.certPath, 'server.crt': certificate.certPath, 'server.key': certificate.keyPath };
    for (const [name, from] of Object.entries(files)) {
      const to = join(dir, name);
      await copyFile(from, to);
      await chmod(to, 0o600);
      if (owner) await chown(to, owner.uid, owner.gid);
    }
    const [installFile, installArgs] = as(installDb, ['--no-defaults', `--datadir=${data}`, '--skip-test-db', '--auth-root-authentication-method=socket']);
    await run(installFile, installArgs, { cwd: dir, timeout: 60_000 });

    const port = await freePort();
    const [serverFile, serverArgs] = as(server, [
      '--no-defaults',
      `--datadir=${data}`,
      `--socket=${socket}`,
      `--pid-file=${pidFile}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      '--skip-networking=0',
      `--ssl-ca=${join(dir, 'ca.crt')}`,
      `--ssl-cert=${join(dir, 'server.crt')}`,
      `--ssl-key=${join(dir, 'server.key')}`,
      '--require-secure-transport=ON',
      '--skip-name-resolve',
      '--innodb-buffer-pool-size=16M',
      '--innodb-log-file-size=8M',
      '--innodb-use-native-aio=0',
      '--skip-performance-schema',
      '--key-buffer-size=1M',
      '--max-connections=40',
      '--log-error=' + join(dir, 'error.log'),
    ]);
    child = spawn(serverFile, serverArgs, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<never>((_resolve, reject) => {
      child?.once('error', reject);
      child?.once('exit', (code, signal) => reject(new Error(`mariadbd exited early (${code ?? signal})`)));
    });
    exited.catch(() => undefined);

    const password = `pw-${Math.random().toString(36).slice(2)}`;
    const admin = await Promise.race([connectAdmin(socket, asRoot ? 'root' : userInfo().username), exited]);
    try {
      await admin.query('CREATE DATABASE es');
      await admin.query('CREATE USER \'es\'@\'127.0.0.1\' IDENTIFIED BY ? REQUIRE SSL', [password]);
      await admin.query('CREATE USER \'es_x509\'@\'127.0.0.1\' IDENTIFIED BY ? REQUIRE X509', [password]);
      await admin.query('GRANT ALL ON es.* TO \'es\'@\'127.0.0.1\', \'es_x509\'@\'127.0.0.1\'');
    } finally {
      await admin.end();
    }
    return {
      url: `mysql://es:${password}@127.0.0.1:${port}/es`,
      x509Url: `mysql://es_x509:${password}@127.0.0.1:${port}/es`,
      stop,
    };
  } catch (error) {
    const log = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
    await stop().catch(() => undefined);
    throw new Error(`the TLS MariaDB server could not start (${error instanceof Error ? error.message : String(error)})\n${output}${log.slice(-4000)}`, { cause: error });
  }
}

/** Connects over the Unix socket once the server accepts connections (at most 30 s). */
async function connectAdmin(socketPath: string, user: string): Promise<mysql.Connection> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await mysql.createConnection({ socketPath, user, connectTimeout: 2000 });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
