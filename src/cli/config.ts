import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isSessionError, SessionError } from '../core/errors.js';
import { safeJsonParse } from '../core/json.js';
import { checkApiKeys, checkExposure, checkHost, checkPort, checkSecrets, checkTimeout, DEFAULT_SERVICE_CONFIG, optionError } from '../service/config.js';
import { parseHashKey, serviceHashKey } from '../service/secret.js';
import { parseStoreUrl } from '../service/stores.js';
import { MAX_TIMEOUT_SECONDS } from '../core/manager.js';
import { parseEncryptionKeys } from '../stores/encrypted.js';
import { MAX_ACCESS_TTL } from '../tokens/limits.js';
import { tokenKeyFromPem } from '../tokens/keys.js';
import type { StoreSpec } from '../service/stores.js';

export type Command = 'serve' | 'inspect' | 'sweep' | 'migrate' | 'reencrypt' | 'hash-key';
export const COMMANDS: readonly Command[] = ['serve', 'inspect', 'sweep', 'migrate', 'reencrypt', 'hash-key'];

/** Settings in the order the help lists them. `file` is the config-file key, `env` the variable, if any. */
const SETTINGS = {
  port: { flag: 'port', env: 'ELASTIC_SESSION_PORT' },
  host: { flag: 'host', env: undefined },
  store: { flag: 'store', env: 'ELASTIC_SESSION_STORE' },
  idleTimeout: { flag: 'idle-timeout', env: undefined },
  absoluteTimeout: { flag: 'absolute-timeout', env: undefined },
  secret: { flag: 'secret', env: 'ELASTIC_SESSION_SECRET' },
  hashKey: { flag: 'hash-key', env: 'ELASTIC_SESSION_HASH_KEY' },
  apiKeys: { flag: 'api-key', env: 'ELASTIC_SESSION_API_KEYS' },
  encryptionKeys: { flag: 'encryption-key', env: 'ELASTIC_SESSION_ENCRYPTION_KEYS' },
  tlsCert: { flag: 'tls-cert', env: 'ELASTIC_SESSION_TLS_CERT' },
  tlsKey: { flag: 'tls-key', env: 'ELASTIC_SESSION_TLS_KEY' },
  tlsClientCa: { flag: 'tls-client-ca', env: 'ELASTIC_SESSION_TLS_CLIENT_CA' },
  tokenIssuer: { flag: 'token-issuer', env: undefined },
  tokenAudience: { flag: 'token-audience', env: undefined },
  accessTokenTtl: { flag: 'access-token-ttl', env: undefined },
  refreshTokenTtl: { flag: 'refresh-token-ttl', env: undefined },
  tokenKey: { flag: 'token-key', env: 'ELASTIC_SESSION_TOKEN_KEY' },
} as const;

/** Settings that may be given several times (flags repeat; the variable is comma-separated). */
const LISTS: ReadonlySet<Setting> = new Set(['secret', 'apiKeys', 'encryptionKeys']);

type Setting = keyof typeof SETTINGS;

const SECRET_OPTION = '--secret (or ELASTIC_SESSION_SECRET)';
const HASH_KEY_OPTION = '--hash-key (or ELASTIC_SESSION_HASH_KEY)';

const COMMAND_SETTINGS: Record<Command, readonly Setting[]> = {
  serve: [
    'port', 'host', 'store', 'idleTimeout', 'absoluteTimeout', 'secret', 'hashKey', 'apiKeys', 'encryptionKeys', 'tlsCert', 'tlsKey', 'tlsClientCa',
    'tokenIssuer', 'tokenAudience', 'accessTokenTtl', 'refreshTokenTtl', 'tokenKey',
  ],
  inspect: ['store', 'secret', 'hashKey', 'encryptionKeys'],
  sweep: ['store'],
  migrate: ['store'],
  reencrypt: ['store', 'encryptionKeys'],
  'hash-key': ['store', 'secret', 'hashKey'],
};

/** The options `parseArgs` accepts for a command. */
export function argOptions(command: Command): Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
    config: { type: 'string' },
  };
  for (const setting of COMMAND_SETTINGS[command]) {
    options[SETTINGS[setting].flag] = LISTS.has(setting) ? { type: 'string', multiple: true } : { type: 'string' };
  }
  return options;
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
  /** `kid:KEY` encryption keys, newest first, validated; undefined: no encryption at rest. */
  encryptionKeys: string[] | undefined;
  /** PEM contents read from the --tls-* files; undefined: plain HTTP. */
  tls: { cert: Buffer; key: Buffer; clientCa?: Buffer } | undefined;
  /** Token mode settings given; the rest keep the service's defaults. */
  tokens: { issuer?: string; audience?: string; accessTtl?: number; refreshTtl?: number; key?: Buffer };
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
    const message = error instanceof Error ? error.message.split('\n').join(' ') : '';
    throw new SessionError('ESESS_CONFIG', { message: message || 'invalid arguments' });
  }
  const help = values.help === true;
  if (help) return { command, help, positionals, config: defaults() };
  const file = typeof values.config === 'string' ? readConfigFile(resolve(cwd, values.config)) : null;

  const pick = (setting: Setting): Raw | undefined => {
    const { flag, env: variable } = SETTINGS[setting];
    const fromFlag = values[flag];
    if (fromFlag !== undefined) return { value: fromFlag, name: `--${flag}` };
    if (variable !== undefined) {
      const fromEnv = env[variable];
      if (fromEnv !== undefined && fromEnv !== '') {
        return { value: LISTS.has(setting) ? splitList(setting, fromEnv) : fromEnv, name: variable };
      }
    }
    if (file && Object.hasOwn(file.values, setting)) return { value: file.values[setting], name: `"${setting}" in ${file.path}` };
    return undefined;
  };

  const base = defaults();
  const port = pick('port');
  const host = pick('host');
  const store = pick('store');
  const idle = pick('idleTimeout');
  const absolute = pick('absoluteTimeout');
  const secret = pick('secret');
  const hashKey = pick('hashKey');
  const keys = pick('apiKeys');
  const apiKeys = keys ? checkApiKeys(keys.value, keys.name) : [];
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
  const config: CliConfig = {
    port: port ? checkPort(port.value, port.name) : base.port,
    host: host ? checkHost(host.value, host.name) : apiKeys.length > 0 ? DEFAULT_SERVICE_CONFIG.hostWithApiKeys : base.host,
    store: store ? parseStoreUrl(store.value, store.name, cwd) : base.store,
    idleTimeout: idle ? checkTimeout(idle.value, idle.name) : base.idleTimeout,
    absoluteTimeout: absolute ? checkTimeout(absolute.value, absolute.name) : base.absoluteTimeout,
    secret: secret ? checkSecrets(secret.value, secret.name) : undefined,
    secretOption: secret?.name ?? SECRET_OPTION,
    hashKey: hashKey ? parseHashKey(hashKey.value, hashKey.name) : undefined,
    hashKeyOption: hashKey?.name ?? HASH_KEY_OPTION,
    apiKeys,
    encryptionKeys: encryption ? checkEncryptionKeys(encryption) : undefined,
    tls: tlsCert && tlsKey ? { cert: readPem(tlsCert, cwd), key: readPem(tlsKey, cwd), ...(tlsClientCa ? { clientCa: readPem(tlsClientCa, cwd) } : {}) } : undefined,
    tokens: {
      ...(tokenIssuer ? { issuer: checkText(tokenIssuer) } : {}),
      ...(tokenAudience ? { audience: checkText(tokenAudience) } : {}),
      ...(accessTtl ? { accessTtl: checkSeconds(accessTtl, MAX_ACCESS_TTL) } : {}),
      ...(refreshTtl ? { refreshTtl: checkSeconds(refreshTtl, MAX_TIMEOUT_SECONDS) } : {}),
      ...(tokenKey ? { key: readTokenKey(tokenKey, cwd) } : {}),
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
      encryptionKeys: undefined,
      tls: undefined,
      tokens: {},
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

function checkText(raw: Raw): string {
  if (typeof raw.value !== 'string' || raw.value.length === 0 || raw.value.length > 256) throw optionError(raw.name, 'must be a string of 1 to 256 characters');
  return raw.value;
}

function checkSeconds(raw: Raw, max: number): number {
  const seconds = typeof raw.value === 'number' ? raw.value : typeof raw.value === 'string' && /^\s*\d+\s*$/.test(raw.value) ? Number(raw.value) : Number.NaN;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > max) throw optionError(raw.name, `must be a whole number of seconds from 1 to ${max}`);
  return seconds;
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
