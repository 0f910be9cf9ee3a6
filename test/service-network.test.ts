import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestSchema } from './helpers/postgres.js';
import type { TestSchema } from './helpers/postgres.js';
import { createTestTables } from './helpers/mysql.js';
import type { TestTables } from './helpers/mysql.js';
import { startMemcached } from './helpers/memcached.js';
import type { TestMemcached } from './helpers/memcached.js';
import { SHARED_REDIS_URL } from './helpers/redis-fixtures.js';
import { randomSecret, runCli, startService } from './helpers/service.js';
import type { SessionResource } from '../src/service/index.js';
import { sharedNamespaceWarning } from '../src/service/setup.js';
import { parseStoreUrl } from '../src/service/stores.js';

let postgres: TestSchema;
let mysql: TestTables;
let memcached: TestMemcached;

beforeAll(async () => {
  [postgres, mysql, memcached] = await Promise.all([createTestSchema(), createTestTables(), startMemcached()]);
});

const redisPrefix = `es-service-test-${process.pid}-${Date.now()}:`;
const redisStoreUrl = new URL(SHARED_REDIS_URL);
redisStoreUrl.searchParams.set('prefix', redisPrefix);

afterAll(async () => {
  const redis = new Redis(SHARED_REDIS_URL, { lazyConnect: true });
  await redis.connect();
  const keys = await redis.keys(`${redisPrefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
  await Promise.all([postgres?.drop(), mysql?.drop(), memcached?.stop()]);
});

describe('the service on network stores named by URL', () => {
  const urls = () => ({
    redis: redisStoreUrl.toString(),
    postgres: postgres.url,
    mysql: mysql.url,
    memcached: memcached.url,
  });

  for (const kind of ['redis', 'postgres', 'mysql', 'memcached'] as const) {
    it(`keeps sessions on ${kind} across service instances that share the secret`, async () => {
      const secret = randomSecret();
      const first = await startService({ store: urls()[kind], secret });
      const created = (await (await first.request('POST', '/v1/sessions', { json: { data: { a: 1 } } })).json()) as SessionResource;
      await first.close();
      const second = await startService({ store: urls()[kind], secret });
      try {
        const patched = await second.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { b: 2 } } });
        expect(patched.status).toBe(200);
        expect(((await patched.json()) as SessionResource).data).toEqual({ a: 1, b: 2 });
        expect(second.log.lines.join('\n')).not.toContain('secret');
      } finally {
        await second.close();
      }
    });
  }

  it('answers user-index routes on memcached with 501 ESESS_UNSUPPORTED, not a wrong answer', async () => {
    const service = await startService({ store: memcached.url, secret: randomSecret() });
    try {
      const reply = await service.request('GET', '/v1/users/alice/sessions');
      expect(reply.status).toBe(501);
      expect(await reply.json()).toMatchObject({ code: 'ESESS_UNSUPPORTED' });
    } finally {
      await service.close();
    }
  });
});

describe('elastic-session CLI on network stores', () => {
  it('migrate creates the PostgreSQL schema, then finds it current', async () => {
    const fresh = new URL(postgres.url);
    fresh.searchParams.set('table', 'cli_migrated');
    const first = await runCli(['migrate', '--store', fresh.toString()]);
    expect(first.stderr).toBe('');
    expect(first.stdout).toMatch(/^schema version 0 -> [1-9]\d*\n$/);
    const second = await runCli(['migrate', '--store', fresh.toString()]);
    const version = /-> (\d+)/.exec(first.stdout)?.[1];
    expect(second.stdout).toBe(`schema version ${version} -> ${version}\n`);
  });

  it('sweep on a store with native expiry (Redis, Memcached) says nothing needs sweeping, prints no count and exits 0 (#18 item 6)', async () => {
    for (const [name, url] of [['redis', redisStoreUrl.toString()], ['memcached', memcached.url]] as const) {
      const result = await runCli(['sweep', '--store', url]);
      expect(result, name).toMatchObject({ code: 0, stderr: '', stdout: `the ${name} store expires sessions by itself (native TTL): nothing to sweep\n` });
      expect(result.stdout).not.toMatch(/^\d/m);
    }
  });

  it('serve on a shared store without a secret exits 2 naming --secret', async () => {
    const result = await runCli(['serve', '--port', '0', '--store', postgres.url]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--secret.*required with a postgres store/);
  });

  it('a store URL with a password never shows it in an error', async () => {
    const result = await runCli(['inspect', '--store', 'postgres://user:hunter2-password@127.0.0.1:1/none', `--secret=${randomSecret()}`, 'A'.repeat(43)]);
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).not.toContain('hunter2-password');
  });
});

describe('two applications on one store (security round 2, item 6)', () => {
  it('warns at startup when a shared store runs on its default namespace, and not when the URL names one', () => {
    const warnings = (url: string) => sharedNamespaceWarning(parseStoreUrl(url, 'store', process.cwd()));
    expect(warnings('redis://127.0.0.1:6379')).toMatch(/default namespace \(no \?prefix=\).*revoking a user in one logs them out of the others/);
    expect(warnings('postgres://u@h/db')).toMatch(/\?schema=/);
    expect(warnings('mysql://u@h/db')).toMatch(/\?table=/);
    expect(warnings('nats://127.0.0.1:4222')).toMatch(/\?bucket=/);
    expect(warnings('redis://127.0.0.1:6379?prefix=shop:')).toBeNull();
    expect(warnings('postgres://u@h/db?schema=shop')).toBeNull();
    expect(warnings('sqlite:./x.db')).toBeNull();
    expect(warnings('memory:')).toBeNull();
  });
});

describe('--near-cache', () => {
  it('serves a Redis store through a near-cache: a read after a write sees the write, a destroy is final', async () => {
    const prefix = `es-nc-${Date.now().toString(36)}:`;
    const url = new URL(SHARED_REDIS_URL);
    url.searchParams.set('prefix', prefix);
    const { request, close } = await startService({ store: url.toString(), nearCache: 100 });
    try {
      const created = (await (await request('POST', '/v1/sessions', { json: { data: { a: 1 } } })).json()) as SessionResource;
      expect(((await (await request('GET', `/v1/sessions/${created.id}`)).json()) as SessionResource).data).toEqual({ a: 1 });
      await request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { a: 2 } } });
      expect(((await (await request('GET', `/v1/sessions/${created.id}`)).json()) as SessionResource).data).toEqual({ a: 2 });
      expect((await request('DELETE', `/v1/sessions/${created.id}`)).status).toBe(204);
      expect((await request('GET', `/v1/sessions/${created.id}`)).status).toBe(404);
    } finally {
      await close();
    }
  });

  it('refuses a store whose other instances could not invalidate the cache, naming the option', async () => {
    await expect(startService({ store: 'memory:', nearCache: 10 })).rejects.toMatchObject({ code: 'ESESS_CONFIG', context: { option: 'near-cache' } });
    await expect(startService({ store: 'redis-cluster://127.0.0.1:7000', nearCache: 10 })).rejects.toMatchObject({ code: 'ESESS_CONFIG' });
  });
});
