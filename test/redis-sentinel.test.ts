import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, it } from 'vitest';
import { redisStore } from '../src/stores/redis.js';
import { runStoreConformance } from '../src/testing/index.js';
import { BOUNDED, redisFixture } from './helpers/redis-fixtures.js';
import { checkRedisBinaries, startRedis, startSentinel, stopAll } from './helpers/redis-servers.js';
import type { RedisServer } from './helpers/redis-servers.js';

// The whole contract, replica powers and model-based part included, through a client that finds
// its primary by asking a real Sentinel (the standalone and Cluster runs are in their own files).
let sentinel: RedisServer;
let admin: Redis;

beforeAll(async () => {
  await checkRedisBinaries();
  const primary = await startRedis();
  sentinel = await startSentinel(primary.port);
  admin = new Redis({ ...BOUNDED, port: primary.port });
  admin.on('error', () => {});
});

afterAll(async () => {
  admin.disconnect();
  await stopAll();
});

const viaSentinel = (): Redis => {
  const client = new Redis({ ...BOUNDED, port: undefined, sentinels: [{ host: '127.0.0.1', port: sentinel.port }], name: 'mymaster' });
  client.on('error', () => {});
  return client;
};

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'redis (through Sentinel)',
  fakeClock: false,
  capabilities: { nativeTtl: true, cas: true, userIndex: true, sweep: false, scan: true, replica: true },
  multiClient: true,
  corrupts: true,
  setup: async () => {
    const prefix = `es-sentinel:${randomBytes(6).toString('hex')}:`;
    const open = () => redisStore({ client: viaSentinel(), prefix, ownsClient: true });
    return redisFixture(admin, prefix, open(), open, { keepAdmin: true });
  },
});
