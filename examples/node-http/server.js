// Plain node:http with elastic-session. From the repository root, after `npm run build`:
//   node examples/node-http/server.js
// Environment and routes: README.md, "Examples". PORT (default 3000), ELASTIC_SESSION_STORE
// (default sqlite:./data/sessions.db), ELASTIC_SESSION_SECRET (at least 32 bytes).
// withSession answers session errors as application/problem+json, others as a bare 500.
import { createServer } from 'node:http';
import { withSession } from 'elastic-session/node-http';
import { closeOnSignal, exitOnListenError, openStore, port, profile, sessionSecret } from '../store.js';

const store = await openStore();

function send(res, status, body) {
  if (body === undefined) return res.writeHead(status).end();
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const options = {
  store,
  secrets: [sessionSecret()],
  // Development only: plain http on localhost, so the cookie is `sid` without Secure.
  // In production leave this out (Secure `__Host-sid` cookie) and serve https, or set
  // `trustProxy: true` behind a TLS-terminating proxy.
  insecureLocalhostDevelopment: true,
};

// `session` is loaded on first `await`; the wrapper saves it before the response headers leave.
const server = createServer(withSession(options, async (req, res, session) => {
  const url = new URL(req.url, 'http://localhost');
  const route = `${req.method} ${url.pathname}`;

  if (route === 'POST /login') {
    const user = url.searchParams.get('user');
    if (!user) return send(res, 400, { error: 'user is required: POST /login?user=NAME' });
    const s = await session;
    await s.regenerate(); // new ID on login; the data comes along
    s.userId = user;
    return send(res, 200, { user });
  }
  if (route === 'GET /me') {
    const s = await session;
    if (s.isNew) return send(res, 401, { error: 'no session' });
    return send(res, 200, profile(s));
  }
  const item = /^POST \/items\/([^/]+)$/.exec(route);
  if (item) {
    let name;
    try {
      name = decodeURIComponent(item[1]);
    } catch {
      return send(res, 400, { error: 'malformed item name' });
    }
    const s = await session;
    const field = `item:${name}`;
    s[field] = (s[field] ?? 0) + 1; // only this field is written
    return send(res, 200, { name, count: s[field] });
  }
  if (route === 'POST /logout') {
    const s = await session;
    await s.destroy();
    return send(res, 204);
  }
  send(res, 404, { error: 'not found' });
}));

server.once('error', exitOnListenError(store, port()));
server.listen(port(), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
closeOnSignal(() => new Promise((resolve) => {
  server.closeAllConnections();
  server.close(resolve);
}), store);
