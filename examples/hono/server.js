// Hono with elastic-session, served by @hono/node-server. From the repository root, after
// `npm run build`:
//   node examples/hono/server.js
// Environment and routes: README.md, "Examples". PORT (default 3000), ELASTIC_SESSION_STORE
// (default sqlite:./data/sessions.db), ELASTIC_SESSION_SECRET (at least 32 bytes).
// Session errors answer as application/problem+json, others as Hono's bare 500: no stack traces.
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { session } from 'elastic-session/hono';
import { closeOnSignal, exitOnListenError, openStore, port, profile, sessionSecret } from '../store.js';

const store = await openStore();
const app = new Hono();

app.use(
  session({
    store,
    secrets: [sessionSecret()],
    // Development only: plain http on localhost, so the cookie is `sid` without Secure.
    // In production leave this out (Secure `__Host-sid` cookie) and serve https, or set
    // `trustProxy: true` behind a TLS-terminating proxy.
    insecureLocalhostDevelopment: true,
  }),
);

app.post('/login', async (c) => {
  const user = c.req.query('user');
  if (!user) return c.json({ error: 'user is required: POST /login?user=NAME' }, 400);
  const s = await c.get('session'); // loaded on first use
  await s.regenerate(); // new ID on login; the data comes along
  s.userId = user;
  return c.json({ user });
});

app.get('/me', async (c) => {
  const s = await c.get('session');
  if (s.isNew) return c.json({ error: 'no session' }, 401);
  return c.json(profile(s));
});

app.post('/items/:name', async (c) => {
  const name = c.req.param('name');
  const s = await c.get('session');
  const field = `item:${name}`;
  s[field] = (s[field] ?? 0) + 1; // only this field is written
  return c.json({ name, count: s[field] });
});

app.post('/logout', async (c) => {
  const s = await c.get('session');
  await s.destroy();
  return c.body(null, 204);
});

const server = serve({ fetch: app.fetch, port: port(), hostname: '127.0.0.1' }, (info) => {
  console.log(`listening on http://127.0.0.1:${info.port}`);
});
server.once('error', exitOnListenError(store, port()));
closeOnSignal(() => new Promise((resolve) => {
  server.closeAllConnections();
  server.close(resolve);
}), store);
