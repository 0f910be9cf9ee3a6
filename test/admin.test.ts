import { Script } from 'node:vm';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ADMIN_CSS, ADMIN_HTML } from '../src/service/admin/assets.js';
import { ADMIN_JS } from '../src/service/admin/script.js';
import { ADMIN_CSP } from '../src/service/admin/index.js';
import { quantile, readSample, recentOf, seriesOf, StatsHistory } from '../src/service/admin/stats.js';
import type { StatsReport, StatsSample } from '../src/service/admin/stats.js';
import { failingStore, randomKey, servicesClosedAfterEach } from './helpers/service.js';

const start = servicesClosedAfterEach();

describe('admin routes', () => {
  it('/admin serves the page with a CSP that allows only this origin, and its assets need no key', async () => {
    const key = randomKey();
    const service = await start({ apiKeys: [key] });
    const page = await service.request('GET', '/admin');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toBe(ADMIN_CSP);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(await page.text()).toBe(ADMIN_HTML);
    const script = await service.request('GET', '/admin/assets/admin.js');
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await script.text()).toBe(ADMIN_JS);
    const style = await service.request('GET', '/admin/assets/admin.css');
    expect(style.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(await style.text()).toBe(ADMIN_CSS);
    for (const file of ['nope.js', '..%2Fadmin.js', 'hasOwnProperty', '__proto__']) {
      expect((await service.request('GET', `/admin/assets/${file}`)).status).toBe(404);
    }
  });

  it('/admin/api/stats needs the API key when keys are configured', async () => {
    const key = randomKey();
    const service = await start({ apiKeys: [key] });
    const refused = await service.request('GET', '/admin/api/stats');
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await service.request('GET', '/admin/api/stats', { key: randomKey() })).status).toBe(401);
    expect((await service.request('GET', '/admin/api/nothing-here')).status).toBe(401);
    expect((await service.request('GET', '/admin/api/stats', { key })).status).toBe(200);
  });

  it('/admin/api/stats reports totals at once and rates once two samples exist, without IDs', async () => {
    const service = await start();
    const created = (await (await service.request('POST', '/v1/sessions', { json: { userId: 'alice', data: { a: 1 } } })).json()) as { id: string };
    await service.request('GET', `/v1/sessions/${created.id}`);
    await service.request('GET', `/v1/sessions/${'A'.repeat(43)}`);
    const first = (await (await service.request('GET', '/admin/api/stats')).json()) as StatsReport;
    expect(first).toMatchObject({ intervalMs: 2000, store: { name: 'memory', userIndex: true }, version: expect.any(String) });
    expect(first.totals).toMatchObject({ requests: 3, errors: 0, clientErrors: 1, created: 1, storeKeys: 1, activeSessions: { value: 1, accuracy: 'exact' } });
    expect(first.errorsByCode).toEqual([{ code: 'ESESS_NOT_FOUND', status: 404, count: 1 }]);
    expect(first.recent).toMatchObject({ windowMs: 10_000 });
    expect(first.series.t).toEqual([]);
    for (let i = 0; i < 4; i++) await service.request('GET', `/v1/sessions/${created.id}`);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const second = (await (await service.request('GET', '/admin/api/stats')).json()) as StatsReport;
    expect(second.series.t).toHaveLength(1);
    expect(second.series.rps[0]).toBeGreaterThan(0);
    expect(second.series.p50[0]).toBeGreaterThan(0);
    expect(second.series.storeKeys[0]).toBe(1);
    // The dashboard's own polling is not API traffic.
    expect(second.totals.requests).toBe(7);
    expect(JSON.stringify(second)).not.toContain(created.id);
  });

  it('counts 404s of unknown IDs as client errors, and store failures as errors', async () => {
    const service = await start();
    for (let i = 0; i < 5; i++) await service.request('GET', `/v1/sessions/${'A'.repeat(43)}`);
    await service.request('PATCH', '/v1/sessions/x', { json: { set: 1 } });
    const quiet = (await (await service.request('GET', '/admin/api/stats')).json()) as StatsReport;
    expect(quiet.totals).toMatchObject({ errors: 0, clientErrors: 6 });

    const broken = await start({ store: failingStore() });
    await broken.request('GET', `/v1/sessions/${'A'.repeat(43)}`);
    await broken.request('POST', '/v1/sessions', { json: { data: { a: 1 } } });
    const failing = (await (await broken.request('GET', '/admin/api/stats')).json()) as StatsReport;
    expect(failing.totals).toMatchObject({ errors: 2, clientErrors: 0 });
    expect(failing.errorsByCode).toEqual([{ code: 'ESESS_STORE_UNAVAILABLE', status: 503, count: 2 }]);
  });
});

describe('stats arithmetic', () => {
  it('quantile() interpolates inside the bucket that holds the rank, as histogram_quantile does', () => {
    const buckets: [number, number][] = [
      [0.001, 0],
      [0.01, 50],
      [0.1, 100],
      [Number.POSITIVE_INFINITY, 100],
    ];
    expect(quantile(0.5, buckets)).toBeCloseTo(0.01);
    expect(quantile(0.25, buckets)).toBeCloseTo(0.0055);
    expect(quantile(0.99, buckets)).toBeCloseTo(0.0982);
    expect(quantile(0.5, [[0.1, 0], [Number.POSITIVE_INFINITY, 0]])).toBeNull();
    expect(quantile(0.99, [[0.1, 1], [Number.POSITIVE_INFINITY, 10]])).toBe(0.1);
  });

  it('seriesOf() turns cumulative samples into per-second and per-minute rates between them', () => {
    const base: StatsSample = {
      at: 0, requests: 0, latency: [[0.01, 0], [Number.POSITIVE_INFINITY, 0]], errors: 0, clientErrors: 0, errorsByCode: {}, created: 0, expired: 0,
      expiredUnswept: null, destroyed: 0, revoked: 0, regenerated: 0, storeKeys: 5, storeBytes: 100, activeSessions: null,
    };
    const later: StatsSample = { ...base, at: 2000, requests: 20, latency: [[0.01, 20], [Number.POSITIVE_INFINITY, 20]], errors: 2, created: 4, expired: 1, storeKeys: 9 };
    const series = seriesOf([base, later]);
    expect(series).toEqual({ t: [2000], rps: [10], p50: [5], p99: [9.9], errorsPerMin: [60], createdPerMin: [120], expiredPerMin: [30], storeKeys: [9], storeBytes: [100] });
    expect(seriesOf([base])).toMatchObject({ t: [], rps: [] });
  });

  it('recentOf() gives no latency for a window without requests, never the last value seen', () => {
    const at = (ms: number, requests: number): StatsSample => ({
      at: ms, requests, latency: [[0.01, requests], [Number.POSITIVE_INFINITY, requests]], errors: 0, clientErrors: 0, errorsByCode: {}, created: 0, expired: 0,
      expiredUnswept: null, destroyed: 0, revoked: 0, regenerated: 0, storeKeys: null, storeBytes: null, activeSessions: null,
    });
    // Traffic until 4 s, then none: over a 10 s window ending at 6 s there is some, at 20 s none.
    const samples = [at(0, 0), at(2000, 10), at(4000, 20), at(6000, 20)];
    expect(recentOf(samples, at(6000, 20), 10_000)).toEqual({ windowMs: 10_000, rps: 20 / 6, p50: 5, p99: 9.9 });
    const idle = [...samples, at(8000, 20), at(10_000, 20), at(12_000, 20), at(14_000, 20), at(16_000, 20), at(18_000, 20)];
    expect(recentOf(idle, at(20_000, 20), 10_000)).toEqual({ windowMs: 10_000, rps: 0, p50: null, p99: null });
    // The window starts at the newest sample at least windowMs old.
    expect(recentOf(idle.slice(0, 6), at(12_000, 20), 10_000).rps).toBe((20 - 10) / 10);
    expect(recentOf([], at(1, 0), 10_000)).toEqual({ windowMs: 10_000, rps: 0, p50: null, p99: null });
  });

  it('counts expiries when the deadline passes where the store reports unswept expired records: a sweep draws no spike', async () => {
    const registry = new Registry();
    const expired = new Counter({ name: 'elastic_session_sessions_expired_total', help: 'e', labelNames: ['store', 'reason'], registers: [registry] });
    const unswept = new Gauge({ name: 'elastic_session_store_expired_records', help: 'u', labelNames: ['store'], registers: [registry] });
    unswept.set({ store: 'sqlite' }, 3); // expired before anyone looked
    const history = new StatsHistory(registry, { intervalMs: 60_000 });
    try {
      const samples: StatsSample[] = [];
      samples.push(await readSample(registry, 0));
      expect((await history.latest()).expired).toBe(0);
      unswept.set({ store: 'sqlite' }, 8); // five more deadlines passed
      samples.push(await readSample(registry, 60_000));
      expect((await history.latest()).expired).toBe(5);
      // A load that finds one of them past its deadline saw nothing new.
      expired.inc({ store: 'sqlite', reason: 'idle' });
      // The sweep removes all eight: from the gauge to the sweep count.
      expired.inc({ store: 'sqlite', reason: 'sweep' }, 8);
      unswept.set({ store: 'sqlite' }, 0);
      samples.push(await readSample(registry, 120_000));
      expect((await history.latest()).expired).toBe(5);
      expect(seriesOf(samples).expiredPerMin).toEqual([5, 0]);
    } finally {
      history.close();
    }

    // A store that does not report them: the manager's and the sweeps' counts, as they come.
    const plain = new Registry();
    const counted = new Counter({ name: 'elastic_session_sessions_expired_total', help: 'e', labelNames: ['store', 'reason'], registers: [plain] });
    counted.inc({ store: 'redis', reason: 'idle' }, 2);
    counted.inc({ store: 'redis', reason: 'sweep' }, 1);
    expect(await readSample(plain, 0)).toMatchObject({ expired: 3, expiredUnswept: null });
  });

  it('readSample() sums the service metrics, and StatsHistory samples only while someone asks', async () => {
    const registry = new Registry();
    const http = new Histogram({ name: 'elastic_session_http_request_duration_seconds', help: 'h', labelNames: ['route'], buckets: [0.01], registers: [registry] });
    const created = new Counter({ name: 'elastic_session_sessions_created_total', help: 'c', labelNames: ['store'], registers: [registry] });
    http.observe({ route: '/v1/sessions' }, 0.005);
    http.observe({ route: '/metrics' }, 0.005);
    created.inc({ store: 'a' }, 2);
    created.inc({ store: 'b' }, 3);
    const sample = await readSample(registry, 1);
    expect(sample).toMatchObject({ requests: 1, created: 5, latency: [[0.01, 1], [Number.POSITIVE_INFINITY, 1]], storeKeys: null, activeSessions: null });

    const history = new StatsHistory(registry, { intervalMs: 20, idleStopMs: 100 });
    try {
      expect(await history.samples()).toHaveLength(1);
      await new Promise((resolve) => setTimeout(resolve, 70));
      expect((await history.samples()).length).toBeGreaterThanOrEqual(2);
      await new Promise((resolve) => setTimeout(resolve, 250));
      const stopped = (await history.samples()).length;
      // A restart after an idle stop begins a fresh ring.
      expect(stopped).toBe(1);
    } finally {
      history.close();
    }
  });
});

describe('assets', () => {
  it('the script parses, writes no HTML, and the page has no inline script or style', () => {
    expect(() => new Script(ADMIN_JS)).not.toThrow();
    expect(ADMIN_JS).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
    expect(ADMIN_HTML).not.toMatch(/<script(?![^>]*\bsrc=)/);
    expect(ADMIN_HTML).not.toMatch(/\sstyle=|\son[a-z]+=/i);
    expect(ADMIN_HTML + ADMIN_CSS + ADMIN_JS).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
  });
});
