import type { DataLimits } from '../core/json.js';
import type { Clock, SessionStore } from '../core/types.js';
import { parseEncryptionKeys } from '../stores/encrypted.js';
import type { EncryptionKey } from '../stores/encrypted.js';
import { tokenKeyFromPem } from '../tokens/keys.js';
import type { TokenKeyInput } from '../tokens/keys.js';
import { checkAllowedHosts, checkApiKeys, checkExposure, checkHost, checkPort, checkPositiveInteger, checkSecrets, checkSwitch, checkTimeout, DEFAULT_SERVICE_CONFIG, optionError } from './config.js';
import type { AllowedHost } from './config.js';
import { stderrLogger } from './log.js';
import type { ServiceLogger } from './log.js';
import { parseHashKey } from './secret.js';

export interface ServiceOptions {
  /**
   * A store URL (`sqlite:PATH`, `memory:`) that the service opens and closes, or a store
   * instance that the caller owns (the service does not close it).
   * @default 'sqlite:./data/sessions.db'
   */
  store?: string | SessionStore;
  /**
   * At least 32 bytes; several for a rotation, newest first. The first derives the key that
   * signs tokens, every one listed derives a key that verifies them. Without `hashKey` the only
   * secret also keys the store-key hash: then it must stay the same across restarts and
   * instances, and changing it ends every session. When absent it is read from (or generated
   * into) `elastic-session.secret` next to the SQLite file, or made up for this process only for
   * other stores.
   */
  secret?: string | readonly string[];
  /**
   * The key of the store-key hash (HMAC-SHA-256), 32 bytes in base64url: set it once and never
   * change it, so the secret can rotate without ending sessions. Required with several secrets.
   * @default derived from the only secret (what `elastic-session hash-key` prints)
   */
  hashKey?: string;
  /**
   * Bearer keys accepted on `/v1`, `/admin/api` and `/metrics`. Without any, the service listens
   * on loopback only and answers only requests whose `Host` it knows (see `allowedHosts`).
   */
  apiKeys?: readonly string[];
  /**
   * The address to listen on. Loopback also with API keys: listening on other interfaces is
   * always asked for (`'0.0.0.0'`, `'::'` or one address), and needs API keys.
   * @default '127.0.0.1'
   */
  host?: string;
  /**
   * Names the service answers to besides its listen address (`name` on any port, `name:port` on
   * that one; IPv6 in brackets). A request naming another host in `Host` (or in an absolute-form
   * target) is refused with 421, before routing: a web page that rebinds its DNS name to the
   * service's address cannot drive it. Without API keys every request is checked (a loopback
   * address answers to `localhost`, `127.0.0.1` and `[::1]` on its port); with API keys only when
   * names are given here.
   * @default []
   */
  allowedHosts?: readonly string[];
  /** Serve `/metrics` without an API key when keys are configured (for a scraper on a trusted network). @default false */
  publicMetrics?: boolean;
  /** 0 picks a free port. @default 8080 */
  port?: number;
  /** Seconds. @default 1800 */
  idleTimeout?: number;
  /** Seconds. @default 86400 */
  absoluteTimeout?: number;
  /** Largest request body in bytes. @default 262144 */
  bodyLimit?: number;
  /** Entries of an in-process near-cache in front of the store (a Redis URL, standalone or Sentinel). */
  nearCache?: number;
  /** Most live sessions one user may have (`SessionManager` option of the same name). */
  maxSessionsPerUser?: number;
  /** Beyond `maxSessionsPerUser`: end the oldest, or refuse the login (409). @default 'evict-oldest' */
  onTooManySessions?: 'evict-oldest' | 'refuse';
  limits?: Partial<DataLimits>;
  /** Sweep interval for stores without native expiry, in milliseconds; 0 disables. @default 60000 */
  sweepIntervalMs?: number;
  /** How long `close()` waits for in-flight requests, in milliseconds. @default 10000 */
  shutdownTimeoutMs?: number;
  /** Also export Node.js process metrics. @default false */
  defaultMetrics?: boolean;
  /** @default stderrLogger */
  log?: ServiceLogger;
  clock?: Clock;
  /** Base for a relative SQLite path. @default process.cwd() */
  cwd?: string;
  /**
   * Encrypt session contents at rest (AES-256-GCM per field): `kid:KEY` strings, KEY being 32
   * bytes in base64url, newest first (the first encrypts, all decrypt). See docs/security.md.
   */
  encryptionKeys?: readonly string[];
  /** Serve HTTPS (PEM texts); with `clientCa`, require client certificates signed by it (mTLS). */
  tls?: ServiceTlsOptions;
  /** Token mode (`/v1/sessions/{id}/tokens`, `/v1/tokens/*`). Signed with `tokens.key`, or an Ed25519 key derived from the secret. */
  tokens?: ServiceTokenOptions;
}

export interface ServiceTlsOptions {
  /** Certificate chain, PEM. */
  cert: string | Buffer;
  /** Private key, PEM. */
  key: string | Buffer;
  /** CA certificates (PEM) that client certificates must chain to; requires a client certificate on every connection. */
  clientCa?: string | Buffer;
}

export interface ServiceTokenOptions {
  /** @default 'elastic-session' */
  issuer?: string;
  /** @default 'elastic-session' */
  audience?: string | string[];
  /** Seconds. @default 300 */
  accessTtl?: number;
  /** Seconds. @default 86400 */
  refreshTtl?: number;
  /** Seconds. @default 30 */
  leeway?: number;
  /**
   * The signing key: a PEM private key, Ed25519 (tokens signed with EdDSA) or P-256 (ES256).
   * Replaces the key derived from the secret, which then only verifies tokens it signed before.
   * @default an Ed25519 key derived from the secret
   */
  key?: string | Buffer;
}

/** The options of `createService`, checked and with their defaults: what the later steps run on. */
export interface ServiceConfig {
  log: ServiceLogger;
  apiKeys: string[];
  host: string;
  allowedHosts: AllowedHost[];
  publicMetrics: boolean;
  port: number;
  idleTimeout: number;
  absoluteTimeout: number;
  bodyLimit: number;
  sweepIntervalMs: number;
  hashKey: Buffer | undefined;
  encryptionKeys: EncryptionKey[] | null;
  tls: ServiceTlsOptions | null;
  tokenKey: TokenKeyInput | null;
  shutdownTimeoutMs: number;
}

/** Step 1 of `createService`: every option checked before anything is opened, each error naming its option. */
export function resolveConfig(options: ServiceOptions): ServiceConfig {
  const log = options.log ?? stderrLogger;
  const apiKeys = checkApiKeys(options.apiKeys ?? [], 'apiKeys');
  const host = checkHost(options.host ?? DEFAULT_SERVICE_CONFIG.host, 'host');
  checkExposure(host, apiKeys, 'host', 'apiKeys');
  const allowedHosts = checkAllowedHosts(options.allowedHosts ?? [], 'allowedHosts');
  const publicMetrics = checkSwitch(options.publicMetrics ?? false, 'publicMetrics');
  const port = checkPort(options.port ?? DEFAULT_SERVICE_CONFIG.port, 'port');
  const idleTimeout = checkTimeout(options.idleTimeout ?? DEFAULT_SERVICE_CONFIG.idleTimeout, 'idleTimeout');
  const absoluteTimeout = checkTimeout(options.absoluteTimeout ?? DEFAULT_SERVICE_CONFIG.absoluteTimeout, 'absoluteTimeout');
  const bodyLimit = checkPositiveInteger(options.bodyLimit ?? DEFAULT_SERVICE_CONFIG.bodyLimit, 'bodyLimit');
  const sweepIntervalMs = options.sweepIntervalMs ?? DEFAULT_SERVICE_CONFIG.sweepIntervalMs;
  if (sweepIntervalMs !== 0) checkPositiveInteger(sweepIntervalMs, 'sweepIntervalMs');
  if (options.secret !== undefined) checkSecrets(options.secret, 'secret');
  const hashKey = options.hashKey === undefined ? undefined : parseHashKey(options.hashKey, 'hashKey');
  const encryptionKeys = options.encryptionKeys === undefined ? null : parseEncryptionKeys(options.encryptionKeys, 'encryptionKeys');
  const tls = options.tls === undefined ? null : checkTls(options.tls);
  const tokenKey = options.tokens?.key === undefined ? null : tokenKeyFromPem(options.tokens.key, 'tokens.key');
  const shutdownTimeoutMs = checkPositiveInteger(options.shutdownTimeoutMs ?? DEFAULT_SERVICE_CONFIG.shutdownTimeoutMs, 'shutdownTimeoutMs');
  return { log, apiKeys, host, allowedHosts, publicMetrics, port, idleTimeout, absoluteTimeout, bodyLimit, sweepIntervalMs, hashKey, encryptionKeys, tls, tokenKey, shutdownTimeoutMs };
}

function checkTls(tls: ServiceTlsOptions): ServiceTlsOptions {
  if (typeof tls !== 'object' || tls === null) throw optionError('tls', 'must be { cert, key, clientCa? } (PEM)');
  const pem = (value: unknown, option: string, what: string): void => {
    const text = Buffer.isBuffer(value) ? value.toString('latin1') : value;
    if (typeof text !== 'string' || !text.includes(`-----BEGIN `) || !text.includes(what)) throw optionError(option, `must be PEM text holding ${what}`);
  };
  pem(tls.cert, 'tls.cert', 'CERTIFICATE');
  pem(tls.key, 'tls.key', 'PRIVATE KEY');
  if (tls.clientCa !== undefined) pem(tls.clientCa, 'tls.clientCa', 'CERTIFICATE');
  return tls;
}
