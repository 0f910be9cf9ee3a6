// Shared by the examples: the store, the secret and the port, all from the environment.
//
// The store URL is parsed by the session service's own parser, so `ELASTIC_SESSION_STORE` means
// exactly what `elastic-session serve --store` means: `sqlite:PATH` (the default,
// `sqlite:./data/sessions.db`), `memory:`, or a server's URL (`redis://127.0.0.1:6379`, ...).
// README.md ("Examples") lists the environment and the routes.
import { randomBytes } from 'node:crypto';
import { openStoreUrl } from 'elastic-session/service';

/**
 * Opens the store named by ELASTIC_SESSION_STORE; with ELASTIC_SESSION_NEAR_CACHE=ENTRIES, behind a
 * near-cache of that many sessions (a Redis URL: other instances' writes invalidate it).
 */
export function openStore(url = process.env.ELASTIC_SESSION_STORE || 'sqlite:./data/sessions.db') {
  const entries = process.env.ELASTIC_SESSION_NEAR_CACHE;
  if (entries === undefined || entries === '') return openStoreUrl(url, 'ELASTIC_SESSION_STORE');
  if (!/^[1-9][0-9]*$/.test(entries)) {
    console.error('ELASTIC_SESSION_NEAR_CACHE must be a positive number of entries');
    process.exit(1);
  }
  return openStoreUrl(url, 'ELASTIC_SESSION_STORE', { nearCache: Number(entries) });
}

/** ELASTIC_SESSION_SECRET (at least 32 bytes), or a random one for this process only. */
export function sessionSecret() {
  const secret = process.env.ELASTIC_SESSION_SECRET;
  if (secret === undefined || secret === '') {
    console.error('ELASTIC_SESSION_SECRET is not set: using a random secret, so sessions will not survive a restart');
    return randomBytes(32).toString('base64url');
  }
  if (Buffer.byteLength(secret) < 32) {
    console.error('ELASTIC_SESSION_SECRET must be at least 32 bytes (try: openssl rand -base64 32)');
    process.exit(1);
  }
  return secret;
}

/** PORT, default 3000; 0 picks a free port. */
export function port() {
  const value = Number(process.env.PORT ?? 3000);
  if (!Number.isInteger(value) || value < 0 || value > 65535) {
    console.error(`PORT must be a port number, not ${JSON.stringify(process.env.PORT)}`);
    process.exit(1);
  }
  return value;
}

/** The `/me` body: the principal and every `item:NAME` field as `{ NAME: count }`. */
export function profile(session) {
  const items = {};
  for (const field of session.keys()) if (field.startsWith('item:')) items[field.slice('item:'.length)] = session.get(field);
  return { user: session.userId, items };
}

/**
 * A listen error handler: one line saying why (a busy port, most often) and exit code 1, instead
 * of a stack trace or a crash further on.
 */
export function exitOnListenError(store, listenPort) {
  return async (error) => {
    const reason =
      error.code === 'EADDRINUSE'
        ? `port ${listenPort} is already in use; set PORT to a free port, or PORT=0 to pick one`
        : error.code === 'EACCES'
          ? `port ${listenPort} needs privileges this process lacks; set PORT to 1024 or more`
          : error.message;
    console.error(`cannot listen on 127.0.0.1: ${reason}`);
    await store.close();
    process.exit(1);
  };
}

/** Closes the server, then the store (SQLite flushes its journal), on Ctrl-C or a stop signal. */
export function closeOnSignal(close, store) {
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, async () => {
      await close();
      await store.close();
      process.exit(0);
    });
  }
}
