import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { ChangeEntry } from '../src/changelog/entry.js';
import { EventRelay } from '../src/changelog/relay.js';
import { handleOf } from '../src/core/ids.js';
import { redisStore } from '../src/stores/redis.js';
import { stampAt, storedRecord, storeKey } from '../src/testing/fixtures.js';
import { BOUNDED, changeLogOf, deletePrefix, eventsOf, SHARED_REDIS_URL, sharedRedis } from './helpers/redis-fixtures.js';
import { checkRedisBinaries, startDurableRedis, stopAll } from './helpers/redis-servers.js';
import { builtDist, ROOT } from './helpers/service.js';

/**
 * Nothing acknowledged is lost: the entry is written by the same script as the change, so
 * neither the writer's death right after the reply nor a restart of the stream's server can
 * separate an acknowledged write from its entry.
 */

type Ack = { op: 'create'; key: string } | { op: 'apply' | 'destroy'; key: string; stamp: string };

function parseAck(line: string): Ack | null {
  const [word, op, key, stamp] = line.split(' ');
  if (word !== 'ack' || key === undefined) return null;
  if (op === 'create') return { op, key };
  if ((op === 'apply' || op === 'destroy') && stamp !== undefined) return { op, key, stamp };
  return null;
}

/** Every acknowledged change has its entry: the create, the field write with its stamp, the tombstone with its stamp. */
function missing(acks: Ack[], log: ChangeEntry[]): Ack[] {
  const creates = new Set(log.filter((entry) => entry.op === 'create').map((entry) => entry.key));
  const writes = new Set<string>();
  const tombstones = new Set<string>();
  for (const entry of log) {
    if (entry.op === 'update' && entry.state?.kind === 'live') writes.add(`${entry.key} ${entry.state.record.fields.n?.stamp}`);
    if (entry.op === 'destroy' && entry.state?.kind === 'tombstone') tombstones.add(`${entry.key} ${entry.state.stamp}`);
  }
  return acks.filter((ack) => (ack.op === 'create' ? !creates.has(ack.key) : !(ack.op === 'apply' ? writes : tombstones).has(`${ack.key} ${ack.stamp}`)));
}

/** One writer loop: create, three field writes, destroy; each reported once acknowledged. */
async function writeSessions(store: ReturnType<typeof redisStore>, ack: (line: string) => void, stop: () => boolean, node: string): Promise<void> {
  let counter = 0;
  while (!stop()) {
    const key = storeKey();
    try {
      if (!(await store.create(key, storedRecord({ n: 0 })))) continue;
      ack(`ack create ${key}`);
      for (let i = 1; i <= 3; i++) {
        const stamp = stampAt(Date.now(), counter++ % 0xffff, node);
        if ((await store.apply(key, { fields: { n: { value: String(i), stamp } } })).status === 'ok') ack(`ack apply ${key} ${stamp}`);
      }
      const stamp = stampAt(Date.now(), counter++ % 0xffff, node);
      if (await store.destroy(key, 60_000, stamp)) ack(`ack destroy ${key} ${stamp}`);
    } catch {
      // Not acknowledged (the server is restarting): nothing to check for this write.
    }
  }
}

describe('change log durability', () => {
  afterAll(async () => {
    await stopAll();
  });

  it('kill -9 of a process in a burst of acknowledged writes: every acknowledged change is in the change log, and its event after the relay', { timeout: 240_000 }, async () => {
    const admin = await sharedRedis();
    const prefix = `es-test:${randomBytes(6).toString('hex')}:`;
    const stream = `${prefix}log`;
    const events = `${prefix}events`;
    const dist = pathToFileURL(builtDist()).href;
    const program = `
      import { Redis } from 'ioredis';
      const { redisStore } = await import(${JSON.stringify(`${dist}/stores/redis.js`)});
      const { stampAt, storedRecord, storeKey } = await import(${JSON.stringify(`${dist}/testing/fixtures.js`)});
      const store = redisStore({ client: new Redis(${JSON.stringify(SHARED_REDIS_URL)}), prefix: ${JSON.stringify(prefix)}, ownsClient: true, changeLog: { stream: ${JSON.stringify(stream)} } });
      let counter = 0;
      const ack = (line) => process.stdout.write(line + '\\n');
      async function loop(node) {
        for (;;) {
          const key = storeKey();
          if (!(await store.create(key, storedRecord({ n: 0 })))) continue;
          ack('ack create ' + key);
          for (let i = 1; i <= 3; i++) {
            const stamp = stampAt(Date.now(), counter++ % 0xffff, node);
            if ((await store.apply(key, { fields: { n: { value: String(i), stamp } } })).status === 'ok') ack('ack apply ' + key + ' ' + stamp);
          }
          const stamp = stampAt(Date.now(), counter++ % 0xffff, node);
          if (await store.destroy(key, 60000, stamp)) ack('ack destroy ' + key + ' ' + stamp);
        }
      }
      await Promise.all(Array.from({ length: 8 }, (_, w) => loop('c' + w)));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '--eval', program], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const acks: Ack[] = [];
    let buffer = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    const drained = new Promise((resolve) => child.stdout.once('close', resolve));
    const killed = new Promise<void>((resolve, reject) => {
      child.once('exit', () => reject(new Error(`the writer exited before it was killed: ${stderr}`)));
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        buffer += chunk;
        const lines = buffer.split('\n');
        buffer = lines.pop() ?? '';
        for (const line of lines) {
          const ack = parseAck(line);
          if (ack) acks.push(ack);
        }
        if (acks.length >= 1_500 && child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await killed;
    expect(await exited).toBe('SIGKILL');
    // Lines the writer wrote before it died may still be in the pipe: they were acknowledged too.
    await drained;
    const last = parseAck(buffer);
    if (last) acks.push(last);

    const log = (await changeLogOf(admin, stream)).map(({ entry }) => entry);
    expect(acks.length).toBeGreaterThanOrEqual(1_500);
    expect(missing(acks, log)).toEqual([]);
    // Per session, the entries are in the order the writes were acknowledged.
    const byKey = new Map<string, string[]>();
    for (const entry of log) byKey.set(entry.key as string, [...(byKey.get(entry.key as string) ?? []), entry.op]);
    for (const opsOfKey of byKey.values()) expect(['create', 'create,update', 'create,update,update', 'create,update,update,update', 'create,update,update,update,destroy']).toContain(opsOfKey.join(','));

    const relay = new EventRelay({ from: admin, stream, events });
    while ((await relay.relayOnce()).entries > 0);
    const seen = new Set((await eventsOf(admin, events)).map((event) => `${event.type} ${event.handle}`));
    const type = { create: 'created', apply: 'updated', destroy: 'destroyed' } as const;
    expect(acks.filter((ack) => !seen.has(`${type[ack.op]} ${handleOf(ack.key)}`))).toEqual([]);
    await deletePrefix(admin, prefix);
    admin.disconnect();
  });

  it('a kill -9 and restart of the stream\'s redis-server (AOF, appendfsync always) loses no acknowledged change', { timeout: 120_000 }, async () => {
    await checkRedisBinaries();
    const server = await startDurableRedis();
    const store = redisStore({ client: new Redis({ ...BOUNDED, port: server.port }), ownsClient: true, changeLog: { stream: 'es:log' } });
    const acks: Ack[] = [];
    let phase: 'before' | 'after' | 'done' = 'before';
    let afterRestart = 0;
    let restarted: () => void = () => {};
    const enough = new Promise<void>((resolve) => (restarted = resolve));
    const record = (line: string) => {
      const ack = parseAck(line);
      if (!ack) return;
      acks.push(ack);
      if (phase === 'after' && ++afterRestart >= 400) restarted();
    };
    const writers = Array.from({ length: 8 }, (_, w) => writeSessions(store, record, () => phase === 'done', `d${w}`));
    while (acks.length < 400) await new Promise((resolve) => setImmediate(resolve));
    await server.restart();
    phase = 'after';
    await enough;
    phase = 'done';
    await Promise.all(writers);

    const admin = new Redis({ ...BOUNDED, port: server.port });
    const log = (await changeLogOf(admin, 'es:log')).map(({ entry }) => entry);
    expect(acks.length).toBeGreaterThanOrEqual(800);
    expect(missing(acks, log)).toEqual([]);
    admin.disconnect();
    await store.close();
  });
});
