import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import ts from 'typescript';
import type { LiveState, TombstoneState } from '../../src/core/types.js';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/**
 * Worker threads cannot load TypeScript, so the real store module and its relative imports are
 * transpiled into `dir` (better-sqlite3 is imported by absolute URL from there).
 */
async function buildStore(dir: string): Promise<string> {
  const betterSqlite = pathToFileURL(createRequire(import.meta.url).resolve('better-sqlite3')).href;
  const pending = ['stores/sqlite.ts'];
  const done = new Set<string>();
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (done.has(file)) continue;
    done.add(file);
    const source = await readFile(join(SRC, file), 'utf8');
    const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true } });
    for (const [, specifier] of outputText.matchAll(/from ['"](\.{1,2}\/[^'"]+)\.js['"]/g)) pending.push(normalize(join(dirname(file), `${specifier}.ts`)));
    const out = join(dir, file.replace(/\.ts$/, '.js'));
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, outputText.replace(/from ['"]better-sqlite3['"]/, `from '${betterSqlite}'`));
  }
  return pathToFileURL(join(dir, 'stores/sqlite.js')).href;
}

/** One store call a thread makes; its result is sent back as the store returned it. */
export type ThreadOp =
  | { op: 'apply'; key: string; name: string; stamp: string }
  | { op: 'mergeState'; key: string; state: LiveState | TombstoneState }
  | { op: 'mergeWatermark'; userId: string; stamp: string };

const WORKER = `
import { parentPort, workerData } from 'node:worker_threads';
const { sqliteStore } = await import(workerData.storeUrl);
const store = sqliteStore({ path: workerData.path });
const gate = new Int32Array(workerData.gate);
parentPort.postMessage('ready');
Atomics.wait(gate, 0, 0);
const results = [];
for (const call of workerData.ops) {
  if (call.op === 'apply') results.push(await store.apply(call.key, { fields: { [call.name]: { value: JSON.stringify(call.name), stamp: call.stamp } } }));
  else if (call.op === 'mergeState') results.push(await store.mergeState(call.key, call.state));
  else results.push(await store.mergeWatermark(call.userId, call.stamp));
}
await store.close();
parentPort.postMessage({ results });
`;

/**
 * Runs each thread's calls in order, each thread through its own SqliteStore on `path` (opened,
 * and so migrated, by every thread at once); all threads are released together so their
 * transactions contend for the write lock.
 * @returns every thread's results, in thread order
 */
export async function runFromThreads(options: { dir: string; path: string; threads: ThreadOp[][] }): Promise<unknown[][]> {
  const storeUrl = await buildStore(options.dir);
  const script = join(options.dir, 'worker.mjs');
  await writeFile(script, WORKER);
  const gate = new SharedArrayBuffer(4);
  const workers = options.threads.map((ops) => new Worker(script, { workerData: { storeUrl, path: options.path, gate, ops } }));
  const started = workers.map(track);
  await Promise.all(started.map((worker) => worker.ready));
  const view = new Int32Array(gate);
  Atomics.store(view, 0, 1);
  Atomics.notify(view, 0);
  return Promise.all(started.map((worker) => worker.results));
}

/**
 * Applies one delta per field to `key` from threads (see `runFromThreads`).
 * @returns the status of every apply
 */
export async function applyFromThreads(options: { dir: string; path: string; key: string; threads: { name: string; stamp: string }[][] }): Promise<string[]> {
  const threads = options.threads.map((fields) => fields.map((field): ThreadOp => ({ op: 'apply', key: options.key, ...field })));
  const results = await runFromThreads({ dir: options.dir, path: options.path, threads });
  return results.flat().map((result) => (result as { status: string }).status);
}

function track(worker: Worker): { ready: Promise<true>; results: Promise<unknown[]> } {
  const next = <T>(pick: (message: unknown) => T | undefined) =>
    new Promise<T>((resolve, reject) => {
      worker.on('message', (message: unknown) => {
        const value = pick(message);
        if (value !== undefined) resolve(value);
      });
      worker.on('error', reject);
      worker.on('exit', (code) => reject(new Error(`worker exited with code ${code}`)));
    });
  const results = next((message) => (typeof message === 'object' && message !== null && 'results' in message ? (message.results as unknown[]) : undefined));
  // Awaited later; a worker that fails before it is ready is reported through `ready`.
  results.catch(() => undefined);
  return { ready: next((message) => (message === 'ready' ? true : undefined)), results };
}
