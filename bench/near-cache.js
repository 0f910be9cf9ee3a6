// The near-cache against the bare Redis store, on a private redis-server this script starts:
//   1. session loads per second through the session manager, sequential and 32 in flight;
//   2. cross-instance staleness: a writer in a worker thread (its own event loop and connection)
//      writes one session; this thread, a near-cache with client tracking, records when each
//      invalidation arrives; the time from the writer's acknowledgement to it, p50/p99/max;
//   3. read-only HTTP requests per second (autocannon) on Express: no sessions (the floor), the
//      Redis store, and the near-cache over it; each server in its own process, with the CPU time
//      it spent per request (steadier than requests per second on a shared machine).
//
//   npm run build && node bench/near-cache.js
//
// Environment: BENCH_N (loads per run, default 20000), BENCH_WRITES (staleness writes, default
// 2000), BENCH_DURATION (seconds per HTTP run, default 4), BENCH_ROUNDS (HTTP rounds, the best
// counts, default 3), BENCH_CONNECTIONS (default 10), BENCH_POOL (sessions rotated, default 200),
// BENCH_SKIP_HTTP=1 (leave out part 3).
//
// `node bench/near-cache.js serve <variant> <redisPort>` runs one HTTP variant's server.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { promisify } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { startRedis } from './redis-server.js';

const dist = (path) => new URL(`../dist/${path}`, import.meta.url).href;
const SECRET = 'bench-secret-0123456789-abcdefghijklmnop';
const PREFIX = 'es:';
const FILE = fileURLToPath(import.meta.url);
const N = Number(process.env.BENCH_N ?? 20_000);
const WRITES = Number(process.env.BENCH_WRITES ?? 2_000);
const DURATION = Number(process.env.BENCH_DURATION ?? 4);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const POOL = Number(process.env.BENCH_POOL ?? 200);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

/** The session a login creates, as in bench/compare.js: ten fields of about 1 KiB. */
function profile(user) {
  const fields = {};
  for (let i = 0; i < 10; i++) fields[`p${i}`] = `${user}:${i}:`.padEnd(1022, 'abcdefghij');
  return fields;
}

const now = () => performance.timeOrigin + performance.now();

function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

async function stores(port, nearCached) {
  const { Redis } = await import('ioredis');
  const { redisStore } = await import(dist('stores/redis.js'));
  const { nearCache, redisInvalidation } = await import(dist('stores/near-cache.js'));
  const client = new Redis({ host: '127.0.0.1', port });
  const inner = redisStore({ client, prefix: PREFIX, ownsClient: true });
  await inner.loadScripts();
  if (!nearCached) return inner;
  const store = nearCache(inner, { maxEntries: 100_000, maxBytes: 1 << 30, invalidation: redisInvalidation({ client, prefix: PREFIX }) });
  await store.ready();
  return store;
}

// ---------------------------------------------------------------------------------------------
// HTTP servers (child processes) and the staleness writer (a worker thread).
// ---------------------------------------------------------------------------------------------

async function serve(variant, redisPort) {
  const { default: express } = await import('express');
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  let store = null;
  if (variant === 'bare') {
    app.post('/login', (req, res) => res.json({ user: req.query.user }));
    app.get('/me', (_req, res) => res.json({ user: 'anonymous', visits: 0 }));
  } else {
    const { session } = await import(dist('adapters/express.js'));
    store = await stores(redisPort, variant === 'near-cache');
    app.use(session({ store, secrets: [SECRET], idleTimeout: 1800, absoluteTimeout: 86_400, insecureLocalhostDevelopment: true }));
    app.post('/login', async (req, res, next) => {
      try {
        await req.session.regenerate();
        req.session.userId = String(req.query.user);
        req.session.user = String(req.query.user);
        Object.assign(req.session, profile(String(req.query.user)));
        res.json({ user: req.session.user });
      } catch (error) {
        next(error);
      }
    });
    app.get('/me', (req, res) => res.json({ user: req.session.user, visits: req.session.visits ?? 0 }));
  }
  app.get('/stats', (_req, res) => res.json(store?.stats ?? {}));
  const server = app.listen(0, '127.0.0.1', () => process.stdout.write(`READY ${server.address().port}\n`));
  server.keepAliveTimeout = 60_000;
  process.on('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => (store ? store.close() : Promise.resolve()).finally(() => process.exit(0)));
  });
}

/** The writer of part 2: one write per "go", and the time of each acknowledgement back. */
async function writer({ port, key }) {
  const { Redis } = await import('ioredis');
  const { redisStore } = await import(dist('stores/redis.js'));
  const { stampAt } = await import(dist('testing/fixtures.js'));
  const store = redisStore({ client: new Redis({ host: '127.0.0.1', port }), prefix: PREFIX, ownsClient: true });
  const base = Date.now();
  parentPort.on('message', async (message) => {
    if (message === 'close') {
      await store.close();
      parentPort.close();
      return;
    }
    const i = message;
    const result = await store.apply(key, { fields: { n: { value: String(i), stamp: stampAt(base + i) } } });
    parentPort.postMessage({ i, at: now(), status: result.status });
  });
  parentPort.postMessage('ready');
}

// ---------------------------------------------------------------------------------------------
// The harness.
// ---------------------------------------------------------------------------------------------


/** Part 1: loads per second through the manager, sequential and with `parallel` in flight. */
async function loads(port, nearCached, parallel) {
  const { SessionManager } = await import(dist('index.js'));
  const store = await stores(port, nearCached);
  const sessions = new SessionManager({ store, secrets: [SECRET] });
  const ids = [];
  for (let i = 0; i < POOL; i++) {
    const session = sessions.create({ data: profile(`user${i}`) });
    await sessions.save(session);
    ids.push(session.id);
  }
  const run = async (count) => {
    let next = 0;
    const lane = async () => {
      while (next < count) {
        const id = ids[next++ % ids.length];
        if (!(await sessions.load(id))) throw new Error('a session went missing');
      }
    };
    const start = process.hrtime.bigint();
    await Promise.all(Array.from({ length: parallel }, lane));
    return count / (Number(process.hrtime.bigint() - start) / 1e9);
  };
  await run(Math.min(2_000, N));
  const opsPerSecond = await run(N);
  const stats = store.stats;
  await sessions.close();
  return { opsPerSecond, stats };
}

/** Part 2: writer in a worker, near-cache reader here; returns lag figures in ms. */
async function staleness(port) {
  const { nearCache, redisInvalidation } = await import(dist('stores/near-cache.js'));
  const { redisStore } = await import(dist('stores/redis.js'));
  const { storedRecord, storeKey } = await import(dist('testing/fixtures.js'));
  const { Redis } = await import('ioredis');
  const client = new Redis({ host: '127.0.0.1', port });
  const key = storeKey();
  const invalidatedAt = [];
  const tracking = redisInvalidation({ client, prefix: PREFIX });
  let heard = () => {};
  // The source's calls, timed as the near-cache takes them.
  const source = {
    name: tracking.name,
    start: (sink) =>
      tracking.start({
        ...sink,
        invalidate: (keys) => {
          sink.invalidate(keys);
          if (keys.includes(key)) {
            invalidatedAt.push(now());
            heard();
          }
        },
      }),
    close: () => tracking.close(),
  };
  const store = nearCache(redisStore({ client, prefix: PREFIX, ownsClient: true }), { invalidation: source });
  await store.ready();
  await store.create(key, storedRecord({ n: 0 }));
  const worker = new Worker(FILE, { workerData: { role: 'writer', port, key } });
  const acks = [];
  let acked = () => {};
  worker.on('message', (message) => {
    if (message === 'ready') return acked();
    if (message.status !== 'ok') throw new Error(`a write answered ${message.status}`);
    acks.push(message.at);
    acked();
  });
  await new Promise((resolve) => (acked = resolve));
  let staleReads = 0;
  for (let i = 1; i <= WRITES; i++) {
    // The reader holds a cached copy when the write lands, as an instance serving the session does.
    await store.load(key);
    await store.load(key);
    const both = Promise.all([new Promise((resolve) => (acked = resolve)), new Promise((resolve) => (heard = resolve))]);
    worker.postMessage(i);
    // Reads while the write is in flight: a read after the acknowledgement and before the invalidation is stale.
    while (invalidatedAt.length < i) {
      const record = await store.load(key);
      if (acks.length >= i && Number(JSON.parse(record.fields.n.value)) < i) staleReads++;
      await nextTurn();
    }
    await both;
  }
  worker.postMessage('close');
  await store.close();
  const lag = acks.map((at, i) => invalidatedAt[i] - at).sort((a, b) => a - b);
  return { p50: percentile(lag, 0.5), p99: percentile(lag, 0.99), max: lag.at(-1), min: lag[0], staleReads };
}

async function startVariant(variant, redisPort) {
  const child = spawn(process.execPath, [FILE, 'serve', variant, String(redisPort)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${variant} did not start`)), 20_000);
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      out += chunk;
      const match = /READY (\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`${variant} exited with ${code}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', resolve);
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}

const CLOCK_TICKS = await promisify(execFile)('getconf', ['CLK_TCK'])
  .then(({ stdout }) => Number(stdout.trim()) || 100)
  .catch(() => 100);

/** CPU seconds a process has used (user + system), from /proc on Linux; NaN elsewhere. */
function processCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/** Part 3: read-only requests per second on one variant, over a pool of logged-in sessions. */
async function http(variant, redisPort) {
  const { default: autocannon } = await import('autocannon');
  const server = await startVariant(variant, redisPort);
  try {
    const cookies = [];
    for (let i = 0; i < (variant === 'bare' ? 1 : POOL); i++) {
      const response = await fetch(`${server.url}/login?user=user${i}`, { method: 'POST' });
      const cookie = response.headers.getSetCookie().map((header) => header.split(';')[0])[0];
      cookies.push(cookie ?? 'sid=none');
    }
    let next = 0;
    const request = { method: 'GET', path: '/me', setupRequest: (req) => ({ ...req, headers: { ...req.headers, cookie: cookies[next++ % cookies.length] } }) };
    const once = () => new Promise((resolve, reject) => autocannon({ url: server.url, connections: CONNECTIONS, duration: DURATION, requests: [request] }, (error, done) => (error ? reject(error) : resolve(done))));
    await once();
    const cpuBefore = processCpuSeconds(server.pid);
    const result = await once();
    const cpuMicros = ((processCpuSeconds(server.pid) - cpuBefore) / result.requests.total) * 1e6;
    const errors = result.errors + result.timeouts + result.non2xx;
    const stats = await (await fetch(`${server.url}/stats`)).json();
    return { rps: result.requests.total / (result.duration || DURATION), p99: result.latency.p99, cpuMicros, errors, stats };
  } finally {
    await server.stop();
  }
}

async function main() {
  const redis = await startRedis();
  try {
    const lines = [`node ${process.version}, redis ${redis.version}, ${os.cpus().length} CPUs; sessions of 10 fields of 1 KiB, ${POOL} rotated\n`];
    lines.push('| session loads per second | Redis store | near-cache over it | ratio |', '|---|---:|---:|---:|');
    const best = async (nearCached, parallel) => {
      let top = null;
      for (let round = 0; round < ROUNDS; round++) {
        const result = await loads(redis.port, nearCached, parallel);
        if (!top || result.opsPerSecond > top.opsPerSecond) top = result;
      }
      return top;
    };
    for (const parallel of [1, 32]) {
      const bare = await best(false, parallel);
      const near = await best(true, parallel);
      lines.push(`| ${parallel === 1 ? 'sequential' : `${parallel} in flight`} | ${Math.round(bare.opsPerSecond)} | ${Math.round(near.opsPerSecond)} (hit ratio ${(near.stats.hits / (near.stats.hits + near.stats.misses)).toFixed(3)}) | ${(near.opsPerSecond / bare.opsPerSecond).toFixed(2)}x |`);
    }
    const lag = await staleness(redis.port);
    lines.push(
      '',
      `Cross-instance staleness, ${WRITES} writes from a worker thread, invalidations taken by this thread (ms from the writer's acknowledgement to the invalidation; negative: it arrived first):`,
      `p50 ${lag.p50.toFixed(3)}, p99 ${lag.p99.toFixed(3)}, max ${lag.max.toFixed(3)} (min ${lag.min.toFixed(3)}); stale reads served: ${lag.staleReads}`,
    );
    if (process.env.BENCH_SKIP_HTTP !== '1') {
      // Rounds interleave the variants, and the best round of each counts: on a shared machine, noise only slows a run down.
      const results = {};
      for (let round = 0; round < ROUNDS; round++) {
        for (const variant of ['bare', 'redis', 'near-cache']) {
          const result = await http(variant, redis.port);
          if (!results[variant] || result.rps > results[variant].rps) results[variant] = result;
        }
      }
      lines.push('', `Read-only requests per second, Express, autocannon ${CONNECTIONS} connections, ${DURATION} s, best of ${ROUNDS} rounds:`, '', '| variant | req/s | p99 ms | server CPU µs/request | errors | req/s vs bare | req/s vs Redis store |', '|---|---:|---:|---:|---:|---:|---:|');
      for (const [variant, result] of Object.entries(results)) {
        const label = { bare: 'Express, no sessions (floor)', redis: 'elastic-session, Redis store', 'near-cache': 'elastic-session, near-cache over Redis' }[variant];
        lines.push(`| ${label} | ${Math.round(result.rps)} | ${result.p99} | ${result.cpuMicros.toFixed(0)} | ${result.errors} | ${(result.rps / results.bare.rps).toFixed(2)}x | ${(result.rps / results.redis.rps).toFixed(2)}x |`);
      }
      const near = results['near-cache'].stats;
      lines.push('', `near-cache server: ${near.hits} hits, ${near.misses} misses, ${near.entries} entries, ${near.bytes} bytes`);
    }
    console.log(lines.join('\n'));
  } finally {
    await redis.stop();
  }
}

if (!isMainThread) await writer(workerData);
else if (process.argv[2] === 'serve') await serve(process.argv[3], Number(process.argv[4]));
else await main();
