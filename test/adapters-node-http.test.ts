import { createServer } from 'node:http';
import type { RequestListener, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { withSession } from '../src/adapters/node-http.js';
import { isSessionError } from '../src/core/errors.js';
import { memoryStore } from '../src/stores/memory.js';
import { probeStore } from './helpers/adapters.js';

const SECRET = 'node-http-adapter-test-secret-0123456789abcd';
const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function serve(listener: RequestListener): Promise<string> {
  const server = createServer(listener);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('node:http adapter', () => {
  it('answers a store outage with a 503 problem+json', async () => {
    const probe = probeStore(memoryStore());
    const url = await serve(
      withSession({ store: probe.store, secrets: [SECRET], insecureLocalhostDevelopment: true }, async (_req, res, session) => {
        const s = await session;
        s.n = 1;
        res.setHeader('x-handler', 'yes');
        res.end('saved');
      }),
    );
    probe.down = true;
    const reply = await fetch(url, { method: 'POST' });
    expect(reply.status).toBe(503);
    expect(reply.headers.get('content-type')).toBe('application/problem+json');
    expect(reply.headers.get('x-handler')).toBeNull();
    expect(await reply.json()).toMatchObject({ status: 503, code: 'ESESS_STORE_UNAVAILABLE' });
  });

  it('lets onError render errors from the handler and from the save', async () => {
    const probe = probeStore(memoryStore());
    const seen: unknown[] = [];
    const url = await serve(
      withSession(
        {
          store: probe.store,
          secrets: [SECRET],
          insecureLocalhostDevelopment: true,
          onError: (error, _req, res) => {
            seen.push(error);
            res.writeHead(502).end('custom');
          },
        },
        async (req, res, session) => {
          if (req.url === '/throw') throw new Error('boom');
          (await session).n = 1;
          res.end('ok');
        },
      ),
    );
    expect(await (await fetch(`${url}/throw`)).text()).toBe('custom');
    probe.down = true;
    const reply = await fetch(`${url}/save`, { method: 'POST' });
    expect(reply.status).toBe(502);
    expect(seen).toHaveLength(2);
    expect((seen[0] as Error).message).toBe('boom');
    expect(isSessionError(seen[1], 'ESESS_STORE_UNAVAILABLE')).toBe(true);
  });

  it('does not save the changes of a handler that throws', async () => {
    const probe = probeStore(memoryStore());
    const url = await serve(
      withSession({ store: probe.store, secrets: [SECRET], insecureLocalhostDevelopment: true, onError: (_error, _req, res) => res.writeHead(500).end() }, async (_req, _res, session) => {
        (await session).n = 1;
        throw new Error('boom');
      }),
    );
    const reply = await fetch(url, { method: 'POST' });
    expect(reply.status).toBe(500);
    expect(reply.headers.getSetCookie()).toEqual([]);
    expect(probe.total()).toBe(0);
  });

  it('accepts `await session.load()` as well as `await session`', async () => {
    const url = await serve(
      withSession({ store: memoryStore(), secrets: [SECRET], insecureLocalhostDevelopment: true }, async (_req, res, session) => {
        const a = await session.load();
        const b = await session;
        res.end(String(a === b));
      }),
    );
    expect(await (await fetch(url)).text()).toBe('true');
  });
});

describe('node:http adapter, changes after the headers left', () => {
  it('refuses a change to a session first used after the response started, instead of losing it', async () => {
    const probe = probeStore(memoryStore());
    let late: unknown;
    const url = await serve(
      withSession({ store: probe.store, secrets: [SECRET], insecureLocalhostDevelopment: true }, async (_req, res, session) => {
        res.write('streaming');
        const s = await session;
        try {
          s.n = 1;
        } catch (error) {
          late = error;
        }
        res.end();
      }),
    );
    expect(await (await fetch(url)).text()).toBe('streaming');
    expect(isSessionError(late, 'ESESS_USAGE')).toBe(true);
    expect(probe.total()).toBe(0);
  });
});
