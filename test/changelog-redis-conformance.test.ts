import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, it } from 'vitest';
import { redisStore } from '../src/stores/redis.js';
import { runStoreConformance } from '../src/testing/index.js';
import { BOUNDED, deletePrefix, describeReplicaPowers, redisFixture, SHARED_REDIS_URL, sharedRedis } from './helpers/redis-fixtures.js';

/**
 * The Redis store with a change log is still the same store: the whole conformance suite and
 * the replica-power properties run against the logged scripts (the change log's own cases are
 * in test/changelog-*.test.ts).
 */

const newPrefix = () => `es-test:${randomBytes(6).toString('hex')}:`;
const changeLog = (prefix: string) => ({ stream: `${prefix}log`, maxAgeMs: 3_600_000 });

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'redis with a change log',
  fakeClock: false,
  capabilities: { nativeTtl: true, cas: true, userIndex: true, sweep: false, scan: true, replica: true },
  multiClient: true,
  corrupts: true,
  setup: async () => {
    const prefix = newPrefix();
    const admin = await sharedRedis();
    const open = () => redisStore({ client: new Redis(SHARED_REDIS_URL, BOUNDED), prefix, ownsClient: true, changeLog: changeLog(prefix) });
    return redisFixture(admin, prefix, open(), open);
  },
});

describeReplicaPowers(
  'redis with a change log',
  async () => {
    const admin = await sharedRedis();
    const prefix = newPrefix();
    const store = redisStore({ client: new Redis(SHARED_REDIS_URL, BOUNDED), prefix, ownsClient: true, changeLog: changeLog(prefix) });
    return {
      store,
      admin,
      prefix,
      cleanup: async () => {
        await store.close();
        await deletePrefix(admin, prefix);
        admin.disconnect();
      },
    };
  },
  { modelRuns: 50 },
);
