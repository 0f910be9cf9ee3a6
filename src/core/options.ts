import { configError, SessionError } from './errors.js';
import { DEFAULT_DATA_LIMITS } from './json.js';
import type { DataLimits } from './json.js';
import { DEFAULT_OPTIONS } from './manager-options.js';
import type { SessionManagerOptions } from './manager-options.js';
import { isWeakSecret } from './secrets.js';
import { MAX_TIMEOUT_SECONDS } from './types.js';

/** Checks of the manager's options and of the values callers pass per session. */

const MAX_USER_ID = 512;

export function checkTimeout(option: string, seconds: number): number {
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > MAX_TIMEOUT_SECONDS) {
    throw configError(option, `must be a number of seconds from 1 to ${MAX_TIMEOUT_SECONDS}`);
  }
  return seconds;
}

export function checkInputTimeout(name: string, seconds: unknown): number {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 1 || seconds > MAX_TIMEOUT_SECONDS) {
    throw new SessionError('ESESS_INVALID_INPUT', { message: `${name} must be a number of seconds from 1 to ${MAX_TIMEOUT_SECONDS}`, context: { field: name } });
  }
  return seconds;
}

export function checkUserId(userId: string): string;
export function checkUserId(userId: string | null): string | null;
export function checkUserId(userId: string | null): string | null {
  if (userId === null) return null;
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > MAX_USER_ID) {
    throw new SessionError('ESESS_INVALID_INPUT', { message: `userId must be a string of 1 to ${MAX_USER_ID} characters`, context: { field: 'userId' } });
  }
  return userId;
}

/** Production mode: secrets from the documentation or with visibly low entropy are refused; messages never quote them. */
export function refuseWeakSecrets(secrets: readonly (string | Buffer)[], hashKey: string | Buffer | undefined): void {
  const advice = 'refused in production (NODE_ENV=production); generate one with: openssl rand -base64 32';
  secrets.forEach((secret, index) => {
    if (isWeakSecret(secret)) throw configError('secrets', `secret #${index + 1} is an example or low-entropy secret, ${advice}`);
  });
  if (hashKey !== undefined && isWeakSecret(hashKey)) throw configError('hashKey', `is an example or low-entropy key, ${advice}`);
}

/** The manager's numeric options, checked once at construction, each error naming its option. */
export interface ResolvedManagerOptions {
  idleMs: number;
  absoluteMs: number;
  touchAfterMs: number;
  maxRetries: number;
  limits: DataLimits;
  maxSessionsPerUser: number | undefined;
  onTooManySessions: 'evict-oldest' | 'refuse';
}

export function resolveManagerOptions(options: SessionManagerOptions): ResolvedManagerOptions {
  const idleMs = checkTimeout('idleTimeout', options.idleTimeout ?? DEFAULT_OPTIONS.idleTimeout) * 1000;
  const absoluteMs = checkTimeout('absoluteTimeout', options.absoluteTimeout ?? DEFAULT_OPTIONS.absoluteTimeout) * 1000;
  const touchAfter = options.touchAfter ?? DEFAULT_OPTIONS.touchAfter;
  if (!(touchAfter >= 0 && touchAfter <= 1)) throw configError('touchAfter', 'must be a fraction between 0 and 1');
  const maxRetries = options.maxRetries ?? DEFAULT_OPTIONS.maxRetries;
  if (!Number.isInteger(maxRetries) || maxRetries < 1) throw configError('maxRetries', 'must be a positive integer');
  const limits = { ...DEFAULT_DATA_LIMITS, ...options.limits };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1) throw configError(`limits.${name}`, 'must be a positive integer');
  }
  const { maxSessionsPerUser } = options;
  if (maxSessionsPerUser !== undefined) {
    if (!Number.isInteger(maxSessionsPerUser) || maxSessionsPerUser < 1) throw configError('maxSessionsPerUser', 'must be a positive integer');
    if (!options.store.capabilities.userIndex) {
      throw configError('maxSessionsPerUser', `needs a store with a user index to count a user's sessions, and the ${options.store.name} store has none; use another store or drop the option`);
    }
  }
  const onTooManySessions = options.onTooManySessions ?? DEFAULT_OPTIONS.onTooManySessions;
  if (onTooManySessions !== 'evict-oldest' && onTooManySessions !== 'refuse') throw configError('onTooManySessions', 'must be "evict-oldest" or "refuse"');
  return { idleMs, absoluteMs, touchAfterMs: touchAfter * idleMs, maxRetries, limits, maxSessionsPerUser, onTooManySessions };
}
