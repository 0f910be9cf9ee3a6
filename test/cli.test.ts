import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { argOptions, COMMAND_SETTINGS, COMMANDS, parseCommand } from '../src/cli/config.js';
import { run } from '../src/cli/run.js';
import type { CliIO } from '../src/cli/run.js';
import type { SessionResource } from '../src/service/index.js';
import { builtCli, randomKey, randomSecret, ROOT, runCli, spawnServe, startService, tempDir } from './helpers/service.js';

beforeAll(() => {
  builtCli();
}, 180_000);

const SECRET = 'a-secret-of-at-least-thirty-two-bytes!';

/** Runs the CLI in this process (for help and argument errors, which open nothing). */
async function runHere(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    env,
    cwd: tempDir(),
    readStdin: async () => '',
    waitForStop: async () => 'SIGTERM',
  };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}

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

  it('lists every flag of every command, with the commands that take it (#18 item 6)', async () => {
    const { code, stdout } = await runHere(['--help']);
    expect(code).toBe(0);
    for (const command of COMMANDS) {
      for (const flag of Object.keys(argOptions(command))) expect(stdout, `--${flag} of ${command}`).toContain(flag === 'help' ? '-h, --help' : `--${flag} `);
    }
    expect(stdout).toMatch(/ {2}serve:\n(?: {4}.*\n| {35}\[.*\n)*? {4}--allowed-host <name\[:port\]> /);
    expect(stdout).toContain('[repeatable, env ELASTIC_SESSION_API_KEYS]');
  });

  it.each(COMMANDS)('the help of %s lists each of its flags, and in its config note only the keys it reads', async (command) => {
    const { code, stdout } = await runHere([command, '--help']);
    expect(code).toBe(0);
    for (const flag of Object.keys(argOptions(command))) expect(stdout, `--${flag}`).toContain(`--${flag}`);
    const keys = /\(keys: ([^)]*)\)/.exec(stdout.replace(/\n/g, ' '))?.[1]?.split(/,\s*/);
    expect(keys).toEqual(COMMAND_SETTINGS[command]);
  });

  it('says "did you mean" for a mistyped command and flag, and names the command a flag belongs to', async () => {
    const serv = await runHere(['serv']);
    expect(serv).toMatchObject({ code: 2, stdout: '' });
    expect(serv.stderr).toContain('unknown command "serv": did you mean "serve"?');
    expect((await runHere(['inpsect'])).stderr).toContain('did you mean "inspect"?');
    expect((await runHere(['frobnicate'])).stderr).not.toContain('did you mean');
    const prot = await runHere(['serve', '--prot', '80']);
    expect(prot.code).toBe(2);
    expect(prot.stderr).toContain("Unknown option '--prot': did you mean --port?");
    expect((await runHere(['serve', '--secert', SECRET])).stderr).toContain('did you mean --secret?');
    expect((await runHere(['serve', '--api-keys', 'k'])).stderr).toContain('did you mean --api-key?');
    expect((await runHere(['sweep', '--port', '80'])).stderr).toContain("Unknown option '--port': --port is an option of serve, not of sweep");
    expect((await runHere(['sweep', '--secret', SECRET])).stderr).toContain('--secret is an option of serve, inspect, hash-key, not of sweep');
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
    // #18 item 4: API keys no longer widen the default address; listening beyond loopback is asked for.
    expect(parseCommand('serve', ['--api-key', 'flag-key-0123456789', '--api-key', 'flag-key-9876543210'], env, dir).config).toMatchObject({
      apiKeys: ['flag-key-0123456789', 'flag-key-9876543210'],
      host: '127.0.0.1',
    });
    expect(parseCommand('serve', ['--api-key', 'flag-key-0123456789', '--host', '0.0.0.0'], {}, dir).config.host).toBe('0.0.0.0');
  });

  it('a command reads only its own settings: a variable or config key for another command is left alone', () => {
    const dir = tempDir();
    const file = join(dir, 'es.json');
    writeFileSync(file, JSON.stringify({ store: 'memory:', port: 'not a port', tokenKey: '/nonexistent.pem' }));
    expect(parseCommand('sweep', ['--config', file], { ELASTIC_SESSION_PORT: 'eighty', ELASTIC_SESSION_SECRET_FILE: '/nonexistent' }, dir).config.store).toEqual({ scheme: 'memory', url: 'memory:' });
    expect(() => parseCommand('serve', ['--config', file], {}, dir)).toThrow(/"port" in .* must be an integer/);
  });
});

describe('the service listens on loopback by default, also with API keys (#18 item 4)', () => {
  it('createService with API keys and no host binds 127.0.0.1 and says how to listen beyond it', async () => {
    const service = await startService({ apiKeys: [randomKey()], host: undefined });
    try {
      expect(service.service.server.address()).toMatchObject({ address: '127.0.0.1' });
      expect(service.log.lines.join('\n')).toContain('listening on 127.0.0.1 only (loopback); set --host 0.0.0.0');
    } finally {
      await service.close();
    }
  });

  it('serve prints where the dashboard, the OpenAPI document, health and metrics are', async () => {
    const serve = await spawnServe(['--store', 'memory:']);
    try {
      expect((await fetch(`${serve.url}/admin`)).status).toBe(200);
      expect((await fetch(`${serve.url}/openapi.json`)).status).toBe(200);
    } finally {
      // All of stderr is in once the process has exited.
      expect(await serve.stop()).toBe(0);
    }
    expect(serve.stderr()).toContain(`dashboard ${serve.url}/admin, API description ${serve.url}/openapi.json, health ${serve.url}/healthz, metrics ${serve.url}/metrics`);
  }, 30_000);
});

describe('secrets and keys from files: --secret-file, --api-key-file, --hash-key-file (#13 item 8)', () => {
  function secretFile(dir: string, name: string, text: string, mode = 0o600): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    chmodSync(path, mode);
    return path;
  }

  it('reads one value per line, byte for byte but for the line ending, from the flag, the _FILE variable or the config file', () => {
    const dir = tempDir();
    const [a, b] = [randomSecret(), ` ${randomSecret()}`];
    const hashKey = randomBytes(32).toString('base64url');
    const [k1, k2] = [randomKey(), randomKey()];
    const secrets = secretFile(dir, 'secrets', `${a}\r\n${b}\n\n`);
    const hash = secretFile(dir, 'hash', `${hashKey}\n`);
    const keys = secretFile(dir, 'keys', `${k1}\n  ${k2}  \n`);
    const expected = { secret: [a, b], hashKey: Buffer.from(hashKey, 'base64url'), apiKeys: [k1, k2], secretOption: '--secret-file', hashKeyOption: '--hash-key-file' };
    expect(parseCommand('serve', ['--secret-file', secrets, '--hash-key-file', hash, '--api-key-file', keys], {}, dir).config).toMatchObject(expected);
    const env = { ELASTIC_SESSION_SECRET_FILE: 'secrets', ELASTIC_SESSION_HASH_KEY_FILE: hash, ELASTIC_SESSION_API_KEYS_FILE: keys };
    expect(parseCommand('serve', [], env, dir).config).toMatchObject({ ...expected, secretOption: 'ELASTIC_SESSION_SECRET_FILE', hashKeyOption: 'ELASTIC_SESSION_HASH_KEY_FILE' });
    const file = join(dir, 'es.json');
    writeFileSync(file, JSON.stringify({ secretFile: secrets, hashKeyFile: hash, apiKeyFile: keys }));
    expect(parseCommand('serve', ['--config', file], {}, dir).config).toMatchObject({ secret: [a, b], apiKeys: [k1, k2] });
    expect(parseCommand('inspect', ['--secret-file', secrets, '--hash-key-file', hash, 'x'], {}, dir).config).toMatchObject({ secret: [a, b] });
    expect(parseCommand('hash-key', [], env, dir).config).toMatchObject({ secret: [a, b] });
  });

  it('flags win over variables over the config file, whichever form each gives; one source giving both forms is refused', () => {
    const dir = tempDir();
    const [fromFlag, fromEnv, fromFile] = [randomSecret(), randomSecret(), randomSecret()];
    const envFile = secretFile(dir, 'env-secret', `${fromEnv}\n`);
    const config = join(dir, 'es.json');
    writeFileSync(config, JSON.stringify({ secret: fromFile }));
    expect(parseCommand('serve', ['--config', config, '--secret', fromFlag], { ELASTIC_SESSION_SECRET_FILE: envFile }, dir).config.secret).toEqual([fromFlag]);
    expect(parseCommand('serve', ['--config', config], { ELASTIC_SESSION_SECRET_FILE: envFile }, dir).config.secret).toEqual([fromEnv]);
    expect(parseCommand('serve', ['--config', config], {}, dir).config.secret).toEqual([fromFile]);
    expect(() => parseCommand('serve', ['--secret', fromFlag, '--secret-file', envFile], {}, dir)).toThrow(/--secret and --secret-file both set it: give one of them/);
    expect(() => parseCommand('serve', [], { ELASTIC_SESSION_API_KEYS: randomKey(), ELASTIC_SESSION_API_KEYS_FILE: envFile }, dir)).toThrow(/ELASTIC_SESSION_API_KEYS and ELASTIC_SESSION_API_KEYS_FILE both/);
  });

  it('refuses a file every user may write, warns about one every user may read, and names the option for a missing, empty or bad file', () => {
    const dir = tempDir();
    const secret = randomSecret();
    const writable = secretFile(dir, 'writable', secret, 0o666);
    expect(() => parseCommand('serve', ['--secret-file', writable], {}, dir)).toThrow(new RegExp(`--secret-file file ${writable} is writable by every user.*chmod 600`));
    const readable = secretFile(dir, 'readable', secret, 0o644);
    const parsed = parseCommand('serve', ['--secret-file', readable], {}, dir).config;
    expect(parsed.secret).toEqual([secret]);
    expect(parsed.warnings).toEqual([`--secret-file: file ${readable} is readable by every user; restrict it with: chmod 600 ${readable}`]);
    expect(parseCommand('serve', ['--secret-file', secretFile(dir, 'private', secret)], {}, dir).config.warnings).toEqual([]);
    const cases: [string[], RegExp][] = [
      [['--secret-file', join(dir, 'missing')], /--secret-file file .*missing cannot be read \(ENOENT\)/],
      [['--secret-file', dir], /--secret-file file .* is not a regular file/],
      [['--secret-file', secretFile(dir, 'empty', '\n\n')], /--secret-file file .*empty holds no value/],
      [['--secret-file', secretFile(dir, 'short', 'short\n')], /--secret-file must be a string of at least 32 bytes/],
      [['--hash-key-file', secretFile(dir, 'two-keys', `${randomBytes(32).toString('base64url')}\n${randomBytes(32).toString('base64url')}\n`)], /--hash-key-file file .* must hold one value on one line/],
      [['--api-key-file', secretFile(dir, 'bad-keys', `${randomKey()}\nbad\n`)], /--api-key-file must hold API keys .*\(key #2\)/],
    ];
    for (const [args, message] of cases) expect(() => parseCommand('serve', args, {}, dir), args.join(' ')).toThrow(message);
    for (const [args] of cases) {
      try {
        parseCommand('serve', args, {}, dir);
      } catch (error) {
        expect((error as Error).message).not.toContain(secret);
      }
    }
  });

  it('serve takes its secret and API keys from files (nothing secret on its command line), and inspect finds the session with the same file', async () => {
    const dir = tempDir();
    const secret = randomSecret();
    const key = randomKey();
    const secretPath = secretFile(dir, 'secret', `${secret}\n`);
    const keysPath = secretFile(dir, 'api-keys', `${key}\n`);
    const store = `sqlite:${join(dir, 'sessions.db')}`;
    const serve = await spawnServe(['--store', store, '--secret-file', secretPath], { env: { ELASTIC_SESSION_API_KEYS_FILE: keysPath } });
    let id: string;
    try {
      expect(serve.child.spawnargs.join(' ')).not.toContain(secret);
      expect((await fetch(`${serve.url}/v1/sessions`, { method: 'POST' })).status).toBe(401);
      const created = await fetch(`${serve.url}/v1/sessions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{"data":{"a":1}}' });
      expect(created.status).toBe(201);
      ({ id } = (await created.json()) as SessionResource);
    } finally {
      await serve.stop();
    }
    const inspected = await runCli(['inspect', '--store', store, '--secret-file', secretPath, '--', id]);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ id, data: { a: 1 } });
  }, 60_000);

  it('a world-readable secret file is used with a warning on stderr', async () => {
    const dir = tempDir();
    const path = secretFile(dir, 'secret', `${randomSecret()}\n`, 0o644);
    const result = await runCli(['hash-key', '--store', 'memory:', '--secret-file', path]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
    expect(result.stderr).toContain(`warning: --secret-file: file ${path} is readable by every user`);
  });
});

describe('npm start builds only when dist/ is missing or older than src/ (#18 item 4)', () => {
  it('scripts/ensure-built.js builds a missing dist, then skips while it is current, and rebuilds after a source changes', () => {
    const root = tempDir();
    mkdirSync(join(root, 'src', 'cli'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'), 'dir');
    writeFileSync(join(root, 'package.json'), '{"type":"module"}');
    writeFileSync(join(root, 'tsconfig.build.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', target: 'es2022', rootDir: 'src', outDir: 'dist', skipLibCheck: true, types: [] }, include: ['src'] }));
    writeFileSync(join(root, 'src', 'cli', 'main.ts'), 'export const built: number = 1;\n');
    const ensure = () => spawnSync(process.execPath, [join(ROOT, 'scripts', 'ensure-built.js'), root], { encoding: 'utf8', timeout: 120_000 });
    const first = ensure();
    expect(first.status, first.stderr).toBe(0);
    expect(first.stderr).toContain('building dist/ (no build yet)');
    const built = join(root, 'dist', 'cli', 'main.js');
    const builtAt = statSync(built).mtimeMs;
    const second = ensure();
    expect(second).toMatchObject({ status: 0, stderr: 'elastic-session: dist/ is up to date, not rebuilding\n' });
    expect(statSync(built).mtimeMs).toBe(builtAt);
    // A source edited after the build (its time set ahead, so the test needs no wait).
    const source = join(root, 'src', 'cli', 'main.ts');
    writeFileSync(source, 'export const built: number = 2;\n');
    const later = new Date(builtAt + 5000);
    utimesSync(source, later, later);
    const third = ensure();
    expect(third.status, third.stderr).toBe(0);
    expect(third.stderr).toContain('building dist/ (sources changed since the last build)');
    expect(statSync(built).mtimeMs).toBeGreaterThan(builtAt);
  }, 120_000);
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

describe('elastic-session without the optional peer prom-client', () => {
  it('serve exits 2 saying to npm install prom-client; the other commands do not need it', async () => {
    const serve = await runCli(['serve', '--port', '0', '--store', 'memory:'], { hide: ['prom-client'] });
    expect(serve.code).toBe(2);
    expect(serve.stderr).toContain('prom-client (npm install prom-client)');
    expect(serve.stdout).toBe('');
    const hashKey = await runCli(['hash-key', '--store', 'memory:', '--secret', SECRET], { hide: ['prom-client'] });
    expect(hashKey).toMatchObject({ code: 0, stderr: '' });
    expect(hashKey.stdout).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
  });
});
