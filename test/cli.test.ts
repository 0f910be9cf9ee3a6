import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseCommand } from '../src/cli/config.js';
import type { SessionResource } from '../src/service/index.js';
import { builtCli, runCli, startService, tempDir } from './helpers/service.js';

beforeAll(() => {
  builtCli();
}, 180_000);

const SECRET = 'a-secret-of-at-least-thirty-two-bytes!';

describe('elastic-session --help', () => {
  it('prints the commands for --help and exits 0', async () => {
    const result = await runCli(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: elastic-session <command>/);
    for (const command of ['serve', 'inspect <id>', 'sweep']) expect(result.stdout).toContain(command);
  });

  it.each([
    ['serve', ['--port', '--host', '--store', '--idle-timeout', '--absolute-timeout', '--secret', '--api-key', '--config', 'ELASTIC_SESSION_PORT', 'ELASTIC_SESSION_STORE', 'ELASTIC_SESSION_SECRET', 'ELASTIC_SESSION_API_KEYS']],
    ['inspect', ['<id>', '--store', '--secret', '--config']],
    ['sweep', ['--store', '--config']],
    ['hash-key', ['--store', '--secret', '--hash-key', 'ELASTIC_SESSION_HASH_KEY', 'ELASTIC_SESSION_SECRET=NEW,OLD']],
  ])('prints the options of %s for --help and exits 0', async (command, mentions) => {
    for (const args of [[command, '--help'], [command, '-h'], ['help', command]]) {
      const result = await runCli(args);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^Usage: elastic-session ${command}`));
      for (const mention of mentions) expect(result.stdout).toContain(mention);
    }
  });

  it('exits 2 on an unknown command, naming it', async () => {
    const result = await runCli(['serv']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown command "serv"');
  });
});

describe('configuration errors name the option and exit 2', () => {
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ['a port out of range', ['serve', '--port', '70000'], {}, /--port must be an integer from 0 to 65535/],
    ['a port that is not a number', ['serve', '--port', '80a'], {}, /--port must be an integer/],
    ['a bad ELASTIC_SESSION_PORT', ['serve'], { ELASTIC_SESSION_PORT: 'eighty' }, /ELASTIC_SESSION_PORT must be an integer from 0 to 65535/],
    ['a non-loopback host without keys', ['serve', '--host', '0.0.0.0'], {}, /--host is not a loopback address.*--api-key/],
    ['a short secret', ['serve', '--secret', 'short'], {}, /--secret must be a string of at least 32 bytes/],
    ['a short ELASTIC_SESSION_SECRET', ['serve'], { ELASTIC_SESSION_SECRET: 'short' }, /ELASTIC_SESSION_SECRET must be a string of at least 32 bytes/],
    ['an unknown store scheme', ['serve', '--store', 'mongodb://x'], {}, /--store must start with one of sqlite:, memory:, redis:/],
    ['an unsupported store scheme with a password in its URL', ['serve', '--store', 'mongodb://:hunter2@localhost'], {}, /--store must start with one of .*memcached:, nats:/],
    ['a bad ELASTIC_SESSION_STORE', ['serve'], { ELASTIC_SESSION_STORE: 'sqlite:' }, /ELASTIC_SESSION_STORE needs a file path/],
    ['a zero idle timeout', ['serve', '--idle-timeout', '0'], {}, /--idle-timeout must be a number of seconds from 1 to/],
    ['an absurd absolute timeout', ['serve', '--absolute-timeout', '1e12'], {}, /--absolute-timeout must be a number of seconds/],
    ['a short API key', ['serve', '--api-key', 'short'], {}, /--api-key must hold API keys of 16 to 512/],
    ['a short key in ELASTIC_SESSION_API_KEYS', ['serve'], { ELASTIC_SESSION_API_KEYS: 'good-key-0123456789,bad' }, /ELASTIC_SESSION_API_KEYS must hold API keys .*\(key #2\)/],
    ['an unknown flag', ['serve', '--prot', '80'], {}, /Unknown option '--prot'/],
    ['a flag of another command', ['sweep', '--port', '80'], {}, /Unknown option '--port'/],
    ['a missing flag value', ['serve', '--port'], {}, /--port/],
    ['inspect without an ID', ['inspect'], {}, /needs exactly one session ID/],
    ['a missing config file', ['serve', '--config', '/nonexistent/es.json'], {}, /--config file \/nonexistent\/es\.json cannot be read \(ENOENT\)/],
  ];

  it.each(cases)('%s', async (_name, args, env, message) => {
    const result = await runCli(args, { env });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toContain('--help');
    expect(result.stderr).not.toContain('hunter2');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('names a bad key and a bad value in the config file', async () => {
    const dir = tempDir();
    const file = join(dir, 'es.json');
    writeFileSync(file, JSON.stringify({ port: 'x' }));
    let result = await runCli(['serve', '--config', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`"port" in ${file} must be an integer from 0 to 65535`);
    writeFileSync(file, JSON.stringify({ prot: 1 }));
    result = await runCli(['serve', '--config', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`"prot" in ${file} is not a setting`);
    writeFileSync(file, '{"port": 1,');
    result = await runCli(['serve', '--config', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`--config file ${file} is not valid JSON`);
  });

  it('names a store file that is not a SQLite database', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'x.db'), 'this is not a database'.repeat(100));
    const result = await runCli(['sweep', '--store', `sqlite:${join(dir, 'x.db')}`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`store sqlite:${join(dir, 'x.db')} cannot be opened`);
  });
});

describe('configuration precedence', () => {
  it('takes flags over environment over the config file over defaults', () => {
    const dir = tempDir();
    const file = join(dir, 'es.json');
    writeFileSync(file, JSON.stringify({ port: 1111, host: '127.0.0.2', store: 'memory:', idleTimeout: 60, absoluteTimeout: 600, apiKeys: ['file-key-0123456789'] }));
    const env = { ELASTIC_SESSION_PORT: '2222', ELASTIC_SESSION_API_KEYS: 'env-key-0123456789, env-key-9876543210' };
    const both = parseCommand('serve', ['--config', file, '--port', '3333', '--idle-timeout', '90'], env, dir).config;
    expect(both).toMatchObject({ port: 3333, host: '127.0.0.2', idleTimeout: 90, absoluteTimeout: 600, apiKeys: ['env-key-0123456789', 'env-key-9876543210'] });
    expect(both.store).toEqual({ scheme: 'memory', url: 'memory:' });
    expect(parseCommand('serve', ['--config', file], env, dir).config.port).toBe(2222);
    expect(parseCommand('serve', ['--config', file], {}, dir).config).toMatchObject({ port: 1111, apiKeys: ['file-key-0123456789'] });
    const defaults = parseCommand('serve', [], {}, dir).config;
    expect(defaults).toMatchObject({ port: 8080, host: '127.0.0.1', idleTimeout: 1800, absoluteTimeout: 86400, apiKeys: [], secret: undefined });
    expect(defaults.store).toEqual({ scheme: 'sqlite', url: 'sqlite:./data/sessions.db', path: join(dir, 'data', 'sessions.db') });
    expect(parseCommand('serve', ['--api-key', 'flag-key-0123456789', '--api-key', 'flag-key-9876543210'], env, dir).config).toMatchObject({
      apiKeys: ['flag-key-0123456789', 'flag-key-9876543210'],
      host: '0.0.0.0',
    });
  });
});

describe('elastic-session inspect and sweep', () => {
  it('inspect <id> prints the session as GET shows it, and exits 1 with "not found" for an unknown ID', async () => {
    const dir = tempDir();
    const store = `sqlite:${join(dir, 'sessions.db')}`;
    const service = await startService({ store, secret: SECRET });
    const created = (await (await service.request('POST', '/v1/sessions', { json: { data: { cart: ['x'] }, userId: 'u9' } })).json()) as SessionResource;
    const shown = await (await service.request('GET', `/v1/sessions/${created.id}`)).json();
    await service.close();

    const result = await runCli(['inspect', '--store', store, '--', created.id], { env: { ELASTIC_SESSION_SECRET: SECRET } });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual(shown);
    const fromStdin = await runCli(['inspect', '--store', store, '-'], { env: { ELASTIC_SESSION_SECRET: SECRET }, input: `${created.id}\n` });
    expect(JSON.parse(fromStdin.stdout)).toEqual(shown);

    const missing = await runCli(['inspect', '--store', store, 'B'.repeat(43)], { env: { ELASTIC_SESSION_SECRET: SECRET } });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('not found\n');
    // One ID in 64 starts with a dash: after "--" it is an ID, not an option.
    const dashed = await runCli(['inspect', '--store', store, '--', `-${'B'.repeat(42)}`], { env: { ELASTIC_SESSION_SECRET: SECRET } });
    expect(dashed).toMatchObject({ code: 1, stderr: 'not found\n' });
    const wrongSecret = await runCli(['inspect', '--store', store, '--', created.id], { env: { ELASTIC_SESSION_SECRET: `${SECRET}-other` } });
    expect(wrongSecret.code).toBe(1);
  });

  it('inspect uses the secret file next to the database when no secret is configured', async () => {
    const dir = tempDir();
    const store = `sqlite:${join(dir, 'sessions.db')}`;
    const service = await startService({ store, secret: undefined });
    const created = (await (await service.request('POST', '/v1/sessions', { json: { data: { a: 1 } } })).json()) as SessionResource;
    await service.close();
    const result = await runCli(['inspect', '--', created.id], { cwd: dir, env: { ELASTIC_SESSION_STORE: 'sqlite:sessions.db' } });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ id: created.id, data: { a: 1 } });
  });

  it('inspect without any secret names the option and exits 2', async () => {
    const dir = tempDir();
    const result = await runCli(['inspect', '--store', `sqlite:${join(dir, 'empty.db')}`, 'A'.repeat(43)]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--secret .*is not set/);
  });

  it('sweep removes expired sessions until a batch comes back short and prints the count', async () => {
    const dir = tempDir();
    const store = `sqlite:${join(dir, 'sessions.db')}`;
    const service = await startService({ store, secret: SECRET, sweepIntervalMs: 0 });
    for (let i = 0; i < 4; i++) await service.request('POST', '/v1/sessions', { json: { data: { i }, idleTimeout: 1 } });
    await service.request('POST', '/v1/sessions', { json: { data: { live: true } } });
    await service.close();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const result = await runCli(['sweep', '--store', store]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('4\n');
    expect((await runCli(['sweep', '--store', store])).stdout).toBe('0\n');
  });
});
