/**
 * The one builder of RFC 9457 problem documents: the session service, its token routes and the
 * framework adapters all answer errors with it, so a client sees one shape wherever it failed.
 * Web-standard only: the Hono adapter runs it on any runtime.
 */
import { ERROR_CODES, SessionError } from './core/errors.js';
import type { ErrorCode } from './core/errors.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** An RFC 9457 problem document with a stable `code` (see docs/errors.md). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail?: string;
}

export interface ProblemAnswer {
  status: number;
  problem: Problem;
  /** Headers every answer with this problem carries (`Retry-After` on a 503); not the content type. */
  headers: Record<string, string>;
  /** The document as JSON text, extension members included. */
  body: string;
}

export function problemType(code: ErrorCode): string {
  return `urn:elastic-session:error:${code}`;
}

/**
 * The problem for one of our errors. The title is the code's fixed message; `detail` is only
 * ever the error's own message, which `SessionError`s keep free of IDs, keys and session
 * contents. `extensions` are extension members (RFC 9457 §3.2), written after the standard ones.
 */
export function problemOf(error: SessionError, extensions: Record<string, string> = {}): ProblemAnswer {
  const title = ERROR_CODES[error.code].message;
  const problem: Problem = { type: problemType(error.code), title, status: error.status, code: error.code };
  if (error.message !== title) problem.detail = error.message;
  const headers: Record<string, string> = {};
  // Worth retrying: another instance, or this one once the store is back.
  if (error.status === 503) headers['retry-after'] = '1';
  return { status: error.status, problem, headers, body: JSON.stringify({ ...problem, ...extensions }) };
}

/** The answer to an error that is not ours: 500 ESESS_INTERNAL, saying nothing about it. */
export function internalProblem(): ProblemAnswer {
  return problemOf(new SessionError('ESESS_INTERNAL'));
}
