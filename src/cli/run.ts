import { SessionError } from '../core/errors.js';
import { SessionManager } from '../core/manager.js';
import type { SessionStore } from '../core/types.js';
import { DEFAULT_SERVICE_CONFIG } from '../service/config.js';
import type { Service } from '../service/index.js';
import type { ServiceLogger } from '../service/log.js';
import { toResource } from '../service/routes.js';
import { generateSecret, resolveSecrets, serviceHashKey } from '../service/secret.js';
import { isDurable, openStore } from '../service/stores.js';
import { canScan, encryptedStore, reencryptAll } from '../stores/encrypted.js';
import { COMMANDS, parseCommand } from './config.js';
import { closest } from './suggest.js';
import type { CliConfig, Command } from './config.js';
import { COMMAND_HELP, MAIN_HELP } from './help.js';
import { packageVersion } from '../service/version.js';

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Reads all of stdin (for `inspect -`). */
  readStdin(): Promise<string>;
  /** Resolves with the signal's name when the process is asked to stop. */
  waitForStop(): Promise<string>;
}

export const EXIT = { ok: 0, failure: 1, config: 2 } as const;

function loggerFor(io: CliIO): ServiceLogger {
  return {
    info: (line) => io.stderr(`elastic-session: ${line}\n`),
    warn: (line) => io.stderr(`elastic-session: warning: ${line}\n`),
    error: (line) => io.stderr(`elastic-session: error: ${line}\n`),
  };
}

/** Runs one CLI invocation; resolves with the exit code. */
export async function run(argv: readonly string[], io: CliIO): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    const topic = first === 'help' ? rest[0] : undefined;
    if (topic === 'events' || topic === 'replay') {
      const { EVENTS_HELP, REPLAY_HELP } = await import('./changelog.js');
      io.stdout(topic === 'events' ? EVENTS_HELP : REPLAY_HELP);
      return EXIT.ok;
    }
    if (topic !== undefined && (COMMANDS as readonly string[]).includes(topic)) io.stdout(COMMAND_HELP[topic as Command]);
    else io.stdout(MAIN_HELP);
    return first === undefined ? EXIT.config : EXIT.ok;
  }
  if (first === '--version' || first === '-v') {
    io.stdout(`${packageVersion()}\n`);
    return EXIT.ok;
  }
  if (first === 'events' || first === 'replay') return (await import('./changelog.js')).runChangeLogCommand(first, rest, io);
  if (!(COMMANDS as readonly string[]).includes(first)) {
    const suggestion = closest(first, [...COMMANDS, 'events', 'replay']);
    const hint = suggestion === undefined ? '' : `: did you mean "${suggestion}"?`;
    io.stderr(`elastic-session: unknown command "${first.slice(0, 64)}"${hint}\nCommands: ${COMMANDS.join(', ')}. Run "elastic-session --help" for their options.\n`);
    return EXIT.config;
  }
  const command = first as Command;
  try {
    const parsed = parseCommand(command, rest, io.env, io.cwd);
    if (parsed.help) {
      io.stdout(COMMAND_HELP[command]);
      return EXIT.ok;
    }
    const log = loggerFor(io);
    for (const warning of parsed.config.warnings) log.warn(warning);
    switch (command) {
      case 'serve':
        return await serve(parsed.config, io);
      case 'inspect':
        return await inspect(parsed.config, parsed.positionals[0] ?? '', io);
      case 'sweep':
        return await sweep(parsed.config, io);
      case 'migrate':
        return await migrate(parsed.config, io);
      case 'reencrypt':
        return await reencrypt(parsed.config, io);
      case 'hash-key':
        return await printHashKey(parsed.config, io);
    }
  } catch (error) {
    return reportError(command, error, io);
  }
}

function reportError(command: Command, error: unknown, io: CliIO): number {
  if (error instanceof SessionError) {
    if (error.code === 'ESESS_CONFIG') {
      io.stderr(`elastic-session ${command}: ${error.message}\nRun "elastic-session ${command} --help" for the options.\n`);
      return EXIT.config;
    }
    const root = rootCause(error);
    const cause = root === undefined ? '' : ` (${root})`;
    io.stderr(`elastic-session ${command}: ${error.message}${cause}\n`);
    return EXIT.failure;
  }
  const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
  io.stderr(`elastic-session ${command}: ${error instanceof Error ? error.message : String(error)}${code ? ` (${code})` : ''}\n`);
  return EXIT.failure;
}

async function serve(config: CliConfig, io: CliIO): Promise<number> {
  // Loaded only here: the service needs the optional prom-client, the other commands do not.
  const { createService } = await import('../service/index.js');
  const service: Service = await createService({
    store: config.store.url,
    cwd: io.cwd,
    host: config.host,
    port: config.port,
    idleTimeout: config.idleTimeout,
    absoluteTimeout: config.absoluteTimeout,
    apiKeys: config.apiKeys,
    allowedHosts: config.allowedHosts,
    publicMetrics: config.publicMetrics,
    defaultMetrics: true,
    log: loggerFor(io),
    ...(config.secret === undefined ? {} : { secret: config.secret }),
    ...(config.hashKey === undefined ? {} : { hashKey: config.hashKey.toString('base64url') }),
    ...(config.encryptionKeys === undefined ? {} : { encryptionKeys: config.encryptionKeys }),
    ...(config.tls === undefined ? {} : { tls: config.tls }),
    tokens: config.tokens,
    ...config.sessionLimit,
    ...(config.nearCache === undefined ? {} : { nearCache: config.nearCache }),
  });
  let address;
  try {
    address = await service.listen();
  } catch (error) {
    await service.close();
    const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
    io.stderr(`elastic-session serve: cannot listen on ${config.host}:${config.port} (${code ?? 'unknown error'})\n`);
    return EXIT.failure;
  }
  io.stdout(`listening on ${address.url}\n`);
  const { url } = address;
  io.stderr(`elastic-session: dashboard ${url}/admin, API description ${url}/openapi.json, health ${url}/healthz, metrics ${url}/metrics\n`);
  const signal = await io.waitForStop();
  io.stderr(`elastic-session: ${signal} received: draining in-flight requests and closing the store\n`);
  await service.close();
  return EXIT.ok;
}

/** Opens the configured store, runs `fn` with a manager over it, and always closes the store. */
async function withManager<T>(config: CliConfig, io: CliIO, fn: (manager: SessionManager, store: SessionStore) => Promise<T>): Promise<T> {
  const opened = await openStore(config.store);
  const store = config.encryptionKeys === undefined ? opened : encryptedStore(opened, { keys: config.encryptionKeys });
  try {
    const secrets = await serviceSecrets(config, io);
    const manager = new SessionManager({ store, secrets, hashKey: serviceHashKey(secrets, config) });
    return await fn(manager, store);
  } finally {
    await store.close();
  }
}

/** The service's secrets as configured, or from the secret file next to a SQLite database. */
async function serviceSecrets(config: CliConfig, io: CliIO): Promise<string[]> {
  if (!isDurable(config.store)) return config.secret ?? [generateSecret()];
  const resolved = await resolveSecrets({ given: config.secret, option: config.secretOption, spec: config.store, create: false, log: loggerFor(io) });
  if (resolved === null) {
    throw new SessionError('ESESS_CONFIG', {
      message: `${config.secretOption} is not set and there is no elastic-session.secret next to the database: sessions cannot be found without the service's secret`,
    });
  }
  return resolved.secrets;
}

/**
 * Prints the store-key hash key the service uses with this configuration (base64url), to pin
 * with --hash-key before the secret rotates. It is key material: it goes to stdout only.
 */
async function printHashKey(config: CliConfig, io: CliIO): Promise<number> {
  if (config.hashKey === undefined && config.secret === undefined && !isDurable(config.store)) {
    throw new SessionError('ESESS_CONFIG', { message: `${config.secretOption} is required: the ${config.store.scheme} store keeps no secret file` });
  }
  const secrets = config.hashKey === undefined ? await serviceSecrets(config, io) : [];
  io.stdout(`${serviceHashKey(secrets, config).toString('base64url')}\n`);
  return EXIT.ok;
}

async function inspect(config: CliConfig, given: string, io: CliIO): Promise<number> {
  const id = given === '-' ? (await io.readStdin()).trim() : given;
  return withManager(config, io, async (manager) => {
    const session = await manager.load(id);
    if (!session) {
      io.stderr('not found\n');
      return EXIT.failure;
    }
    io.stdout(`${JSON.stringify(toResource(session), null, 2)}\n`);
    return EXIT.ok;
  });
}

async function sweep(config: CliConfig, io: CliIO): Promise<number> {
  // Sweeping reads no session, so it needs no secret: a throwaway one satisfies the manager.
  const swept = { ...config, secret: config.secret ?? [generateSecret()] };
  return withManager(swept, io, async (manager, store) => {
    if (!store.capabilities.sweep) {
      // Redis and Memcached expire records themselves: a count of 0 would suggest a sweep ran.
      if (store.capabilities.nativeTtl) {
        io.stdout(`the ${store.name} store expires sessions by itself (native TTL): nothing to sweep\n`);
        return EXIT.ok;
      }
      io.stderr(`elastic-session sweep: the ${store.name} store can neither be swept nor expire sessions by itself\n`);
      return EXIT.failure;
    }
    let total = 0;
    for (;;) {
      const removed = await manager.sweep(DEFAULT_SERVICE_CONFIG.sweepBatch);
      total += removed;
      if (removed < DEFAULT_SERVICE_CONFIG.sweepBatch) break;
    }
    io.stdout(`${total}\n`);
    return EXIT.ok;
  });
}

/**
 * Re-seals, under the first encryption key, every value an older key sealed: run it after
 * prepending a new key, while the service keeps serving; then drop the old key. Prints progress
 * on stderr and the totals as JSON on stdout.
 */
async function reencrypt(config: CliConfig, io: CliIO): Promise<number> {
  if (config.encryptionKeys === undefined) {
    throw new SessionError('ESESS_CONFIG', { message: '--encryption-key (or ELASTIC_SESSION_ENCRYPTION_KEYS) is required: the new key first, then every key still in use' });
  }
  const store = encryptedStore(await openStore(config.store), { keys: config.encryptionKeys });
  try {
    if (!canScan(store.inner)) {
      io.stderr(`elastic-session reencrypt: the ${store.inner.name} store cannot be walked; values are re-encrypted as their sessions are written, keep old keys until the sessions have expired\n`);
      return EXIT.failure;
    }
    const totals = await reencryptAll(store, {
      batch: DEFAULT_SERVICE_CONFIG.sweepBatch,
      onProgress: (progress) => io.stderr(`elastic-session: pass ${progress.passes}: re-encrypted ${progress.fields} fields in ${progress.rewritten} of ${progress.scanned} records so far\n`),
    });
    io.stdout(`${JSON.stringify({ ...totals, keyId: store.currentKeyId })}\n`);
    if (totals.clean) return EXIT.ok;
    io.stderr(`elastic-session reencrypt: values sealed by old keys were still found in pass ${totals.passes}: keep the old keys, check that every instance runs with the new key first, and run it again\n`);
    return EXIT.failure;
  } finally {
    await store.close();
  }
}

interface Migratable {
  migrate(): Promise<{ from: number; to: number }>;
}

async function migrate(config: CliConfig, io: CliIO): Promise<number> {
  const store = await openStore(config.store);
  try {
    if (!('migrate' in store) || typeof (store as Partial<Migratable>).migrate !== 'function') {
      io.stdout(`the ${store.name} store has no schema to migrate${store.name === 'sqlite' ? ' (SQLite migrates when it opens)' : ''}\n`);
      return EXIT.ok;
    }
    const { from, to } = await (store as unknown as Migratable).migrate();
    io.stdout(`schema version ${from} -> ${to}\n`);
    return EXIT.ok;
  } finally {
    await store.close();
  }
}

/** The innermost non-SessionError cause (a driver's message such as "unable to open database file"). */
function rootCause(error: SessionError): string | undefined {
  let cause: unknown = error.cause;
  while (cause instanceof SessionError) cause = cause.cause;
  if (!(cause instanceof Error)) return undefined;
  const code = (cause as NodeJS.ErrnoException).code;
  return typeof code === 'string' ? `${code}: ${cause.message}` : cause.message;
}
