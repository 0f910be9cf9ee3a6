import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isSessionError, SessionError } from '../core/errors.js';
import { closest } from './suggest.js';
import { safeJsonParse } from '../core/json.js';
import { checkAllowedHosts, checkApiKeys, checkExposure, checkHost, checkPort, checkSecrets, checkSwitch, checkTimeout, DEFAULT_SERVICE_CONFIG, optionError } from '../service/config.js';
import { parseHashKey, serviceHashKey } from '../service/secret.js';
import { parseStoreUrl } from '../service/stores.js';
import { MAX_TIMEOUT_SECONDS } from '../core/manager.js';
import { parseEncryptionKeys } from '../stores/encrypted.js';
import { MAX_ACCESS_TTL } from '../tokens/limits.js';
import { tokenKeyFromPem } from '../tokens/keys.js';
import type { StoreSpec } from '../service/stores.js';

export type Command = 'serve' | 'inspect' | 'sweep' | 'migrate' | 'reencrypt' | 'hash-key';
export const COMMANDS: readonly Command[] = ['serve', 'inspect', 'sweep', 'migrate', 'reencrypt', 'hash-key'];

/**
 * A setting: `flag` on the command line, `env` the variable (if any), the setting's own name the
 * config-file key. `arg` names the value in help (none: a switch); `list`: the flag repeats and
 * the variable is comma-separated.
 */
export interface SettingInfo {
  flag: string;
  env: string | undefined;
  arg?: string;
  list?: true;
  /** One line for `elastic-session --help`. */
  summary: string;
}

/** Settings in the order the help lists them. */
export const SETTINGS = {
  port: { flag: 'port', env: 'ELASTIC_SESSION_PORT', arg: '<n>', summary: 'TCP port; 0 picks a free one' },
  host: { flag: 'host', env: undefined, arg: '<addr>', summary: 'address to listen on (default 127.0.0.1; other than loopback needs API keys)' },
  allowedHosts: { flag: 'allowed-host', env: 'ELASTIC_SESSION_ALLOWED_HOSTS', arg: '<name[:port]>', list: true, summary: 'a Host the service answers to besides its listen address' },
  store: { flag: 'store', env: 'ELASTIC_SESSION_STORE', arg: '<url>', summary: 'store URL (sqlite:PATH, memory:, redis://, postgres://, ...)' },
  nearCache: { flag: 'near-cache', env: 'ELASTIC_SESSION_NEAR_CACHE', arg: '<entries>', summary: 'an in-process near-cache of this many sessions (Redis, invalidated by client tracking)' },
  idleTimeout: { flag: 'idle-timeout', env: undefined, arg: '<s>', summary: 'seconds without activity before a session dies' },
  absoluteTimeout: { flag: 'absolute-timeout', env: undefined, arg: '<s>', summary: 'seconds after creation before a session dies' },
  secret: { flag: 'secret', env: 'ELASTIC_SESSION_SECRET', arg: '<text>', list: true, summary: "the service's secret(s), newest first" },
  secretFile: { flag: 'secret-file', env: 'ELASTIC_SESSION_SECRET_FILE', arg: '<file>', summary: 'read the secret(s) from a file, one per line' },
  hashKey: { flag: 'hash-key', env: 'ELASTIC_SESSION_HASH_KEY', arg: '<KEY>', summary: 'the store-key hash key (32 bytes, base64url)' },
  hashKeyFile: { flag: 'hash-key-file', env: 'ELASTIC_SESSION_HASH_KEY_FILE', arg: '<file>', summary: 'read the store-key hash key from a file' },
  apiKeys: { flag: 'api-key', env: 'ELASTIC_SESSION_API_KEYS', arg: '<key>', list: true, summary: 'Bearer key for /v1, /admin/api and /metrics' },
  apiKeyFile: { flag: 'api-key-file', env: 'ELASTIC_SESSION_API_KEYS_FILE', arg: '<file>', summary: 'read the API keys from a file, one per line' },
  publicMetrics: { flag: 'public-metrics', env: 'ELASTIC_SESSION_PUBLIC_METRICS', summary: 'serve /metrics without an API key' },
  encryptionKeys: { flag: 'encryption-key', env: 'ELASTIC_SESSION_ENCRYPTION_KEYS', arg: '<kid:KEY>', list: true, summary: 'encrypt session contents at rest (AES-256-GCM), newest first' },
  tlsCert: { flag: 'tls-cert', env: 'ELASTIC_SESSION_TLS_CERT', arg: '<file.pem>', summary: 'serve HTTPS with this certificate chain' },
  tlsKey: { flag: 'tls-key', env: 'ELASTIC_SESSION_TLS_KEY', arg: '<file.pem>', summary: '... and this private key' },
  tlsClientCa: { flag: 'tls-client-ca', env: 'ELASTIC_SESSION_TLS_CLIENT_CA', arg: '<file.pem>', summary: 'require client certificates signed by this CA (mTLS)' },
  tokenIssuer: { flag: 'token-issuer', env: undefined, arg: '<text>', summary: 'iss of access tokens' },
  tokenAudience: { flag: 'token-audience', env: undefined, arg: '<text>', summary: 'aud of access tokens' },
  accessTokenTtl: { flag: 'access-token-ttl', env: undefined, arg: '<s>', summary: 'access token lifetime, at most 3600' },
  refreshTokenTtl: { flag: 'refresh-token-ttl', env: undefined, arg: '<s>', summary: 'refresh token lifetime' },
  tokenKey: { flag: 'token-key', env: 'ELASTIC_SESSION_TOKEN_KEY', arg: '<file.pem>', summary: 'sign tokens with this PEM private key (Ed25519 or P-256)' },
  maxSessionsPerUser: { flag: 'max-sessions-per-user', env: 'ELASTIC_SESSION_MAX_SESSIONS_PER_USER', arg: '<n>', summary: 'most live sessions one user may have (needs a store with a user index)' },
  onTooManySessions: { flag: 'on-too-many-sessions', env: 'ELASTIC_SESSION_ON_TOO_MANY_SESSIONS', arg: 'evict-oldest|refuse', summary: 'beyond that: end the oldest (default) or refuse the login' },
} as const satisfies Record<string, SettingInfo>;

export type Setting = keyof typeof SETTINGS;

const SECRET_OPTION = '--secret (or ELASTIC_SESSION_SECRET)';
const HASH_KEY_OPTION = '--hash-key (or ELASTIC_SESSION_HASH_KEY)';

/** The settings each command takes: its flags, and the config-file keys its help lists. */
export const COMMAND_SETTINGS: Record<Command, readonly Setting[]> = {
  serve: [
    'port', 'host', 'allowedHosts', 'store', 'nearCache', 'idleTimeout', 'absoluteTimeout', 'secret', 'secretFile', 'hashKey', 'hashKeyFile', 'apiKeys', 'apiKeyFile',
    'publicMetrics', 'encryptionKeys', 'tlsCert', 'tlsKey', 'tlsClientCa', 'tokenIssuer', 'tokenAudience', 'accessTokenTtl', 'refreshTokenTtl', 'tokenKey',
    'maxSessionsPerUser', 'onTooManySessions',
  ],
  inspect: ['store', 'secret', 'secretFile', 'hashKey', 'hashKeyFile', 'encryptionKeys'],
  sweep: ['store'],
  migrate: ['store'],
  reencrypt: ['store', 'encryptionKeys'],
  'hash-key': ['store', 'secret', 'secretFile', 'hashKey', 'hashKeyFile'],
};

const info = (setting: Setting): SettingInfo => SETTINGS[setting];

/** The options `parseArgs` accepts for a command. */
export function argOptions(command: Command): Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
    config: { type: 'string' },
  };
  for (const setting of COMMAND_SETTINGS[command]) {
    const { flag, arg, list } = info(setting);
    options[flag] = arg === undefined ? { type: 'boolean' } : list ? { type: 'string', multiple: true } : { type: 'string' };
  }
  return options;
}

/** What to say about an unknown flag: the closest flag of this command, or the commands that take it. */
function unknownOption(command: Command, option: string): string | undefined {
  const name = option.replace(/^--?/, '');
  const own = Object.keys(argOptions(command));
  const suggestion = closest(name, own);
  if (suggestion !== undefined) return `did you mean --${suggestion}?`;
  const others = COMMANDS.filter((other) => other !== command && Object.hasOwn(argOptions(other), name));
  return others.length > 0 ? `${option} is an option of ${others.join(', ')}, not of ${command}` : undefined;
}

export interface CliConfig {
  port: number;
  host: string;
  store: StoreSpec;
  idleTimeout: number;
  absoluteTimeout: number;
  /** Newest first; undefined: the secret file next to the SQLite database, or none. */
  secret: string[] | undefined;
  /** How the user named the secret option (for messages about it). */
  secretOption: string;
  /** The store-key hash key, decoded; undefined: derived from the only secret. */
  hashKey: Buffer | undefined;
  hashKeyOption: string;
  apiKeys: string[];
  /** `--allowed-host` entries as given (checked). */
  allowedHosts: string[];
  publicMetrics: boolean;
  /** Lines to log once a logger exists (a secret file readable by other users). */
  warnings: string[];
  /** `kid:KEY` encryption keys, newest first, validated; undefined: no encryption at rest. */
  encryptionKeys: string[] | undefined;
  /** PEM contents read from the --tls-* files; undefined: plain HTTP. */
  tls: { cert: Buffer; key: Buffer; clientCa?: Buffer } | undefined;
  /** Token mode settings given; the rest keep the service's defaults. */
  tokens: { issuer?: string; audience?: string; accessTtl?: number; refreshTtl?: number; key?: Buffer };
  /** Entries of a near-cache in front of the store, or undefined for none. */
  nearCache: number | undefined;
  /** The per-user session limit, when given, and what to do beyond it. */
  sessionLimit: { maxSessionsPerUser?: number; onTooManySessions?: 'evict-oldest' | 'refuse' };
}

export interface ParsedCommand {
  command: Command;
  help: boolean;
  positionals: string[];
  config: CliConfig;
}

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

interface Raw {
  value: unknown;
  /** The option as the user wrote it. */
  name: string;
}

/**
 * Parses and validates a command line once, at startup. Precedence: flags, then environment,
 * then the `--config` JSON file, then defaults. Every error names the option as the user set it
 * and is an ESESS_CONFIG `SessionError`.
 */
export function parseCommand(command: Command, argv: readonly string[], env: NodeJS.ProcessEnv, cwd = process.cwd()): ParsedCommand {
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: argOptions(command), strict: true, allowPositionals: command === 'inspect' }));
  } catch (error) {
    // Node's message spans lines (the hint for a value that starts with a dash is on the last).
    let message = error instanceof Error ? error.message.split('\n').join(' ') : '';
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    const hint = unknown ? unknownOption(command, unknown[1] as string) : undefined;
    if (unknown && hint !== undefined) message = `${unknown[0]}: ${hint}`;
    throw new SessionError('ESESS_CONFIG', { message: message || 'invalid arguments' });
  }
  const help = values.help === true;
  if (help) return { command, help, positionals, config: defaults() };
  const file = typeof values.config === 'string' ? readConfigFile(resolve(cwd, values.config)) : null;

  // A command reads only its own settings: a variable or config-file key meant for another
  // command (a config file shared by serve and sweep) is left alone.
  const applies = (setting: Setting): boolean => COMMAND_SETTINGS[command].includes(setting);
  const fromFlag = (setting: Setting): Raw | undefined => {
    const { flag } = info(setting);
    return applies(setting) && values[flag] !== undefined ? { value: values[flag], name: `--${flag}` } : undefined;
  };
  const fromEnv = (setting: Setting): Raw | undefined => {
    const { env: variable, list } = info(setting);
    const text = variable === undefined || !applies(setting) ? undefined : env[variable];
    if (variable === undefined || text === undefined || text === '') return undefined;
    return { value: list ? splitList(setting, text) : text, name: variable };
  };
  const fromFile = (setting: Setting): Raw | undefined =>
    file && applies(setting) && Object.hasOwn(file.values, setting) ? { value: file.values[setting], name: `"${setting}" in ${file.path}` } : undefined;
  const pick = (setting: Setting): Raw | undefined => fromFlag(setting) ?? fromEnv(setting) ?? fromFile(setting);
  const warnings: string[] = [];
  /**
   * A value given itself or read from a file (`--secret` or `--secret-file`): the first source,
   * in precedence order, that gives either form wins; one source giving both is an error.
   */
  const pickOrRead = (setting: Setting, fileSetting: Setting, form: FileForm): Raw | undefined => {
    for (const source of [fromFlag, fromEnv, fromFile]) {
      const direct = source(setting);
      const named = source(fileSetting);
      if (direct && named) throw optionError(direct.name, `and ${named.name} both set it: give one of them`);
      if (direct) return direct;
      if (named) return { value: readValueFile(named, cwd, form, warnings), name: named.name };
    }
    return undefined;
  };

  const base = defaults();
  const port = pick('port');
  const host = pick('host');
  const store = pick('store');
  const idle = pick('idleTimeout');
  const absolute = pick('absoluteTimeout');
  const secret = pickOrRead('secret', 'secretFile', 'lines');
  const hashKey = pickOrRead('hashKey', 'hashKeyFile', 'one');
  const keys = pickOrRead('apiKeys', 'apiKeyFile', 'trimmed-lines');
  const apiKeys = keys ? checkApiKeys(keys.value, keys.name) : [];
  const allowed = pick('allowedHosts');
  const publicMetrics = pick('publicMetrics');
  const encryption = pick('encryptionKeys');
  const tlsCert = pick('tlsCert');
  const tlsKey = pick('tlsKey');
  const tlsClientCa = pick('tlsClientCa');
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw optionError(tlsCert ? '--tls-cert' : '--tls-key', 'needs its pair: give both --tls-cert and --tls-key (or ELASTIC_SESSION_TLS_CERT and ELASTIC_SESSION_TLS_KEY)');
  }
  if (tlsClientCa && !tlsCert) throw optionError(tlsClientCa.name, 'requires --tls-cert and --tls-key: client certificates are only asked for over TLS');
  const tokenIssuer = pick('tokenIssuer');
  const tokenAudience = pick('tokenAudience');
  const accessTtl = pick('accessTokenTtl');
  const refreshTtl = pick('refreshTokenTtl');
  const tokenKey = pick('tokenKey');
  const nearCache = pick('nearCache');
  const maxSessions = pick('maxSessionsPerUser');
  const onTooMany = pick('onTooManySessions');
  const config: CliConfig = {
    port: port ? checkPort(port.value, port.name) : base.port,
    host: host ? checkHost(host.value, host.name) : base.host,
    store: store ? parseStoreUrl(store.value, store.name, cwd) : base.store,
    idleTimeout: idle ? checkTimeout(idle.value, idle.name) : base.idleTimeout,
    absoluteTimeout: absolute ? checkTimeout(absolute.value, absolute.name) : base.absoluteTimeout,
    secret: secret ? checkSecrets(secret.value, secret.name) : undefined,
    secretOption: secret?.name ?? SECRET_OPTION,
    hashKey: hashKey ? parseHashKey(hashKey.value, hashKey.name) : undefined,
    hashKeyOption: hashKey?.name ?? HASH_KEY_OPTION,
    apiKeys,
    allowedHosts: allowed ? checkHostList(allowed) : [],
    publicMetrics: publicMetrics ? checkSwitch(publicMetrics.value, publicMetrics.name) : false,
    warnings,
    encryptionKeys: encryption ? checkEncryptionKeys(encryption) : undefined,
    tls: tlsCert && tlsKey ? { cert: readPem(tlsCert, cwd), key: readPem(tlsKey, cwd), ...(tlsClientCa ? { clientCa: readPem(tlsClientCa, cwd) } : {}) } : undefined,
    tokens: {
      ...(tokenIssuer ? { issuer: checkText(tokenIssuer) } : {}),
      ...(tokenAudience ? { audience: checkText(tokenAudience) } : {}),
      ...(accessTtl ? { accessTtl: checkSeconds(accessTtl, MAX_ACCESS_TTL) } : {}),
      ...(refreshTtl ? { refreshTtl: checkSeconds(refreshTtl, MAX_TIMEOUT_SECONDS) } : {}),
      ...(tokenKey ? { key: readTokenKey(tokenKey, cwd) } : {}),
    },
    nearCache: nearCache ? checkCount(nearCache) : undefined,
    sessionLimit: {
      ...(maxSessions ? { maxSessionsPerUser: checkCount(maxSessions) } : {}),
      ...(onTooMany ? { onTooManySessions: checkChoice(onTooMany, ['evict-oldest', 'refuse'] as const) } : {}),
    },
  };
  // A rotation without a pinned hash key would end every session: refuse it at startup.
  if (config.secret !== undefined) serviceHashKey(config.secret, config);
  if (command === 'serve') checkExposure(config.host, apiKeys, host?.name ?? '--host', '--api-key (or ELASTIC_SESSION_API_KEYS)');
  if (command === 'inspect' && positionals.length !== 1) {
    throw new SessionError('ESESS_CONFIG', { message: 'needs exactly one session ID: elastic-session inspect <id>' });
  }
  return { command, help, positionals, config };

  function defaults(): CliConfig {
    return {
      port: DEFAULT_SERVICE_CONFIG.port,
      host: DEFAULT_SERVICE_CONFIG.host,
      store: parseStoreUrl(DEFAULT_SERVICE_CONFIG.store, 'store', cwd),
      idleTimeout: DEFAULT_SERVICE_CONFIG.idleTimeout,
      absoluteTimeout: DEFAULT_SERVICE_CONFIG.absoluteTimeout,
      secret: undefined,
      secretOption: SECRET_OPTION,
      hashKey: undefined,
      hashKeyOption: HASH_KEY_OPTION,
      apiKeys: [],
      allowedHosts: [],
      publicMetrics: false,
      warnings: [],
      encryptionKeys: undefined,
      tls: undefined,
      tokens: {},
      nearCache: undefined,
      sessionLimit: {},
    };
  }
}

/**
 * A comma-separated variable as a list. Secrets are taken byte for byte (a space trimmed off
 * would change the store keys the secret derives); keys are trimmed.
 */
function splitList(setting: Setting, text: string): string[] {
  const items = text.split(',');
  return setting === 'secret' ? items : items.map((item) => item.trim()).filter((item) => item !== '');
}

/** `--allowed-host` entries, checked, as given (the service parses them again). */
function checkHostList(raw: Raw): string[] {
  const list = typeof raw.value === 'string' ? [raw.value] : raw.value;
  checkAllowedHosts(list, raw.name);
  return list as string[];
}

/** How a file holds a setting: one value, or one per line (byte for byte, or trimmed). */
type FileForm = 'one' | 'lines' | 'trimmed-lines';

/**
 * Reads a setting from a file (`--secret-file`, `--api-key-file`, `--hash-key-file`), so that
 * secrets need not appear on the command line, where `ps` shows them to every user. Line endings
 * are dropped and blank lines skipped; secrets are otherwise taken byte for byte. A file every
 * user may write is refused (anyone could substitute the key); one every user may read is taken
 * with a warning (Docker and Kubernetes mount secrets 0444 and 0644 by default).
 */
function readValueFile(raw: Raw, cwd: string, form: FileForm, warnings: string[]): string | string[] {
  if (typeof raw.value !== 'string' || raw.value === '') throw optionError(raw.name, 'must be the path of a file');
  const path = resolve(cwd, raw.value);
  let text: string;
  try {
    const stats = statSync(path);
    if (!stats.isFile()) throw optionError(raw.name, `file ${path} is not a regular file`);
    if (process.platform !== 'win32' && (stats.mode & 0o002) !== 0) {
      throw optionError(raw.name, `file ${path} is writable by every user, who could replace what it holds; fix it with: chmod 600 ${path}`);
    }
    if (process.platform !== 'win32' && (stats.mode & 0o004) !== 0) {
      warnings.push(`${raw.name}: file ${path} is readable by every user; restrict it with: chmod 600 ${path}`);
    }
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (isSessionError(error)) throw error;
    const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
    throw optionError(raw.name, `file ${path} cannot be read (${code ?? 'unknown error'})`);
  }
  const lines = text
    .split('\n')
    .map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line))
    .map((line) => (form === 'lines' ? line : line.trim()))
    .filter((line) => line.trim() !== '');
  if (lines.length === 0) throw optionError(raw.name, `file ${path} holds no value`);
  if (form !== 'one') return lines;
  if (lines.length > 1) throw optionError(raw.name, `file ${path} must hold one value on one line`);
  return lines[0] as string;
}

function checkText(raw: Raw): string {
  if (typeof raw.value !== 'string' || raw.value.length === 0 || raw.value.length > 256) throw optionError(raw.name, 'must be a string of 1 to 256 characters');
  return raw.value;
}

function checkSeconds(raw: Raw, max: number): number {
  const seconds = typeof raw.value === 'number' ? raw.value : typeof raw.value === 'string' && /^\s*\d+\s*$/.test(raw.value) ? Number(raw.value) : Number.NaN;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > max) throw optionError(raw.name, `must be a whole number of seconds from 1 to ${max}`);
  return seconds;
}

function checkCount(raw: Raw): number {
  const n = typeof raw.value === 'number' ? raw.value : typeof raw.value === 'string' && /^\s*\d+\s*$/.test(raw.value) ? Number(raw.value) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw optionError(raw.name, 'must be a whole number from 1 to 1000000');
  return n;
}

function checkChoice<T extends string>(raw: Raw, choices: readonly T[]): T {
  if (typeof raw.value !== 'string' || !(choices as readonly string[]).includes(raw.value)) throw optionError(raw.name, `must be one of ${choices.join(', ')}`);
  return raw.value as T;
}

function checkEncryptionKeys(raw: Raw): string[] {
  const list = typeof raw.value === 'string' ? [raw.value] : raw.value;
  if (!Array.isArray(list) || !list.every((item): item is string => typeof item === 'string')) throw optionError(raw.name, 'must be a list of kid:KEY strings');
  // Validated here so a bad key is a configuration error at startup, named as the user wrote it.
  parseEncryptionKeys(list, raw.name);
  return list;
}

/** Reads the --token-key PEM file and checks it now, so a bad key is a configuration error naming the option. */
function readTokenKey(raw: Raw, cwd: string): Buffer {
  const pem = readPem(raw, cwd);
  tokenKeyFromPem(pem, raw.name);
  return pem;
}

/** Reads a PEM file named by a --tls-* setting (relative to the working directory). */
function readPem(raw: Raw, cwd: string): Buffer {
  if (typeof raw.value !== 'string' || raw.value === '') throw optionError(raw.name, 'must be the path of a PEM file');
  const path = resolve(cwd, raw.value);
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (error) {
    const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
    throw optionError(raw.name, `file ${path} cannot be read (${code ?? 'unknown error'})`);
  }
  if (!pem.includes('-----BEGIN ')) throw optionError(raw.name, `file ${path} is not PEM`);
  return pem;
}

/** Reads the `--config` JSON file: an object whose keys are settings in camelCase. */
function readConfigFile(path: string): { path: string; values: Record<string, unknown> } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
    throw optionError('--config', `file ${path} cannot be read (${code ?? 'unknown error'})`);
  }
  let parsed: unknown;
  try {
    parsed = safeJsonParse(text, 4);
  } catch (error) {
    throw optionError('--config', `file ${path} is not valid JSON${isSessionError(error) ? ` (${error.message})` : ''}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw optionError('--config', `file ${path} must hold a JSON object`);
  for (const key of Object.keys(parsed)) {
    if (!Object.hasOwn(SETTINGS, key)) {
      throw optionError(`"${key.slice(0, 64)}" in ${path}`, `is not a setting; allowed: ${Object.keys(SETTINGS).join(', ')}`);
    }
  }
  return { path, values: parsed as Record<string, unknown> };
}
