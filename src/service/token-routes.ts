import { SessionError } from '../core/errors.js';
import { problemOf } from '../problem.js';
import type { TokenIssuer, TokenPair, TokenSession, VerifiedToken } from '../tokens/issuer.js';
import type { Reply, Route } from './http.js';
import { replyOf } from './problem.js';
import type { SessionResource } from './routes.js';

/** A verified token's session as the service shows it: by handle, never by ID. */
export type TokenSessionResource = Omit<SessionResource, 'id' | 'authentication'> & { handle: string };

function sessionResource(session: TokenSession): TokenSessionResource {
  return {
    handle: session.handle,
    userId: session.userId,
    data: session.data,
    createdAt: session.createdAt.toISOString(),
    lastSeenAt: session.lastSeenAt.toISOString(),
    expiresAt: session.expiresAt.toISOString(),
    absoluteExpiresAt: session.absoluteExpiresAt.toISOString(),
  };
}

function invalid(message: string): SessionError {
  return new SessionError('ESESS_INVALID_INPUT', { message });
}

/** The one string field a token body must hold, and nothing else. */
function tokenField(body: unknown, field: 'accessToken' | 'refreshToken'): string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid(`A JSON body { "${field}": "..." } is required`);
  const keys = Object.keys(body);
  if (keys.length !== 1 || keys[0] !== field) throw invalid(`The body must hold exactly one field, "${field}"`);
  const value = (body as Record<string, unknown>)[field];
  if (typeof value !== 'string') throw invalid(`"${field}" must be a string`);
  return value;
}

/**
 * A refused token answers 401 with the reason as an extension member of the problem document,
 * and `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750).
 */
async function tokenReply(fn: () => Promise<Reply>): Promise<Reply> {
  try {
    return await fn();
  } catch (error) {
    if (!(error instanceof SessionError) || error.code !== 'ESESS_TOKEN_INVALID') throw error;
    const reason = String(error.context.reason ?? 'malformed');
    return replyOf(problemOf(error, { reason }), { 'www-authenticate': `Bearer error="invalid_token", error_description="${reason}"` });
  }
}

function pairReply(pair: TokenPair): Reply {
  return { status: 201, body: pair, headers: { pragma: 'no-cache' } };
}

/** `POST /v1/sessions/{id}/tokens`, `POST /v1/tokens/refresh`, `/verify` and `/revoke`. */
export function tokenRoutes(tokens: TokenIssuer | null): Route[] {
  const issuer = (): TokenIssuer => {
    if (tokens === null) throw new SessionError('ESESS_UNSUPPORTED', { message: 'Token mode needs the optional dependency jose (npm install jose)' });
    return tokens;
  };
  return [
    {
      method: 'POST',
      path: '/v1/sessions/{id}/tokens',
      operationId: 'issueTokens',
      async handler(context) {
        const body = await context.body();
        if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).length > 0)) {
          throw invalid('This route takes no body (or an empty object)');
        }
        return pairReply(await issuer().issue(context.params.id ?? ''));
      },
    },
    {
      method: 'POST',
      path: '/v1/tokens/refresh',
      operationId: 'refreshTokens',
      async handler(context) {
        const refreshToken = tokenField(await context.body(), 'refreshToken');
        return tokenReply(async () => pairReply(await issuer().refresh(refreshToken)));
      },
    },
    {
      method: 'POST',
      path: '/v1/tokens/verify',
      operationId: 'verifyToken',
      async handler(context) {
        const accessToken = tokenField(await context.body(), 'accessToken');
        return tokenReply(async () => {
          const { claims, session }: VerifiedToken = await issuer().verify(accessToken);
          return { status: 200, body: { session: sessionResource(session), claims } };
        });
      },
    },
    {
      method: 'GET',
      path: '/v1/tokens/jwks',
      operationId: 'tokenKeys',
      async handler() {
        return { status: 200, body: await issuer().jwks() };
      },
    },
    {
      method: 'POST',
      path: '/v1/tokens/revoke',
      operationId: 'revokeToken',
      async handler(context) {
        const body = await context.body();
        const field = typeof body === 'object' && body !== null && 'refreshToken' in body ? 'refreshToken' : 'accessToken';
        // RFC 7009: revoking answers the same whether or not the token was valid.
        const token = tokenField(body, field);
        try {
          if (field === 'refreshToken') await issuer().revokeRefreshToken(token);
          else await issuer().revokeAccessToken(token);
        } catch (error) {
          if (!(error instanceof SessionError) || error.code !== 'ESESS_TOKEN_INVALID') throw error;
        }
        return { status: 204 };
      },
    },
  ];
}
