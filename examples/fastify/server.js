// Fastify with elastic-session. From the repository root, after `npm run build`:
//   node examples/fastify/server.js
// Environment and routes: README.md, "Examples". PORT (default 3000), ELASTIC_SESSION_STORE
// (default sqlite:./data/sessions.db), ELASTIC_SESSION_SECRET (at least 32 bytes).
// Fastify's default error handler answers JSON without a stack trace (503 when the store is down).
import Fastify from 'fastify';
import { fastifySession } from 'elastic-session/fastify';
import { closeOnSignal, exitOnListenError, openStore, port, profile, sessionSecret } from '../store.js';

const store = await openStore();
const app = Fastify();

await app.register(fastifySession, {
  store,
  secrets: [sessionSecret()],
  // Development only: plain http on localhost, so the cookie is `sid` without Secure.
  // In production leave this out (Secure `__Host-sid` cookie) and serve https, or set
  // `trustProxy: true` behind a TLS-terminating proxy.
  insecureLocalhostDevelopment: true,
});

app.post('/login', async (request, reply) => {
  const { user } = request.query;
  if (typeof user !== 'string' || user === '') return reply.code(400).send({ error: 'user is required: POST /login?user=NAME' });
  await request.session.regenerate(); // new ID on login; the data comes along
  request.session.userId = user;
  return { user };
});

app.get('/me', async (request, reply) => {
  if (request.session.isNew) return reply.code(401).send({ error: 'no session' });
  return profile(request.session);
});

app.post('/items/:name', async (request) => {
  const { name } = request.params;
  const field = `item:${name}`;
  request.session[field] = (request.session[field] ?? 0) + 1; // only this field is written
  return { name, count: request.session[field] };
});

app.post('/logout', async (request, reply) => {
  await request.session.destroy();
  return reply.code(204).send();
});

try {
  await app.listen({ port: port(), host: '127.0.0.1' });
} catch (error) {
  await exitOnListenError(store, port())(error);
}
console.log(`listening on http://127.0.0.1:${app.server.address().port}`);
closeOnSignal(() => app.close(), store);
