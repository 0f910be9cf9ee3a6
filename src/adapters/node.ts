/**
 * What the adapters over Node's `IncomingMessage` and `ServerResponse` share (node:http,
 * Express, Fastify): the https and client-address reading of a request, the default error
 * response, and the gate that saves the session before the response headers leave.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { isSessionError } from '../core/errors.js';
import type { ClientSignals } from '../security/binding.js';
import { errorResponse } from './request-session.js';
import type { RequestSession } from './request-session.js';
import type { SessionRuntime } from './runtime.js';

/** Whether a Node request counts as https: TLS to this process, or a trusted proxy's X-Forwarded-Proto. */
export function isSecureRequest(runtime: Pick<SessionRuntime, 'isSecure'>, req: IncomingMessage): boolean {
  return runtime.isSecure((req.socket as Partial<TLSSocket> | null)?.encrypted === true, req.headers['x-forwarded-proto']);
}

/** A Node request's binding signals: its User-Agent, and the peer's address (or, with `trustProxy`, the proxy's X-Forwarded-For). */
export function clientOf(runtime: Pick<SessionRuntime, 'clientIp'>, req: IncomingMessage): ClientSignals {
  return { userAgent: req.headers['user-agent'], ip: runtime.clientIp(req.headers['x-forwarded-for'], req.socket?.remoteAddress) };
}

/** The default rendering of an error before any response byte was sent. */
export function sendError(res: ServerResponse, error: unknown): void {
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  if (isSessionError(error)) {
    const problem = errorResponse(error);
    res.writeHead(problem.status, problem.headers).end(problem.body);
    return;
  }
  console.error(error);
  res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('Internal Server Error');
}

export interface ResponseGate {
  /** Drops whatever the handler queued; the caller is about to send an error response instead. */
  abort(): void;
}

type Queued = { method: 'writeHead' | 'write' | 'end' | 'flushHeaders'; args: unknown[] };

/**
 * Holds back the response until the session is saved. The first call that would send headers
 * (`writeHead`, `write`, `end`, `flushHeaders`) starts the save and is queued with any later
 * calls; when the save is done the session headers are added and the calls replayed in order.
 * On a store failure the queued response is dropped (its headers too) and `onError` sends
 * another one, so a failed save is never reported as a success. The wrappers stay in place
 * and pass through once released, so middleware that wraps the same methods keeps working.
 */
export function gateResponse(res: ServerResponse, state: Pick<RequestSession, 'materialized' | 'commit' | 'responseHeaders'>, onError: (error: unknown) => void): ResponseGate {
  const original = { writeHead: res.writeHead, write: res.write, end: res.end, flushHeaders: res.flushHeaders };
  let phase: 'idle' | 'holding' | 'released' = 'idle';
  let aborted = false;
  const queue: Queued[] = [];

  const release = (cookie: string | null): void => {
    if (aborted) return;
    phase = 'released';
    const head = queue.find((call) => call.method === 'writeHead');
    if (head) head.args = moveHeadersToResponse(res, head.args);
    if (cookie !== null) {
      appendSetCookie(res, cookie);
      for (const [header, value] of state.responseHeaders()) res.setHeader(header, value);
    }
    let drained = true;
    for (const call of queue) {
      const result: unknown = Reflect.apply(original[call.method], res, call.args);
      if (call.method === 'write') drained = result !== false;
    }
    const wrote = queue.some((call) => call.method === 'write');
    queue.length = 0;
    if (wrote && drained) res.emit('drain');
  };

  /** True when the call was queued; false when it should go through now. */
  const hold = (method: Queued['method'], args: unknown[]): boolean => {
    if (phase === 'released') return false;
    if (phase === 'idle') {
      if (!state.materialized) {
        // Nothing to save. Closing the session now makes a change after the headers left
        // throw, instead of being lost.
        phase = 'released';
        state.commit().catch(() => undefined);
        return false;
      }
      phase = 'holding';
      let committing: Promise<string | null>;
      try {
        committing = state.commit();
      } catch (error) {
        committing = Promise.reject(error);
      }
      committing.then(release, (error: unknown) => {
        queue.length = 0;
        if (aborted) return;
        phase = 'released';
        for (const name of res.getHeaderNames()) res.removeHeader(name);
        res.statusCode = 500;
        onError(error);
      });
    }
    queue.push({ method, args });
    return true;
  };

  res.writeHead = function writeHead(this: ServerResponse, ...args: unknown[]): ServerResponse {
    if (hold('writeHead', args)) return this;
    return Reflect.apply(original.writeHead, this, args) as ServerResponse;
  } as ServerResponse['writeHead'];
  res.write = function write(this: ServerResponse, ...args: unknown[]): boolean {
    // Back-pressure while held: pipes wait for the 'drain' emitted on release.
    if (hold('write', args)) return false;
    return Reflect.apply(original.write, this, args) as boolean;
  } as ServerResponse['write'];
  res.end = function end(this: ServerResponse, ...args: unknown[]): ServerResponse {
    if (hold('end', args)) return this;
    return Reflect.apply(original.end, this, args) as ServerResponse;
  } as ServerResponse['end'];
  res.flushHeaders = function flushHeaders(this: ServerResponse): void {
    if (hold('flushHeaders', [])) return;
    Reflect.apply(original.flushHeaders, this, []);
  };

  return {
    abort() {
      aborted = true;
      queue.length = 0;
      phase = 'released';
    },
  };
}

/**
 * Applies the headers argument of a held `writeHead(status, [message], headers)` through
 * `setHeader`, so the session's Set-Cookie and Cache-Control are merged with them instead of
 * being replaced by them; returns the arguments without the headers.
 */
function moveHeadersToResponse(res: ServerResponse, args: unknown[]): unknown[] {
  const last = args[args.length - 1];
  if (args.length < 2 || typeof last !== 'object' || last === null) return args;
  const pairs: [string, unknown][] = [];
  if (Array.isArray(last)) {
    if (last.every((item) => Array.isArray(item))) for (const [name, value] of last as [string, unknown][]) pairs.push([name, value]);
    else for (let i = 0; i + 1 < last.length; i += 2) pairs.push([String(last[i]), last[i + 1]]);
  } else {
    pairs.push(...Object.entries(last));
  }
  for (const [name, value] of pairs) {
    if (value === undefined) continue;
    if (name.toLowerCase() === 'set-cookie') {
      for (const cookie of Array.isArray(value) ? value : [value]) appendSetCookie(res, String(cookie));
    } else {
      res.setHeader(name, value as string | number | readonly string[]);
    }
  }
  return args.slice(0, -1);
}

function appendSetCookie(res: ServerResponse, cookie: string): void {
  const existing = res.getHeader('set-cookie');
  if (existing === undefined) res.setHeader('set-cookie', cookie);
  else res.setHeader('set-cookie', [...(Array.isArray(existing) ? existing : [String(existing)]), cookie]);
}
