import { once } from 'node:events';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/core/manager.js';
import { RECOMMENDED_CLIENT_OPTIONS, redisStore } from '../src/stores/redis.js';
import type { RedisStore } from '../src/stores/redis.js';
import { Client, Latch, TARGETS } from './helpers/adapters.js';
import { checkRedisBinaries, startRedis, stopAll } from './helpers/redis-servers.js';
import type { RedisServer } from './helpers/redis-servers.js';

const SECRET = 'adapter-outage-secret-0123456789abcdefghij';

// The behaviour suite shows the 503 policy with a store wrapper; this shows it with a real
// Redis server killed and started again under every adapter.
describe('adapters over a Redis server that goes down and comes back', () => {
  let server: RedisServer;
  let redis: Redis;
  let store: RedisStore;
  let manager: SessionManager;

  beforeAll(async () => {
    await checkRedisBinaries();
    server = await startRedis();
    redis = new Redis({ ...RECOMMENDED_CLIENT_OPTIONS, port: server.port, host: '127.0.0.1', retryStrategy: () => 100 });
    store = redisStore({ client: redis, ownsClient: true, prefix: 'outage:' });
    manager = new SessionManager({ store, secrets: [SECRET] });
  });

  afterAll(async () => {
    await store?.close();
    await stopAll();
  });

  for (const target of TARGETS) {
    it(`${target.name}: 503 while Redis is down, sessions work again once it is back`, async () => {
      const transport = await target.start({ manager, trustProxy: true, hooks: { latch: new Latch() } });
      try {
        const client = new Client(transport, '__Host-sid', { 'x-forwarded-proto': 'https' });
        expect((await client.request('POST', '/login?user=ada')).status).toBe(200);
        expect((await client.request('POST', '/items/apple')).status).toBe(200);

        await server.kill();
        const down = await client.request('GET', '/me');
        expect(down.status).toBe(503);
        expect(down.setCookies).toEqual([]);

        await server.restart();
        // The client reconnects on its own (retryStrategy): 'ready' once it is connected again.
        if (redis.status !== 'ready') await once(redis, 'ready');
        const back = await client.request('GET', '/me');
        // Persistence is off, so the session vanished with the server: absent (401), never an error.
        expect(back.status).toBe(401);
        expect((await client.request('POST', '/login?user=ada')).status).toBe(200);
        expect((await client.request('GET', '/me')).json()).toEqual({ user: 'ada', items: {} });
      } finally {
        await transport.close();
      }
    }, 20_000);
  }
});
