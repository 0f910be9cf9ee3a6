import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import ts from 'typescript';

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

const WORKER = `
import { parentPort, workerData } from 'node:worker_threads';
const { sqliteStore } = await import(workerData.storeUrl);
const store = sqliteStore({ path: workerData.path });
const gate = new Int32Array(workerData.gate);
parentPort.postMessage('ready');
Atomics.wait(gate, 0, 0);
const statuses = [];
for (const [name, stamp] of workerData.fields) {
  const result = await store.apply(workerData.key, { fields: { [name]: { value: JSON.stringify(name), stamp } } });
  statuses.push(result.status);
}
await store.close();
parentPort.postMessage(statuses);
`;

/**
 * Applies one delta per field to `key`, each thread through its own SqliteStore on `path`; all
 * threads are released at once so their transactions contend for the write lock.
 * @returns the status of every apply
 */
export async function applyFromThreads(options: { dir: string; path: string; key: string; threads: { name: string; stamp: string }[][] }): Promise<string[]> {
  const storeUrl = await buildStore(options.dir);
  const script = join(options.dir, 'worker.mjs');
  await writeFile(script, WORKER);
  const gate = new SharedArrayBuffer(4);
  const workers = options.threads.map(
    (fields) => new Worker(script, { workerData: { storeUrl, path: options.path, key: options.key, gate, fields: fields.map((field) => [field.name, field.stamp]) } }),
  );
  const started = workers.map(track);
  await Promise.all(started.map((worker) => worker.ready));
  const view = new Int32Array(gate);
  Atomics.store(view, 0, 1);
  Atomics.notify(view, 0);
  return (await Promise.all(started.map((worker) => worker.statuses))).flat();
}

function track(worker: Worker): { ready: Promise<true>; statuses: Promise<string[]> } {
  const next = <T>(pick: (message: unknown) => T | undefined) =>
    new Promise<T>((resolve, reject) => {
      worker.on('message', (message: unknown) => {
        const value = pick(message);
        if (value !== undefined) resolve(value);
      });
      worker.on('error', reject);
      worker.on('exit', (code) => reject(new Error(`worker exited with code ${code}`)));
    });
  const statuses = next((message) => (Array.isArray(message) ? (message as string[]) : undefined));
  // Awaited later; a worker that fails before it is ready is reported through `ready`.
  statuses.catch(() => undefined);
  return { ready: next((message) => (message === 'ready' ? true : undefined)), statuses };
}
