import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSessionError } from '../src/core/errors.js';
import { formatStamp } from '../src/core/hlc.js';
import { openPostgresStore } from '../src/stores/postgres.js';
import { storedRecord, storeKey } from '../src/testing/fixtures.js';
import type { PostgresStore } from '../src/stores/postgres.js';
import { createPrivateCluster } from './helpers/postgres-cluster.js';
import type { PrivateCluster } from './helpers/postgres-cluster.js';

let cluster: PrivateCluster;

beforeAll(async () => {
  cluster = await createPrivateCluster();
  await cluster.start();
}, 90_000);

afterAll(async () => {
  await cluster?.destroy();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


describe('postgres server restart mid-load', () => {
  it('fails with typed errors during the outage, recovers after it, and loses nothing acknowledged', async () => {
    const store: PostgresStore = await openPostgresStore(cluster.url, { pool: { max: 4, connectionTimeoutMillis: 1000 } });
    /** key -> the fields whose writes were acknowledged (value = the field's name). */
    const acknowledged = new Map<string, Set<string>>();
    const errors: unknown[] = [];
    let phase: 'before' | 'outage' | 'after' = 'before';
    const okIn = { before: 0, outage: 0, after: 0 };
    let stop = false;

    const worker = async () => {
      let key: string | null = null;
      let n = 0;
      while (!stop) {
        try {
          if (key === null) {
            const candidate = storeKey();
            if (await store.create(candidate, storedRecord())) {
              acknowledged.set(candidate, new Set());
              key = candidate;
            }
          } else {
            const field = `f${n++}`;
            const result = await store.apply(key, { fields: { [field]: { value: JSON.stringify(field), stamp: formatStamp(Date.now(), n, '00000000') } }, lastSeenAt: Date.now() });
            expect(result.status).toBe('ok');
            acknowledged.get(key)?.add(field);
            if (n % 20 === 0) key = null;
          }
          okIn[phase]++;
        } catch (error) {
          errors.push(error);
          await sleep(20);
        }
      }
    };

    try {
      const workers = Array.from({ length: 4 }, worker);
      await sleep(400);
      phase = 'outage';
      await cluster.crash();
      const okBeforeOutage = okIn.before;
      await sleep(500);
      const errorsInOutage = errors.length;
      await cluster.start();
      phase = 'after';
      for (let i = 0; i < 200 && okIn.after < 100; i++) await sleep(50);
      stop = true;
      await Promise.all(workers);

      expect(okBeforeOutage).toBeGreaterThan(0);
      expect(errorsInOutage).toBeGreaterThan(0);
      expect(okIn.after, 'writes succeed again after the restart').toBeGreaterThanOrEqual(100);
      for (const error of errors) {
        expect(isSessionError(error, 'ESESS_STORE_UNAVAILABLE'), String(error)).toBe(true);
      }

      let fields = 0;
      for (const [key, names] of acknowledged) {
        const loaded = await store.load(key);
        expect(loaded, 'an acknowledged session survives').not.toBeNull();
        for (const name of names) expect(loaded?.fields[name]?.value).toBe(JSON.stringify(name));
        fields += names.size;
      }
      expect(acknowledged.size).toBeGreaterThan(0);
      expect(fields).toBeGreaterThan(0);
    } finally {
      stop = true;
      await store.close();
    }
  }, 60_000);
});
