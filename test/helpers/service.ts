import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';
import type { SessionStore } from '../../src/core/types.js';
import { createService } from '../../src/service/index.js';
import type { Service, ServiceLogger, ServiceOptions } from '../../src/service/index.js';
import { memoryStore } from '../../src/stores/memory.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function randomKey(): string {
  return `key-${randomBytes(18).toString('base64url')}`;
}

/** A logger that keeps every line, so tests can check what reached the logs. */
export function captureLog(): ServiceLogger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (line) => lines.push(`info: ${line}`),
    warn: (line) => lines.push(`warn: ${line}`),
    error: (line) => lines.push(`error: ${line}`),
  };
}

export interface RunningService {
  service: Service;
  url: string;
  log: ReturnType<typeof captureLog>;
  /** fetch against the service; `key` adds a Bearer header, `json` a JSON body. */
  request(method: string, path: string, init?: { json?: unknown; body?: string; headers?: Record<string, string>; key?: string }): Promise<Response>;
  close(): Promise<void>;
}

/** A service on 127.0.0.1 with a free port, over a fresh memory store unless told otherwise. */
export async function startService(options: ServiceOptions = {}): Promise<RunningService> {
  const log = captureLog();
  const service = await createService({ store: memoryStore(), secret: randomSecret(), port: 0, host: '127.0.0.1', log, ...options });
  const { url } = await service.listen();
  return {
    service,
    url,
    log,
    request(method, path, init = {}) {
      const headers: Record<string, string> = { ...init.headers };
      if (init.key !== undefined) headers.authorization = `Bearer ${init.key}`;
      let body = init.body;
      if (init.json !== undefined) {
        body = JSON.stringify(init.json);
        headers['content-type'] ??= 'application/json';
      }
      return fetch(`${url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
    },
    close: () => service.close(),
  };
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * One request over a fresh connection to the service at `url`, with exactly the `Host` given
 * (what `fetch` will not forge) and `target` as the request target: a path, or an absolute URL
 * (absolute-form, whose authority overrides `Host`).
 */
export function rawRequest(url: string, init: { method?: string; target: string; host: string; headers?: Record<string, string>; body?: string }): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { hostname: hostname.replace(/^\[|\]$/g, ''), port, method: init.method ?? 'GET', path: init.target, agent: false, headers: { ...init.headers, host: init.host } },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

/** Sends `text` as it is over a TCP connection to the service and resolves with all it answers before closing. */
export function rawExchange(url: string, text: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port) }, () => socket.end(text));
    let answer = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

/** A store whose every call is counted, over a memory store. */
export function countingStore(inner: SessionStore = memoryStore()): SessionStore & { calls: string[] } {
  const calls: string[] = [];
  return new Proxy(inner, {
    get(target, property, receiver) {
      if (property === 'calls') return calls;
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || property === 'close') return value;
      return (...args: unknown[]) => {
        calls.push(String(property));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as SessionStore & { calls: string[] };
}

/** A store that fails every call like an unreachable server. */
export function failingStore(): SessionStore {
  const fail = async (): Promise<never> => {
    throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.7:6379 (secret internal detail)'), { code: 'ECONNREFUSED' });
  };
  return {
    name: 'broken',
    capabilities: { nativeTtl: true, cas: true, userIndex: true, sweep: false, scan: false, replica: false },
    load: fail,
    create: fail,
    apply: fail,
    destroy: fail,
    listByUser: fail,
    destroyByUser: fail,
    sweep: fail,
    close: async () => {},
  };
}

// ---- The built CLI, for tests that run real processes ----

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(path));
    else if (entry.name.endsWith('.ts')) files.push(path);
  }
  return files.sort();
}

/**
 * Builds src/ with the project's build config into a temporary folder keyed by a hash of the
 * sources, so test files running in parallel share one build and never race on dist/.
 * Resolves the path of the built `cli/main.js`.
 */
export function builtCli(): string {
  // Once per test process: sources other engineers edit mid-run must not trigger a rebuild per call.
  built ??= build();
  return built;
}

let built: string | undefined;

function build(): string {
  const hash = createHash('sha256');
  for (const file of [...sourceFiles(join(ROOT, 'src')), join(ROOT, 'tsconfig.json'), join(ROOT, 'tsconfig.build.json'), join(ROOT, 'package.json')]) {
    hash.update(relative(ROOT, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  const base = join(tmpdir(), 'elastic-session-test-build');
  const target = join(base, hash.digest('hex').slice(0, 16));
  const main = join(target, 'dist', 'cli', 'main.js');
  if (existsSync(main)) return main;
  mkdirSync(base, { recursive: true });
  pruneOldBuilds(base);
  const staging = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  mkdirSync(staging, { recursive: true });
  writeFileSync(join(staging, 'package.json'), readFileSync(join(ROOT, 'package.json')));
  symlinkSync(join(ROOT, 'node_modules'), join(staging, 'node_modules'), 'dir');
  // Type errors in files other engineers are editing must not stop the build: tsc emits anyway.
  const result = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(staging, 'dist')], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 180_000,
  });
  if (!existsSync(join(staging, 'dist', 'cli', 'main.js'))) {
    rmSync(staging, { recursive: true, force: true });
    throw new Error(`building the CLI failed:\n${result.stdout}\n${result.stderr}`);
  }
  try {
    renameSync(staging, target);
  } catch {
    // Another test file finished the same build first.
    rmSync(staging, { recursive: true, force: true });
  }
  return main;
}

/** Builds of sources long since edited: removed after a day so /tmp does not fill up. */
function pruneOldBuilds(base: string): void {
  const cutoff = Date.now() - 24 * 3600 * 1000;
  for (const name of readdirSync(base)) {
    const path = join(base, name);
    try {
      if (statSync(path).mtimeMs < cutoff) rmSync(path, { recursive: true, force: true });
    } catch {
      // Another test process removed it first.
    }
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The built `dist/` folder (see `builtCli`). */
export function builtDist(): string {
  return dirname(dirname(builtCli()));
}

/**
 * Node arguments under which the named packages look uninstalled to `import` (a resolve hook
 * answers ERR_MODULE_NOT_FOUND), as on a machine without those optional peers; node_modules is
 * not touched.
 */
export function hidePackages(names: readonly string[]): string[] {
  if (names.length === 0) return [];
  const hooks = `const hidden = ${JSON.stringify(names)};
export async function resolve(specifier, context, next) {
  if (hidden.some((name) => specifier === name || specifier.startsWith(name + '/'))) {
    throw Object.assign(new Error("Cannot find package '" + specifier + "' imported from " + context.parentURL), { code: 'ERR_MODULE_NOT_FOUND' });
  }
  return next(specifier, context);
}`;
  const register = `import { register } from 'node:module';\nregister(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`;
  return ['--import', `data:text/javascript,${encodeURIComponent(register)}`];
}

/** Runs an ES module program with node (as a real process, from ROOT); `hide` makes packages look uninstalled. */
export function runModule(source: string, options: { hide?: readonly string[] } = {}): Promise<CliResult> {
  return runProcess([...hidePackages(options.hide ?? []), '--input-type=module', '--eval', source], {});
}

/**
 * Runs the built CLI to completion; `hide` makes packages look uninstalled. `killAfterMs` ends a
 * process that should have exited by itself (a `serve` that was meant to refuse to start), so a
 * regression fails fast and leaves no process behind; its code is then null.
 */
export function runCli(args: string[], options: { env?: Record<string, string>; cwd?: string; input?: string; hide?: readonly string[]; killAfterMs?: number } = {}): Promise<CliResult> {
  return runProcess([...hidePackages(options.hide ?? []), builtCli(), ...args], options);
}

function runProcess(args: string[], options: { env?: Record<string, string>; cwd?: string; input?: string; killAfterMs?: number }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: options.cwd ?? ROOT, env: cleanEnv(options.env), stdio: ['pipe', 'pipe', 'pipe'] });
    if (options.killAfterMs !== undefined) {
      const timer = setTimeout(() => child.kill('SIGKILL'), options.killAfterMs);
      child.on('exit', () => clearTimeout(timer));
    }
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** The environment without any ELASTIC_SESSION_* variable of the developer's shell. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('ELASTIC_SESSION_')) env[name] = value;
  return { ...env, ...extra };
}

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  stdout(): string;
  stderr(): string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Resolves with the exit code once the process has exited by itself. */
  exited: Promise<number | null>;
  /** Resolves once stderr matches, e.g. a log line the process writes when something happened. */
  stderrMatches(pattern: RegExp): Promise<void>;
}

/** Starts `elastic-session serve` as a real process and waits for its `listening on` line. */
export function spawnServe(args: string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<ServeProcess> {
  const main = builtCli();
  const child = spawn(process.execPath, [main, 'serve', '--port', '0', ...args], { cwd: options.cwd ?? ROOT, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    for (const waiter of waiters.filter(({ pattern }) => pattern.test(stderr))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serve did not start:\n${stdout}\n${stderr}`));
    }, 20_000);
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(stdout);
      if (!match) return;
      clearTimeout(timer);
      resolve({
        child,
        url: match[1] as string,
        stdout: () => stdout,
        stderr: () => stderr,
        exited,
        stderrMatches(pattern) {
          if (pattern.test(stderr)) return Promise.resolve();
          return new Promise((resolve) => waiters.push({ pattern, resolve }));
        },
        stop(signal = 'SIGTERM') {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          return exited;
        },
      });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before listening:\n${stdout}\n${stderr}`));
    });
  });
}

export function tempDir(): string {
  const dir = join(tmpdir(), `elastic-session-test-${randomBytes(6).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function fileMode(path: string): number {
  return statSync(path).mode & 0o777;
}

/** A `startService` whose services are closed after each test of the calling file. */
export function servicesClosedAfterEach(): typeof startService {
  const running: RunningService[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((service) => service.close()));
  });
  return async (...args) => {
    const service = await startService(...args);
    running.push(service);
    return service;
  };
}
