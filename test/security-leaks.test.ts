import { randomBytes } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { CHANNELS, storeChannel } from '../src/core/telemetry.js';
import { storeKeyOf } from '../src/core/ids.js';
import { storeHashKey } from '../src/service/secret.js';
import { generateEncryptionKey } from '../src/stores/encrypted.js';
import { memoryStore } from '../src/stores/memory.js';
import { failingStore, startService } from './helpers/service.js';

/** Everything that left the system other than the API's own success bodies. */
function capture() {
  const outputs: string[] = [];
  const record = (channel: string) => (message: unknown) => outputs.push(`${channel} ${safeStringify(message)}`);
  const channels = Object.values(CHANNELS).filter((name) => name !== CHANNELS.store);
  const handlers = channels.map((name) => [name, record(name)] as const);
  for (const [name, handler] of handlers) diagnostics.subscribe(name, handler);
  const tracing = {
    start: record('store:start'),
    end: record('store:end'),
    asyncStart: record('store:asyncStart'),
    asyncEnd: record('store:asyncEnd'),
    error: record('store:error'),
  };
  storeChannel.subscribe(tracing);
  return {
    outputs,
    stop() {
      for (const [name, handler] of handlers) diagnostics.unsubscribe(name, handler);
      storeChannel.unsubscribe(tracing);
    },
  };
}

function safeStringify(value: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(value, (_key, item: unknown) => {
    if (item instanceof Error) return { name: item.name, message: item.message, stack: item.stack, cause: item.cause };
    if (typeof item === 'object' && item !== null) {
      if (seen.has(item)) return '[circular]';
      seen.add(item);
    }
    return item;
  });
}

describe('no secret in any output', () => {
  it('no session ID, store key, token, key or session content appears in logs, metrics, events or error bodies', async () => {
    const apiKey = `key-${randomBytes(18).toString('base64url')}`;
    const secret = randomBytes(32).toString('base64url');
    const encryptionKey = generateEncryptionKey('leak1');
    const marker = `content-${randomBytes(9).toString('hex')}`;
    const taps = capture();
    const service = await startService({ store: memoryStore(), secret, apiKeys: [apiKey], encryptionKeys: [encryptionKey] });
    const secrets: string[] = [apiKey, secret, encryptionKey.split(':')[1] as string, marker];
    const bodies: string[] = [];
    const call = async (method: string, path: string, json?: unknown, key: string | undefined = apiKey): Promise<Response> => {
      const response = await service.request(method, path, { ...(json === undefined ? {} : { json }), ...(key === undefined ? {} : { key }) });
      if (response.status >= 400 || path.startsWith('/admin') || path === '/metrics') bodies.push(`${response.status} ${JSON.stringify([...response.headers])} ${await response.clone().text()}`);
      return response;
    };
    try {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const created = (await (await call('POST', '/v1/sessions', { data: { secret: marker }, userId: 'leaky-user' })).json()) as { id: string };
        ids.push(created.id);
      }
      const [first, second, third] = ids as [string, string, string];
      await call('PATCH', `/v1/sessions/${first}`, { set: { more: marker } });
      await call('PATCH', `/v1/sessions/${first}`, { set: { bad: { __proto__: null, constructor: 1 } } });
      await call('PATCH', `/v1/sessions/${first}`, { set: { deep: JSON.parse(`${'['.repeat(40)}1${']'.repeat(40)}`) as unknown } });
      await call('PATCH', `/v1/sessions/${first}`, { [first]: 1 });
      await call('GET', `/v1/sessions/${first}x`);
      await call('GET', `/v1/sessions/${first}`, undefined, `${first}`);
      const regenerated = (await (await call('POST', `/v1/sessions/${second}/regenerate`)).json()) as { id: string };
      ids.push(regenerated.id);
      await call('GET', `/v1/sessions/${second}`);
      const pair = (await (await call('POST', `/v1/sessions/${first}/tokens`)).json()) as { accessToken: string; refreshToken: string };
      const next = (await (await call('POST', '/v1/tokens/refresh', { refreshToken: pair.refreshToken })).json()) as { accessToken: string; refreshToken: string };
      await call('POST', '/v1/tokens/refresh', { refreshToken: pair.refreshToken });
      await call('POST', '/v1/tokens/verify', { accessToken: next.accessToken });
      await call('POST', '/v1/tokens/verify', { accessToken: `${next.accessToken}x` });
      await call('POST', '/v1/tokens/revoke', { accessToken: next.accessToken });
      await call('POST', '/v1/tokens/verify', { accessToken: next.accessToken });
      await call('DELETE', `/v1/sessions/${third}`);
      await call('PATCH', `/v1/sessions/${third}`, { set: { late: 1 } });
      await call('DELETE', '/v1/users/leaky-user/sessions');
      await call('GET', '/metrics');
      for (const route of service.service.routes) {
        if (route.method === 'GET' && route.path.startsWith('/admin') && !route.path.includes('{')) await call('GET', route.path);
      }
      secrets.push(...ids, ...ids.map((id) => storeKeyOf(id, storeHashKey(secret))));
      secrets.push(pair.accessToken, pair.refreshToken, next.accessToken, next.refreshToken);
      secrets.push(...[pair.accessToken, next.accessToken].map((token) => token.split('.')[2] as string));
    } finally {
      await service.close();
      taps.stop();
    }

    const broken = await startService({ store: failingStore(), secret });
    try {
      const id = randomBytes(32).toString('base64url');
      secrets.push(id);
      bodies.push(await (await broken.request('GET', `/v1/sessions/${id}`)).text());
      bodies.push(await (await broken.request('POST', `/v1/sessions/${id}/tokens`)).text());
    } finally {
      await broken.close();
    }

    const everything = [...service.log.lines, ...broken.log.lines, ...taps.outputs, ...bodies].join('\n');
    expect(taps.outputs.length).toBeGreaterThan(10);
    expect(bodies.length).toBeGreaterThan(10);
    for (const value of secrets) {
      expect(value.length).toBeGreaterThanOrEqual(16);
      const line = everything.split('\n').find((text) => text.includes(value));
      expect(line, `leaked: ${value.slice(0, 6)}…`).toBeUndefined();
    }
  });
});
