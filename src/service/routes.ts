import { isSessionError, SessionError } from '../core/errors.js';
import type { SessionManager, UserSessionSummary } from '../core/manager.js';
import { MAX_TIMEOUT_SECONDS } from '../core/manager.js';
import { recentAuthCheck } from '../adapters/reauth.js';
import { AUTH_LEVELS, levelRank } from '../core/session.js';
import type { AuthenticationInput, AuthLevel, Session } from '../core/session.js';
import type { Reply, RequestContext, Route } from './http.js';

const MAX_USER_ID = 512;

/** A session as the API shows it. `id` is the raw session ID. */
export interface SessionResource {
  id: string;
  userId: string | null;
  data: Record<string, unknown>;
  createdAt: string;
  lastSeenAt: string;
  expiresAt: string;
  absoluteExpiresAt: string;
  /** The latest authentication (`markAuthenticated`), or null for an anonymous session. */
  authentication: { at: string; method: string; level: AuthLevel } | null;
}

export interface UserSessionResource {
  handle: string;
  createdAt: string;
  lastSeenAt: string;
  expiresAt: string;
}

export function toResource(session: Session): SessionResource {
  return {
    id: session.id,
    userId: session.userId,
    data: session.toJSON(),
    createdAt: session.createdAt.toISOString(),
    lastSeenAt: session.lastSeenAt.toISOString(),
    expiresAt: session.expiresAt.toISOString(),
    absoluteExpiresAt: session.absoluteExpiresAt.toISOString(),
    authentication: authenticationOf(session),
  };
}

function authenticationOf(session: Session): SessionResource['authentication'] {
  const auth = session.authentication;
  return auth === null ? null : { at: auth.at.toISOString(), method: auth.method, level: auth.level };
}

function toUserSessionResource(summary: UserSessionSummary): UserSessionResource {
  return {
    handle: summary.handle,
    createdAt: summary.createdAt.toISOString(),
    lastSeenAt: summary.lastSeenAt.toISOString(),
    expiresAt: summary.expiresAt.toISOString(),
  };
}

/** Unknown, expired, destroyed and malformed IDs all answer the same. */
function notFound(): SessionError {
  return new SessionError('ESESS_NOT_FOUND', { message: 'No live session has this ID' });
}

/** A compare-and-swap that failed once, on the client's version: nothing was retried. */
function staleIfMatch(): SessionError {
  return new SessionError('ESESS_CONFLICT', { message: 'The session changed since the version in If-Match: GET it again for the current ETag' });
}

function invalid(message: string, field?: string): SessionError {
  return new SessionError('ESESS_INVALID_INPUT', { message, context: field === undefined ? {} : { field } });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkKeys(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const key of Object.keys(body)) {
    if (allowed.includes(key)) continue;
    // Name the field only when it cannot be a session ID (43 characters) or other long secret.
    const shown = /^[A-Za-z0-9_-]{1,32}$/.test(key) ? ` "${key}"` : '';
    throw invalid(`Unknown body field${shown}; allowed: ${allowed.join(', ')}`);
  }
}

function userIdOf(value: unknown, field: string): string | null {
  if (value === null) return null;
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_USER_ID) {
    throw invalid(`${field} must be null or a string of 1 to ${MAX_USER_ID} characters`, field);
  }
  return value;
}

function timeoutOf(value: unknown, field: string, max = MAX_TIMEOUT_SECONDS): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 1 || value > max) {
    throw invalid(`${field} must be a number of seconds from 1 to ${max}`, field);
  }
  return value;
}

export interface CreateBody {
  data?: Record<string, unknown>;
  userId?: string | null;
  idleTimeout?: number;
  absoluteTimeout?: number;
}

/** `maxAbsoluteTimeout`: seconds, the store's limit on how long it keeps a record (see `SessionStore.maxLifetimeMs`). */
export function parseCreateBody(body: unknown, maxAbsoluteTimeout = MAX_TIMEOUT_SECONDS): CreateBody {
  if (body === undefined) return {};
  if (!isPlainObject(body)) throw invalid('The body must be a JSON object');
  checkKeys(body, ['data', 'userId', 'idleTimeout', 'absoluteTimeout']);
  const parsed: CreateBody = {};
  if (body.data !== undefined) {
    if (!isPlainObject(body.data)) throw invalid('data must be an object of fields', 'data');
    parsed.data = body.data;
  }
  if (body.userId !== undefined) parsed.userId = userIdOf(body.userId, 'userId');
  if (body.idleTimeout !== undefined) parsed.idleTimeout = timeoutOf(body.idleTimeout, 'idleTimeout');
  if (body.absoluteTimeout !== undefined) parsed.absoluteTimeout = timeoutOf(body.absoluteTimeout, 'absoluteTimeout', maxAbsoluteTimeout);
  return parsed;
}

export interface PatchBody {
  set: Record<string, unknown>;
  unset: string[];
  userId?: string | null;
  /** The user just authenticated: `markAuthenticated({ method, level })` before the save. */
  authenticate?: AuthenticationInput;
}

export function parsePatchBody(body: unknown): PatchBody {
  if (body === undefined) throw invalid('A JSON body { set?, unset?, userId?, authenticate? } is required');
  if (!isPlainObject(body)) throw invalid('The body must be a JSON object');
  checkKeys(body, ['set', 'unset', 'userId', 'authenticate']);
  const parsed: PatchBody = { set: {}, unset: [] };
  if (body.set !== undefined) {
    if (!isPlainObject(body.set)) throw invalid('set must be an object of fields', 'set');
    parsed.set = body.set;
  }
  if (body.unset !== undefined) {
    if (!Array.isArray(body.unset) || !body.unset.every((field): field is string => typeof field === 'string')) {
      throw invalid('unset must be an array of field names', 'unset');
    }
    parsed.unset = body.unset;
  }
  for (const field of parsed.unset) {
    if (Object.hasOwn(parsed.set, field)) throw invalid('A field cannot be both set and unset in one request', 'unset');
  }
  if (body.userId !== undefined) parsed.userId = userIdOf(body.userId, 'userId');
  if (body.authenticate !== undefined) {
    const auth = body.authenticate;
    if (!isPlainObject(auth) || typeof auth.method !== 'string' || (auth.level !== undefined && levelRank(auth.level) < 0)) {
      throw invalid(`authenticate must be { method, level? } with level one of ${AUTH_LEVELS.join(', ')}`, 'authenticate');
    }
    checkKeys(auth, ['method', 'level']);
    parsed.authenticate = { method: auth.method, ...(auth.level === undefined ? {} : { level: auth.level as AuthLevel }) };
  }
  return parsed;
}

/** The re-authentication gate of `GET /v1/sessions/{id}?maxAuthAge=SECONDS[&minLevel=aalN]`, or null without one. */
function recentAuthOf(query: URLSearchParams): ReturnType<typeof recentAuthCheck> | null {
  const maxAge = query.get('maxAuthAge');
  const minLevel = query.get('minLevel');
  if (maxAge === null) {
    if (minLevel !== null) throw invalid('minLevel needs maxAuthAge', 'minLevel');
    return null;
  }
  const seconds = /^[1-9][0-9]{0,8}$/.test(maxAge) ? Number(maxAge) : Number.NaN;
  if (!(seconds > 0 && seconds <= MAX_TIMEOUT_SECONDS)) throw invalid(`maxAuthAge must be a whole number of seconds from 1 to ${MAX_TIMEOUT_SECONDS}`, 'maxAuthAge');
  if (minLevel !== null && levelRank(minLevel) < 0) throw invalid(`minLevel must be one of ${AUTH_LEVELS.join(', ')}`, 'minLevel');
  return recentAuthCheck(seconds, minLevel === null ? {} : { level: minLevel as AuthLevel });
}

/**
 * `If-Match` as an expected version: absent or `*` means none; a quoted version from an
 * ETag (`"7"`) means compare-and-swap against it.
 */
export function expectedVersionOf(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (value === '*') return undefined;
  const match = /^"(0|[1-9][0-9]{0,14})"$/.exec(value);
  if (!match) throw invalid('If-Match must be "*" or one quoted version as sent in ETag');
  return Number(match[1]);
}

function sessionReply(status: number, session: Session): Reply {
  return { status, body: toResource(session), headers: { etag: `"${session.version}"` } };
}

export function sessionRoutes(manager: SessionManager, maxAbsoluteTimeout = MAX_TIMEOUT_SECONDS): Route[] {
  const load = async (context: RequestContext): Promise<Session> => {
    const session = await manager.load(context.params.id ?? '');
    if (!session) throw notFound();
    return session;
  };
  const userIdParam = (context: RequestContext): string => userIdOf(context.params.userId ?? '', 'userId') ?? '';

  return [
    {
      method: 'POST',
      path: '/v1/sessions',
      operationId: 'createSession',
      async handler(context) {
        const body = parseCreateBody(await context.body(), maxAbsoluteTimeout);
        const session = manager.create(body);
        await manager.save(session, { storeEmpty: true });
        return sessionReply(201, session);
      },
    },
    {
      method: 'GET',
      path: '/v1/sessions/{id}',
      operationId: 'getSession',
      async handler(context) {
        const session = await load(context);
        // `?maxAuthAge=SECONDS[&minLevel=aalN]`: the session only if it authenticated that recently (re-authentication gate).
        const query = new URL(context.req.url ?? '/', 'http://service').searchParams;
        const refused = recentAuthOf(query)?.(session);
        if (refused) throw refused;
        return sessionReply(200, session);
      },
    },
    {
      method: 'PATCH',
      path: '/v1/sessions/{id}',
      operationId: 'updateSession',
      async handler(context) {
        const expectVersion = expectedVersionOf(context.req.headers['if-match']);
        const patch = parsePatchBody(await context.body());
        // Refused before any field is touched: the work done on a body too wide for any session stays linear and small.
        const width = Object.keys(patch.set).length;
        if (width > manager.limits.maxFields) {
          throw new SessionError('ESESS_TOO_LARGE', { message: `The PATCH sets ${width} fields, over limits.maxFields (${manager.limits.maxFields})`, context: { limit: 'maxFields', maxFields: manager.limits.maxFields } });
        }
        const session = await load(context);
        if (expectVersion !== undefined && expectVersion !== session.version) throw staleIfMatch();
        for (const [field, value] of Object.entries(patch.set)) session.set(field, value);
        for (const field of patch.unset) session.delete(field);
        if (patch.userId !== undefined) session.userId = patch.userId;
        if (patch.authenticate !== undefined) session.markAuthenticated(patch.authenticate);
        try {
          await manager.save(session, expectVersion === undefined ? {} : { expectVersion });
        } catch (error) {
          // Another write landed between this load and this save: still the If-Match that failed.
          if (expectVersion !== undefined && isSessionError(error, 'ESESS_CONFLICT')) throw staleIfMatch();
          throw error;
        }
        return sessionReply(200, session);
      },
    },
    {
      method: 'DELETE',
      path: '/v1/sessions/{id}',
      operationId: 'destroySession',
      async handler(context) {
        await manager.destroy(context.params.id ?? '');
        return { status: 204 };
      },
    },
    {
      method: 'POST',
      path: '/v1/sessions/{id}/touch',
      operationId: 'touchSession',
      async handler(context) {
        const session = await load(context);
        await manager.touch(session);
        return sessionReply(200, session);
      },
    },
    {
      method: 'POST',
      path: '/v1/sessions/{id}/regenerate',
      operationId: 'regenerateSession',
      async handler(context) {
        const session = await load(context);
        await manager.regenerate(session);
        return sessionReply(201, session);
      },
    },
    {
      method: 'GET',
      path: '/v1/users/{userId}/sessions',
      operationId: 'listUserSessions',
      async handler(context) {
        const sessions = await manager.listUserSessions(userIdParam(context));
        return { status: 200, body: { sessions: sessions.map(toUserSessionResource) } };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/users/{userId}/sessions',
      operationId: 'revokeUserSessions',
      async handler(context) {
        const revoked = await manager.revokeUser(userIdParam(context));
        return { status: 200, body: { revoked } };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/users/{userId}/sessions/{handle}',
      operationId: 'revokeUserSession',
      async handler(context) {
        await manager.revokeUserSession(userIdParam(context), context.params.handle ?? '');
        return { status: 204 };
      },
    },
  ];
}
