/**
 * Every error elastic-session throws on purpose is a `SessionError` with a stable `code`.
 * Codes never change meaning; `docs/errors.md` lists them and a test keeps the two in sync.
 * Messages never contain session IDs, tokens, keys or session contents.
 */

export const ERROR_CODES = {
  ESESS_CONFIG: { status: 500, message: 'Invalid configuration' },
  ESESS_USAGE: { status: 500, message: 'Session API used out of order' },
  ESESS_INVALID_INPUT: { status: 400, message: 'Invalid input' },
  ESESS_UNSAFE_KEY: { status: 400, message: 'Forbidden key in session data' },
  ESESS_TOO_LARGE: { status: 413, message: 'Session data exceeds a configured limit' },
  ESESS_TOO_DEEP: { status: 413, message: 'Session data is nested deeper than allowed' },
  ESESS_NOT_SERIALIZABLE: { status: 400, message: 'Session data is not JSON-serializable' },
  ESESS_GONE: { status: 404, message: 'Session is gone (destroyed, expired or regenerated)' },
  ESESS_CONFLICT: { status: 409, message: 'Concurrent modification: the session changed meanwhile' },
  ESESS_STORE_UNAVAILABLE: { status: 503, message: 'Session store unavailable' },
  ESESS_STORE_CLOSED: { status: 503, message: 'Session store is closed' },
  ESESS_UNSUPPORTED: { status: 501, message: 'Operation not supported by this store' },
  ESESS_NOT_FOUND: { status: 404, message: 'Not found' },
  ESESS_METHOD_NOT_ALLOWED: { status: 405, message: 'Method not allowed for this path' },
  ESESS_MISDIRECTED: { status: 421, message: 'Request not addressed to this service' },
  ESESS_UNAUTHORIZED: { status: 401, message: 'Missing or invalid credentials' },
  ESESS_TOKEN_INVALID: { status: 401, message: 'Token rejected' },
  ESESS_REAUTH_REQUIRED: { status: 401, message: 'Recent authentication required' },
  ESESS_TOO_MANY_SESSIONS: { status: 409, message: 'The user has as many sessions as allowed' },
  ESESS_INTERNAL: { status: 500, message: 'Internal error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface SessionErrorOptions {
  /** Replaces the default message of the code. Must not contain secrets. */
  message?: string;
  cause?: unknown;
  /** Non-secret details (option names, limits, store names). */
  context?: Record<string, string | number | boolean>;
}

export class SessionError extends Error {
  override readonly name = 'SessionError';
  readonly code: ErrorCode;
  /** The HTTP status a server should answer with. */
  readonly status: number;
  readonly context: Record<string, string | number | boolean>;

  constructor(code: ErrorCode, options: SessionErrorOptions = {}) {
    super(options.message ?? ERROR_CODES[code].message, { cause: options.cause });
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.context = options.context ?? {};
  }

  /** Whether retrying the same operation later can succeed. */
  get retriable(): boolean {
    return this.code === 'ESESS_STORE_UNAVAILABLE' || this.code === 'ESESS_CONFLICT';
  }
}

export function isSessionError(error: unknown, code?: ErrorCode): error is SessionError {
  return error instanceof SessionError && (code === undefined || error.code === code);
}

export function configError(option: string, problem: string): SessionError {
  return new SessionError('ESESS_CONFIG', { message: `Invalid option "${option}": ${problem}`, context: { option } });
}
