// Operations per second of the session manager on the embedded stores: create (first save),
// load, and save of a one-field delta. Run with `npm run bench`; prints a table.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SessionManager } from 'elastic-session';
import { memoryStore } from 'elastic-session/stores/memory';
import { sqliteStore } from 'elastic-session/stores/sqlite';

const SECRET = 'bench-secret-0123456789-abcdefghijklmnop';
const N = Number(process.env.BENCH_N ?? 20_000);

async function measure(label, fn) {
  for (let i = 0; i < Math.min(1000, N / 10); i++) await fn(i);
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await fn(i);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { label, opsPerSecond: Math.round(N / seconds), microsPerOp: ((seconds / N) * 1e6).toFixed(1) };
}

async function run(name, store) {
  const sessions = new SessionManager({ store, secrets: [SECRET], limits: { maxBytes: 1 << 20 } });
  const payload = { user: 'alice', cart: ['a', 'b', 'c'], prefs: { theme: 'dark', lang: 'en' } };
  const ids = [];
  const rows = [];
  rows.push(await measure('create', async () => {
    const session = sessions.create({ data: payload });
    await sessions.save(session);
    ids.push(session.id);
  }));
  rows.push(await measure('load', async (i) => {
    await sessions.load(ids[i % ids.length]);
  }));
  rows.push(await measure('save (1-field delta)', async (i) => {
    const session = await sessions.load(ids[i % ids.length]);
    session.set('counter', i);
    await sessions.save(session);
  }));
  await sessions.close();
  return rows.map((row) => ({ store: name, ...row }));
}

const dir = mkdtempSync(join(tmpdir(), 'es-bench-'));
try {
  const results = [
    ...(await run('memory', memoryStore({ maxEntries: 1_000_000, maxBytes: 1 << 30 }))),
    ...(await run('sqlite (synchronous=full, default)', sqliteStore({ path: join(dir, 'full.db') }))),
    ...(await run('sqlite (synchronous=normal)', sqliteStore({ path: join(dir, 'normal.db'), synchronous: 'normal' }))),
  ];
  console.log(`node ${process.version}, ${N} operations each\n`);
  console.log('| store | operation | ops/s | µs/op |');
  console.log('|---|---|---:|---:|');
  for (const r of results) console.log(`| ${r.store} | ${r.label} | ${r.opsPerSecond} | ${r.microsPerOp} |`);
  console.log('\n"save" includes the load that precedes it, as in a request.');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
