import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseCommand } from '../src/cli/config.js';
import type { SessionStore } from '../src/core/types.js';
import { silentLogger } from '../src/service/log.js';
import { generateEncryptionKey } from '../src/stores/encrypted.js';
import { memoryStore } from '../src/stores/memory.js';
import { tokenKeyFromPem, tokenKeyFromSecret } from '../src/tokens/keys.js';
import { builtCli, randomKey, rawExchange, rawRequest, ROOT, runCli, spawnServe, startService, tempDir } from './helpers/service.js';
import type { RunningService } from './helpers/service.js';
import { createTestPki, httpsRequest } from './helpers/tls.js';
import type { TestPki } from './helpers/tls.js';

describe('token routes of the session service', () => {
  let service: RunningService;

  afterEach(async () => {
    await service?.close();
  });

  async function created(body: unknown = { data: { cart: ['book'] }, userId: 'alice' }): Promise<string> {
    const response = await service.request('POST', '/v1/sessions', { json: body });
    expect(response.status).toBe(201);
    return ((await response.json()) as { id: string }).id;
  }

  async function tokens(id: string): Promise<{ accessToken: string; refreshToken: string; expiresIn: number }> {
    const response = await service.request('POST', `/v1/sessions/${id}/tokens`);
    expect(response.status).toBe(201);
    expect(response.headers.get('cache-control')).toBe('no-store');
    return (await response.json()) as { accessToken: string; refreshToken: string; expiresIn: number };
  }

  const verify = (accessToken: unknown) => service.request('POST', '/v1/tokens/verify', { json: { accessToken } });
  const refresh = (refreshToken: unknown) => service.request('POST', '/v1/tokens/refresh', { json: { refreshToken } });

  async function reasonOf(response: Response): Promise<string> {
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);
    const problem = (await response.json()) as { code: string; reason: string };
    expect(problem.code).toBe('ESESS_TOKEN_INVALID');
    return problem.reason;
  }

  it('POST /v1/sessions/{id}/tokens → 201 { accessToken, refreshToken, expiresIn }; verify → 200 the session by handle, never its ID', async () => {
    service = await startService();
    const id = await created();
    const pair = await tokens(id);
    expect(pair.expiresIn).toBe(300);
    const response = await verify(pair.accessToken);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { session: Record<string, unknown>; claims: Record<string, unknown> };
    expect(body.session).toMatchObject({ userId: 'alice', data: { cart: ['book'] } });
    expect(JSON.stringify(body)).not.toContain(id);
    expect(body.claims).toMatchObject({ iss: 'elastic-session', aud: 'elastic-session', sub: body.session.handle });
  });

  it('refresh → 201 a new pair; reusing the spent one → 401 refresh-reused and the family is revoked', async () => {
    service = await startService();
    const first = await tokens(await created());
    const response = await refresh(first.refreshToken);
    expect(response.status).toBe(201);
    const second = (await response.json()) as { accessToken: string; refreshToken: string };
    expect((await verify(second.accessToken)).status).toBe(200);
    expect(await reasonOf(await refresh(first.refreshToken))).toBe('refresh-reused');
    expect(await reasonOf(await verify(second.accessToken))).toBe('family-revoked');
    expect(await reasonOf(await refresh(second.refreshToken))).toBe('family-revoked');
  });

  it('destroying the session, or revoking all sessions of its user, makes its tokens fail verification', async () => {
    service = await startService();
    const id = await created();
    const pair = await tokens(id);
    expect((await service.request('DELETE', `/v1/sessions/${id}`)).status).toBe(204);
    expect(await reasonOf(await verify(pair.accessToken))).toBe('session-gone');
    const other = await tokens(await created({ userId: 'bob' }));
    expect((await verify(other.accessToken)).status).toBe(200);
    expect((await service.request('DELETE', '/v1/users/bob/sessions')).status).toBe(200);
    expect(await reasonOf(await verify(other.accessToken))).toBe('session-gone');
  });

  it('POST /v1/tokens/revoke revokes an access token by jti (204), and answers 204 for garbage too', async () => {
    service = await startService();
    const pair = await tokens(await created());
    expect((await service.request('POST', '/v1/tokens/revoke', { json: { accessToken: pair.accessToken } })).status).toBe(204);
    expect(await reasonOf(await verify(pair.accessToken))).toBe('revoked');
    expect((await service.request('POST', '/v1/tokens/revoke', { json: { accessToken: 'garbage' } })).status).toBe(204);
    expect((await service.request('POST', '/v1/tokens/revoke', { json: { refreshToken: pair.refreshToken } })).status).toBe(204);
    expect(await reasonOf(await refresh(pair.refreshToken))).toBe('family-revoked');
  });

  it('bad bodies are 400, unknown sessions 404, and every token route needs the API key', async () => {
    const key = `key-${randomBytes(18).toString('base64url')}`;
    service = await startService({ apiKeys: [key] });
    expect((await service.request('POST', '/v1/tokens/verify', { json: { accessToken: 'x' } })).status).toBe(401);
    const post = (path: string, json: unknown) => service.request('POST', path, { json, key });
    expect((await post('/v1/tokens/verify', { accessToken: 'x', extra: 1 })).status).toBe(400);
    expect((await post('/v1/tokens/verify', { accessToken: 5 })).status).toBe(400);
    expect((await post('/v1/tokens/refresh', [])).status).toBe(400);
    expect((await post(`/v1/sessions/${randomBytes(32).toString('base64url')}/tokens`, {})).status).toBe(404);
    expect(await reasonOf(await post('/v1/tokens/verify', { accessToken: 'a.b.c' }))).toBe('malformed');
  });

  it('tokens from one service verify on another instance with the same secret, not with another secret', async () => {
    const store = memoryStore();
    const secret = randomBytes(32).toString('base64url');
    service = await startService({ store, secret });
    const pair = await tokens(await created());
    const sibling = await startService({ store, secret });
    const stranger = await startService({ store });
    try {
      expect((await sibling.request('POST', '/v1/tokens/verify', { json: { accessToken: pair.accessToken } })).status).toBe(200);
      const response = await stranger.request('POST', '/v1/tokens/verify', { json: { accessToken: pair.accessToken } });
      expect(await reasonOf(response)).toBe('unknown-key');
    } finally {
      await sibling.close();
      await stranger.close();
    }
  });
});

describe('encryption at rest in the session service', () => {
  it('with encryption keys the store holds no session contents in clear, and the API reads them back', async () => {
    const inner: SessionStore = memoryStore();
    const writes: string[] = [];
    const recording = new Proxy(inner, {
      get(target, property, receiver) {
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          writes.push(JSON.stringify(args));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const service = await startService({ store: recording, encryptionKeys: [generateEncryptionKey('2026a')] });
    try {
      const response = await service.request('POST', '/v1/sessions', { json: { data: { ssn: 'ssn-078-05-1120' } } });
      const { id } = (await response.json()) as { id: string };
      await service.request('PATCH', `/v1/sessions/${id}`, { json: { set: { card: 'card-4111-1111' } } });
      const read = (await (await service.request('GET', `/v1/sessions/${id}`)).json()) as { data: Record<string, unknown> };
      expect(read.data).toEqual({ ssn: 'ssn-078-05-1120', card: 'card-4111-1111' });
      const seen = writes.join('\n');
      expect(seen).not.toContain('ssn-078-05-1120');
      expect(seen).not.toContain('card-4111-1111');
      expect(seen).toContain('v1.2026a.');
    } finally {
      await service.close();
    }
  });

  it('refuses malformed encryption keys at startup, naming the option', async () => {
    await expect(startService({ encryptionKeys: ['k:short'] })).rejects.toMatchObject({ code: 'ESESS_CONFIG', message: expect.stringMatching(/encryptionKeys/) });
  });
});

describe('TLS in transit', () => {
  let pki: TestPki;

  beforeAll(() => {
    pki = createTestPki();
  });

  afterAll(() => pki?.cleanup());

  it('serves HTTPS with a certificate and key; the client verifies it against the test CA', async () => {
    const service = await startService({ tls: { cert: pki.server.cert, key: pki.server.key } });
    try {
      expect(service.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const result = await httpsRequest(`${service.url}/healthz`, { ca: pki.ca.cert });
      expect(result.status).toBe(200);
      await expect(httpsRequest(`${service.url}/healthz`, { ca: pki.rogueCa.cert })).rejects.toThrow(/self.signed|unable to verify|certificate/i);
    } finally {
      await service.close();
    }
  });

  it('with a client CA requires a client certificate signed by it (mTLS)', async () => {
    const service = await startService({ tls: { cert: pki.server.cert, key: pki.server.key, clientCa: pki.ca.cert } });
    try {
      const ok = await httpsRequest(`${service.url}/v1/sessions`, { ca: pki.ca.cert, client: pki.client, method: 'POST', json: {} });
      expect(ok.status).toBe(201);
      await expect(httpsRequest(`${service.url}/healthz`, { ca: pki.ca.cert })).rejects.toThrow();
      await expect(httpsRequest(`${service.url}/healthz`, { ca: pki.ca.cert, client: pki.rogueClient })).rejects.toThrow();
    } finally {
      await service.close();
    }
  });

  it('refuses a TLS option that is not PEM, naming it', async () => {
    await expect(startService({ tls: { cert: 'not pem', key: pki.server.key } })).rejects.toMatchObject({ code: 'ESESS_CONFIG', message: expect.stringMatching(/tls\.cert/) });
  });

  it('elastic-session serve --tls-cert --tls-key --tls-client-ca with ELASTIC_SESSION_ENCRYPTION_KEYS serves mTLS', async () => {
    const main = builtCli();
    const dir = tempDir();
    const child = spawn(
      process.execPath,
      [main, 'serve', '--port', '0', '--store', `sqlite:${join(dir, 's.db')}`, '--tls-cert', pki.server.certPath, '--tls-key', pki.server.keyPath, '--tls-client-ca', pki.ca.certPath],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ELASTIC_SESSION_ENCRYPTION_KEYS: generateEncryptionKey('cli1') }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        let err = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          out += chunk;
          const match = /listening on (https:\/\/\S+)/.exec(out);
          if (match) resolve(match[1] as string);
        });
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
        child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${out}${err}`)));
      });
      const created = await httpsRequest(`${url}/v1/sessions`, { ca: pki.ca.cert, client: pki.client, method: 'POST', json: { data: { a: 1 } } });
      expect(created.status).toBe(201);
      await expect(httpsRequest(`${url}/healthz`, { ca: pki.ca.cert })).rejects.toThrow();
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }, 60_000);

  it('the CLI refuses --tls-cert without --tls-key, and --tls-client-ca without TLS', async () => {
    const lone = await runCli(['serve', '--port', '0', '--store', 'memory:', '--tls-cert', pki.server.certPath]);
    expect(lone.code).toBe(2);
    expect(lone.stderr).toMatch(/--tls-cert needs its pair/);
    const ca = await runCli(['serve', '--port', '0', '--store', 'memory:', '--tls-client-ca', pki.ca.certPath]);
    expect(ca.code).toBe(2);
    expect(ca.stderr).toMatch(/--tls-client-ca requires --tls-cert/);
  }, 60_000);
});

describe('elastic-session reencrypt', () => {
  it('re-encrypts every session of a SQLite store under the new key; the old key can then go', async () => {
    const dir = tempDir();
    const store = `sqlite:${join(dir, 's.db')}`;
    const oldKey = generateEncryptionKey('old');
    const newKey = generateEncryptionKey('new');
    const secret = randomBytes(32).toString('base64url');
    const { createService } = await import('../src/service/index.js');
    const { silentLogger } = await import('../src/service/log.js');
    const before = await createService({ store, secret, encryptionKeys: [oldKey], port: 0, log: silentLogger, sweepIntervalMs: 0 });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const session = before.manager.create({ data: { i } });
      await before.manager.save(session);
      ids.push(session.id);
    }
    await before.close();

    const result = await runCli(['reencrypt', '--store', store], { env: { ELASTIC_SESSION_ENCRYPTION_KEYS: `${newKey},${oldKey}` } });
    expect(result.code, result.stderr).toBe(0);
    // 5 data fields plus, per session, the two reserved fields that authenticate principal and deadlines.
    expect(JSON.parse(result.stdout)).toEqual({ scanned: 10, rewritten: 5, fields: 15, passes: 2, clean: true, keyId: 'new' });

    const after = await createService({ store, secret, encryptionKeys: [newKey], port: 0, log: silentLogger, sweepIntervalMs: 0 });
    try {
      for (const [i, id] of ids.entries()) expect((await after.manager.load(id))?.get('i')).toBe(i);
    } finally {
      await after.close();
    }
    const missing = await runCli(['reencrypt', '--store', store]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--encryption-key/);
  }, 60_000);
});

describe('token settings of the CLI', () => {
  it('parses --token-issuer, --token-audience and the TTLs, refusing out-of-range values by name', async () => {
    const { parseCommand } = await import('../src/cli/config.js');
    const parsed = parseCommand('serve', ['--store', 'memory:', '--token-issuer', 'https://sessions.example', '--token-audience', 'api', '--access-token-ttl', '120', '--refresh-token-ttl', '3600'], {});
    expect(parsed.config.tokens).toEqual({ issuer: 'https://sessions.example', audience: 'api', accessTtl: 120, refreshTtl: 3600 });
    expect(() => parseCommand('serve', ['--store', 'memory:', '--access-token-ttl', '86400'], {})).toThrow(/--access-token-ttl/);
    expect(() => parseCommand('serve', ['--store', 'memory:', '--refresh-token-ttl', 'soon'], {})).toThrow(/--refresh-token-ttl/);
    expect(() => parseCommand('serve', ['--store', 'memory:', '--encryption-key', 'k:short'], {})).toThrow(/--encryption-key/);
    expect(parseCommand('serve', ['--store', 'memory:'], { ELASTIC_SESSION_ENCRYPTION_KEYS: `${generateEncryptionKey('a')}, ${generateEncryptionKey('b')}` }).config.encryptionKeys).toHaveLength(2);
  });

  it('a service with a short access TTL issues tokens that say so', async () => {
    const service = await startService({ tokens: { accessTtl: 60, issuer: 'iss-x', audience: 'aud-x' } });
    try {
      const { id } = (await (await service.request('POST', '/v1/sessions', { json: {} })).json()) as { id: string };
      const pair = (await (await service.request('POST', `/v1/sessions/${id}/tokens`)).json()) as { accessToken: string; expiresIn: number };
      expect(pair.expiresIn).toBe(60);
      const claims = JSON.parse(Buffer.from(pair.accessToken.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>;
      expect(claims).toMatchObject({ iss: 'iss-x', aud: 'aud-x' });
    } finally {
      await service.close();
    }
  });
});

describe('attacks on the session service', () => {
  it('forged, altered, encoded and oversized IDs in the path answer 404 (or 400), never 500, and never another session', async () => {
    const service = await startService();
    try {
      const { id } = (await (await service.request('POST', '/v1/sessions', { json: { data: { mine: true } } })).json()) as { id: string };
      const attacks = [
        randomBytes(32).toString('base64url'),
        `${id.slice(0, -1)}${id.endsWith('A') ? 'B' : 'A'}`,
        id.slice(0, 42),
        `${id}A`,
        `${id}.${randomBytes(32).toString('base64url')}`,
        encodeURIComponent(id).replace(/-/g, '%2D'),
        id.replace(/-/g, '+').replace(/_/g, '/'),
        `${id}%00`,
        `..%2F${id}`,
        'A'.repeat(10_000),
        '%E0%A4%A',
      ];
      // Respellings that happen to equal the ID (no - or _ in it) are not attacks.
      for (const attack of attacks.filter((text) => text !== id)) {
        const response = await service.request('GET', `/v1/sessions/${attack}`);
        expect([400, 404], attack.slice(0, 20)).toContain(response.status);
        expect(await response.text()).not.toContain('"mine"');
      }
      expect((await service.request('GET', `/v1/sessions/${id}`)).status).toBe(200);
    } finally {
      await service.close();
    }
  });

  it('refuses a body over the limit from its Content-Length (413) and deep nesting before parsing it (413)', async () => {
    const service = await startService({ bodyLimit: 1024 });
    try {
      const big = await service.request('POST', '/v1/sessions', { body: JSON.stringify({ data: { x: 'y'.repeat(5000) } }), headers: { 'content-type': 'application/json' } });
      expect(big.status).toBe(413);
      const deep = await service.request('POST', '/v1/sessions', { body: `{"data":{"x":${'['.repeat(400)}${']'.repeat(400)}}}`, headers: { 'content-type': 'application/json' } });
      expect(deep.status).toBe(413);
      const token = await service.request('POST', '/v1/tokens/verify', { json: { accessToken: `${'a'.repeat(900)}` } });
      expect(token.status).toBe(401);
    } finally {
      await service.close();
    }
  });
});

describe('GET /v1/tokens/jwks', () => {
  it('lists the public verification key, with which a resource server verifies access tokens locally', async () => {
    const service = await startService();
    try {
      const { id } = (await (await service.request('POST', '/v1/sessions', { json: {} })).json()) as { id: string };
      const { accessToken } = (await (await service.request('POST', `/v1/sessions/${id}/tokens`)).json()) as { accessToken: string };
      const jwks = (await (await service.request('GET', '/v1/tokens/jwks')).json()) as { keys: Record<string, unknown>[] };
      expect(jwks.keys).toHaveLength(1);
      expect(jwks.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
      expect(jwks.keys[0]).not.toHaveProperty('d');
      const { createLocalJWKSet, jwtVerify } = await import('jose');
      const { payload } = await jwtVerify(accessToken, createLocalJWKSet(jwks as never), { issuer: 'elastic-session', audience: 'elastic-session', algorithms: ['EdDSA'], typ: 'at+jwt' });
      expect(payload.sub).toBeTypeOf('string');
    } finally {
      await service.close();
    }
  });
});

describe('token signing key setting of the service', () => {
  const SECRET = randomBytes(32).toString('base64url');
  const edPem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  const ecPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  const headerOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString()) as { alg: string; kid: string };

  async function issue(service: RunningService): Promise<string> {
    const created = (await (await service.request('POST', '/v1/sessions', { json: { data: { a: 1 } } })).json()) as { id: string };
    const pair = (await (await service.request('POST', `/v1/sessions/${created.id}/tokens`)).json()) as { accessToken: string };
    return pair.accessToken;
  }
  const verify = (service: RunningService, accessToken: string) => service.request('POST', '/v1/tokens/verify', { json: { accessToken } });

  it('tokens.key signs instead of the secret-derived key, with the algorithm of its type; tokens signed before still verify', async () => {
    const store = memoryStore();
    const before = await startService({ store, secret: SECRET });
    const old = await issue(before);
    expect(headerOf(old)).toEqual({ alg: 'EdDSA', kid: tokenKeyFromSecret(SECRET).kid, typ: 'at+jwt' });
    await before.close();

    for (const [pem, alg] of [[ecPem, 'ES256'], [edPem, 'EdDSA']] as const) {
      const service = await startService({ store, secret: SECRET, tokens: { key: pem } });
      try {
        const token = await issue(service);
        expect(headerOf(token)).toMatchObject({ alg, kid: tokenKeyFromPem(pem).kid });
        expect((await verify(service, token)).status).toBe(200);
        expect((await verify(service, old)).status).toBe(200);
        const jwks = (await (await service.request('GET', '/v1/tokens/jwks')).json()) as { keys: { kid: string; alg: string; d?: string }[] };
        expect(jwks.keys.map((key) => [key.kid, key.alg])).toEqual([
          [tokenKeyFromPem(pem).kid, alg],
          [tokenKeyFromSecret(SECRET).kid, 'EdDSA'],
        ]);
        expect(jwks.keys.every((key) => key.d === undefined)).toBe(true);
      } finally {
        await service.close();
      }
    }
  });

  it('another secret with the same tokens.key verifies the same tokens (signature and claims), while the old secret key is gone', async () => {
    const first = await startService({ secret: SECRET, tokens: { key: edPem } });
    const second = await startService({ secret: randomBytes(32).toString('base64url'), tokens: { key: edPem } });
    try {
      const [a, b] = await Promise.all([first.request('GET', '/v1/tokens/jwks'), second.request('GET', '/v1/tokens/jwks')]);
      const signing = (response: unknown) => (response as { keys: { kid: string; x: string }[] }).keys[0];
      expect(signing(await b.json())).toEqual(signing(await a.json()));
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('refuses a tokens.key that is not an Ed25519 or P-256 private key, naming the option', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    for (const key of [rsa, 'not pem']) {
      await expect(startService({ tokens: { key } })).rejects.toMatchObject({ code: 'ESESS_CONFIG', message: expect.stringMatching(/"tokens\.key"/) });
    }
  });

  it('elastic-session serve --token-key <file.pem> (or ELASTIC_SESSION_TOKEN_KEY) signs with that key; a bad key exits 2 naming the option', async () => {
    const dir = tempDir();
    const file = join(dir, 'token-key.pem');
    writeFileSync(file, ecPem, { mode: 0o600 });
    const serve = await spawnServe(['--store', 'memory:', '--token-key', file], { env: { ELASTIC_SESSION_SECRET: SECRET } });
    try {
      const created = (await (await fetch(`${serve.url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"data":{"a":1}}' })).json()) as { id: string };
      const pair = (await (await fetch(`${serve.url}/v1/sessions/${created.id}/tokens`, { method: 'POST' })).json()) as { accessToken: string };
      expect(headerOf(pair.accessToken)).toMatchObject({ alg: 'ES256', kid: tokenKeyFromPem(ecPem).kid });
    } finally {
      await serve.stop();
    }
    const rsaFile = join(dir, 'rsa.pem');
    writeFileSync(rsaFile, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, { mode: 0o600 });
    const bad = await runCli(['serve', '--port', '0', '--store', 'memory:'], { env: { ELASTIC_SESSION_TOKEN_KEY: rsaFile } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('ELASTIC_SESSION_TOKEN_KEY');
    expect(bad.stderr).not.toContain('PRIVATE KEY');
  }, 60_000);
});

describe('DNS rebinding: the service answers only to its own names (#13 item 1)', () => {
  let service: RunningService | undefined;

  afterEach(async () => {
    await service?.close();
    service = undefined;
  });

  const portOf = (url: string): number => Number(new URL(url).port);

  async function expectMisdirected(response: { status: number; headers: Record<string, unknown>; body: string }): Promise<void> {
    expect(response.status).toBe(421);
    expect(response.headers['content-type']).toBe('application/problem+json');
    expect(response.headers.connection).toBe('close');
    const problem = JSON.parse(response.body) as { status: number; code: string; detail: string };
    expect(problem).toMatchObject({ status: 421, code: 'ESESS_MISDIRECTED', detail: expect.stringMatching(/Host header.*--allowed-host/) });
  }

  it("refuses the issue's curl without API keys: POST /v1/sessions with Host rebind.attacker.example answers 421 and creates nothing", async () => {
    service = await startService();
    const { url } = service;
    // curl -X POST http://127.0.0.1:$P/v1/sessions -H 'Host: rebind.attacker.example' -d '{"userId":"admin"}'
    const forged = await rawRequest(url, {
      method: 'POST',
      target: '/v1/sessions',
      host: 'rebind.attacker.example',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: '{"userId":"admin"}',
    });
    await expectMisdirected(forged);
    expect(forged.body).not.toMatch(/"id"/);
    // The same with the right content type, and the name with the service's port.
    const withPort = await rawRequest(url, { method: 'POST', target: '/v1/sessions', host: `rebind.attacker.example:${portOf(url)}`, headers: { 'content-type': 'application/json' }, body: '{"userId":"admin"}' });
    await expectMisdirected(withPort);
    const listed = await service.request('GET', '/v1/users/admin/sessions');
    expect(await listed.json()).toEqual({ sessions: [] });
  });

  it('a rebound page cannot revoke a user: DELETE /v1/users/{u}/sessions answers 421 and the sessions live on', async () => {
    service = await startService();
    const created = (await (await service.request('POST', '/v1/sessions', { json: { userId: 'alice' } })).json()) as { id: string };
    await expectMisdirected(await rawRequest(service.url, { method: 'DELETE', target: '/v1/users/alice/sessions', host: `rebind.attacker.example:${portOf(service.url)}` }));
    expect((await service.request('GET', `/v1/sessions/${created.id}`)).status).toBe(200);
  });

  it('a loopback service answers to localhost, 127.0.0.1 and [::1] on its port (any case), and to nothing else', async () => {
    service = await startService();
    const port = portOf(service.url);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LocalHost:${port}`, `[::1]:${port}`, `[0:0:0:0:0:0:0:1]:${port}`]) {
      expect((await rawRequest(service.url, { target: '/healthz', host })).status, host).toBe(200);
    }
    const refused = [
      `localhost:${port + 1}`,
      'localhost',
      `127.0.0.2:${port}`,
      `localhost.:${port}`,
      `sub.localhost:${port}`,
      `::1:${port}`,
      `user@localhost:${port}`,
      `localhost:${port}/x`,
      `localhost:0${port}x`,
    ];
    for (const host of refused) await expectMisdirected(await rawRequest(service.url, { target: '/healthz', host }));
    // Every route is behind the check, the unknown ones too: nothing about the API is revealed.
    await expectMisdirected(await rawRequest(service.url, { target: '/openapi.json', host: 'rebind.attacker.example' }));
    await expectMisdirected(await rawRequest(service.url, { target: '/no-such-route', host: 'rebind.attacker.example' }));
  });

  it('takes the authority of an absolute-form target over the Host header (RFC 9112), and refuses a request without any host', async () => {
    service = await startService();
    const port = portOf(service.url);
    await expectMisdirected(await rawRequest(service.url, { target: `http://rebind.attacker.example:${port}/healthz`, host: `127.0.0.1:${port}` }));
    expect((await rawRequest(service.url, { target: `http://localhost:${port}/healthz`, host: 'rebind.attacker.example' })).status).toBe(200);
    // HTTP/1.0 needs no Host header; without one the request names no host the service knows.
    const answer = await rawExchange(service.url, 'GET /healthz HTTP/1.0\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 421 /);
    expect(answer).toContain('"status":421');
    expect(await rawExchange(service.url, 'GET /healthz HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 421 /);
  });

  it('allowedHosts adds names: a bare name on any port, name:port on that port only', async () => {
    service = await startService({ allowedHosts: ['sessions.internal', 'API.example:8443', '[fd00::1]'] });
    const port = portOf(service.url);
    for (const host of ['sessions.internal', 'sessions.internal:9', 'api.example:8443', '[fd00::1]:80', `localhost:${port}`]) {
      expect((await rawRequest(service.url, { target: '/healthz', host })).status, host).toBe(200);
    }
    for (const host of ['api.example', 'api.example:8444', 'evil.sessions.internal', 'sessions.internal.evil']) {
      await expectMisdirected(await rawRequest(service.url, { target: '/healthz', host }));
    }
  });

  it('with API keys the Host is checked only when allowedHosts are given, and then before the key', async () => {
    const key = randomKey();
    service = await startService({ apiKeys: [key] });
    const authorization = `Bearer ${key}`;
    expect((await rawRequest(service.url, { method: 'POST', target: '/v1/sessions', host: 'any.example', headers: { authorization } })).status).toBe(201);
    await service.close();
    service = await startService({ apiKeys: [key], allowedHosts: ['sessions.example'] });
    await expectMisdirected(await rawRequest(service.url, { method: 'POST', target: '/v1/sessions', host: 'any.example', headers: { authorization } }));
    await expectMisdirected(await rawRequest(service.url, { method: 'POST', target: '/v1/sessions', host: 'any.example' }));
    expect((await rawRequest(service.url, { method: 'POST', target: '/v1/sessions', host: 'sessions.example', headers: { authorization } })).status).toBe(201);
    expect((await rawRequest(service.url, { method: 'POST', target: '/v1/sessions', host: 'sessions.example' })).status).toBe(401);
  });

  it('does not check a server on a Unix socket, which no browser can reach', async () => {
    const { createService } = await import('../src/service/index.js');
    const socket = join(tempDir(), 'service.sock');
    const onSocket = await createService({ store: memoryStore(), secret: randomBytes(32).toString('base64url'), log: silentLogger });
    await new Promise<void>((resolve) => onSocket.server.listen(socket, resolve));
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({ socketPath: socket, path: '/healthz', headers: { host: 'rebind.attacker.example' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
      expect(status).toBe(200);
    } finally {
      await onSocket.close();
    }
  });

  it('refuses malformed allowedHosts at startup, naming the option and the entry', async () => {
    for (const entry of ['*.example.com', 'http://x.example', 'x.example:99999', '::1', '']) {
      await expect(startService({ allowedHosts: ['ok.example', entry] })).rejects.toMatchObject({ code: 'ESESS_CONFIG', message: expect.stringMatching(/^allowedHosts .*\(entry #2\)/) });
    }
  });

  it('the CLI takes --allowed-host (repeatable), ELASTIC_SESSION_ALLOWED_HOSTS (comma-separated) and "allowedHosts" in the config file', async () => {
    const dir = tempDir();
    expect(parseCommand('serve', ['--allowed-host', 'a.example', '--allowed-host', 'b.example:8080'], {}, dir).config.allowedHosts).toEqual(['a.example', 'b.example:8080']);
    expect(parseCommand('serve', [], { ELASTIC_SESSION_ALLOWED_HOSTS: 'a.example, [::1]:9' }, dir).config.allowedHosts).toEqual(['a.example', '[::1]:9']);
    const file = join(dir, 'es.json');
    writeFileSync(file, JSON.stringify({ allowedHosts: ['c.example'] }));
    expect(parseCommand('serve', ['--config', file], {}, dir).config.allowedHosts).toEqual(['c.example']);
    expect(() => parseCommand('serve', [], { ELASTIC_SESSION_ALLOWED_HOSTS: 'a.example,*.b.example' }, dir)).toThrow(/ELASTIC_SESSION_ALLOWED_HOSTS must hold host names .*\(entry #2\)/);
    const serve = await spawnServe(['--store', 'memory:', '--allowed-host', 'sessions.test']);
    try {
      expect((await rawRequest(serve.url, { target: '/healthz', host: 'sessions.test' })).status).toBe(200);
      expect((await rawRequest(serve.url, { target: '/healthz', host: 'rebind.attacker.example' })).status).toBe(421);
    } finally {
      await serve.stop();
    }
  }, 60_000);
});

describe('/metrics and API keys (#13 item 11)', () => {
  it('needs an API key when keys are configured; publicMetrics opens it; without keys it is open', async () => {
    const key = randomKey();
    const guarded = await startService({ apiKeys: [key] });
    const open = await startService({ apiKeys: [key], publicMetrics: true });
    const keyless = await startService();
    try {
      const denied = await guarded.request('GET', '/metrics');
      expect(denied.status).toBe(401);
      expect(denied.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(await denied.text()).not.toContain('elastic_session');
      expect((await guarded.request('GET', '/metrics', { key: randomKey() })).status).toBe(401);
      const allowed = await guarded.request('GET', '/metrics', { key });
      expect(allowed.status).toBe(200);
      expect(await allowed.text()).toContain('# TYPE');
      expect((await open.request('GET', '/metrics')).status).toBe(200);
      expect((await keyless.request('GET', '/metrics')).status).toBe(200);
      // The rest of what needs no key stays open.
      for (const path of ['/healthz', '/openapi.json']) expect((await guarded.request('GET', path)).status).toBe(200);
    } finally {
      await Promise.all([guarded.close(), open.close(), keyless.close()]);
    }
  });

  it('the CLI takes --public-metrics, ELASTIC_SESSION_PUBLIC_METRICS=1 and "publicMetrics" in the config file; refuses other values by name', () => {
    const dir = tempDir();
    expect(parseCommand('serve', [], {}, dir).config.publicMetrics).toBe(false);
    expect(parseCommand('serve', ['--public-metrics'], {}, dir).config.publicMetrics).toBe(true);
    expect(parseCommand('serve', [], { ELASTIC_SESSION_PUBLIC_METRICS: '1' }, dir).config.publicMetrics).toBe(true);
    expect(parseCommand('serve', [], { ELASTIC_SESSION_PUBLIC_METRICS: '0' }, dir).config.publicMetrics).toBe(false);
    const file = join(dir, 'es.json');
    writeFileSync(file, JSON.stringify({ publicMetrics: true }));
    expect(parseCommand('serve', ['--config', file], {}, dir).config.publicMetrics).toBe(true);
    expect(() => parseCommand('serve', [], { ELASTIC_SESSION_PUBLIC_METRICS: 'sometimes' }, dir)).toThrow(/ELASTIC_SESSION_PUBLIC_METRICS must be true or false/);
  });
});

describe('regenerate through the service keeps the absolute expiry (#13 item 4)', () => {
  it('a session created with absoluteTimeout 5 and regenerated every 2 s is dead after 6 s', async () => {
    let now = Date.UTC(2030, 0, 1);
    const clock = (): number => now;
    const service = await startService({ store: memoryStore({ clock }), clock });
    try {
      const created = (await (await service.request('POST', '/v1/sessions', { json: { data: { cart: ['a'] }, absoluteTimeout: 5 } })).json()) as { id: string; absoluteExpiresAt: string };
      expect(created.absoluteExpiresAt).toBe(new Date(now + 5000).toISOString());
      let id = created.id;
      for (let i = 0; i < 2; i++) {
        now += 2000;
        const response = await service.request('POST', `/v1/sessions/${id}/regenerate`);
        expect(response.status).toBe(201);
        const next = (await response.json()) as { id: string; absoluteExpiresAt: string };
        expect(next.absoluteExpiresAt).toBe(created.absoluteExpiresAt);
        id = next.id;
      }
      now += 2000;
      expect((await service.request('GET', `/v1/sessions/${id}`)).status).toBe(404);
      expect((await service.request('POST', `/v1/sessions/${id}/regenerate`)).status).toBe(404);
    } finally {
      await service.close();
    }
  });
});
