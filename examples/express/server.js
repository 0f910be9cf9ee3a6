// Express with elastic-session. From the repository root, after `npm run build`:
//   node examples/express/server.js
// Environment and routes: README.md, "Examples". PORT (default 3000), ELASTIC_SESSION_STORE
// (default sqlite:./data/sessions.db), ELASTIC_SESSION_SECRET (at least 32 bytes).
import express from 'express';
import { isSessionError } from 'elastic-session';
import { session } from 'elastic-session/express';
import { sendError } from 'elastic-session/node-http';
import { closeOnSignal, exitOnListenError, openStore, port, profile, sessionSecret } from '../store.js';

const store = await openStore();
const app = express();

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

app.post('/login', async (req, res) => {
  const user = req.query.user;
  if (typeof user !== 'string' || user === '') {
    res.status(400).json({ error: 'user is required: POST /login?user=NAME' });
    return;
  }
  await req.session.regenerate(); // new ID on login; the data comes along
  req.session.userId = user;
  res.json({ user });
});

app.get('/me', (req, res) => {
  if (req.session.isNew) {
    res.status(401).json({ error: 'no session' });
    return;
  }
  res.json(profile(req.session));
});

app.post('/items/:name', (req, res) => {
  const field = `item:${req.params.name}`;
  req.session[field] = (req.session[field] ?? 0) + 1; // only this field is written
  res.json({ name: req.params.name, count: req.session[field] });
});

app.post('/logout', async (req, res) => {
  await req.session.destroy();
  res.status(204).end();
});

// Last: errors as the other adapters answer them. Express's own final handler would put the
// stack trace in the page unless NODE_ENV=production.
app.use((error, req, res, next) => {
  if (res.headersSent) return next(error);
  // Express's own client errors (a malformed path parameter) keep their 4xx status.
  if (!isSessionError(error) && Number.isInteger(error?.status) && error.status >= 400 && error.status < 500) {
    return res.status(error.status).json({ error: error.expose ? error.message : 'bad request' });
  }
  sendError(res, error); // a SessionError as application/problem+json (503 when the store is down), else a bare 500
});

const server = app.listen(port(), '127.0.0.1');
server.once('listening', () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
server.once('error', exitOnListenError(store, port()));
closeOnSignal(() => new Promise((resolve) => {
  server.closeAllConnections();
  server.close(resolve);
}), store);
