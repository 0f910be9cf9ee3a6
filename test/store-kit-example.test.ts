import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runStoreConformance } from '../src/testing/index.js';
import type { SessionStore } from '../src/core/types.js';
import { createTestSchema } from './helpers/postgres.js';
import type { TestSchema } from './helpers/postgres.js';
// The worked example of docs/writing-a-store.md, as a user would write it: over the built package.
import { pgDocumentStore } from '../examples/store-kit/pg-document-store.js';

let schema: TestSchema;
const tables: string[] = [];

beforeAll(async () => {
  schema = await createTestSchema();
});

afterAll(async () => {
  await schema.drop();
});

/** A pool whose connections use the test schema, so the example's table lands there. */
function pool(): pg.Pool {
  const next = new pg.Pool({ connectionString: schema.url.replace(/\?.*$/, ''), max: 4, options: `-c search_path=${schema.schema}` });
  next.on('error', () => undefined);
  return next;
}

const pools: pg.Pool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.end();
});

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'pg-document (the store-kit example)',
  fakeClock: true,
  capabilities: { nativeTtl: false, cas: true, userIndex: false, sweep: true, scan: false, replica: true },
  multiClient: true,
  corrupts: true,
  setup: async ({ clock }) => {
    const table = `docs_${randomBytes(4).toString('hex')}`;
    tables.push(table);
    const open = async (): Promise<SessionStore> => {
      const p = pool();
      pools.push(p);
      return (await pgDocumentStore({ pool: p, table, clock })) as SessionStore;
    };
    const store = await open();
    return {
      store,
      connect: open,
      corrupt: async (key) => {
        await schema.pool.query(`UPDATE ${schema.schema}.${table} SET doc = '{"kind":"live","record":7' WHERE key = $1`, [key]);
      },
    };
  },
});

describe('the store-kit example', () => {
  it('refuses a table name that is not a plain SQL name', async () => {
    const p = pool();
    pools.push(p);
    await expect(pgDocumentStore({ pool: p, table: 'x; DROP TABLE y' })).rejects.toMatchObject({ code: 'ESESS_CONFIG' });
  });
});
