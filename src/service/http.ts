import type { IncomingMessage } from 'node:http';
import { SessionError } from '../core/errors.js';
import { safeJsonParse } from '../core/json.js';

export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

export interface Reply {
  status: number;
  /** Serialised as JSON unless `text` is given. */
  body?: unknown;
  text?: string;
  contentType?: string;
  headers?: Record<string, string>;
}

export interface RequestContext {
  req: IncomingMessage;
  /** Path parameters by name. `{id}` is the raw segment (a valid ID needs no decoding); others are percent-decoded. */
  params: Record<string, string>;
  /** The JSON body: undefined when the request has none. */
  body(): Promise<unknown>;
}

export interface Route {
  method: Method;
  /** Path template with `{name}` segments, as in the OpenAPI document. */
  path: string;
  operationId: string;
  handler(context: RequestContext): Promise<Reply>;
}

interface CompiledRoute {
  route: Route;
  segments: readonly (string | { param: string })[];
}

/** A method an `Allow` header can name: the routes' own, and HEAD wherever GET is. */
export type AllowedMethod = Method | 'HEAD';

export type RouteMatch = { route: Route; params: Record<string, string> } | { allowed: AllowedMethod[] } | null;

/** Segments after which a value is an opaque ID, compared raw: IDs are base64url, so any escaping means "not an ID". */
const RAW_PARAMS = new Set(['id']);

/** A small route table: method and path template to handler. */
export class Router {
  readonly routes: readonly Route[];
  readonly #compiled: CompiledRoute[];

  constructor(routes: readonly Route[]) {
    this.routes = routes;
    this.#compiled = routes.map((route) => ({
      route,
      segments: route.path
        .split('/')
        .slice(1)
        .map((segment) => (segment.startsWith('{') && segment.endsWith('}') ? { param: segment.slice(1, -1) } : segment)),
    }));
  }

  /**
   * The route for a method and path; HEAD is served by the GET route (Node sends no body for
   * it). A path that exists under other methods only yields the methods it allows, for a 405
   * with `Allow`.
   */
  match(method: string, pathname: string): RouteMatch {
    const parts = pathname.split('/').slice(1);
    const wanted = method === 'HEAD' ? 'GET' : method;
    const allowed: AllowedMethod[] = [];
    for (const { route, segments } of this.#compiled) {
      const params = matchSegments(segments, parts);
      if (params === null) continue;
      if (route.method === wanted) return { route, params };
      if (!allowed.includes(route.method)) allowed.push(route.method);
      if (route.method === 'GET' && !allowed.includes('HEAD')) allowed.push('HEAD');
    }
    return allowed.length > 0 ? { allowed } : null;
  }
}

function matchSegments(segments: CompiledRoute['segments'], parts: string[]): Record<string, string> | null {
  if (segments.length !== parts.length) return null;
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as CompiledRoute['segments'][number];
    const part = parts[i] as string;
    if (typeof segment === 'string') {
      if (segment !== part) return null;
      continue;
    }
    if (part === '') return null;
    if (RAW_PARAMS.has(segment.param)) {
      params[segment.param] = part;
      continue;
    }
    try {
      params[segment.param] = decodeURIComponent(part);
    } catch {
      throw new SessionError('ESESS_INVALID_INPUT', { message: `Malformed percent-encoding in the ${segment.param} path segment` });
    }
  }
  return params;
}

/** The path of a request target: origin-form up to `?`, or the path of an absolute-form target. */
export function pathnameOf(target: string | undefined): string | null {
  if (target === undefined) return null;
  if (target.startsWith('/')) {
    const end = target.search(/[?#]/);
    return end === -1 ? target : target.slice(0, end);
  }
  if (/^https?:\/\//i.test(target)) {
    try {
      return new URL(target).pathname;
    } catch {
      return null;
    }
  }
  return null;
}

export interface BodyOptions {
  /** Largest body in bytes. */
  limit: number;
  /** Deepest JSON nesting accepted. */
  maxDepth: number;
}

function tooLarge(limit: number): SessionError {
  return new SessionError('ESESS_TOO_LARGE', { message: `Request body exceeds the limit of ${limit} bytes`, context: { limit: 'bodyLimit', bodyLimit: limit } });
}

/** Whether a request announces a body (a non-zero Content-Length or any Transfer-Encoding). */
export function hasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && length !== '0';
}

/**
 * Reads a JSON body: refuses a wrong content type (400) and an announced or actual size over
 * the limit (413) before reading it all; parses with the prototype-safe, depth-limited parser.
 * Resolves undefined when the request has no body.
 */
export async function readJsonBody(req: IncomingMessage, options: BodyOptions): Promise<unknown> {
  if (!hasBody(req)) return undefined;
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw new SessionError('ESESS_INVALID_INPUT', { message: 'Request bodies must be application/json' });
  const announced = req.headers['content-length'];
  if (announced !== undefined && Number(announced) > options.limit) throw tooLarge(options.limit);
  const body = await collect(req, options.limit);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(body);
  } catch {
    throw new SessionError('ESESS_INVALID_INPUT', { message: 'Request body is not valid UTF-8' });
  }
  if (text.trim() === '') return undefined;
  return safeJsonParse(text, options.maxDepth);
}

/**
 * Reads the whole body, or rejects as soon as it outgrows the limit. On overflow the stream is
 * paused, not destroyed, so the 413 can still be written; the caller closes the connection.
 */
function collect(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(new SessionError('ESESS_INVALID_INPUT', { message: 'Request body could not be read', cause: error }));
    };
    const onAborted = (): void => onError(new Error('aborted'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}
