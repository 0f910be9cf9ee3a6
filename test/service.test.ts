import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { MAX_TIMEOUT_SECONDS } from '../src/core/manager.js';
import type { SessionStore } from '../src/core/types.js';
import { createService, openApiDocument } from '../src/service/index.js';
import type { SessionResource } from '../src/service/index.js';
import { memoryStore } from '../src/stores/memory.js';
import { countingStore, failingStore, randomKey, randomSecret, servicesClosedAfterEach, startService } from './helpers/service.js';
import type { RunningService } from './helpers/service.js';

const start = servicesClosedAfterEach();

async function create(service: RunningService, body: unknown = { data: { cart: ['a'] } }, key?: string): Promise<SessionResource> {
  const response = await service.request('POST', '/v1/sessions', { json: body, ...(key === undefined ? {} : { key }) });
  expect(response.status).toBe(201);
  return (await response.json()) as SessionResource;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const ID = /^[A-Za-z0-9_-]{43}$/;

async function expectProblem(response: Response, status: number, code: string): Promise<Record<string, unknown>> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  const problem = (await response.json()) as Record<string, unknown>;
  expect(problem).toMatchObject({ status, code, type: `urn:elastic-session:error:${code}` });
  expect(typeof problem.title).toBe('string');
  expect(Object.keys(problem).every((key) => ['type', 'title', 'status', 'code', 'detail'].includes(key))).toBe(true);
  expect(JSON.stringify(problem)).not.toMatch(/ at |\.ts:|\.js:|node:/);
  return problem;
}

describe('session routes', () => {
  it('POST /v1/sessions answers 201 with the full shape, times as ISO-8601 and an ETag', async () => {
    const service = await start();
    const response = await service.request('POST', '/v1/sessions', { json: { data: { cart: ['a'], n: 1 }, userId: 'u1', idleTimeout: 60, absoluteTimeout: 3600 } });
    expect(response.status).toBe(201);
    expect(response.headers.get('etag')).toBe('"1"');
    expect(response.headers.get('cache-control')).toBe('no-store');
    const session = (await response.json()) as SessionResource;
    expect(Object.keys(session).sort()).toEqual(['absoluteExpiresAt', 'authentication', 'createdAt', 'data', 'expiresAt', 'id', 'lastSeenAt', 'userId']);
    expect(session.id).toMatch(ID);
    expect(session.userId).toBe('u1');
    expect(session.data).toEqual({ cart: ['a'], n: 1 });
    for (const time of [session.createdAt, session.lastSeenAt, session.expiresAt, session.absoluteExpiresAt]) expect(time).toMatch(ISO);
    expect(Date.parse(session.expiresAt) - Date.parse(session.lastSeenAt)).toBe(60_000);
    expect(Date.parse(session.absoluteExpiresAt) - Date.parse(session.createdAt)).toBe(3_600_000);
  });

  it('POST /v1/sessions without a body creates an empty session that GET finds', async () => {
    const service = await start();
    const response = await service.request('POST', '/v1/sessions');
    expect(response.status).toBe(201);
    const session = (await response.json()) as SessionResource;
    expect(session).toMatchObject({ userId: null, data: {} });
    const read = await service.request('GET', `/v1/sessions/${session.id}`);
    expect(read.status).toBe(200);
    expect(((await read.json()) as SessionResource).data).toEqual({});
  });

  it('GET /v1/sessions/{id} answers 200 with the same shape and the ETag of the stored version', async () => {
    const service = await start();
    const created = await create(service);
    const response = await service.request('GET', `/v1/sessions/${created.id}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('etag')).toBe('"1"');
    expect(await response.json()).toEqual(created);
  });

  it('PATCH applies set, unset and userId as a delta and answers 200 with the session and a new ETag', async () => {
    const service = await start();
    const created = await create(service, { data: { a: 1, b: 2 } });
    const response = await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { c: { deep: [1, 2] }, a: null }, unset: ['b'], userId: 'alice' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('etag')).toBe('"2"');
    expect(await response.json()).toMatchObject({ id: created.id, userId: 'alice', data: { a: null, c: { deep: [1, 2] } } });
    const read = (await (await service.request('GET', `/v1/sessions/${created.id}`)).json()) as SessionResource;
    expect(read.data).toEqual({ a: null, c: { deep: [1, 2] } });
    expect(read.userId).toBe('alice');
    const cleared = await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { userId: null } });
    expect(((await cleared.json()) as SessionResource).userId).toBeNull();
  });

  it('POST /v1/sessions/{id}/touch moves lastSeenAt and the idle deadline', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    const clock = (): number => now;
    const service = await start({ store: memoryStore({ clock }), clock });
    const created = await create(service, { idleTimeout: 600 });
    now += 5000;
    const response = await service.request('POST', `/v1/sessions/${created.id}/touch`);
    expect(response.status).toBe(200);
    const touched = (await response.json()) as SessionResource;
    expect(touched.lastSeenAt).toBe('2030-01-01T00:00:05.000Z');
    expect(touched.expiresAt).toBe('2030-01-01T00:10:05.000Z');
    expect(touched.createdAt).toBe(created.createdAt);
  });

  it('POST /v1/sessions/{id}/regenerate answers 201 with a new ID and the data; the old ID is 404 from then on', async () => {
    const service = await start();
    const created = await create(service, { data: { role: 'user' }, userId: 'u1' });
    const response = await service.request('POST', `/v1/sessions/${created.id}/regenerate`);
    expect(response.status).toBe(201);
    const fresh = (await response.json()) as SessionResource;
    expect(fresh.id).toMatch(ID);
    expect(fresh.id).not.toBe(created.id);
    expect(fresh).toMatchObject({ data: { role: 'user' }, userId: 'u1' });
    await expectProblem(await service.request('GET', `/v1/sessions/${created.id}`), 404, 'ESESS_NOT_FOUND');
    await expectProblem(await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { x: 1 } } }), 404, 'ESESS_NOT_FOUND');
    expect((await service.request('GET', `/v1/sessions/${fresh.id}`)).status).toBe(200);
  });

  it('DELETE /v1/sessions/{id} answers 204, the session is 404 from then on, and a repeated DELETE is 204 too', async () => {
    const service = await start();
    const created = await create(service);
    const response = await service.request('DELETE', `/v1/sessions/${created.id}`);
    expect(response.status).toBe(204);
    expect(await response.text()).toBe('');
    await expectProblem(await service.request('GET', `/v1/sessions/${created.id}`), 404, 'ESESS_NOT_FOUND');
    await expectProblem(await service.request('POST', `/v1/sessions/${created.id}/touch`), 404, 'ESESS_NOT_FOUND');
    await expectProblem(await service.request('POST', `/v1/sessions/${created.id}/regenerate`), 404, 'ESESS_NOT_FOUND');
    expect((await service.request('DELETE', `/v1/sessions/${created.id}`)).status).toBe(204);
  });

  it('unknown, expired and destroyed sessions answer the same 404', async () => {
    let now = Date.now();
    const clock = (): number => now;
    const service = await start({ store: memoryStore({ clock }), clock });
    const expired = await create(service, { idleTimeout: 1 });
    const destroyed = await create(service);
    await service.request('DELETE', `/v1/sessions/${destroyed.id}`);
    now += 2000;
    const unknown = 'A'.repeat(43);
    const bodies = [];
    for (const id of [unknown, expired.id, destroyed.id]) bodies.push(await expectProblem(await service.request('GET', `/v1/sessions/${id}`), 404, 'ESESS_NOT_FOUND'));
    expect(bodies[1]).toEqual(bodies[0]);
    expect(bodies[2]).toEqual(bodies[0]);
  });

  it('user routes list sessions by opaque handle, revoke one by handle and revoke all', async () => {
    const service = await start();
    const one = await create(service, { userId: 'bob' });
    const two = await create(service, { userId: 'bob' });
    const three = await create(service, { userId: 'bob' });
    await create(service, { userId: 'carol' });
    const listed = await service.request('GET', '/v1/users/bob/sessions');
    expect(listed.status).toBe(200);
    const { sessions } = (await listed.json()) as { sessions: Record<string, string>[] };
    expect(sessions).toHaveLength(3);
    for (const summary of sessions) {
      expect(Object.keys(summary).sort()).toEqual(['createdAt', 'expiresAt', 'handle', 'lastSeenAt']);
      expect(summary.createdAt).toMatch(ISO);
      expect([one.id, two.id, three.id]).not.toContain(summary.handle);
    }
    const revoked = await service.request('DELETE', `/v1/users/bob/sessions/${encodeURIComponent(sessions[0]?.handle ?? '')}`);
    expect(revoked.status).toBe(204);
    const statuses = await Promise.all([one, two, three].map(async (s) => (await service.request('GET', `/v1/sessions/${s.id}`)).status));
    expect(statuses.filter((status) => status === 404)).toHaveLength(1);
    expect((await service.request('DELETE', '/v1/users/bob/sessions/not-a-handle')).status).toBe(204);
    const all = await service.request('DELETE', '/v1/users/bob/sessions');
    expect(all.status).toBe(200);
    expect(await all.json()).toEqual({ revoked: 2 });
    expect(await (await service.request('GET', '/v1/users/bob/sessions')).json()).toEqual({ sessions: [] });
    expect(((await (await service.request('GET', '/v1/users/carol/sessions')).json()) as { sessions: unknown[] }).sessions).toHaveLength(1);
  });

  it('user IDs in paths are percent-decoded', async () => {
    const service = await start();
    await create(service, { userId: 'team/ä b' });
    const listed = (await (await service.request('GET', `/v1/users/${encodeURIComponent('team/ä b')}/sessions`)).json()) as { sessions: unknown[] };
    expect(listed.sessions).toHaveLength(1);
    await expectProblem(await service.request('GET', '/v1/users/%E0%A4%A/sessions'), 400, 'ESESS_INVALID_INPUT');
  });

  it('a malformed session ID answers 404 without any store call', async () => {
    const store = countingStore();
    const service = await start({ store });
    for (const id of ['short', 'A'.repeat(44), `${'A'.repeat(42)}!`, '%41'.repeat(43), `${'A'.repeat(42)}%41`]) {
      await expectProblem(await service.request('GET', `/v1/sessions/${id}`), 404, 'ESESS_NOT_FOUND');
      await expectProblem(await service.request('PATCH', `/v1/sessions/${id}`, { json: { set: { a: 1 } } }), 404, 'ESESS_NOT_FOUND');
      expect((await service.request('DELETE', `/v1/sessions/${id}`)).status).toBe(204);
    }
    expect(store.calls).toEqual([]);
  });

  it('unknown routes answer 404 ESESS_NOT_FOUND', async () => {
    const service = await start();
    await expectProblem(await service.request('GET', '/v2/nothing'), 404, 'ESESS_NOT_FOUND');
    await expectProblem(await service.request('GET', '/v1/sessions/'), 404, 'ESESS_NOT_FOUND');
  });

  it('a known path with another method answers 405 ESESS_METHOD_NOT_ALLOWED with Allow, naming the methods', async () => {
    const service = await start();
    const created = await create(service);
    const put = await service.request('PUT', '/v1/sessions');
    const problem = await expectProblem(put, 405, 'ESESS_METHOD_NOT_ALLOWED');
    expect(put.headers.get('allow')).toBe('POST');
    expect(problem.detail).toContain('POST');
    const post = await service.request('POST', `/v1/sessions/${created.id}`);
    await expectProblem(post, 405, 'ESESS_METHOD_NOT_ALLOWED');
    expect(post.headers.get('allow')).toBe('GET, HEAD, PATCH, DELETE');
    const health = await service.request('DELETE', '/healthz');
    await expectProblem(health, 405, 'ESESS_METHOD_NOT_ALLOWED');
    expect(health.headers.get('allow')).toBe('GET, HEAD');
    // The session is untouched by the refused method.
    expect((await service.request('GET', `/v1/sessions/${created.id}`)).status).toBe(200);
  });

  it('HEAD is answered wherever GET is: the same status and headers, no body', async () => {
    const service = await start();
    const created = await create(service);
    const get = await service.request('GET', `/v1/sessions/${created.id}`);
    const head = await service.request('HEAD', `/v1/sessions/${created.id}`);
    expect(head.status).toBe(200);
    expect(head.headers.get('etag')).toBe(get.headers.get('etag'));
    expect(head.headers.get('content-length')).toBe(get.headers.get('content-length'));
    expect(await head.text()).toBe('');
    expect((await service.request('HEAD', '/healthz')).status).toBe(200);
    expect((await service.request('HEAD', `/v1/sessions/${'A'.repeat(43)}`)).status).toBe(404);
  });

  it('GET / points to the dashboard, the OpenAPI document and health: JSON, or HTML for a browser, without a key', async () => {
    const service = await start({ apiKeys: [randomKey()] });
    const json = await service.request('GET', '/');
    expect(json.status).toBe(200);
    expect(json.headers.get('content-type')).toBe('application/json');
    expect(json.headers.get('vary')).toBe('accept');
    expect(await json.json()).toEqual({
      service: 'elastic-session',
      version: expect.any(String),
      links: { admin: '/admin', openapi: '/openapi.json', health: '/healthz', metrics: '/metrics' },
    });
    const html = await service.request('GET', '/', { headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' } });
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(html.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    const page = await html.text();
    for (const link of ['admin', 'openapi.json', 'healthz', 'metrics']) expect(page).toContain(`href="${link}"`);
    expect(page).not.toMatch(/<script/);
    expect((await service.request('GET', '/', { headers: { accept: 'application/json, text/html' } })).headers.get('content-type')).toBe('application/json');
  });

  it('GET /healthz answers 200 { status: "ok" }', async () => {
    const service = await start();
    const response = await service.request('GET', '/healthz');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });
});

describe('API keys', () => {
  it('every /v1 route answers 401 without a key or with a wrong one, and the key is never echoed', async () => {
    const key = randomKey();
    const service = await start({ apiKeys: [key] });
    const wrong = randomKey();
    const id = 'A'.repeat(43);
    const attempts: [string, string][] = [
      ['POST', '/v1/sessions'],
      ['GET', `/v1/sessions/${id}`],
      ['PATCH', `/v1/sessions/${id}`],
      ['DELETE', `/v1/sessions/${id}`],
      ['POST', `/v1/sessions/${id}/touch`],
      ['POST', `/v1/sessions/${id}/regenerate`],
      ['GET', '/v1/users/u/sessions'],
      ['DELETE', '/v1/users/u/sessions'],
      ['DELETE', '/v1/users/u/sessions/h'],
      ['GET', '/v1/not-a-route'],
      ['GET', '/v1/users/%E0%A4%A/sessions'],
      ['PUT', '/v1/sessions'],
    ];
    for (const [method, path] of attempts) {
      for (const headers of [{} as Record<string, string>, { authorization: `Bearer ${wrong}` }, { authorization: `Basic ${key}` }, { authorization: `Bearer ${key.slice(0, -1)}` }, { authorization: 'Bearer' }]) {
        const response = await service.request(method, path, { headers });
        const problem = await expectProblem(response, 401, 'ESESS_UNAUTHORIZED');
        expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/);
        expect(JSON.stringify(problem)).not.toContain(key.slice(4));
        expect(JSON.stringify(problem)).not.toContain(wrong.slice(4));
      }
    }
    expect(service.log.lines.join('\n')).not.toContain(key);
  });

  it('a valid key (any of several) opens every /v1 route', async () => {
    const keys = [randomKey(), randomKey()];
    const service = await start({ apiKeys: keys });
    const created = await create(service, { data: { a: 1 } }, keys[1]);
    expect((await service.request('GET', `/v1/sessions/${created.id}`, { key: keys[0] })).status).toBe(200);
    expect((await service.request('GET', `/v1/sessions/${created.id}`, { headers: { authorization: `bearer ${keys[0]}` } })).status).toBe(200);
  });

  it('/, /healthz and /openapi.json need no key; /metrics needs one unless made public', async () => {
    const service = await start({ apiKeys: [randomKey()] });
    for (const path of ['/', '/healthz', '/openapi.json']) expect((await service.request('GET', path)).status, path).toBe(200);
    expect((await service.request('GET', '/metrics')).status).toBe(401);
    const open = await start({ apiKeys: [randomKey()], publicMetrics: true });
    expect((await open.request('GET', '/metrics')).status).toBe(200);
  });

  it('createService refuses a non-loopback host without API keys, naming the options', async () => {
    await expect(createService({ store: memoryStore(), secret: randomSecret(), host: '0.0.0.0' })).rejects.toMatchObject({
      code: 'ESESS_CONFIG',
      message: expect.stringMatching(/^host .*apiKeys/),
    });
  });

  it('createService refuses a short secret and a short API key, naming the option and not the value', async () => {
    await expect(createService({ store: memoryStore(), secret: 'too-short' })).rejects.toMatchObject({ code: 'ESESS_CONFIG', message: expect.stringMatching(/^secret /) });
    const rejected = createService({ store: memoryStore(), secret: randomSecret(), apiKeys: ['tiny'] });
    await expect(rejected).rejects.toMatchObject({ code: 'ESESS_CONFIG', message: expect.stringMatching(/^apiKeys /) });
    await expect(rejected).rejects.not.toMatchObject({ message: expect.stringContaining('tiny') });
  });
});

describe('concurrency', () => {
  it('50 parallel PATCHes of distinct fields to one session all survive', async () => {
    const service = await start();
    const created = await create(service, { data: {} });
    const responses = await Promise.all(Array.from({ length: 50 }, (_, i) => service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { [`f${i}`]: i } } })));
    expect(responses.map((response) => response.status)).toEqual(Array(50).fill(200));
    const read = (await (await service.request('GET', `/v1/sessions/${created.id}`)).json()) as SessionResource;
    expect(read.data).toEqual(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`f${i}`, i])));
  });

  it('a DELETE racing 50 PATCHes leaves the session 404 for good', async () => {
    const service = await start();
    const created = await create(service);
    const patches = Array.from({ length: 50 }, (_, i) => service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { [`f${i}`]: i } } }));
    const destroy = service.request('DELETE', `/v1/sessions/${created.id}`);
    const statuses = await Promise.all([...patches, destroy].map(async (response) => (await response).status));
    expect(statuses.at(-1)).toBe(204);
    for (const status of statuses.slice(0, -1)) expect([200, 404]).toContain(status);
    await expectProblem(await service.request('GET', `/v1/sessions/${created.id}`), 404, 'ESESS_NOT_FOUND');
    await new Promise((resolve) => setTimeout(resolve, 50));
    await expectProblem(await service.request('GET', `/v1/sessions/${created.id}`), 404, 'ESESS_NOT_FOUND');
  });

  it('PATCH with If-Match of an old version answers 409 ESESS_CONFLICT and changes nothing', async () => {
    const service = await start();
    const created = await create(service, { data: { a: 1 } });
    const first = await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { a: 2 } }, headers: { 'if-match': '"1"' } });
    expect(first.status).toBe(200);
    expect(first.headers.get('etag')).toBe('"2"');
    await expectProblem(await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { a: 3 } }, headers: { 'if-match': '"1"' } }), 409, 'ESESS_CONFLICT');
    const read = await service.request('GET', `/v1/sessions/${created.id}`);
    expect(read.headers.get('etag')).toBe('"2"');
    expect(((await read.json()) as SessionResource).data).toEqual({ a: 2 });
    expect((await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { a: 4 } }, headers: { 'if-match': '*' } })).status).toBe(200);
    await expectProblem(await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { a: 5 } }, headers: { 'if-match': 'W/"2"' } }), 400, 'ESESS_INVALID_INPUT');
  });

  it('a stale If-Match says the session changed since that version; its title speaks of no retries', async () => {
    const service = await start();
    const created = await create(service, { data: { a: 1 } });
    expect((await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { a: 2 } } })).status).toBe(200);
    const problem = await expectProblem(await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { a: 3 } }, headers: { 'if-match': '"1"' } }), 409, 'ESESS_CONFLICT');
    expect(problem.title).not.toMatch(/retr/i);
    expect(problem.detail).toBe('The session changed since the version in If-Match: GET it again for the current ETag');
  });

  it('a write landing between the If-Match check and the save answers the same 409, and only it is kept', async () => {
    const inner = memoryStore();
    let held: (() => void) | null = null;
    let holding: () => void = () => {};
    const applyHeld = new Promise<void>((resolve) => (holding = resolve));
    // The first delta waits until the test lets it go: the second PATCH lands in between.
    const store: SessionStore = new Proxy(inner, {
      get(target, property, receiver) {
        if (property === 'apply') {
          return async (...args: Parameters<SessionStore['apply']>) => {
            if (held === null) {
              await new Promise<void>((resolve) => {
                held = resolve;
                holding();
              });
            }
            return target.apply(...args);
          };
        }
        const value: unknown = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
      },
    });
    const service = await start({ store });
    const created = await create(service, { data: { a: 1 } });
    const first = service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { a: 2 } }, headers: { 'if-match': '"1"' } });
    await applyHeld;
    expect((await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { a: 3 } } })).status).toBe(200);
    held!();
    const problem = await expectProblem(await first, 409, 'ESESS_CONFLICT');
    expect(problem.detail).toBe('The session changed since the version in If-Match: GET it again for the current ETag');
    expect(((await (await service.request('GET', `/v1/sessions/${created.id}`)).json()) as SessionResource).data).toEqual({ a: 3 });
  });

  it('of parallel PATCHes with the same If-Match exactly one wins', async () => {
    const service = await start();
    const created = await create(service, { data: { n: 0 } });
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, i) => service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { n: i + 1 } }, headers: { 'if-match': '"1"' } })),
    );
    const statuses = responses.map((response) => response.status).sort();
    expect(statuses.filter((status) => status === 200)).toHaveLength(1);
    expect(statuses.filter((status) => status === 409)).toHaveLength(9);
  });
});

describe('bad input never yields a 500 or a crash', () => {
  it('answers 400 to malformed JSON, non-object bodies and invalid UTF-8', async () => {
    const service = await start();
    const created = await create(service);
    for (const body of ['{', '{"data":', 'nul', '[1,2]', '"text"', '42', '{"set": {"a": 1},}']) {
      await expectProblem(await service.request('PATCH', `/v1/sessions/${created.id}`, { body, headers: { 'content-type': 'application/json' } }), 400, 'ESESS_INVALID_INPUT');
    }
    await expectProblem(await service.request('POST', '/v1/sessions', { body: '[]', headers: { 'content-type': 'application/json' } }), 400, 'ESESS_INVALID_INPUT');
    const invalidUtf8 = await fetch(`${service.url}/v1/sessions`, { method: 'POST', body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), headers: { 'content-type': 'application/json' } });
    await expectProblem(invalidUtf8, 400, 'ESESS_INVALID_INPUT');
  });

  it('answers 400 to a body that is not application/json', async () => {
    const service = await start();
    const created = await create(service);
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonp']) {
      await expectProblem(await service.request('PATCH', `/v1/sessions/${created.id}`, { body: '{"set":{"a":1}}', headers: { 'content-type': type } }), 400, 'ESESS_INVALID_INPUT');
    }
    expect((await service.request('PATCH', `/v1/sessions/${created.id}`, { body: '{"set":{"a":1}}', headers: { 'content-type': 'Application/JSON; charset=utf-8' } })).status).toBe(200);
  });

  it('answers 413 to a body over the limit, announced or chunked, before reading it all', async () => {
    const service = await start({ bodyLimit: 1024 });
    const big = JSON.stringify({ data: { blob: 'x'.repeat(300 * 1024) } });
    await expectProblem(await service.request('POST', '/v1/sessions', { body: big, headers: { 'content-type': 'application/json' } }), 413, 'ESESS_TOO_LARGE');
    const chunked = await new Promise<{ status: number | undefined; body: string }>((resolve, reject) => {
      const req = httpRequest(`${service.url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      });
      req.on('error', reject);
      req.write('{"data":{"blob":"');
      req.write('y'.repeat(4096));
      // The rest never comes: the service must answer without waiting for it.
    });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body)).toMatchObject({ code: 'ESESS_TOO_LARGE' });
    expect((await service.request('GET', '/healthz')).status).toBe(200);
  });

  it('answers 413 to a session over the data limit and to data nested too deep', async () => {
    const service = await start();
    await expectProblem(await service.request('POST', '/v1/sessions', { json: { data: { blob: 'x'.repeat(70 * 1024) } } }), 413, 'ESESS_TOO_LARGE');
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = { d: deep };
    await expectProblem(await service.request('POST', '/v1/sessions', { json: { data: { deep } } }), 413, 'ESESS_TOO_DEEP');
  });

  it('413 and ESESS_UNSAFE_KEY answers say which limit or which key in their detail', async () => {
    const service = await start({ bodyLimit: 100 * 1024 });
    const created = await create(service);
    const detailOf = async (response: Response, status: number, code: string): Promise<string> => String((await expectProblem(response, status, code)).detail);

    expect(await detailOf(await service.request('POST', '/v1/sessions', { body: JSON.stringify({ data: { blob: 'x'.repeat(200 * 1024) } }), headers: { 'content-type': 'application/json' } }), 413, 'ESESS_TOO_LARGE')).toBe(
      'Request body exceeds the limit of 102400 bytes',
    );
    expect(await detailOf(await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { blob: 'x'.repeat(70 * 1024) } } }), 413, 'ESESS_TOO_LARGE')).toMatch(/limits\.maxBytes \(65536\)/);
    const fields = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`f${i}`, i]));
    expect(await detailOf(await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: fields } }), 413, 'ESESS_TOO_LARGE')).toMatch(/limits\.maxFields \(256\)/);
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = { d: deep };
    expect(await detailOf(await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { deep } } }), 413, 'ESESS_TOO_DEEP')).toBe('JSON nested deeper than 18 levels');

    const inBody = await service.request('POST', '/v1/sessions', { body: '{"data":{"a":{"__proto__":{"x":1}}}}', headers: { 'content-type': 'application/json' } });
    expect(await detailOf(inBody, 400, 'ESESS_UNSAFE_KEY')).toContain('"__proto__"');
    expect(await detailOf(await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { unset: ['constructor'] } }), 400, 'ESESS_UNSAFE_KEY')).toContain('"constructor"');
  });

  it('answers 400 to __proto__, constructor and prototype keys, plain or \\u-escaped', async () => {
    const service = await start();
    const created = await create(service);
    const payloads = [
      '{"set":{"__proto__":{"polluted":true}}}',
      '{"set":{"a":{"__proto__":{"polluted":true}}}}',
      '{"set":{"constructor":{"prototype":{"polluted":true}}}}',
      '{"set":{"a":{"constructor":{"prototype":{"polluted":true}}}}}',
      '{"set":{"\\u005f_proto__":{"polluted":true}}}',
      '{"set":{"\\u0063onstructor":{"\\u0070rototype":{"polluted":true}}}}',
      '{"__proto__":{"set":{"a":1}}}',
    ];
    for (const body of payloads) {
      const response = await service.request('PATCH', `/v1/sessions/${created.id}`, { body, headers: { 'content-type': 'application/json' } });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { code: string }).code).toMatch(/^ESESS_(UNSAFE_KEY|INVALID_INPUT)$/);
    }
    await expectProblem(await service.request('POST', '/v1/sessions', { body: '{"data":{"__proto__":{"x":1}}}', headers: { 'content-type': 'application/json' } }), 400, 'ESESS_UNSAFE_KEY');
    await expectProblem(await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { unset: ['__proto__'] } }), 400, 'ESESS_UNSAFE_KEY');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(((await (await service.request('GET', `/v1/sessions/${created.id}`)).json()) as SessionResource).data).toEqual({ cart: ['a'] });
  });

  it('answers 400 to absurd timeouts', async () => {
    const service = await start();
    for (const value of [-1, 0, 0.5, 1e12, MAX_TIMEOUT_SECONDS + 1, 'NaN', 'Infinity', '60', null, true, [60], { s: 60 }]) {
      await expectProblem(await service.request('POST', '/v1/sessions', { json: { idleTimeout: value } }), 400, 'ESESS_INVALID_INPUT');
      await expectProblem(await service.request('POST', '/v1/sessions', { json: { absoluteTimeout: value } }), 400, 'ESESS_INVALID_INPUT');
    }
    await expectProblem(await service.request('POST', '/v1/sessions', { body: '{"idleTimeout":1e999}', headers: { 'content-type': 'application/json' } }), 400, 'ESESS_INVALID_INPUT');
  });

  it('answers 400 to body fields of the wrong type or unknown fields', async () => {
    const service = await start();
    const created = await create(service);
    const creates = [{ data: [1] }, { data: 'x' }, { data: null }, { userId: '' }, { userId: 'u'.repeat(513) }, { userId: 7 }, { extra: 1 }];
    for (const body of creates) await expectProblem(await service.request('POST', '/v1/sessions', { json: body }), 400, 'ESESS_INVALID_INPUT');
    const patches = [{ set: [1] }, { set: 'a' }, { unset: 'a' }, { unset: [1] }, { set: { a: 1 }, unset: ['a'] }, { userId: {} }, { replace: {} }, { set: { ['f'.repeat(300)]: 1 } }, { set: { '': 1 } }];
    for (const body of patches) await expectProblem(await service.request('PATCH', `/v1/sessions/${created.id}`, { json: body }), 400, 'ESESS_INVALID_INPUT');
    await expectProblem(await service.request('PATCH', `/v1/sessions/${created.id}`), 400, 'ESESS_INVALID_INPUT');
  });

  it('answers 404 to tampered, garbage and overlong IDs, and keeps serving', async () => {
    const service = await start();
    const created = await create(service);
    const tampered = `${created.id.slice(0, -1)}${created.id.endsWith('A') ? 'B' : 'A'}`;
    for (const id of [tampered, 'x', '😀'.repeat(20), encodeURIComponent('../../etc/passwd'), 'A'.repeat(5000), '%00', '%ZZ', '..']) {
      const response = await service.request('GET', `/v1/sessions/${id}`);
      expect([404]).toContain(response.status);
    }
    expect((await service.request('GET', '/healthz')).status).toBe(200);
    expect((await service.request('GET', `/v1/sessions/${created.id}`)).status).toBe(200);
  });
});

describe('wide bodies (security round 2, item 2)', () => {
  it('a 32,000-field PATCH is refused as 413 naming limits.maxFields before any field is touched, and the session is unchanged', async () => {
    const counted = countingStore(memoryStore());
    const { request } = await start({ store: counted });
    const loads = () => counted.calls.filter((call) => call === 'load').length;
    const created = (await (await request('POST', '/v1/sessions', { json: { data: { kept: 1 } } })).json()) as SessionResource;
    const set: Record<string, number> = {};
    for (let i = 0; i < 32_000; i++) set[i.toString(36)] = 1;
    const loadsBefore = loads();
    const response = await request('PATCH', `/v1/sessions/${created.id}`, { json: { set } });
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ code: 'ESESS_TOO_LARGE', detail: expect.stringMatching(/32000 fields, over limits\.maxFields \(256\)/) as unknown });
    expect(loads(), 'refused before the session is even loaded').toBe(loadsBefore);
    expect(((await (await request('GET', `/v1/sessions/${created.id}`)).json()) as SessionResource).data).toEqual({ kept: 1 });
  });

  it('/healthz is answered while a wide PATCH body is still arriving, and the PATCH is answered after it', async () => {
    const { url, request } = await start();
    const created = (await (await request('POST', '/v1/sessions', { json: {} })).json()) as SessionResource;
    const set: Record<string, number> = {};
    for (let i = 0; i < 32_000; i++) set[i.toString(36)] = 1;
    const body = Buffer.from(JSON.stringify({ set }));
    const order: string[] = [];
    const patch = new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${url}/v1/sessions/${created.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
        res.resume();
        res.once('end', () => {
          order.push('patch');
          resolve(res.statusCode ?? 0);
        });
      });
      req.once('error', reject);
      req.write(body.subarray(0, body.length / 2), () => {
        // Half the body is on the wire: the health check must not wait for the rest.
        void request('GET', '/healthz').then(async (health) => {
          await health.text();
          order.push(`healthz ${health.status}`);
          req.end(body.subarray(body.length / 2));
        }, reject);
      });
    });
    expect(await patch).toBe(413);
    expect(order).toEqual(['healthz 200', 'patch']);
  });
});

describe('authentication state and session limits (security round 2, item 12)', () => {
  it('PATCH authenticate records the authentication; GET ?maxAuthAge refuses a stale or weaker one with 401 ESESS_REAUTH_REQUIRED', async () => {
    // The memory store reads the real clock: start from it, move only forward within the session's life.
    let now = Date.now();
    const { request } = await start({ clock: () => now });
    const created = (await (await request('POST', '/v1/sessions', { json: { userId: 'alice' } })).json()) as SessionResource;
    expect(created.authentication).toBeNull();
    expect((await request('GET', `/v1/sessions/${created.id}?maxAuthAge=300`)).status, 'an anonymous session never passes').toBe(401);
    const marked = await request('PATCH', `/v1/sessions/${created.id}`, { json: { authenticate: { method: 'password', level: 'aal1' } } });
    expect(((await marked.json()) as SessionResource).authentication).toEqual({ at: new Date(now).toISOString(), method: 'password', level: 'aal1' });
    now += 100_000;
    expect((await request('GET', `/v1/sessions/${created.id}?maxAuthAge=300`)).status).toBe(200);
    const weak = await request('GET', `/v1/sessions/${created.id}?maxAuthAge=300&minLevel=aal2`);
    expect(weak.status).toBe(401);
    expect(await weak.json()).toMatchObject({ code: 'ESESS_REAUTH_REQUIRED', detail: expect.stringMatching(/300 seconds at level aal2/) as unknown });
    await request('PATCH', `/v1/sessions/${created.id}`, { json: { authenticate: { method: 'webauthn', level: 'aal2' } } });
    expect((await request('GET', `/v1/sessions/${created.id}?maxAuthAge=300&minLevel=aal2`)).status, 'stepped up').toBe(200);
    now += 301_000;
    expect((await request('GET', `/v1/sessions/${created.id}?maxAuthAge=300`)).status, 'too long ago').toBe(401);
    expect((await request('GET', `/v1/sessions/${created.id}`)).status, 'without the gate it is just a read').toBe(200);
    for (const bad of ['?maxAuthAge=0', '?maxAuthAge=abc', '?minLevel=aal2', '?maxAuthAge=60&minLevel=aal9']) {
      expect((await request('GET', `/v1/sessions/${created.id}${bad}`)).status, bad).toBe(400);
    }
    for (const authenticate of [{}, { method: 'pass word' }, { method: 'otp', level: 'aal4' }, { method: 'otp', extra: 1 }]) {
      expect((await request('PATCH', `/v1/sessions/${created.id}`, { json: { authenticate } })).status, JSON.stringify(authenticate)).toBe(400);
    }
  });

  it('maxSessionsPerUser ends the oldest session of a user beyond the limit, or refuses the login with 409', async () => {
    let now = Date.now();
    const evicting = await start({ clock: () => now, maxSessionsPerUser: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      now += 1_000;
      ids.push(((await (await evicting.request('POST', '/v1/sessions', { json: { userId: 'bob' } })).json()) as SessionResource).id);
    }
    expect((await evicting.request('GET', `/v1/sessions/${ids[0]}`)).status, 'the oldest was ended').toBe(404);
    for (const id of ids.slice(1)) expect((await evicting.request('GET', `/v1/sessions/${id}`)).status).toBe(200);

    const refusing = await start({ clock: () => now, maxSessionsPerUser: 1, onTooManySessions: 'refuse' });
    expect((await refusing.request('POST', '/v1/sessions', { json: { userId: 'carol' } })).status).toBe(201);
    const refused = await refusing.request('POST', '/v1/sessions', { json: { userId: 'carol' } });
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({ code: 'ESESS_TOO_MANY_SESSIONS' });
    const listed = (await (await refusing.request('GET', '/v1/users/carol/sessions')).json()) as { sessions: unknown[] };
    expect(listed.sessions).toHaveLength(1);
  });
});

describe('failures', () => {
  it('answers 501 ESESS_UNSUPPORTED to user routes when the store has no user index', async () => {
    const inner = memoryStore();
    const store: SessionStore = new Proxy(inner, {
      get(target, property, receiver) {
        if (property === 'capabilities') return { ...target.capabilities, userIndex: false };
        const value: unknown = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
      },
    });
    const service = await start({ store });
    await expectProblem(await service.request('GET', '/v1/users/u/sessions'), 501, 'ESESS_UNSUPPORTED');
    await expectProblem(await service.request('DELETE', '/v1/users/u/sessions'), 501, 'ESESS_UNSUPPORTED');
  });

  it('keeps serving after a client aborts in the middle of a body', async () => {
    const service = await start();
    // Beside the service's own listeners (attached first), these only watch: the body's first bytes arrived.
    const bodyArrived = new Promise<ServerResponse>((resolve) => {
      service.service.server.once('request', (received: IncomingMessage, response: ServerResponse) => received.once('data', () => resolve(response)));
    });
    const req = httpRequest(`${service.url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '1000' } });
    req.on('error', () => {});
    req.write('{"data":{"a":');
    const response = await bodyArrived;
    const ended = once(response, 'close');
    req.destroy();
    await ended;
    expect((await service.request('GET', '/healthz')).status).toBe(200);
    expect((await service.request('POST', '/v1/sessions', { json: { data: { a: 1 } } })).status).toBe(201);
  });

  it('answers 503 ESESS_STORE_UNAVAILABLE when the store fails, without the internal message', async () => {
    const service = await start({ store: failingStore() });
    const response = await service.request('POST', '/v1/sessions', { json: { data: { a: 1 } } });
    const problem = await expectProblem(response, 503, 'ESESS_STORE_UNAVAILABLE');
    expect(JSON.stringify(problem)).not.toMatch(/ECONNREFUSED|10\.0\.0\.7|secret internal/);
    expect(response.headers.get('retry-after')).toBe('1');
    await expectProblem(await service.request('GET', `/v1/sessions/${'A'.repeat(43)}`), 503, 'ESESS_STORE_UNAVAILABLE');
    expect(service.log.lines.some((line) => line.includes('ESESS_STORE_UNAVAILABLE'))).toBe(true);
  });

  it('answers 503 ESESS_STORE_CLOSED when the store is closed', async () => {
    const store = memoryStore();
    const service = await start({ store });
    const created = await create(service);
    await store.close();
    await expectProblem(await service.request('GET', `/v1/sessions/${created.id}`), 503, 'ESESS_STORE_CLOSED');
    await expectProblem(await service.request('POST', '/v1/sessions', { json: { data: { a: 1 } } }), 503, 'ESESS_STORE_CLOSED');
  });

  it('answers 500 ESESS_INTERNAL to an unexpected error and logs it without the request path', async () => {
    const now = Date.now();
    // A record the store vouches for but that breaks the manager's invariants: not a store failure, not corrupt data.
    const record = { createdAt: now, lastSeenAt: now, idleTimeout: 60_000, absoluteExpiresAt: now + 60_000, userId: null, fields: {} };
    Object.defineProperty(record, 'version', {
      get() {
        throw new TypeError('internal detail that must not leak');
      },
    });
    const broken: SessionStore = { ...failingStore(), name: 'weird', load: async () => record as never };
    const service = await start({ store: broken });
    const id = 'Q'.repeat(43);
    const problem = await expectProblem(await service.request('GET', `/v1/sessions/${id}`), 500, 'ESESS_INTERNAL');
    expect(problem.detail).toBeUndefined();
    expect(JSON.stringify(problem)).not.toContain('internal detail');
    const logged = service.log.lines.join('\n');
    expect(logged).toContain('/v1/sessions/{id}');
    expect(logged).not.toContain(id);
  });
});

describe('operations', () => {
  it('/metrics serves Prometheus text with request and store latency histograms and session counters, labelled by route template', async () => {
    const service = await start();
    const created = await create(service);
    await service.request('GET', `/v1/sessions/${created.id}`);
    await service.request('GET', `/v1/sessions/${'A'.repeat(43)}`);
    await service.request('DELETE', `/v1/sessions/${created.id}`);
    const response = await service.request('GET', '/metrics');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    expect(text).toMatch(/# TYPE elastic_session_http_request_duration_seconds histogram/);
    expect(text).toMatch(/elastic_session_http_request_duration_seconds_count\{method="GET",route="\/v1\/sessions\/\{id\}",status="200"\} 1/);
    expect(text).toMatch(/elastic_session_http_request_duration_seconds_count\{method="GET",route="\/v1\/sessions\/\{id\}",status="404"\} 1/);
    expect(text).toMatch(/# TYPE elastic_session_store_operation_duration_seconds histogram/);
    expect(text).toMatch(/elastic_session_store_operation_duration_seconds_count\{store="memory",operation="load",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/elastic_session_sessions_created_total\{store="memory"\} [1-9]/);
    expect(text).toMatch(/elastic_session_sessions_destroyed_total\{store="memory"\} [1-9]/);
    expect(text).toMatch(/# TYPE elastic_session_sessions_expired_total counter/);
    expect(text).toMatch(/elastic_session_errors_total\{code="ESESS_NOT_FOUND"\} 1/);
    expect(text).not.toContain(created.id);
  });

  it('/metrics counts store errors by kind', async () => {
    const service = await start({ store: failingStore() });
    await service.request('GET', `/v1/sessions/${'A'.repeat(43)}`);
    const text = await (await service.request('GET', '/metrics')).text();
    expect(text).toMatch(/elastic_session_store_errors_total\{store="broken",operation="load",kind="ECONNREFUSED"\} 1/);
    expect(text).toMatch(/elastic_session_errors_total\{code="ESESS_STORE_UNAVAILABLE"\} 1/);
  });

  it('/openapi.json is an OpenAPI 3.1 document with exactly the routes of the route table', async () => {
    const service = await start();
    const response = await service.request('GET', '/openapi.json');
    expect(response.status).toBe(200);
    const document = (await response.json()) as { openapi: string; paths: Record<string, Record<string, { operationId?: string }>> };
    expect(document.openapi).toBe('3.1.0');
    const methods = new Set(['get', 'post', 'patch', 'put', 'delete', 'head', 'options']);
    const documented = Object.entries(document.paths)
      .flatMap(([path, item]) => Object.entries(item).filter(([method]) => methods.has(method)).map(([method, operation]) => `${method.toUpperCase()} ${path} ${operation.operationId}`))
      .sort();
    const table = service.service.routes.map((route) => `${route.method} ${route.path} ${route.operationId}`).sort();
    expect(documented).toEqual(table);
    expect(document).toEqual(openApiDocument(((document as unknown as { info: { version: string } }).info).version));
  });

  it('close() drains an in-flight request, then refuses new connections', async () => {
    const inner = memoryStore();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let loading: () => void = () => {};
    const loadStarted = new Promise<void>((resolve) => (loading = resolve));
    const slow: SessionStore = new Proxy(inner, {
      get(target, property, receiver) {
        if (property === 'load') return async (key: string) => (loading(), await gate, target.load(key));
        const value: unknown = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
      },
    });
    const service = await startService({ store: slow });
    const created = await create(service);
    const inFlight = service.request('GET', `/v1/sessions/${created.id}`);
    await loadStarted;
    let closed = false;
    const closing = service.close().then(() => (closed = true));
    await expect(fetch(`${service.url}/healthz`)).rejects.toThrow();
    expect(closed).toBe(false);
    release();
    const response = await inFlight;
    expect(response.status).toBe(200);
    expect(((await response.json()) as SessionResource).id).toBe(created.id);
    await closing;
    expect(closed).toBe(true);
  });

  it('sweeps a store without native expiry on an interval, and stops on close', async () => {
    const inner = memoryStore();
    let sweeps = 0;
    let secondSweep: () => void = () => {};
    const sweptTwice = new Promise<void>((resolve) => (secondSweep = resolve));
    const store: SessionStore = new Proxy(inner, {
      get(target, property, receiver) {
        if (property === 'capabilities') return { ...target.capabilities, nativeTtl: false };
        if (property === 'sweep') {
          return async (limit: number) => {
            if (++sweeps === 2) secondSweep();
            return target.sweep(limit);
          };
        }
        const value: unknown = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
      },
    });
    const service = await startService({ store, sweepIntervalMs: 10 });
    await sweptTwice;
    expect(sweeps).toBeGreaterThan(1);
    await service.close();
    const after = sweeps;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(sweeps).toBe(after);
  });

  it('does not sweep a store with native expiry', async () => {
    const store = countingStore();
    const service = await start({ store, sweepIntervalMs: 10 });
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(store.calls).not.toContain('sweep');
    await service.close();
  });
});
