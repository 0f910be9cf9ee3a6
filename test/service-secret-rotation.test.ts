import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseCommand } from '../src/cli/config.js';
import { SECRET_FILE, storeHashKey } from '../src/service/index.js';
import type { SessionResource } from '../src/service/index.js';
import { EXAMPLE_SECRETS, isPassphraseLike, isWeakKey, isWeakSecret } from '../src/core/secrets.js';
import { tokenKeyFromSecret } from '../src/tokens/keys.js';
import { builtCli, randomSecret, runCli, servicesClosedAfterEach, tempDir } from './helpers/service.js';
import type { RunningService } from './helpers/service.js';

beforeAll(() => {
  builtCli();
}, 180_000);

const startService = servicesClosedAfterEach();

interface TokenPair {
  accessToken: string;
  refreshToken: string;
}

async function createWithTokens(service: RunningService): Promise<{ id: string; pair: TokenPair }> {
  const { id } = (await (await service.request('POST', '/v1/sessions', { json: { data: { cart: ['apple'] } } })).json()) as SessionResource;
  const response = await service.request('POST', `/v1/sessions/${id}/tokens`, { json: {} });
  expect(response.status).toBe(201);
  return { id, pair: (await response.json()) as TokenPair };
}

const verify = (service: RunningService, accessToken: string) => service.request('POST', '/v1/tokens/verify', { json: { accessToken } });

describe('rotating the service secret with a pinned hash key', () => {
  it('keeps every session and the tokens signed before, and signs new tokens with the new secret', async () => {
    const dir = tempDir();
    const store = `sqlite:${join(dir, 'sessions.db')}`;
    const [oldSecret, newSecret] = [randomSecret(), randomSecret()];

    const before = await startService({ store, secret: oldSecret });
    const { id, pair } = await createWithTokens(before);
    await before.close();

    const printed = await runCli(['hash-key', '--store', store], { env: { ELASTIC_SESSION_SECRET: oldSecret } });
    expect(printed.code).toBe(0);
    const hashKey = printed.stdout.trim();
    expect(Buffer.from(hashKey, 'base64url')).toEqual(storeHashKey(oldSecret));

    // Both secrets listed, the new one first: sessions and old tokens still work.
    const during = await startService({ store, secret: [newSecret, oldSecret], hashKey });
    expect((await during.request('GET', `/v1/sessions/${id}`)).status).toBe(200);
    expect((await verify(during, pair.accessToken)).status).toBe(200);
    const refreshed = await during.request('POST', '/v1/tokens/refresh', { json: { refreshToken: pair.refreshToken } });
    expect(refreshed.status).toBe(201);
    const fresh = (await refreshed.json()) as TokenPair;
    expect(decodeProtectedHeader(fresh.accessToken).kid).toBe(tokenKeyFromSecret(newSecret).kid);
    expect(decodeProtectedHeader(pair.accessToken).kid).toBe(tokenKeyFromSecret(oldSecret).kid);
    await during.close();

    // The old secret dropped: the session lives on, only tokens it signed stop verifying.
    const after = await startService({ store, secret: newSecret, hashKey });
    expect(await (await after.request('GET', `/v1/sessions/${id}`)).json()).toMatchObject({ id, data: { cart: ['apple'] } });
    expect((await verify(after, fresh.accessToken)).status).toBe(200);
    const stale = await verify(after, pair.accessToken);
    expect(stale.status).toBe(401);
    expect(await stale.json()).toMatchObject({ reason: 'unknown-key' });
    await after.close();

    const inspected = await runCli(['inspect', '--store', store, '--', id], { env: { ELASTIC_SESSION_SECRET: newSecret, ELASTIC_SESSION_HASH_KEY: hashKey } });
    expect(inspected.code).toBe(0);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ id });
  });

  it('without the pinned key, a new secret finds none of the old sessions (why the key exists)', async () => {
    const dir = tempDir();
    const store = `sqlite:${join(dir, 'sessions.db')}`;
    const before = await startService({ store, secret: randomSecret() });
    const { id } = await createWithTokens(before);
    await before.close();
    const after = await startService({ store, secret: randomSecret() });
    expect((await after.request('GET', `/v1/sessions/${id}`)).status).toBe(404);
  });

  it('a hash key set from the start lets the secret change at any time', async () => {
    const dir = tempDir();
    const store = `sqlite:${join(dir, 'sessions.db')}`;
    const hashKey = randomSecret();
    const before = await startService({ store, secret: randomSecret(), hashKey });
    const { id } = await createWithTokens(before);
    await before.close();
    const after = await startService({ store, secret: randomSecret(), hashKey });
    expect((await after.request('GET', `/v1/sessions/${id}`)).status).toBe(200);
  });

  it('hash-key prints the key derived from the secret file next to the SQLite database', async () => {
    const dir = tempDir();
    const service = await startService({ store: `sqlite:${join(dir, 'sessions.db')}`, secret: undefined });
    await service.close();
    const fileSecret = readFileSync(join(dir, SECRET_FILE), 'utf8').trim();
    const printed = await runCli(['hash-key'], { cwd: dir, env: { ELASTIC_SESSION_STORE: 'sqlite:sessions.db' } });
    expect(printed).toMatchObject({ code: 0, stderr: '' });
    expect(printed.stdout).toBe(`${storeHashKey(fileSecret).toString('base64url')}\n`);
  });
});

describe('secret and hash key configuration', () => {
  it('takes several secrets newest first from a repeated flag, the comma-separated variable (byte for byte) and a config array', () => {
    const dir = tempDir();
    const [a, b] = [randomSecret(), ` ${randomSecret()} `];
    const hashKey = randomSecret();
    const env = { ELASTIC_SESSION_HASH_KEY: hashKey };
    expect(parseCommand('serve', [`--secret=${a}`, `--secret=${b}`], env, dir).config.secret).toEqual([a, b]);
    expect(parseCommand('serve', [], { ...env, ELASTIC_SESSION_SECRET: `${a},${b}` }, dir).config.secret).toEqual([a, b]);
    expect(parseCommand('serve', [], { ELASTIC_SESSION_SECRET: a }, dir).config.secret).toEqual([a]);
    const file = join(dir, 'es.json');
    writeFileSync(file, JSON.stringify({ secret: [a, b], hashKey }));
    expect(parseCommand('serve', ['--config', file], {}, dir).config).toMatchObject({ secret: [a, b], hashKey: Buffer.from(hashKey, 'base64url') });
    expect(parseCommand('inspect', ['x'], env, dir).config.hashKey).toEqual(Buffer.from(hashKey, 'base64url'));
  });

  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ['several secrets without a hash key', ['serve', '--store', 'memory:'], { ELASTIC_SESSION_SECRET: `${randomSecret()},${randomSecret()}` }, /--hash-key \(or ELASTIC_SESSION_HASH_KEY\) is required with several secrets in ELASTIC_SESSION_SECRET/],
    ['an empty secret between commas', ['serve'], { ELASTIC_SESSION_SECRET: `${randomSecret()},,${randomSecret()}` }, /ELASTIC_SESSION_SECRET must be a string of at least 32 bytes \(secret #2\)/],
    ['a short second secret', ['serve', `--secret=${randomSecret()}`, '--secret=short'], {}, /--secret must be a string of at least 32 bytes \(secret #2\)/],
    ['a hash key that is not 32 bytes', ['serve', `--hash-key=${randomSecret().slice(1)}`], {}, /--hash-key must be exactly 32 bytes in base64url/],
    ['a secret that starts with a dash, given as the next argument', ['serve', '--secret', `-${randomSecret()}`], {}, /--secret' argument is ambiguous.*use '--secret=-XYZ'/],
    ['a hash key spelled in standard base64', ['serve'], { ELASTIC_SESSION_HASH_KEY: Buffer.alloc(32, 0xfb).toString('base64') }, /ELASTIC_SESSION_HASH_KEY must be exactly 32 bytes/],
    ['hash-key for a memory store without a secret', ['hash-key', '--store', 'memory:'], {}, /--secret \(or ELASTIC_SESSION_SECRET\) is required/],
    ['hash-key without a secret file', ['hash-key', '--store', `sqlite:${join(tempDir(), 'none.db')}`], {}, /is not set and there is no elastic-session.secret/],
  ];

  it.each(cases)('%s: exit 2 naming the option, no key in the message', async (_name, args, env, message) => {
    const result = await runCli(args, { env });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    for (const value of [...args, ...Object.values(env)].filter((text) => text.length >= 32)) expect(result.stderr).not.toContain(value);
  });

  it('refuses a low-entropy hash key in production', async () => {
    const result = await runCli(['serve', '--store', 'memory:', '--hash-key', 'A'.repeat(43)], { env: { NODE_ENV: 'production', ELASTIC_SESSION_SECRET: randomSecret() } });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--hash-key is an example or low-entropy key, refused in production/);
  });
});

describe('weak secrets: passphrases and digests of guessable inputs (#13 item 8)', () => {
  const digest = (algorithm: string, input: string) => createHash(algorithm).update(input).digest();
  const passphrases = [
    'correct horse battery staple and some more words',
    'my super secret session key for production',
    'correcthorsebatterystapleandsomemorewords',
    'my-super-secret-session-key-for-production',
    'my_super_secret_session_key_for_production',
    'My-Session-Secret-For-Production-2024',
    'mySuperSecretSessionKeyForProduction2024!',
    'Tr0ub4dor&3-is-my-favourite-password-ever',
    `${digest('sha256', 'hello').toString('hex')}  -`,
  ];
  const digests = [
    digest('sha256', 'password').toString('hex'),
    digest('sha256', 'password').toString('hex').toUpperCase(),
    digest('sha256', 'changeme\n').toString('hex'),
    digest('sha512', 'secret').toString('hex'),
    digest('sha1', 'keyboard cat').toString('hex'),
    digest('md5', 'admin').toString('hex'),
    digest('sha256', 'password').toString('base64'),
    digest('sha256', 'session-secret').toString('base64url'),
    digest('sha256', EXAMPLE_SECRETS[0] as string).toString('hex'),
    digest('sha256', ''),
  ];

  it('isWeakSecret flags passphrase-like text and the digests (hex, base64, raw) of guessable inputs', () => {
    for (const secret of passphrases) expect(isWeakSecret(secret), secret).toBe(true);
    for (const secret of passphrases.slice(0, -1)) expect(isPassphraseLike(secret), secret).toBe(true);
    for (const secret of digests) expect(isWeakSecret(secret), String(secret)).toBe(true);
    expect(isWeakKey(digest('sha256', 'password'))).toBe(true);
  });

  it('still accepts what generators print: base64, base64url, hex (a digest of nothing guessable looks the same) and raw bytes', () => {
    for (let i = 0; i < 500; i++) {
      for (const secret of [randomBytes(32), randomBytes(32).toString('base64'), randomBytes(32).toString('base64url'), randomBytes(32).toString('hex'), randomBytes(24).toString('base64url')]) {
        expect(isWeakSecret(secret), String(secret)).toBe(false);
      }
      expect(isWeakKey(randomBytes(32))).toBe(false);
    }
    expect(isWeakSecret(digest('sha256', randomUUID()).toString('hex'))).toBe(false);
  });

  it('serve refuses a passphrase or a hex digest as the secret, and a digest as the hash key, in production only, never quoting them', async () => {
    const dir = tempDir();
    const hex = digest('sha256', 'password').toString('hex');
    const file = join(dir, 'secret');
    writeFileSync(file, `${hex}\n`, { mode: 0o600 });
    const production = { NODE_ENV: 'production' };
    for (const [args, env] of [
      [['--secret', passphrases[0] as string], production],
      [['--secret-file', file], production],
      [[], { ...production, ELASTIC_SESSION_SECRET: passphrases[3] as string }],
    ] as const) {
      const result = await runCli(['serve', '--port', '0', '--store', 'memory:', ...args], { env, killAfterMs: 15_000 });
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(/secret #1 is an example or low-entropy secret, refused in production/);
      expect(result.stderr).not.toContain(hex);
      expect(result.stderr).not.toContain('horse');
    }
    const hashKey = await runCli(['serve', '--port', '0', '--store', 'memory:', '--hash-key', digest('sha256', 'password').toString('base64url')], {
      env: { ...production, ELASTIC_SESSION_SECRET: randomSecret() },
      killAfterMs: 15_000,
    });
    expect(hashKey.code).toBe(2);
    expect(hashKey.stderr).toMatch(/--hash-key is an example or low-entropy key, refused in production/);
    // Outside production the same secret is taken (tests and development use such secrets).
    expect(parseCommand('serve', ['--secret-file', file], {}, dir).config.secret).toEqual([hex]);
  }, 60_000);
});
