import { ERROR_CODES, SessionError } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';

/** An RFC 9457 problem document with a stable `code` (see docs/errors.md). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail?: string;
}

/** A `SessionError` that also sets response headers (`WWW-Authenticate`, `Allow`). */
export class HttpProblem extends SessionError {
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, options: { message?: string; headers?: Record<string, string> } = {}) {
    super(code, options.message === undefined ? {} : { message: options.message });
    this.headers = options.headers ?? {};
  }
}

export function problemType(code: ErrorCode): string {
  return `urn:elastic-session:error:${code}`;
}

/**
 * The problem for one of our errors, or null for anything else (then the caller answers 500
 * ESESS_INTERNAL and logs it). The title is the code's fixed message; `detail` is only ever the
 * error's own message, which `SessionError`s keep free of IDs, keys and session contents.
 */
export function problemOf(error: unknown): { problem: Problem; headers: Record<string, string> } | null {
  if (!(error instanceof SessionError)) return null;
  const title = ERROR_CODES[error.code].message;
  const problem: Problem = { type: problemType(error.code), title, status: error.status, code: error.code };
  if (error.message !== title) problem.detail = error.message;
  const headers = error instanceof HttpProblem ? { ...error.headers } : {};
  // Worth retrying (another instance, or this one after the store is back).
  if (error.status === 503) headers['retry-after'] = '1';
  return { problem, headers };
}

export function internalProblem(): Problem {
  return { type: problemType('ESESS_INTERNAL'), title: ERROR_CODES.ESESS_INTERNAL.message, status: 500, code: 'ESESS_INTERNAL' };
}
