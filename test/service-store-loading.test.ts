import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { createService, silentLogger } from '../src/service/index.js';
import { builtDist, runModule, tempDir } from './helpers/service.js';

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

describe('the service without its optional peer prom-client', () => {
  beforeAll(() => {
    builtDist();
  }, 180_000);

  it('fails to load with ESESS_CONFIG naming prom-client and how to install it, not ERR_MODULE_NOT_FOUND', async () => {
    const service = JSON.stringify(pathToFileURL(join(builtDist(), 'service/index.js')).href);
    const errors = JSON.stringify(pathToFileURL(join(builtDist(), 'core/errors.js')).href);
    const program = `
      const { SessionError } = await import(${errors});
      try {
        await import(${service});
        console.log('loaded');
      } catch (error) {
        console.log(JSON.stringify({ typed: error instanceof SessionError, code: error.code, message: error.message }));
      }`;
    const result = await runModule(program, { hide: ['prom-client'] });
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({ typed: true, code: 'ESESS_CONFIG', message: expect.stringContaining('prom-client (npm install prom-client)') as unknown });
  });
});
