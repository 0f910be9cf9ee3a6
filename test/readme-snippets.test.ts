/**
 * Runnable snippets: a code block in README.md or docs/*.md whose info string is
 *
 *     ```js runnable NAME
 *
 * is a complete ES module program, run here as a user would run it. Blocks without the word
 * `runnable` are fragments and are not run. Each block is written to a file inside the
 * repository (under test-results/, ignored by git), so that `elastic-session` resolves to the
 * built package through its own exports (run `npm run build` first) and the frameworks and
 * drivers resolve from node_modules as in an app; it runs with node in a private temporary
 * folder as its working directory (SQLite files land there), with this environment:
 *
 *   SESSION_SECRET  a fresh 32-byte secret
 *   PORT            0, so a server listens on a free port
 *   REDIS_URL       the tests' Redis (ES_TEST_REDIS_URL, or redis://127.0.0.1:6379)
 *
 * A program that prints `listening on http://...` is a server: the check named NAME below
 * drives it over HTTP, then the program is stopped. Any other program must exit 0, and its check
 * reads what it printed. Every runnable block needs a check and every check a block, so a
 * renamed, removed or drifted snippet fails here. A block that imports a store whose server this
 * file does not provide fails too (add the server to SERVERS).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/core/manager.js';
import { memoryStore } from '../src/stores/memory.js';
import { SHARED_REDIS_URL } from './helpers/redis-fixtures.js';
import { ROOT } from './helpers/service.js';

interface Snippet {
  /** The file and the line of the opening fence, for messages. */
  where: string;
  name: string;
  code: string;
}

/** Every runnable block of the given Markdown text. */
function runnableBlocks(markdown: string, file: string): Snippet[] {
  const snippets: Snippet[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S+)((?:[ \t]+\S+)*)\s*$/.exec(lines[i] as string);
    if (!open) continue;
    const words = (open[2] ?? '').trim().split(/\s+/);
    const end = lines.findIndex((line, j) => j > i && /^```\s*$/.test(line));
    if (end === -1) throw new Error(`${file}:${i + 1}: unclosed code block`);
    const runnable = words.indexOf('runnable');
    if (runnable !== -1) {
      const name = words[runnable + 1];
      if (open[1] !== 'js' || name === undefined) throw new Error(`${file}:${i + 1}: a runnable block is \`\`\`js runnable NAME`);
      snippets.push({ where: `${file}:${i + 1}`, name, code: lines.slice(i + 1, end).join('\n') + '\n' });
    }
    i = end;
  }
  return snippets;
}

const FILES = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)];
const SNIPPETS = FILES.flatMap((file) => runnableBlocks(readFileSync(join(ROOT, file), 'utf8'), file));

/** The servers a snippet's store imports need, by store module; the store's own test files cover the others. */
const SERVERS: Record<string, { env: string; url: string; check: () => Promise<void> }> = {
  redis: {
    env: 'REDIS_URL',
    url: SHARED_REDIS_URL,
    async check() {
      const client = new Redis(SHARED_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      try {
        await client.connect();
        await client.ping();
      } catch (error) {
        throw new Error(`README snippets need Redis at ${SHARED_REDIS_URL}: apt-get install redis-server (or set ES_TEST_REDIS_URL)`, { cause: error });
      } finally {
        client.disconnect();
      }
    },
  },
};
const EMBEDDED = new Set(['memory', 'sqlite']);

function storesOf(snippet: Snippet): string[] {
  return [...snippet.code.matchAll(/from ['"]elastic-session\/stores\/([a-z]+)['"]/g)].map((match) => match[1] as string);
}

const scripts = join(ROOT, 'test-results', `snippets-${randomBytes(4).toString('hex')}`);
const workdirs: string[] = [];

interface Run {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

/** Writes the snippet beside the package and starts it in a fresh working folder. */
function launch(snippet: Snippet, env: Record<string, string | undefined>): Run {
  mkdirSync(scripts, { recursive: true });
  const file = join(scripts, `${snippet.name}.mjs`);
  writeFileSync(file, snippet.code);
  const cwd = mkdtempSync(join(tmpdir(), `elastic-session-snippet-${snippet.name}-`));
  workdirs.push(cwd);
  const environment: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('ELASTIC_SESSION_') && name !== 'SESSION_SECRET') environment[name] = value;
  for (const [name, value] of Object.entries(env)) if (value !== undefined) environment[name] = value;
  const child = spawn(process.execPath, [file], { cwd, env: environment, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'close').then(([code]) => code as number | null);
  return { child, output: () => output, exited };
}

function snippetEnv(snippet: Snippet): Record<string, string> {
  const env: Record<string, string> = { SESSION_SECRET: randomBytes(32).toString('base64url'), PORT: '0' };
  for (const store of storesOf(snippet)) {
    const server = SERVERS[store];
    if (server) env[server.env] = server.url;
  }
  return env;
}

/** Resolves the URL of the `listening on` line, or rejects with the output when the program exits first. */
async function listening(run: Run, where: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const onData = (): void => {
      const match = /listening on (http:\/\/\S+)/.exec(run.output());
      if (!match) return;
      run.child.stdout?.off('data', onData);
      resolve(match[1] as string);
    };
    run.child.stdout?.on('data', onData);
    void run.exited.then((code) => reject(new Error(`${where} exited with ${code} before listening:\n${run.output()}`)));
  });
}

/** A one-cookie jar over fetch, as a browser on localhost would keep it. */
class Browser {
  cookie: string | null = null;
  constructor(readonly url: string) {}

  async request(method: string, path: string, init: { json?: unknown; form?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: Headers; body: unknown }> {
    const headers: Record<string, string> = { ...init.headers };
    if (this.cookie) headers.cookie = this.cookie;
    let body: string | undefined;
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = init.form;
    }
    const response = await fetch(`${this.url}${path}`, { method, headers, redirect: 'manual', ...(body === undefined ? {} : { body }) });
    for (const line of response.headers.getSetCookie()) this.cookie = /max-age=0/i.test(line) ? null : (line.split(';')[0] as string);
    const text = await response.text();
    const type = response.headers.get('content-type') ?? '';
    return { status: response.status, headers: response.headers, body: type.includes('json') && text ? (JSON.parse(text) as unknown) : text };
  }
}

type Check = { server: (browser: Browser) => Promise<void> } | { program: (output: string) => void };

/** What each snippet must do, by name. */
const CHECKS: Record<string, Check> = {
  library: {
    async server(browser) {
      expect((await browser.request('POST', '/cart')).body).toEqual({ user: null, cart: ['apple'] });
      expect(browser.cookie).toMatch(/^sid=/);
      expect((await browser.request('POST', '/cart')).body).toEqual({ user: null, cart: ['apple', 'apple'] });
      const before = browser.cookie;
      expect((await browser.request('POST', '/login')).body).toEqual({ user: 'alice', cart: ['apple', 'apple'] });
      expect(browser.cookie).not.toBe(before);
      expect((await browser.request('GET', '/')).body).toEqual({ user: 'alice', cart: ['apple', 'apple'] });
      const old = new Browser(browser.url);
      old.cookie = before;
      expect((await old.request('GET', '/')).body).toEqual({ user: null, cart: [] });
    },
  },
  update: {
    program(output) {
      const kept = Number(/set\(\): (\d) of 5 items kept/.exec(output)?.[1]);
      expect(kept).toBeGreaterThanOrEqual(1);
      expect(kept).toBeLessThan(5);
      expect(output).toContain('update(): 5 of 5 items kept');
    },
  },
  frameworks: {
    async server(browser) {
      expect((await browser.request('POST', '/cart', { json: { item: 'apple' } })).status).toBe(204);
      expect(browser.cookie).toMatch(/^sid=/);
      const login = await browser.request('POST', '/login', { json: { user: 'ada' } });
      expect(login.status).toBe(303);
      expect(login.headers.get('location')).toBe('/');
      expect((await browser.request('GET', '/')).body).toEqual({ user: 'ada', cart: ['apple'] });
    },
  },
  'migration-after': {
    async server(browser) {
      // Behind the proxy: it says the client came over https.
      const proxied = { 'x-forwarded-proto': 'https' };
      const login = await browser.request('POST', '/login', { form: 'user=ada', headers: proxied });
      expect(login.status).toBe(302);
      expect(login.headers.get('location')).toBe('/');
      expect(login.headers.getSetCookie()[0]).toMatch(/^__Host-sid=[^;]+;.*Secure/i);
      // Straight to the app over plain http: refused, never a Secure cookie the browser would drop.
      const direct = await new Browser(browser.url).request('POST', '/login', { form: 'user=ada' });
      expect(direct.status).toBe(500);
      expect(direct.headers.getSetCookie()).toEqual([]);
    },
  },
};

describe('runnable snippets in README.md and docs/', () => {
  beforeAll(async () => {
    expect(existsSync(join(ROOT, 'dist', 'index.js')), 'dist/ is missing: run `npm run build` before these tests').toBe(true);
    const needed = new Set(SNIPPETS.flatMap(storesOf).filter((store) => !EMBEDDED.has(store)));
    for (const store of needed) await SERVERS[store]?.check();
  });

  afterAll(() => {
    rmSync(scripts, { recursive: true, force: true });
    for (const dir of workdirs) rmSync(dir, { recursive: true, force: true });
  });

  it('every runnable block has a check and every check a block, names unique', () => {
    const names = SNIPPETS.map((snippet) => snippet.name);
    expect(new Set(names).size, `duplicate names in ${SNIPPETS.map((s) => `${s.name} (${s.where})`).join(', ')}`).toBe(names.length);
    expect(names.sort()).toEqual(Object.keys(CHECKS).sort());
  });

  it('every store a runnable block imports is embedded or has its server here', () => {
    for (const snippet of SNIPPETS) {
      for (const store of storesOf(snippet)) expect(EMBEDDED.has(store) || Object.hasOwn(SERVERS, store), `${snippet.where} imports stores/${store}`).toBe(true);
    }
  });

  for (const snippet of SNIPPETS) {
    it(`${snippet.name} (${snippet.where}) runs as written`, async () => {
      const check = CHECKS[snippet.name];
      if (check === undefined) throw new Error(`${snippet.where}: no check for the runnable block "${snippet.name}"`);
      const run = launch(snippet, snippetEnv(snippet));
      try {
        if ('server' in check) {
          await check.server(new Browser(await listening(run, snippet.where)));
        } else {
          const code = await run.exited;
          expect(code, run.output()).toBe(0);
          check.program(run.output());
        }
      } finally {
        run.child.kill();
        await run.exited;
      }
    }, 20_000);
  }

  it('the library snippet without SESSION_SECRET stops at once with ESESS_CONFIG naming "secrets", not a TypeError', async () => {
    const snippet = SNIPPETS.find((s) => s.name === 'library');
    expect(snippet).toBeDefined();
    const run = launch(snippet!, { PORT: '0' });
    const code = await run.exited;
    expect(code).not.toBe(0);
    expect(run.output()).toContain('Invalid option "secrets": secret #1 is undefined');
    expect(run.output()).toContain("code: 'ESESS_CONFIG'");
    expect(run.output()).not.toContain('TypeError');
  });
});

describe('a missing secret', () => {
  it('is ESESS_CONFIG naming the option, whether the list is empty, absent or holds undefined', () => {
    const store = memoryStore();
    const secretsOf = [[undefined], [], undefined, ['a'.repeat(32), undefined]] as unknown as (readonly string[])[];
    for (const secrets of secretsOf) {
      expect(() => new SessionManager({ store, secrets }), JSON.stringify(secrets)).toThrow(expect.objectContaining({ code: 'ESESS_CONFIG', context: { option: 'secrets' } }));
    }
    expect(() => new SessionManager({ store, secrets: [undefined] as unknown as string[] })).toThrow(/^Invalid option "secrets": secret #1 is undefined/);
  });
});

describe('the package a user installs', () => {
  it('npm pack ships LICENSE, README.md, CHANGELOG.md and the built files, no tests or sources', async () => {
    const child = spawn('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const [code] = (await once(child, 'close')) as [number | null];
    expect(code).toBe(0);
    const [pack] = JSON.parse(stdout) as [{ files: { path: string }[] }];
    const files = pack.files.map((file) => file.path);
    for (const required of ['LICENSE', 'README.md', 'CHANGELOG.md', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js']) expect(files).toContain(required);
    expect(files.filter((file) => /^(test|src|examples)\//.test(file))).toEqual([]);
    expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toMatch(/^MIT License/);
    expect((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { license: string }).license).toBe('MIT');
  });
});
