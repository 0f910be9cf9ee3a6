/**
 * The re-authentication check every adapter's `requireRecentAuth` runs: options validated once,
 * then a verdict per request. Web-standard only (the Hono adapter uses it too).
 */
import { configError, SessionError } from '../core/errors.js';
import { AUTH_LEVELS, levelRank } from '../core/session.js';
import type { AuthLevel } from '../core/session.js';
import { MAX_TIMEOUT_SECONDS } from '../core/types.js';
import type { SessionMethods } from './view.js';

export interface RecentAuthOptions {
  /** The lowest assurance level accepted; a session authenticated at a higher one passes too. @default any level */
  level?: AuthLevel;
}

/** The verdict on one session: null when it passes, otherwise the 401 to answer with. */
export type RecentAuthCheck = (session: Pick<SessionMethods, 'authenticatedWithin'>) => SessionError | null;

/**
 * Validates `requireRecentAuth(seconds, options)` once. The refusal is ESESS_REAUTH_REQUIRED
 * (401): the application asks the user to authenticate again, calls `markAuthenticated()`, and
 * retries the action.
 */
export function recentAuthCheck(seconds: number, options: RecentAuthOptions = {}): RecentAuthCheck {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_TIMEOUT_SECONDS) {
    throw configError('requireRecentAuth(seconds)', `must be a number of seconds above 0 and at most ${MAX_TIMEOUT_SECONDS}`);
  }
  if (typeof options !== 'object' || options === null) throw configError('requireRecentAuth(seconds, options)', 'options must be an object ({ level? })');
  const { level } = options;
  if (level !== undefined && levelRank(level) < 0) throw configError('requireRecentAuth.level', `must be one of ${AUTH_LEVELS.join(', ')}`);
  const message = `Authentication within the last ${seconds} seconds${level === undefined ? '' : ` at level ${level} or higher`} is required`;
  const context: Record<string, string | number> = level === undefined ? { maxAge: seconds } : { maxAge: seconds, level };
  return (session) => (session.authenticatedWithin(seconds, level === undefined ? {} : { level }) ? null : new SessionError('ESESS_REAUTH_REQUIRED', { message, context }));
}
