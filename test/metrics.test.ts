import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { SessionManager } from '../src/core/manager.js';
import { publishAnomaly, publishTokenRejected, storeChannel, subjectOf } from '../src/core/telemetry.js';
import type { SessionStore } from '../src/core/types.js';
import { createSessionMetrics, errorKind, metricsHandler, readStoreUsage } from '../src/metrics.js';
import type { SessionMetrics } from '../src/metrics.js';
import { SessionError } from '../src/core/errors.js';
import { memoryStore } from '../src/stores/memory.js';
import { sqliteStore } from '../src/stores/sqlite.js';
import { redisStore } from '../src/stores/redis.js';
import { startRedis, stopAll } from './helpers/redis-servers.js';
import { failingStore, randomSecret, startService } from './helpers/service.js';

const open: SessionMetrics[] = [];
afterEach(() => {
  for (const metrics of open.splice(0)) metrics.close();
});
afterAll(() => stopAll());

function metrics(...args: Parameters<typeof createSessionMetrics>): SessionMetrics {
  const created = createSessionMetrics(...args);
  open.push(created);
  return created;
}

/** The value of one sample line, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function manager(store: SessionStore, clock?: () => number): SessionManager {
  return new SessionManager({ store, secrets: [randomSecret()], ...(clock ? { clock } : {}) });
}

describe('subscription', () => {
  it('subscribes to the store channel only while a metric set is open: zero cost before and after', () => {
    expect(storeChannel.start.hasSubscribers).toBe(false);
    const set = metrics();
    expect(storeChannel.start.hasSubscribers).toBe(true);
    set.close();
    set.close();
    expect(storeChannel.start.hasSubscribers).toBe(false);
  });

  it('counts nothing after close()', async () => {
    const set = metrics();
    set.close();
    const sessions = manager(memoryStore());
    await sessions.save(sessions.create({ data: { a: 1 } }));
    const text = await set.text();
    expect(sample(text, 'elastic_session_sessions_created_total{store="memory"}')).toBeUndefined();
  });

  it('two metric sets in one process each count every manager, labelled by store name', async () => {
    const first = metrics();
    const second = metrics({ prefix: 'other_' });
    const a = manager(memoryStore());
    const b = manager(sqliteStore({ path: ':memory:' }));
    await a.save(a.create({ data: { x: 1 } }));
    await b.save(b.create({ data: { x: 1 } }));
    await b.save(b.create({ data: { x: 1 } }));
    const one = await first.text();
    const two = await second.text();
    expect(sample(one, 'elastic_session_sessions_created_total{store="memory"}')).toBe(1);
    expect(sample(one, 'elastic_session_sessions_created_total{store="sqlite"}')).toBe(2);
    expect(sample(two, 'other_sessions_created_total{store="sqlite"}')).toBe(2);
    await b.close();
  });

  it('refuses a prefix that is not a metric name, and one registry cannot hold the same prefix twice', () => {
    expect(() => createSessionMetrics({ prefix: 'bad prefix' })).toThrow(/prefix/);
    const registry = new Registry();
    metrics({ registry });
    expect(() => createSessionMetrics({ registry })).toThrow(/already been registered/);
    expect(storeChannel.start.hasSubscribers).toBe(true);
  });
});

describe('store operations', () => {
  it('observes latency per store, operation and outcome', async () => {
    const set = metrics();
    const sessions = manager(memoryStore());
    const session = sessions.create({ data: { a: 1 } });
    await sessions.save(session);
    const loaded = await sessions.load(session.id);
    loaded!.set('b', 2);
    await sessions.save(loaded!);
    await sessions.destroy(session.id);
    const text = await set.text();
    expect(text).toMatch(/# TYPE elastic_session_store_operation_duration_seconds histogram/);
    for (const operation of ['create', 'load', 'apply', 'destroy']) {
      expect(sample(text, `elastic_session_store_operation_duration_seconds_count{store="memory",operation="${operation}",outcome="ok"}`)).toBe(1);
    }
    expect(text).not.toContain(session.id);
  });

  it('counts failed operations by error kind and observes them with outcome "error"', async () => {
    const set = metrics();
    const sessions = manager(failingStore());
    await expect(sessions.load('A'.repeat(43))).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
    const text = await set.text();
    expect(sample(text, 'elastic_session_store_errors_total{store="broken",operation="load",kind="ECONNREFUSED"}')).toBe(1);
    expect(sample(text, 'elastic_session_store_operation_duration_seconds_count{store="broken",operation="load",outcome="error"}')).toBe(1);
  });

  it('errorKind() gives our code with the store failure kind, a driver code, or "unknown", never a message', () => {
    expect(errorKind(new SessionError('ESESS_STORE_UNAVAILABLE', { context: { store: 'redis', kind: 'timeout' } }))).toBe('ESESS_STORE_UNAVAILABLE:timeout');
    expect(errorKind(new SessionError('ESESS_STORE_CLOSED'))).toBe('ESESS_STORE_CLOSED');
    expect(errorKind(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe('ECONNRESET');
    expect(errorKind(Object.assign(new Error('x'), { code: 'session abc' }))).toBe('unknown');
    expect(errorKind('boom')).toBe('unknown');
  });

  it('counts sweep runs and the records they removed', async () => {
    let now = Date.now();
    const clock = (): number => now;
    const set = metrics();
    const store = memoryStore({ clock });
    const sessions = manager(store, clock);
    for (let i = 0; i < 3; i++) await sessions.save(sessions.create({ data: { i }, idleTimeout: 1 }));
    now += 5000;
    expect(await sessions.sweep(100)).toBe(3);
    expect(await sessions.sweep(100)).toBe(0);
    const text = await set.text();
    expect(sample(text, 'elastic_session_sweeps_total{store="memory",outcome="ok"}')).toBe(2);
    expect(sample(text, 'elastic_session_swept_records_total{store="memory"}')).toBe(3);
    expect(sample(text, 'elastic_session_sessions_expired_total{store="memory",reason="sweep"}')).toBe(3);
  });
});

describe('session lifecycle', () => {
  it('counts created, updated, regenerated, destroyed and revoked sessions by store', async () => {
    const set = metrics();
    const sessions = manager(memoryStore());
    const one = sessions.create({ data: { a: 1 }, userId: 'alice' });
    await sessions.save(one);
    one.set('a', 2);
    await sessions.save(one);
    await sessions.regenerate(one);
    const two = sessions.create({ data: { a: 1 }, userId: 'alice' });
    await sessions.save(two);
    const three = sessions.create({ data: { a: 1 }, userId: 'alice' });
    await sessions.save(three);
    await sessions.destroy(three);
    const [first] = await sessions.listUserSessions('alice');
    await sessions.revokeUserSession('alice', first!.handle);
    expect(await sessions.revokeUser('alice')).toBe(1);
    const text = await set.text();
    expect(sample(text, 'elastic_session_sessions_created_total{store="memory"}')).toBe(3);
    expect(sample(text, 'elastic_session_sessions_updated_total{store="memory"}')).toBe(1);
    expect(sample(text, 'elastic_session_sessions_regenerated_total{store="memory"}')).toBe(1);
    expect(sample(text, 'elastic_session_sessions_destroyed_total{store="memory"}')).toBe(1);
    expect(sample(text, 'elastic_session_sessions_revoked_total{store="memory"}')).toBe(2);
  });

  it('counts a session found past its idle deadline as expired with reason "idle", past its absolute one as "absolute"', async () => {
    const start = Date.now();
    let now = start;
    // The store's clock stands still, so it hands back records the manager's clock finds dead.
    const store = memoryStore({ clock: () => start });
    const set = metrics();
    const sessions = manager(store, () => now);
    const idle = sessions.create({ data: { a: 1 }, idleTimeout: 60, absoluteTimeout: 3600 });
    const absolute = sessions.create({ data: { a: 1 }, idleTimeout: 600, absoluteTimeout: 120 });
    await sessions.save(idle);
    await sessions.save(absolute);
    now = start + 61_000;
    expect(await sessions.load(idle.id)).toBeNull();
    expect(await sessions.load(absolute.id)).not.toBeNull();
    now = start + 121_000;
    expect(await sessions.load(absolute.id)).toBeNull();
    const text = await set.text();
    expect(sample(text, 'elastic_session_sessions_expired_total{store="memory",reason="idle"}')).toBe(1);
    expect(sample(text, 'elastic_session_sessions_expired_total{store="memory",reason="absolute"}')).toBe(1);
  });

  it('counts rejected cookies and tokens by reason and anomalies by signal, without the cookie, token or signal values, nor the events\' principal, handle or address', async () => {
    const set = metrics();
    const sessions = manager(memoryStore());
    const forged = `${'A'.repeat(43)}.${'B'.repeat(43)}`;
    const subject = { userId: 'metrics-user-alice', handle: 'HANDLEHANDLEHANDLE0123', ip: '198.51.100.77' };
    expect(sessions.readCookie(`__Host-sid=${forged}`, { ip: subject.ip })).toBeNull();
    expect(sessions.readCookie('__Host-sid=garbage')).toBeNull();
    publishTokenRejected('expired', () => subject);
    publishAnomaly(() => ({ signals: ['user-agent', 'network'], action: 'destroy', ...subjectOf(subject) }));
    const text = await set.text();
    for (const value of Object.values(subject)) expect(text).not.toContain(value);
    expect(sample(text, 'elastic_session_cookies_rejected_total{reason="bad-signature"}')).toBe(1);
    expect(sample(text, 'elastic_session_cookies_rejected_total{reason="malformed"}')).toBe(1);
    expect(sample(text, 'elastic_session_tokens_rejected_total{reason="expired"}')).toBe(1);
    expect(sample(text, 'elastic_session_session_anomalies_total{signal="user-agent",action="destroy"}')).toBe(1);
    expect(sample(text, 'elastic_session_session_anomalies_total{signal="network",action="destroy"}')).toBe(1);
    expect(text).not.toContain('AAAAAAAA');
  });

  it('counts compare-and-swap conflicts of update() and the attempt they happened at', async () => {
    const set = metrics();
    const sessions = manager(memoryStore());
    const session = sessions.create({ data: { n: 0 } });
    await sessions.save(session);
    let interfered = 0;
    await sessions.update(session.id, async (current) => {
      // Two concurrent writes land between this attempt's load and its write, twice.
      if (interfered++ < 2) {
        const other = (await sessions.load(session.id))!;
        other.set('other', interfered);
        await sessions.save(other);
      }
      current.set('n', (current.get('n') as number) + 1);
    });
    const text = await set.text();
    expect(sample(text, 'elastic_session_conflicts_total{store="memory"}')).toBe(2);
    expect(sample(text, 'elastic_session_conflict_attempt_bucket{le="1",store="memory"}')).toBe(1);
    expect(sample(text, 'elastic_session_conflict_attempt_bucket{le="2",store="memory"}')).toBe(2);
  });

  it('bounds label values from publishers: an odd store name becomes "other"', async () => {
    const set = metrics();
    const odd: SessionStore = { ...failingStore(), name: 'a store named after session abc/def' };
    await expect(manager(odd).load('A'.repeat(43))).rejects.toThrow();
    const text = await set.text();
    expect(text).toContain('store="other"');
    expect(text).not.toContain('abc/def');
  });
});

describe('store usage', () => {
  it('reports keys, bytes and exact live sessions of the memory store', async () => {
    const store = memoryStore();
    const set = metrics({ stores: [store], usageIntervalMs: 0 });
    const sessions = manager(store);
    const kept = sessions.create({ data: { a: 'x'.repeat(1000) } });
    const gone = sessions.create({ data: { a: 1 } });
    await sessions.save(kept);
    await sessions.save(gone);
    await sessions.destroy(gone);
    const text = await set.text();
    expect(sample(text, 'elastic_session_store_keys{store="memory"}')).toBe(2);
    expect(sample(text, 'elastic_session_store_bytes{store="memory"}')).toBeGreaterThan(1000);
    expect(sample(text, 'elastic_session_active_sessions{store="memory",accuracy="exact"}')).toBe(1);
  });

  it('reports the SQLite store file size, records and exact live sessions', async () => {
    const store = sqliteStore({ path: ':memory:' });
    const set = metrics({ stores: [store], usageIntervalMs: 0 });
    const sessions = manager(store);
    for (let i = 0; i < 3; i++) await sessions.save(sessions.create({ data: { i } }));
    const text = await set.text();
    expect(sample(text, 'elastic_session_store_keys{store="sqlite"}')).toBe(3);
    expect(sample(text, 'elastic_session_active_sessions{store="sqlite",accuracy="exact"}')).toBe(3);
    expect(sample(text, 'elastic_session_store_bytes{store="sqlite"}')).toBeGreaterThan(0);
    await store.close();
  });

  it('reports the Redis store\'s used_memory and key count, and labels active sessions an estimate', async () => {
    const server = await startRedis();
    const client = new Redis({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: 1 });
    try {
      const store = redisStore({ client });
      const set = metrics({ stores: [store], usageIntervalMs: 0 });
      const sessions = manager(store);
      for (let i = 0; i < 3; i++) await sessions.save(sessions.create({ data: { i } }));
      const text = await set.text();
      expect(sample(text, 'elastic_session_store_keys{store="redis"}')).toBe(3);
      expect(sample(text, 'elastic_session_store_bytes{store="redis"}')).toBeGreaterThan(100_000);
      expect(sample(text, 'elastic_session_active_sessions{store="redis",accuracy="estimate"}')).toBe(3);
    } finally {
      client.disconnect();
    }
  });

  it('the service reports its own store\'s usage in /metrics', async () => {
    const service = await startService();
    await service.request('POST', '/v1/sessions', { json: { data: { a: 1 } } });
    const text = await (await service.request('GET', '/metrics')).text();
    expect(sample(text, 'elastic_session_store_keys{store="memory"}')).toBe(1);
    expect(sample(text, 'elastic_session_active_sessions{store="memory",accuracy="exact"}')).toBe(1);
    await service.close();
  });

  it('labels active sessions an estimate when a store tells only its record count, and skips stores that tell nothing', async () => {
    const counted = { name: 'counted', usage: async () => ({ keys: 42, memoryBytes: 1024 }) };
    const silent = { name: 'silent' };
    const set = metrics({ stores: [counted, silent], usageIntervalMs: 0 });
    const text = await set.text();
    expect(sample(text, 'elastic_session_active_sessions{store="counted",accuracy="estimate"}')).toBe(42);
    expect(sample(text, 'elastic_session_store_bytes{store="counted"}')).toBe(1024);
    expect(text).not.toContain('store="silent"');
  });

  it('reads usage at most once per interval, and a failing read removes the figures instead of failing the scrape', async () => {
    let reads = 0;
    let fail = false;
    const store = {
      name: 'flaky',
      usage: async () => {
        reads++;
        if (fail) throw new Error('down');
        return { keys: 7 };
      },
    };
    const set = metrics({ stores: [store], usageIntervalMs: 60_000 });
    await set.text();
    await set.text();
    expect(reads).toBe(1);
    const fresh = metrics({ prefix: 'fresh_', stores: [store], usageIntervalMs: 0 });
    fail = true;
    const text = await fresh.text();
    expect(text).not.toContain('fresh_store_keys{store="flaky"}');
    expect(await readStoreUsage({ name: 'x', usage: { entries: 3, bytes: 10 } })).toEqual({ keys: 3, bytes: 10, sessions: null, expired: null });
  });
});

describe('metricsHandler', () => {
  it('serves the Prometheus text over node:http', async () => {
    const set = metrics();
    const server = createServer(metricsHandler(set));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe(set.contentType);
      expect(await response.text()).toContain('# TYPE elastic_session_sessions_created_total counter');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('near-cache metrics', () => {
  it('count hits, misses, invalidations and evictions from the near-cache channel, with entries and bytes', async () => {
    const { nearCache } = await import('../src/stores/near-cache.js');
    const { memoryStore } = await import('../src/stores/memory.js');
    const { storedRecord, storeKey } = await import('../src/testing/fixtures.js');
    const metrics = createSessionMetrics({ defaultMetrics: false });
    try {
      const store = nearCache(memoryStore(), { maxEntries: 10 });
      const key = storeKey();
      await store.create(key, storedRecord({ a: 1 }));
      await store.load(key);
      await store.load(key);
      await store.destroy(key, 1000);
      const text = await metrics.text();
      expect(text).toMatch(/elastic_session_near_cache_events_total\{store="memory",event="miss",detail="none"\} 1/);
      expect(text).toMatch(/elastic_session_near_cache_events_total\{store="memory",event="hit",detail="none"\} 1/);
      expect(text).toMatch(/elastic_session_near_cache_events_total\{store="memory",event="invalidation",detail="local"\} [1-9]/);
      expect(text).toMatch(/elastic_session_near_cache_entries\{store="memory"\} 0/);
    } finally {
      metrics.close();
    }
  });
});

describe('expired records still held', () => {
  it('store_expired_records counts sessions past their deadline that a sweep has not removed yet (SQLite, memory)', async () => {
    const { sqliteStore } = await import('../src/stores/sqlite.js');
    const { memoryStore } = await import('../src/stores/memory.js');
    const { storedRecord, storeKey } = await import('../src/testing/fixtures.js');
    let now = Date.now();
    const clock = () => now;
    const sqlite = sqliteStore({ path: ':memory:', clock });
    const memory = memoryStore({ clock });
    const metrics = createSessionMetrics({ stores: [sqlite, memory], usageIntervalMs: 0 });
    try {
      for (const store of [sqlite, memory]) {
        await store.create(storeKey(), storedRecord({}, { idleTimeout: 1_000 }, now));
        await store.create(storeKey(), storedRecord({}, {}, now));
      }
      now += 5_000;
      const text = await metrics.text();
      expect(text).toMatch(/elastic_session_store_expired_records\{store="sqlite"\} 1/);
      expect(text).toMatch(/elastic_session_store_expired_records\{store="memory"\} 1/);
      expect(await sqlite.sweep(10)).toBe(1);
      expect(await metrics.text()).toMatch(/elastic_session_store_expired_records\{store="sqlite"\} 0/);
    } finally {
      metrics.close();
      await sqlite.close();
    }
  });
});
