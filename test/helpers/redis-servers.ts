import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';

/**
 * Private redis-server processes for tests: free ports, temp folders, persistence off, and
 * every process killed in `stopAll()` (and on exit, so a crashed run leaves no orphans).
 */

const run = promisify(execFile);
const live = new Set<ChildProcess>();
const folders = new Set<string>();

process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface RedisServer {
  readonly port: number;
  readonly dir: string;
  readonly pid: number | undefined;
  /** Whether the process is running. */
  readonly running: boolean;
  /** kill -9. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that stops answering without closing its connections. */
  pause(): void;
  resume(): void;
  /** Starts the server again on the same port and folder. */
  restart(): Promise<void>;
}

const REDIS_MISSING = 'redis-server was not found on PATH: install Redis 7 (apt-get install redis-server) to run these tests';

export async function checkRedisBinaries(): Promise<void> {
  try {
    await run('redis-server', ['--version']);
    await run('redis-cli', ['--version']);
  } catch (error) {
    throw new Error(REDIS_MISSING, { cause: error });
  }
}

/** A port that is free, and whose cluster bus port (+10000) is free too when asked. */
export async function freePort(withBus = false): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = withBus ? 20_000 + Math.floor(Math.random() * 25_000) : 0;
    const chosen = await listenable(port);
    if (chosen === null) continue;
    if (!withBus || (await listenable(chosen + 10_000)) !== null) return chosen;
  }
  throw new Error('no free port found in 50 attempts');
}

function listenable(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(null));
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const chosen = typeof address === 'object' && address ? address.port : null;
      server.close(() => resolve(chosen));
    });
  });
}

export async function startRedis(options: { port?: number; args?: string[]; cluster?: boolean } = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort(options.cluster));
  const dir = mkdtempSync(join(tmpdir(), 'es-redis-'));
  folders.add(dir);
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
    '--daemonize', 'no', '--logfile', join(dir, 'redis.log'), '--protected-mode', 'no', '--repl-diskless-sync-delay', '0',
    ...(options.args ?? []),
  ];
  return launchServer(port, dir, args);
}

/**
 * A server that persists every write before answering it (AOF, `appendfsync always`): a test
 * that restarts it is then about our code, not about Redis' durability settings.
 */
export async function startDurableRedis(): Promise<RedisServer> {
  return startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
}

/** A Sentinel watching one primary as `name`, with a quorum of 1 and a 1 s down-after. */
export async function startSentinel(primaryPort: number, name = 'mymaster'): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'es-sentinel-'));
  folders.add(dir);
  const config = join(dir, 'sentinel.conf');
  writeFileSync(
    config,
    [
      `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'protected-mode no',
      `sentinel monitor ${name} 127.0.0.1 ${primaryPort} 1`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 5000`,
      '',
    ].join('\n'),
  );
  return launchServer(port, dir, [config, '--sentinel', '--logfile', join(dir, 'sentinel.log')]);
}

async function launchServer(port: number, dir: string, args: string[]): Promise<RedisServer> {
  let child: ChildProcess | null = null;
  const launch = async () => {
    const spawned = spawn('redis-server', args, { stdio: 'ignore' });
    child = spawned;
    live.add(spawned);
    spawned.once('exit', () => live.delete(spawned));
    spawned.once('error', () => live.delete(spawned));
    await waitForPing(port, spawned);
  };
  await launch();
  const server: RedisServer = {
    port,
    dir,
    get pid() {
      return child?.pid;
    },
    get running() {
      return child !== null && child.exitCode === null && child.signalCode === null;
    },
    async kill() {
      const current = child;
      if (!current || current.exitCode !== null || current.signalCode !== null) return;
      const exited = new Promise((resolve) => current.once('exit', resolve));
      current.kill('SIGKILL');
      await exited;
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
    async restart() {
      await server.kill();
      await launch();
    },
  };
  return server;
}

async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited with code ${child.exitCode}`);
    if (await pings(port)) return;
    await sleep(50);
  }
  throw new Error(`redis-server on port ${port} did not answer PING within 5 s`);
}

function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

export interface RedisClusterNodes {
  servers: RedisServer[];
  /** Seed addresses for an ioredis Cluster. */
  seeds: { host: string; port: number }[];
  /** Runs one command on one node over a short-lived connection. */
  command(port: number, ...args: string[]): Promise<unknown>;
  /** id, port, flags ("master"/"slave", "fail"...) and master id of every node, as one live node sees them. */
  nodes(): Promise<{ id: string; port: number; flags: string[]; master: string }[]>;
  /** Polls until every running node says cluster_state:ok and every live replica is in sync. */
  waitHealthy(timeoutMs?: number): Promise<void>;
}

/** A Redis Cluster of `masters` primaries with one replica each, on free ports. */
export async function startCluster(masters = 3): Promise<RedisClusterNodes> {
  const clusterArgs = [
    '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '1000',
    '--cluster-replica-validity-factor', '0', '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0',
  ];
  const servers = await Promise.all(Array.from({ length: masters * 2 }, () => startRedis({ cluster: true, args: clusterArgs })));
  const command = async (port: number, ...args: string[]): Promise<unknown> => {
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1000, commandTimeout: 5000, retryStrategy: () => null });
    try {
      await client.connect();
      return await client.call(args[0] as string, ...args.slice(1));
    } finally {
      client.disconnect();
    }
  };
  await run('redis-cli', ['--cluster', 'create', ...servers.map((server) => `127.0.0.1:${server.port}`), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 30_000 });
  const cluster: RedisClusterNodes = {
    servers,
    seeds: servers.map((server) => ({ host: '127.0.0.1', port: server.port })),
    command,
    async nodes() {
      const alive = servers.find((server) => server.running);
      if (!alive) throw new Error('no running cluster node');
      const text = String(await command(alive.port, 'CLUSTER', 'NODES'));
      return text
        .trim()
        .split('\n')
        .map((line) => {
          const [id, address, flags, master] = line.split(' ');
          return { id: id as string, port: Number((address as string).split('@')[0]?.split(':')[1]), flags: (flags as string).split(','), master: master as string };
        });
    },
    async waitHealthy(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let last = '';
      while (Date.now() < deadline) {
        try {
          const states = await Promise.all(servers.filter((server) => server.running).map((server) => command(server.port, 'CLUSTER', 'INFO')));
          const replication = await Promise.all(servers.filter((server) => server.running).map((server) => command(server.port, 'INFO', 'replication')));
          const ok = states.every((state) => /cluster_state:ok/.test(String(state)) && /cluster_slots_assigned:16384/.test(String(state)));
          // A replica says its link is up before its primary counts it for WAIT (state=online, after its first ACK).
          const synced = replication.every((info) =>
            /role:slave/.test(String(info))
              ? /master_link_status:up/.test(String(info)) && /master_sync_in_progress:0/.test(String(info))
              : !/^slave\d+:.*state=(?!online)/m.test(String(info)),
          );
          if (ok && synced) return;
          last = ok ? 'replicas not in sync' : 'cluster_state not ok everywhere';
        } catch (error) {
          last = (error as Error).message;
        }
        await sleep(100);
      }
      throw new Error(`cluster not healthy within ${timeoutMs} ms: ${last}`);
    },
  };
  await cluster.waitHealthy();
  return cluster;
}

export interface Monitor {
  /** Commands seen so far: name (upper case), arguments, and "lua" for commands run by scripts. */
  readonly seen: { command: string; args: string[]; source: string }[];
  stop(): void;
}

/** MONITOR over a raw socket (ioredis' monitor mode can race its own ready check). */
export async function monitor(port: number): Promise<Monitor> {
  const socket = new Socket();
  const seen: Monitor['seen'] = [];
  let buffer = '';
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.connect(port, '127.0.0.1', () => socket.write('MONITOR\r\n'));
    socket.on('data', (data) => {
      buffer += data.toString('utf8');
      let newline: number;
      while ((newline = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 2);
        if (line === '+OK') {
          resolve();
          continue;
        }
        const match = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] (.*)$/.exec(line);
        if (!match) continue;
        const args = [...(match[2] as string).matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((part) => part[1] as string);
        seen.push({ command: (args[0] ?? '').toUpperCase(), args: args.slice(1), source: match[1] as string });
      }
    });
  });
  socket.on('error', () => {});
  return { seen, stop: () => socket.destroy() };
}

/** Polls a primary until `count` replicas are online for it (they count for WAIT). */
export async function waitForReplicasOnline(primary: Redis, count: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const info = await primary.info('replication');
    if ((info.match(/^slave\d+:.*state=online/gm) ?? []).length >= count) return;
    await sleep(50);
  }
  throw new Error(`${count} replica(s) not online within ${timeoutMs} ms`);
}

/** Runs redis-cli asynchronously (so the test's event loop keeps serving load meanwhile). */
export async function redisCli(args: string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await run('redis-cli', args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** Kills every server this module started and removes their folders. */
export async function stopAll(): Promise<void> {
  await Promise.all(
    [...live].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
  folders.clear();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
