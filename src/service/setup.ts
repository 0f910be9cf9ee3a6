import { createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { SessionError } from '../core/errors.js';
import { MAX_TIMEOUT_SECONDS, SessionManager } from '../core/manager.js';
import type { Clock, SessionStore } from '../core/types.js';
import { encryptedStore } from '../stores/encrypted.js';
import type { TokenIssuer, TokenIssuerOptions } from '../tokens/issuer.js';
import { tokenKeyFromSecret } from '../tokens/keys.js';
import type { TokenKeyInput } from '../tokens/keys.js';
import { optionError } from './config.js';
import type { ServiceLogger } from './log.js';
import type { ServiceConfig, ServiceOptions, ServiceTokenOptions } from './options.js';
import { resolveSecrets, serviceHashKey } from './secret.js';
import { openStore, parseStoreUrl } from './stores.js';
import type { StoreSpec } from './stores.js';

export interface ServiceStore {
  /** The parsed URL when the service opened the store itself, else null. */
  spec: StoreSpec | null;
  /** The store as opened or given; its usage is what the metrics report. */
  opened: SessionStore;
  /** What the manager writes to: `opened`, or the encryption layer over it. */
  store: SessionStore;
  /** Whether the service opened the store, and so closes it. */
  owned: boolean;
}

/** Step 2 of `createService`: the store a URL names (opened here, closed by the service), or the caller's own. */
export async function openServiceStore(given: string | SessionStore, config: ServiceConfig, cwd: string | undefined, nearCache?: number): Promise<ServiceStore> {
  const spec = typeof given === 'string' ? parseStoreUrl(given, 'store', cwd) : null;
  if (spec === null && nearCache !== undefined) throw optionError('nearCache', 'takes a store URL; wrap a store object with nearCache() from elastic-session/stores/near-cache yourself');
  const opened = spec ? await openStore(spec, nearCache === undefined ? {} : { nearCache }) : (given as SessionStore);
  const store = config.encryptionKeys ? encryptedStore(opened, { keys: config.encryptionKeys, production: false }) : opened;
  const shared = spec === null ? null : sharedNamespaceWarning(spec);
  if (shared !== null) config.log.warn(shared);
  return { spec, opened, store, owned: spec !== null };
}

/** The URL parameter that names a shared store's namespace (its user index included). */
const NAMESPACE_PARAMETER: Partial<Record<StoreSpec['scheme'], string>> = { redis: 'prefix', postgres: 'schema', mysql: 'table', nats: 'bucket' };

/**
 * A shared server on its default namespace: another application there with the same user IDs
 * shares the user index, so one's "log out everywhere" reaches the other's sessions. Said once
 * at startup (security round 2, item 6); docs/security.md says how to separate them.
 */
export function sharedNamespaceWarning(spec: StoreSpec): string | null {
  const parameter = NAMESPACE_PARAMETER[spec.scheme];
  if (parameter === undefined) return null;
  const query = spec.url.includes('?') ? new URLSearchParams(spec.url.slice(spec.url.indexOf('?') + 1)) : new URLSearchParams();
  if (query.has(parameter)) return null;
  return `the ${spec.scheme} store uses its default namespace (no ?${parameter}=): every application on this server with the same user IDs shares its user index, and revoking a user in one logs them out of the others; give each application its own ?${parameter}=`;
}

export interface ServiceCore {
  manager: SessionManager;
  /** Null when token mode is off (the token routes then answer 501). */
  tokens: TokenIssuer | null;
  /** Seconds: the longest absolute timeout the store can keep. */
  maxAbsoluteTimeout: number;
}

/**
 * Step 3 of `createService`: checks the absolute timeout against the store's limit, resolves the
 * secrets, and builds the manager and the token issuer over the store. Closes a store the
 * service opened when any of it fails.
 */
export async function buildManager(options: ServiceOptions, config: ServiceConfig, { spec, opened, store, owned }: ServiceStore): Promise<ServiceCore> {
  const { log } = config;
  try {
    let maxAbsoluteTimeout = MAX_TIMEOUT_SECONDS;
    const lifetimeMs = (await opened.maxLifetimeMs?.()) ?? null;
    if (lifetimeMs !== null) maxAbsoluteTimeout = Math.min(maxAbsoluteTimeout, Math.floor(lifetimeMs / 1000));
    if (config.absoluteTimeout > maxAbsoluteTimeout) {
      throw optionError('absoluteTimeout', `is longer than the ${opened.name} store keeps any record (${maxAbsoluteTimeout} s); shorten it or raise the store's limit`);
    }
    const secretOption = 'the secret (--secret, ELASTIC_SESSION_SECRET)';
    const given = options.secret === undefined ? undefined : typeof options.secret === 'string' ? [options.secret] : options.secret;
    const resolved = await resolveSecrets({ given, option: secretOption, spec, create: true, log });
    if (resolved === null) throw new SessionError('ESESS_CONFIG', { message: 'the secret could not be resolved' });
    const { secrets } = resolved;
    const storeKeyHash = serviceHashKey(secrets, { hashKey: config.hashKey, hashKeyOption: 'hashKey (--hash-key, ELASTIC_SESSION_HASH_KEY)', secretOption });
    const manager = new SessionManager({
      store,
      secrets,
      hashKey: storeKeyHash,
      idleTimeout: config.idleTimeout,
      absoluteTimeout: config.absoluteTimeout,
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.maxSessionsPerUser === undefined ? {} : { maxSessionsPerUser: options.maxSessionsPerUser }),
      ...(options.onTooManySessions === undefined ? {} : { onTooManySessions: options.onTooManySessions }),
    });
    const tokens = await openTokenIssuer(manager, { secrets, hashKey: storeKeyHash, signingKey: config.tokenKey }, options.tokens ?? {}, options.clock, log);
    return { manager, tokens, maxAbsoluteTimeout };
  } catch (error) {
    if (owned) await store.close().catch(() => {});
    throw error;
  }
}

/** The token issuer, or null (token routes answer 501) when the optional jose package is missing. */
async function openTokenIssuer(
  manager: SessionManager,
  keyring: { secrets: readonly string[]; hashKey: Buffer; signingKey: TokenKeyInput | null },
  options: ServiceTokenOptions,
  clock: Clock | undefined,
  log: ServiceLogger,
): Promise<TokenIssuer | null> {
  if (!manager.store.capabilities.cas) {
    log.info(`token mode is off: it needs a store with compare-and-swap, which the ${manager.store.name} store lacks`);
    return null;
  }
  let module: { createTokenIssuer(options: TokenIssuerOptions): TokenIssuer };
  try {
    module = await import('../tokens/issuer.js');
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException | null)?.code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes("'jose'");
    if (!missing) throw error;
    log.info('token mode is off: it needs the optional dependency jose (npm install jose)');
    return null;
  }
  // A configured key signs, else the newest secret's; the keys of the others only verify, so
  // tokens issued before a switch or rotation keep working until they expire.
  const derived = keyring.secrets.map((secret) => tokenKeyFromSecret(secret));
  const signing = keyring.signingKey ?? derived.shift();
  if (signing === undefined) throw new SessionError('ESESS_CONFIG', { message: 'the secret could not be resolved' });
  const keys: TokenKeyInput[] = [signing, ...derived.map((key) => ({ ...key, key: createPublicKey(key.key as KeyObject) }))];
  return module.createTokenIssuer({
    manager,
    hashKey: keyring.hashKey,
    keys,
    issuer: options.issuer ?? 'elastic-session',
    audience: options.audience ?? 'elastic-session',
    ...(options.accessTtl === undefined ? {} : { accessTtl: options.accessTtl }),
    ...(options.refreshTtl === undefined ? {} : { refreshTtl: options.refreshTtl }),
    ...(options.leeway === undefined ? {} : { leeway: options.leeway }),
    ...(clock ? { clock } : {}),
  });
}
