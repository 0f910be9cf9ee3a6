import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { builtCli, tempDir } from './helpers/service.js';

/**
 * Prototype pollution is checked in a fresh Node.js process running the built package: a test
 * runner's own globals cannot hide a polluted Object.prototype, and nothing of an earlier test
 * leaks in. The script feeds every payload to every JSON entry (service bodies, session data,
 * stored records, token claims, the CLI config file) and reports what it saw.
 */
const SCRIPT = String.raw`
const dist = process.argv[2];
const load = (path) => import(new URL(path, dist).href);
const { createService, silentLogger } = await load('service/index.js');
const { SessionManager } = await load('core/manager.js');
const { safeJsonParse } = await load('core/json.js');
const { storeKeyOf } = await load('core/ids.js');
const { memoryStore } = await load('stores/memory.js');
const { createTokenIssuer, tokenKeyFromSecret } = await load('tokens/index.js');
const { parseCommand } = await load('cli/config.js');
const { writeFileSync } = await import('node:fs');

const payloads = [
  '{"__proto__":{"polluted":"yes"}}',
  '{"constructor":{"prototype":{"polluted":"yes"}}}',
  '{"\\u005f\\u005fproto\\u005f\\u005f":{"polluted":"yes"}}',
  '{"\\u0063onstructor":{"prototype":{"polluted":"yes"}}}',
  '{"a":{"b":[{"__proto__":{"polluted":"yes"}}]}}',
  '{"prototype":{"polluted":"yes"}}',
];
const statuses = [];
const failures = [];
const secret = 'fresh-process-secret-0123456789abcdefghijkl';
const store = memoryStore();
const service = await createService({ store, secret, port: 0, log: silentLogger, sweepIntervalMs: 0 });
const { url } = await service.listen();
const send = async (method, path, body) => {
  const response = await fetch(url + path, { method, headers: { 'content-type': 'application/json' }, body });
  statuses.push(response.status);
  return response;
};
const created = await (await send('POST', '/v1/sessions', '{"data":{"ok":1}}')).json();
for (const p of payloads) {
  await send('POST', '/v1/sessions', p);
  await send('POST', '/v1/sessions', '{"data":' + p + '}');
  await send('POST', '/v1/sessions', '{"data":{"x":' + p + '}}');
  await send('PATCH', '/v1/sessions/' + created.id, '{"set":' + p + '}');
  await send('PATCH', '/v1/sessions/' + created.id, '{"set":{"x":' + p + '}}');
  await send('POST', '/v1/sessions/' + created.id + '/tokens', p);
  await send('POST', '/v1/tokens/verify', p);
  await send('POST', '/v1/tokens/refresh', p);
  await send('POST', '/v1/tokens/revoke', p);
  try { safeJsonParse(p, 16); failures.push('safeJsonParse accepted ' + p); } catch {}
  const manager = new SessionManager({ store, secrets: [secret] });
  try {
    const session = manager.create({ data: JSON.parse(p) });
    await manager.save(session);
    failures.push('manager stored ' + p);
  } catch {}
  const victim = manager.create({ data: { ok: 1 } });
  await manager.save(victim);
  await store.apply(storeKeyOf(victim.id), { fields: { x: { value: p, stamp: 'ffffffffffff.0000.00000000' } } });
  if (await manager.load(victim.id)) failures.push('manager loaded a stored ' + p);
  const issuer = createTokenIssuer({ manager, keys: [tokenKeyFromSecret(secret)], issuer: 'i', audience: 'a' });
  try { await issuer.issue(victim.id, { claims: JSON.parse(p) }); failures.push('issuer took claims ' + p); } catch {}
  const file = process.argv[3] + '/config.json';
  writeFileSync(file, p);
  try { parseCommand('serve', ['--config', file], {}, process.argv[3]); failures.push('config file accepted ' + p); } catch {}
}
await service.close();
process.stdout.write(JSON.stringify({
  polluted: ({}).polluted ?? null,
  prototypeKeys: Object.keys(Object.prototype),
  statuses: [...new Set(statuses)].sort(),
  failures,
}));
`;

describe('prototype pollution, in a fresh process', () => {
  it('no payload at any JSON entry pollutes Object.prototype, and none answers 500', () => {
    const dir = tempDir();
    const script = join(dir, 'pollute.mjs');
    writeFileSync(script, SCRIPT);
    const dist = pathToFileURL(`${dirname(dirname(builtCli()))}/`).href;
    const result = spawnSync(process.execPath, [script, dist, dir], { encoding: 'utf8', timeout: 60_000 });
    expect(result.status, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { polluted: unknown; prototypeKeys: string[]; statuses: number[]; failures: string[] };
    expect(report.failures).toEqual([]);
    expect(report.polluted).toBeNull();
    expect(report.prototypeKeys).toEqual([]);
    expect(report.statuses.every((status) => status < 500)).toBe(true);
    expect(report.statuses).toContain(400);
  }, 90_000);
});
