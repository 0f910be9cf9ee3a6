import { SessionError } from '../../core/errors.js';

export const STORE = 'mysql';

/** Whether the connection may be broken (or in an unknown state) after this error. */
export function isFatal(error: unknown): boolean {
  if (error instanceof SessionError) return false;
  return (error as { fatal?: unknown } | null)?.fatal === true || !(error as { sqlState?: unknown } | null)?.sqlState;
}

/** Driver and server failures as typed errors; the MySQL error code travels in the context. */
export function storeError(error: unknown, operation: string): SessionError {
  if (error instanceof SessionError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const context = { store: STORE, operation, ...(typeof code === 'string' ? { mysqlCode: code } : {}) };
  if (code === 'ER_DATA_TOO_LONG') return new SessionError('ESESS_INVALID_INPUT', { message: 'A store key or user ID is longer than the session table allows', cause: error, context });
  if (code === 'ER_NET_PACKET_TOO_LARGE') return new SessionError('ESESS_TOO_LARGE', { message: 'Session data exceeds the server\'s max_allowed_packet', cause: error, context });
  return new SessionError('ESESS_STORE_UNAVAILABLE', { cause: error, context });
}
