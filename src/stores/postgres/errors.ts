import { SessionError } from '../../core/errors.js';
import { toInteger } from '../kit/record-codec.js';

export const STORE = 'postgres';

/** Driver and server failures as typed errors; the SQLSTATE travels in the context. */
export function storeError(error: unknown, operation: string): SessionError {
  if (error instanceof SessionError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const context = { store: STORE, operation, ...(typeof code === 'string' ? { sqlState: code } : {}) };
  // Text PostgreSQL cannot hold (a NUL character in a field name or user ID).
  if (code === '22P05' || code === '22021') return new SessionError('ESESS_INVALID_INPUT', { message: 'Session data holds characters PostgreSQL cannot store', cause: error, context });
  if (code === '54000') return new SessionError('ESESS_TOO_LARGE', { message: 'Session data exceeds a PostgreSQL limit', cause: error, context });
  return new SessionError('ESESS_STORE_UNAVAILABLE', { cause: error, context });
}

export function toNumber(value: unknown): number {
  const n = toInteger(value);
  if (n === undefined) throw new SessionError('ESESS_STORE_UNAVAILABLE', { message: 'The database returned an unreadable number', context: { store: STORE } });
  return n;
}
