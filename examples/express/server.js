// Express with elastic-session. From the repository root, after `npm run build`:
//   node examples/express/server.js
// Environment: PORT (default 3000), ELASTIC_SESSION_STORE (default sqlite:./data/sessions.db),
// ELASTIC_SESSION_SECRET (at least 32 bytes).
import express from 'express';
import { session } from 'elastic-session/express';
import { closeOnSignal, openStore, port, profile, sessionSecret } from '../store.js';

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

const server = app.listen(port(), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
closeOnSignal(() => new Promise((resolve) => {
  server.closeAllConnections();
  server.close(resolve);
}), store);
