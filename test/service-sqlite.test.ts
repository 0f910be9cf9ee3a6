import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeKeyOf } from '../src/core/ids.js';
import { SECRET_FILE, storeHashKey } from '../src/service/index.js';
import type { SessionResource } from '../src/service/index.js';
import { builtCli, fileMode, servicesClosedAfterEach, spawnServe, startService, tempDir } from './helpers/service.js';
import type { ServeProcess } from './helpers/service.js';

const start = servicesClosedAfterEach();
const processes: ServeProcess[] = [];
afterAll(async () => {
  await Promise.all(processes.splice(0).map((serve) => serve.stop('SIGKILL')));
});

async function json<T>(response: Response | Promise<Response>): Promise<T> {
  return (await (await response).json()) as T;
}

describe('session service on SQLite', () => {
  it('generates a secret next to the database (mode 0600) on first start, says so, and reuses it on the next start', async () => {
    const dir = tempDir();
    const store = `sqlite:${join(dir, 'nested', 'sessions.db')}`;
    const first = await startService({ store, secret: undefined });
    const secretFile = join(dir, 'nested', SECRET_FILE);
    expect(fileMode(secretFile)).toBe(0o600);
    expect(readFileSync(secretFile, 'utf8').trim()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first.log.lines.some((line) => line.includes('generated a new secret') && line.includes(secretFile))).toBe(true);
    const created = await json<SessionResource>(first.request('POST', '/v1/sessions', { json: { data: { kept: true } } }));
    await first.close();

    const second = await start({ store, secret: undefined });
    expect(second.log.lines.some((line) => line.includes('generated a new secret'))).toBe(false);
    const read = await second.request('GET', `/v1/sessions/${created.id}`);
    expect(read.status).toBe(200);
    expect(((await read.json()) as SessionResource).data).toEqual({ kept: true });
    expect(second.log.lines.join('\n')).not.toContain(readFileSync(secretFile, 'utf8').trim());
  });

  it('keys stored sessions by an HMAC of the ID, so the database holds no ID', async () => {
    const dir = tempDir();
    const path = join(dir, 'sessions.db');
    const service = await start({ store: `sqlite:${path}`, secret: undefined });
    const created = await json<SessionResource>(service.request('POST', '/v1/sessions', { json: { data: { a: 1 } } }));
    const db = new Database(path, { readonly: true });
    const keys = db.prepare('SELECT key FROM elastic_sessions').pluck().all() as string[];
    db.close();
    const secret = readFileSync(join(dir, SECRET_FILE), 'utf8').trim();
    expect(keys).toEqual([storeKeyOf(created.id, storeHashKey(secret))]);
    expect(keys).not.toContain(created.id);
  });

  it('answers 404 to a session whose stored field is garbage, counts it in /metrics and keeps serving', async () => {
    const dir = tempDir();
    const path = join(dir, 'sessions.db');
    const service = await start({ store: `sqlite:${path}`, secret: undefined });
    const victim = await json<SessionResource>(service.request('POST', '/v1/sessions', { json: { data: { cart: ['a'], n: 1 } } }));
    const bystander = await json<SessionResource>(service.request('POST', '/v1/sessions', { json: { data: { ok: true } } }));
    const key = storeKeyOf(victim.id, storeHashKey(readFileSync(join(dir, SECRET_FILE), 'utf8').trim()));
    const db = new Database(path);
    const changed = db.prepare("UPDATE elastic_session_fields SET value = '{not json' WHERE key = ? AND name = 'cart'").run(key).changes;
    db.close();
    expect(changed).toBe(1);

    const response = await service.request('GET', `/v1/sessions/${victim.id}`);
    expect(response.status).toBe(404);
    expect(((await response.json()) as { code: string }).code).toBe('ESESS_NOT_FOUND');
    expect((await service.request('GET', '/healthz')).status).toBe(200);
    expect((await service.request('GET', `/v1/sessions/${bystander.id}`)).status).toBe(200);
    const metrics = await (await service.request('GET', '/metrics')).text();
    expect(metrics).toMatch(/elastic_session_store_corrupt_records_total\{store="sqlite"\} [1-9]/);
  });

  it('keeps all of 50 parallel PATCHes of distinct fields', async () => {
    const service = await start({ store: `sqlite:${join(tempDir(), 'sessions.db')}`, secret: undefined });
    const created = await json<SessionResource>(service.request('POST', '/v1/sessions', { json: {} }));
    const statuses = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => (await service.request('PATCH', `/v1/sessions/${created.id}`, { json: { set: { [`f${i}`]: i } } })).status),
    );
    expect(statuses).toEqual(Array(50).fill(200));
    const read = await json<SessionResource>(service.request('GET', `/v1/sessions/${created.id}`));
    expect(Object.keys(read.data)).toHaveLength(50);
  });

  it('sweep() removes expired sessions from a store without native expiry', async () => {
    const service = await start({ store: `sqlite:${join(tempDir(), 'sessions.db')}`, secret: undefined, sweepIntervalMs: 0 });
    for (let i = 0; i < 3; i++) await service.request('POST', '/v1/sessions', { json: { idleTimeout: 1 } });
    await service.request('POST', '/v1/sessions', { json: { idleTimeout: 3600 } });
    expect(await service.service.sweep()).toBe(0);
    // The SQLite store reads the wall clock: let real time pass the 1 s idle deadline.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(await service.service.sweep()).toBe(3);
  });
});

describe('elastic-session serve as a real process', () => {
  beforeAll(() => {
    builtCli();
  }, 180_000);

  it('keeps its sessions across a restart: SIGTERM, then start again on the same file', async () => {
    const dir = tempDir();
    const store = `sqlite:${join(dir, 'sessions.db')}`;
    const first = await spawnServe(['--store', store]);
    processes.push(first);
    expect(first.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(first.stdout()).toBe(`listening on ${first.url}\n`);
    expect(first.stderr()).toContain('generated a new secret');
    expect(first.stderr()).toMatch(/no API key configured: listening on 127\.0\.0\.1 only/);
    const created = await json<SessionResource>(fetch(`${first.url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data: { visits: 1 }, userId: 'u1' }) }));
    expect(await first.stop('SIGTERM')).toBe(0);

    const second = await spawnServe(['--store', store]);
    processes.push(second);
    expect(second.stderr()).not.toContain('generated a new secret');
    const read = await fetch(`${second.url}/v1/sessions/${created.id}`);
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ id: created.id, userId: 'u1', data: { visits: 1 } });
    const logs = first.stderr() + second.stderr();
    expect(logs).not.toContain(created.id);
    expect(logs).not.toContain(readFileSync(join(dir, SECRET_FILE), 'utf8').trim());
    expect(await second.stop('SIGINT')).toBe(0);
  });

  it('requires the API key from ELASTIC_SESSION_API_KEYS on /v1 routes', async () => {
    const keys = ['k1-0123456789abcdef', 'k2-0123456789abcdef'];
    const serve = await spawnServe(['--store', 'memory:', '--host', '127.0.0.1'], { env: { ELASTIC_SESSION_API_KEYS: keys.join(','), ELASTIC_SESSION_SECRET: 's'.repeat(32) } });
    processes.push(serve);
    expect((await fetch(`${serve.url}/v1/sessions`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${serve.url}/v1/sessions`, { method: 'POST', headers: { authorization: `Bearer ${keys[1]}` } })).status).toBe(201);
    expect(serve.stderr()).toContain('memory store is volatile');
    expect(serve.stderr()).not.toContain(keys[0]);
    expect(await serve.stop()).toBe(0);
  });

  it('drains an in-flight request on SIGTERM before exiting', async () => {
    const serve = await spawnServe(['--store', 'memory:']);
    processes.push(serve);
    // A request whose body is still arriving is in flight until the body ends.
    const { request } = await import('node:http');
    const pending = new Promise<number | undefined>((resolve, reject) => {
      const headers = { 'content-type': 'application/json', 'transfer-encoding': 'chunked', expect: '100-continue' };
      const req = request(`${serve.url}/v1/sessions`, { method: 'POST', headers }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', reject);
      // Node answers 100 Continue as it hands the request to the service: from here it is in flight.
      req.once('continue', () => {
        req.write('{"data":');
        serve.child.kill('SIGTERM');
        // The service logs this line as it starts draining; only then does the body end.
        serve.stderrMatches(/SIGTERM received/).then(() => req.end('{"a":1}}'), reject);
      });
    });
    expect(await pending).toBe(201);
    expect(await serve.exited).toBe(0);
    expect(serve.stderr()).toContain('SIGTERM received');
  });
});
