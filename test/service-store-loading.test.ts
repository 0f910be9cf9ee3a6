import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { createService, silentLogger } from '../src/service/index.js';
import { tempDir } from './helpers/service.js';

// As on a machine where the optional driver is not installed.
vi.mock('better-sqlite3', () => {
  throw Object.assign(new Error("Cannot find package 'better-sqlite3'"), { code: 'ERR_MODULE_NOT_FOUND' });
});

describe('store modules load lazily', () => {
  it('a missing SQLite driver is a configuration error naming the store URL, not a crash at startup', async () => {
    const path = join(tempDir(), 'sessions.db');
    await expect(createService({ store: `sqlite:${path}`, port: 0, log: silentLogger })).rejects.toMatchObject({
      code: 'ESESS_CONFIG',
      message: expect.stringMatching(new RegExp(`^store sqlite:${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: .*better-sqlite3`)),
    });
  });

  it('other stores still start without the SQLite driver', async () => {
    const service = await createService({ store: 'memory:', port: 0, log: silentLogger });
    const { url } = await service.listen();
    expect((await fetch(`${url}/v1/sessions`, { method: 'POST' })).status).toBe(201);
    await service.close();
  });
});
