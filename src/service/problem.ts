import { SessionError } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { internalProblem, PROBLEM_CONTENT_TYPE, problemOf } from '../problem.js';
import type { Problem, ProblemAnswer } from '../problem.js';
import type { Reply } from './http.js';

export type { Problem } from '../problem.js';

/** A `SessionError` that also sets response headers (`WWW-Authenticate`, `Allow`). */
export class HttpProblem extends SessionError {
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, options: { message?: string; headers?: Record<string, string> } = {}) {
    super(code, options.message === undefined ? {} : { message: options.message });
    this.headers = options.headers ?? {};
  }
}

/**
 * The reply for an error: ours as its problem document (with an `HttpProblem`'s headers),
 * anything else as 500 ESESS_INTERNAL, which the caller logs (`known: false`).
 */
export function problemReply(error: unknown): { reply: Reply; problem: Problem; known: boolean } {
  const known = error instanceof SessionError;
  const answer = known ? problemOf(error) : internalProblem();
  return { reply: replyOf(answer, error instanceof HttpProblem ? error.headers : {}), problem: answer.problem, known };
}

/** A problem answer as a route's reply, with more headers. */
export function replyOf(answer: ProblemAnswer, headers: Record<string, string>): Reply {
  return { status: answer.status, text: answer.body, contentType: PROBLEM_CONTENT_TYPE, headers: { ...headers, ...answer.headers } };
}
