import { isIP } from 'node:net';
import { SessionError } from '../core/errors.js';
import { DEFAULT_OPTIONS, MAX_TIMEOUT_SECONDS } from '../core/manager.js';

/** Defaults of the session service, in one place. */
export const DEFAULT_SERVICE_CONFIG = {
  port: 8080,
  /** Loopback, with or without API keys: listening beyond it is always asked for (`--host 0.0.0.0`). */
  host: '127.0.0.1',
  store: 'sqlite:./data/sessions.db',
  idleTimeout: DEFAULT_OPTIONS.idleTimeout,
  absoluteTimeout: DEFAULT_OPTIONS.absoluteTimeout,
  /** Largest request body in bytes (256 KiB). */
  bodyLimit: 256 * 1024,
  /** How often a store without native expiry is swept, in milliseconds. */
  sweepIntervalMs: 60_000,
  /** Rows removed per sweep batch. */
  sweepBatch: 1000,
  /** How long shutdown waits for in-flight requests before cutting connections, in milliseconds. */
  shutdownTimeoutMs: 10_000,
} as const;

export const MIN_SECRET_BYTES = 32;
const MIN_API_KEY_LENGTH = 16;
const MAX_API_KEY_LENGTH = 512;
const API_KEY_PATTERN = /^[\x21-\x2b\x2d-\x7e]+$/;
const HOSTNAME_PATTERN = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/**
 * A configuration error naming the option as the user wrote it (`--port`, `ELASTIC_SESSION_PORT`,
 * `"port" in config.json`). Never includes the offending value: it may be a secret.
 */
export function optionError(option: string, problem: string): SessionError {
  return new SessionError('ESESS_CONFIG', { message: `${option} ${problem}`, context: { option } });
}

/** Accepts a number, or (from flags and environment) its decimal text. */
function numeric(value: unknown, integer: boolean): number {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return Number.NaN;
  const pattern = integer ? /^\s*\d+\s*$/ : /^\s*\d+(?:\.\d+)?\s*$/;
  return pattern.test(value) ? Number(value) : Number.NaN;
}

export function checkPort(value: unknown, option: string): number {
  const port = numeric(value, true);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw optionError(option, 'must be an integer from 0 to 65535');
  return port;
}

export function checkTimeout(value: unknown, option: string): number {
  const seconds = numeric(value, false);
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > MAX_TIMEOUT_SECONDS) {
    throw optionError(option, `must be a number of seconds from 1 to ${MAX_TIMEOUT_SECONDS}`);
  }
  return seconds;
}

export function checkPositiveInteger(value: unknown, option: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw optionError(option, 'must be a positive integer');
  return value;
}

export function checkHost(value: unknown, option: string): string {
  if (typeof value !== 'string') throw optionError(option, 'must be a host name or IP address');
  const host = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
  if (isIP(host) === 0 && !HOSTNAME_PATTERN.test(host)) throw optionError(option, 'must be a host name or IP address');
  return host;
}

/** A name the service answers to: requests whose `Host` names neither this nor its listen address are refused (421). */
export interface AllowedHost {
  /** Lowercase; an IPv6 address without brackets, in its canonical spelling. */
  host: string;
  /** Null: any port. */
  port: number | null;
}

/**
 * The host and port of a `Host` header or an `--allowed-host` entry (RFC 9110 `uri-host [":" port]`:
 * a name, an IPv4 address, or an IPv6 address in brackets), or null when it is none of them.
 */
export function parseAuthority(text: string): AllowedHost | null {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end === -1) return null;
    const address = text.slice(1, end);
    const rest = text.slice(end + 1);
    if (isIP(address) !== 6 || (rest !== '' && !rest.startsWith(':'))) return null;
    // The URL parser spells an IPv6 address one way: [0:0:0:0:0:0:0:1] and [::1] are one host.
    host = new URL(`http://[${address}]/`).hostname.slice(1, -1);
    portText = rest === '' ? undefined : rest.slice(1);
  } else {
    const colon = text.indexOf(':');
    if (colon !== text.lastIndexOf(':')) return null;
    host = colon === -1 ? text : text.slice(0, colon);
    portText = colon === -1 ? undefined : text.slice(colon + 1);
    if (isIP(host) !== 4 && !HOSTNAME_PATTERN.test(host)) return null;
  }
  if (portText === undefined) return { host: host.toLowerCase(), port: null };
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65_535) return null;
  return { host: host.toLowerCase(), port: Number(portText) };
}

/** `--allowed-host` entries: names or addresses the service answers to, each with an optional `:port`. */
export function checkAllowedHosts(value: unknown, option: string): AllowedHost[] {
  const list: unknown[] = Array.isArray(value) ? value : [value];
  return list.map((entry, index) => {
    const parsed = typeof entry === 'string' ? parseAuthority(entry) : null;
    if (parsed === null) {
      const which = list.length > 1 ? ` (entry #${index + 1})` : '';
      throw optionError(option, `must hold host names or IP addresses (IPv6 in brackets), each with an optional :port, no wildcards${which}`);
    }
    return parsed;
  });
}

/** A switch: a boolean, or (from flags and environment) `1`/`true`/`yes` and `0`/`false`/`no`. */
export function checkSwitch(value: unknown, option: string): boolean {
  if (typeof value === 'boolean') return value;
  const text = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if (['1', 'true', 'yes'].includes(text)) return true;
  if (['0', 'false', 'no'].includes(text)) return false;
  throw optionError(option, 'must be true or false (1 or 0)');
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return /^::ffff:127\./i.test(host);
}

/** One secret, or several newest first (a rotation: the first signs, all verify). */
export function checkSecrets(value: unknown, option: string): string[] {
  const list: unknown[] = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw optionError(option, 'must name at least one secret');
  return list.map((secret, index) => {
    const which = list.length > 1 ? ` (secret #${index + 1})` : '';
    if (typeof secret !== 'string' || Buffer.byteLength(secret, 'utf8') < MIN_SECRET_BYTES) {
      throw optionError(option, `must be a string of at least ${MIN_SECRET_BYTES} bytes${which} (generate one with: openssl rand -base64 32)`);
    }
    return secret;
  });
}

export function checkApiKeys(value: unknown, option: string): string[] {
  if (!Array.isArray(value)) throw optionError(option, 'must be a list of API keys');
  return value.map((key: unknown, index) => {
    const which = value.length > 1 ? ` (key #${index + 1})` : '';
    if (typeof key !== 'string' || key.length < MIN_API_KEY_LENGTH || key.length > MAX_API_KEY_LENGTH || !API_KEY_PATTERN.test(key)) {
      throw optionError(
        option,
        `must hold API keys of ${MIN_API_KEY_LENGTH} to ${MAX_API_KEY_LENGTH} visible ASCII characters without commas or spaces${which}`,
      );
    }
    return key;
  });
}

/** Refuses to expose an unauthenticated service beyond loopback. */
export function checkExposure(host: string, apiKeys: readonly string[], hostOption: string, keysOption: string): void {
  if (apiKeys.length === 0 && !isLoopback(host)) {
    throw optionError(
      hostOption,
      `is not a loopback address and no API key is configured: set ${keysOption} so that remote clients must authenticate, or listen on 127.0.0.1`,
    );
  }
}
