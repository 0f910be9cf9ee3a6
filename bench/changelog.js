// The change log's cost and speed on Redis: write throughput of the Redis store with the change
// log off and on (the same scripts, the logged ones XADD the entry in the same call), replay of
// the log of N sessions into a memory store and into a second Redis prefix, and the events relay.
// Starts its own redis-server (no persistence) on a free port.
//
//   npx tsc -p tsconfig.build.json && node bench/changelog.js
//
// Environment: BENCH_WRITES (write operations per round, default 20000), BENCH_ROUNDS (default 3,
// off and on alternate; the best round of each counts), BENCH_CONCURRENCY (writes in flight, a
// comma-separated list, default "1,32": one waits for each reply, 32 saturate the server),
// BENCH_SESSIONS (sessions replayed, default 100000).
import os from 'node:os';
import { Redis } from 'ioredis';
import { EventRelay, replay } from '../dist/changelog/index.js';
import { formatStamp } from '../dist/core/hlc.js';
import { memoryStore } from '../dist/stores/memory.js';
import { redisStore } from '../dist/stores/redis.js';
import { storedRecord, storeKey } from '../dist/testing/fixtures.js';
import { startRedis } from './redis-server.js';

const WRITES = Number(process.env.BENCH_WRITES ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCIES = (process.env.BENCH_CONCURRENCY ?? '1,32').split(',').map(Number);
const FILL_CONCURRENCY = 32;
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 100_000);


/** Server time per script call (INFO commandstats), in microseconds: independent of the client's noise. */
async function serverMicrosPerCall(client) {
  const stats = await client.info('commandstats');
  const line = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(stats);
  return line ? Number(line[2]) / Number(line[1]) : NaN;
}

/** Runs `count` operations with `concurrency` in flight; returns operations per second. */
async function timed(count, op, concurrency = FILL_CONCURRENCY) {
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) await op(next++);
  }));
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
}

/** A request-like mix: one create (3 small fields) for every 4 one-field deltas. */
async function writeRound(port, logged, round, concurrency) {
  const prefix = `bench${round}${logged ? 'on' : 'off'}:`;
  const store = redisStore({ client: new Redis({ port }), prefix, ownsClient: true, ...(logged ? { changeLog: { stream: `${prefix}log` } } : {}) });
  await store.loadScripts();
  const admin = new Redis({ port });
  await admin.config('RESETSTAT');
  const keys = [];
  let counter = 0;
  const rate = await timed(WRITES, async (i) => {
    if (i % 5 === 0 || keys.length === 0) {
      const key = storeKey();
      await store.create(key, storedRecord({ user: 'alice', cart: ['a', 'b', 'c'], theme: 'dark' }));
      keys.push(key);
    } else {
      const key = keys[i % keys.length];
      await store.apply(key, { fields: { counter: { value: String(i), stamp: formatStamp(Date.now(), counter++ % 0xffff, 'b0') } }, lastSeenAt: Date.now() });
    }
  }, concurrency);
  await store.close();
  const micros = await serverMicrosPerCall(admin);
  admin.disconnect();
  return { rate, micros };
}

async function main() {
  const server = await startRedis();
  try {
    const writes = [];
    for (const concurrency of CONCURRENCIES) {
      const best = { off: 0, on: 0 };
      const micros = { off: Infinity, on: Infinity };
      for (let round = 0; round < ROUNDS; round++) {
        for (const logged of round % 2 === 0 ? [false, true] : [true, false]) {
          const result = await writeRound(server.port, logged, round, concurrency);
          const side = logged ? 'on' : 'off';
          best[side] = Math.max(best[side], result.rate);
          micros[side] = Math.min(micros[side], result.micros);
        }
        await server.admin.flushall();
      }
      writes.push({ concurrency, best, micros });
    }

    // The log of SESSIONS sessions: one create entry each.
    const live = redisStore({ client: new Redis({ port: server.port }), prefix: 'live:', ownsClient: true, changeLog: { stream: 'live:log' } });
    const fill = await timed(SESSIONS, async () => {
      await live.create(storeKey(), storedRecord({ user: 'alice', cart: ['a', 'b', 'c'], theme: 'dark' }));
    });
    await live.close();
    const source = { client: server.admin, stream: 'live:log' };
    const memory = memoryStore({ maxEntries: SESSIONS * 2, maxBytes: 2 ** 31 });
    let start = process.hrtime.bigint();
    const toMemory = await replay(source, memory);
    const memoryRate = toMemory.entries / (Number(process.hrtime.bigint() - start) / 1e9);
    const copy = redisStore({ client: new Redis({ port: server.port }), prefix: 'copy:', ownsClient: true });
    start = process.hrtime.bigint();
    const toRedis = await replay(source, copy);
    const redisRate = toRedis.entries / (Number(process.hrtime.bigint() - start) / 1e9);
    await copy.close();
    const relay = new EventRelay({ from: server.admin, stream: 'live:log', events: 'live:events', batch: 1000 });
    start = process.hrtime.bigint();
    let relayed = 0;
    for (;;) {
      const round = await relay.relayOnce();
      if (round.entries === 0) break;
      relayed += round.events;
    }
    const relayRate = relayed / (Number(process.hrtime.bigint() - start) / 1e9);
    relay.close();

    const info = await server.admin.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1];
    const fmt = (n) => Math.round(n).toLocaleString('en-US');
    process.stdout.write(
      [
        `Redis ${version}, loopback, Node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'})`,
        `writes: 1 create (3 small fields) : 4 one-field deltas, best of ${ROUNDS} rounds of ${fmt(WRITES)}`,
        ...writes.flatMap(({ concurrency, best, micros }) => [
          `  ${concurrency} in flight, change log off  ${fmt(best.off)} writes/s, ${micros.off.toFixed(1)} µs of server time per write`,
          `  ${concurrency} in flight, change log on   ${fmt(best.on)} writes/s, ${micros.on.toFixed(1)} µs of server time per write  (throughput ${(best.on / best.off).toFixed(2)}x)`,
        ]),
        `log of ${fmt(SESSIONS)} sessions written at ${fmt(fill)} creates/s (change log on)`,
        `replay into memory   ${fmt(memoryRate)} entries/s (${fmt(toMemory.entries)} entries, ${fmt(toMemory.changed)} changed)`,
        `replay into Redis    ${fmt(redisRate)} entries/s (${fmt(toRedis.entries)} entries, ${fmt(toRedis.changed)} changed)`,
        `events relay         ${fmt(relayRate)} events/s`,
        '',
      ].join('\n'),
    );
  } finally {
    server.stop();
  }
}

await main();
