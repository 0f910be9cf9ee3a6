import { AUTH_LEVELS } from '../core/session.js';
import { MAX_TIMEOUT_SECONDS } from '../core/manager.js';
import { openApiComponents, problem } from './openapi-components.js';

/**
 * The OpenAPI 3.1 description of the service, served at `/openapi.json`. Written by hand (it is
 * documentation); a test checks it against the route table both ways.
 */


const sessionResponse = (description: string): Record<string, unknown> => ({
  description,
  headers: { ETag: { $ref: '#/components/headers/ETag' } },
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Session' } } },
});

const common = {
  '400': { $ref: '#/components/responses/BadRequest' },
  '401': { $ref: '#/components/responses/Unauthorized' },
  '421': { $ref: '#/components/responses/Misdirected' },
  '503': { $ref: '#/components/responses/StoreUnavailable' },
};


const sessionId = { $ref: '#/components/parameters/SessionId' };
const userId = { $ref: '#/components/parameters/UserId' };

const tokenBody = (field: string): Record<string, unknown> => ({
  type: 'object',
  additionalProperties: false,
  required: [field],
  properties: { [field]: { type: 'string', maxLength: 4096 } },
});

export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'elastic-session service',
      version,
      description:
        'Shared session state over HTTP. Sessions live in the configured store; any instance serves any request. ' +
        'Session IDs are secrets: keep them out of logs. Unknown, expired, destroyed and malformed IDs all answer 404. ' +
        'A method a path does not have answers 405 with an Allow header; HEAD is answered wherever GET is.',
    },
    servers: [{ url: '/' }],
    security: [{ apiKey: [] }],
    paths: {
      '/v1/sessions': {
        post: {
          operationId: 'createSession',
          summary: 'Create a session',
          requestBody: {
            required: false,
            content: { 'application/json': { schema: { $ref: '#/components/schemas/CreateSession' } } },
          },
          responses: { '201': sessionResponse('The new session'), ...common, '413': { $ref: '#/components/responses/TooLarge' } },
        },
      },
      '/v1/sessions/{id}': {
        parameters: [sessionId],
        get: {
          operationId: 'getSession',
          summary: 'Read a session',
          parameters: [
            { name: 'maxAuthAge', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: MAX_TIMEOUT_SECONDS }, description: 'Answer 401 ESESS_REAUTH_REQUIRED unless the session authenticated within this many seconds' },
            { name: 'minLevel', in: 'query', required: false, schema: { enum: [...AUTH_LEVELS] }, description: '... and at this level or higher (needs maxAuthAge)' },
          ],
          responses: {
            '200': sessionResponse('The session'),
            '404': { $ref: '#/components/responses/SessionNotFound' },
            ...common,
            '401': problem('Missing or invalid API key (ESESS_UNAUTHORIZED), or not authenticated recently enough for maxAuthAge/minLevel (ESESS_REAUTH_REQUIRED)'),
          },
        },
        patch: {
          operationId: 'updateSession',
          summary: 'Change fields of a session',
          description: 'Applied as a delta: parallel PATCHes of different fields all survive. With If-Match, applied only if the session is still at that version.',
          parameters: [{ name: 'If-Match', in: 'header', required: false, schema: { type: 'string', examples: ['"3"'] }, description: 'An ETag from GET or PATCH, or *' }],
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/PatchSession' } } } },
          responses: {
            '200': sessionResponse('The session after the change'),
            '404': { $ref: '#/components/responses/SessionNotFound' },
            '409': problem('If-Match does not match the current version (ESESS_CONFLICT)'),
            '413': { $ref: '#/components/responses/TooLarge' },
            ...common,
          },
        },
        delete: {
          operationId: 'destroySession',
          summary: 'Destroy a session',
          description: 'Idempotent: 204 whether or not the session existed. A destroyed ID never comes back.',
          responses: { '204': { description: 'Destroyed (or already absent)' }, ...common },
        },
      },
      '/v1/sessions/{id}/touch': {
        parameters: [sessionId],
        post: {
          operationId: 'touchSession',
          summary: 'Move the idle deadline now',
          responses: { '200': sessionResponse('The session'), '404': { $ref: '#/components/responses/SessionNotFound' }, ...common },
        },
      },
      '/v1/sessions/{id}/regenerate': {
        parameters: [sessionId],
        post: {
          operationId: 'regenerateSession',
          summary: 'Issue a new ID for the session (login, privilege change)',
          description: 'The data moves to a new ID; the old ID answers 404 from then on.',
          responses: { '201': sessionResponse('The session under its new ID'), '404': { $ref: '#/components/responses/SessionNotFound' }, ...common },
        },
      },
      '/v1/sessions/{id}/tokens': {
        parameters: [sessionId],
        post: {
          operationId: 'issueTokens',
          summary: 'Issue an access token and a refresh token for the session (token mode)',
          description:
            'For callers that cannot hold a cookie. The access token is a short-lived signed JWT (typ at+jwt) naming the session by its handle, never its ID; ' +
            'the refresh token is opaque and single-use. Destroying, regenerating or revoking the session makes both fail.',
          responses: {
            '201': { description: 'A new token family', content: { 'application/json': { schema: { $ref: '#/components/schemas/TokenPair' } } } },
            '404': { $ref: '#/components/responses/SessionNotFound' },
            '501': problem('Token mode is off: the optional dependency jose is missing (ESESS_UNSUPPORTED)'),
            ...common,
          },
        },
      },
      '/v1/tokens/refresh': {
        post: {
          operationId: 'refreshTokens',
          summary: 'Spend a refresh token for a new pair',
          description: 'Each refresh token works once. Presenting a spent one answers 401 (reason refresh-reused) and revokes its whole family.',
          requestBody: { required: true, content: { 'application/json': { schema: tokenBody('refreshToken') } } },
          responses: {
            '201': { description: 'A new pair in the same family', content: { 'application/json': { schema: { $ref: '#/components/schemas/TokenPair' } } } },
            ...common,
            '401': { $ref: '#/components/responses/TokenInvalid' },
          },
        },
      },
      '/v1/tokens/verify': {
        post: {
          operationId: 'verifyToken',
          summary: 'Verify an access token and read its session',
          requestBody: { required: true, content: { 'application/json': { schema: tokenBody('accessToken') } } },
          responses: {
            '200': {
              description: 'The token is valid; the session it belongs to (by handle) and its claims',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: ['session', 'claims'],
                    properties: { session: { $ref: '#/components/schemas/TokenSession' }, claims: { type: 'object', additionalProperties: true } },
                  },
                },
              },
            },
            ...common,
            '401': { $ref: '#/components/responses/TokenInvalid' },
          },
        },
      },
      '/v1/tokens/jwks': {
        get: {
          operationId: 'tokenKeys',
          summary: 'The public keys that verify access tokens (JWK Set)',
          description:
            'For resource servers that verify access tokens locally. Local verification checks signature and claims only; ' +
            'revocation and session liveness are checked by POST /v1/tokens/verify.',
          responses: {
            '200': {
              description: 'RFC 7517 JWK Set',
              content: { 'application/json': { schema: { type: 'object', required: ['keys'], properties: { keys: { type: 'array', items: { type: 'object' } } } } } },
            },
            '501': problem('Token mode is off: the optional dependency jose is missing (ESESS_UNSUPPORTED)'),
            ...common,
          },
        },
      },
      '/v1/tokens/revoke': {
        post: {
          operationId: 'revokeToken',
          summary: 'Revoke an access token (by its jti) or a refresh token (its whole family)',
          description: 'Answers 204 whether or not the token was valid (RFC 7009).',
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { oneOf: [tokenBody('accessToken'), tokenBody('refreshToken')] } } },
          },
          responses: { '204': { description: 'Revoked (or nothing to revoke)' }, ...common },
        },
      },
      '/v1/users/{userId}/sessions': {
        parameters: [userId],
        get: {
          operationId: 'listUserSessions',
          summary: "List a user's live sessions",
          responses: {
            '200': {
              description: 'Opaque handles, never IDs',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: ['sessions'],
                    properties: { sessions: { type: 'array', items: { $ref: '#/components/schemas/UserSession' } } },
                  },
                },
              },
            },
            '501': problem('The store has no user index (ESESS_UNSUPPORTED)'),
            ...common,
          },
        },
        delete: {
          operationId: 'revokeUserSessions',
          summary: 'Destroy all sessions of a user',
          responses: {
            '200': {
              description: 'How many were revoked',
              content: {
                'application/json': { schema: { type: 'object', required: ['revoked'], properties: { revoked: { type: 'integer', minimum: 0 } } } },
              },
            },
            '501': problem('The store has no user index (ESESS_UNSUPPORTED)'),
            ...common,
          },
        },
      },
      '/v1/users/{userId}/sessions/{handle}': {
        parameters: [userId, { name: 'handle', in: 'path', required: true, schema: { type: 'string' } }],
        delete: {
          operationId: 'revokeUserSession',
          summary: 'Destroy one session of a user by its handle',
          description: 'Idempotent: 204 whether or not a live session had the handle.',
          responses: { '204': { description: 'Revoked (or already absent)' }, '501': problem('The store has no user index (ESESS_UNSUPPORTED)'), ...common },
        },
      },
      '/': {
        get: {
          operationId: 'index',
          summary: 'Where to go: the dashboard, this document, health and metrics',
          description: 'JSON by default; an HTML page of links when the Accept header prefers text/html (a browser).',
          security: [],
          responses: {
            '200': {
              description: 'Links',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: ['service', 'version', 'links'],
                    properties: {
                      service: { const: 'elastic-session' },
                      version: { type: 'string' },
                      links: { type: 'object', additionalProperties: { type: 'string' } },
                    },
                  },
                },
                'text/html': { schema: { type: 'string' } },
              },
            },
          },
        },
      },
      '/healthz': {
        get: {
          operationId: 'health',
          summary: 'Liveness',
          security: [],
          responses: {
            '200': { description: 'Serving', content: { 'application/json': { schema: { type: 'object', properties: { status: { const: 'ok' } } } } } },
            '503': problem('Shutting down (ESESS_STORE_CLOSED)'),
          },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          summary: 'Prometheus metrics (needs an API key when keys are configured, unless --public-metrics)',
          responses: {
            '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } },
            '401': { $ref: '#/components/responses/Unauthorized' },
          },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'openapi',
          summary: 'This document',
          security: [],
          responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } },
        },
      },
      '/admin': {
        get: {
          operationId: 'adminDashboard',
          summary: 'The admin dashboard page',
          description: 'Holds no data: the page asks for an API key and sends it as a Bearer token to /admin/api/stats and /v1/users routes.',
          security: [],
          responses: { '200': { description: 'HTML, with a Content-Security-Policy allowing only this origin', content: { 'text/html': { schema: { type: 'string' } } } } },
        },
      },
      '/admin/assets/{file}': {
        parameters: [{ name: 'file', in: 'path', required: true, schema: { type: 'string', enum: ['admin.js', 'admin.css'] } }],
        get: {
          operationId: 'adminAsset',
          summary: "The dashboard's script and stylesheet",
          security: [],
          responses: {
            '200': { description: 'JavaScript or CSS', content: { 'text/javascript': { schema: { type: 'string' } }, 'text/css': { schema: { type: 'string' } } } },
            '404': problem('No such asset (ESESS_NOT_FOUND)'),
          },
        },
      },
      '/admin/api/stats': {
        get: {
          operationId: 'adminStats',
          summary: 'What the dashboard charts',
          description:
            'Totals since start (API requests, server errors (5xx) and client errors (4xx), sessions created/expired/destroyed/revoked/regenerated, store keys and bytes, active sessions), ' +
            'every problem response by code with its status, the last ten seconds (requests/s, p50/p99 latency in ms of /v1 requests, null without traffic) ' +
            'and rates between samples taken every intervalMs (requests/s, p50/p99, server errors, created and expired per minute). Sampling starts with the first call and stops after five minutes without one.',
          responses: {
            '200': { description: 'Stats', content: { 'application/json': { schema: { $ref: '#/components/schemas/AdminStats' } } } },
            '401': { $ref: '#/components/responses/Unauthorized' },
          },
        },
      },
    },
    components: openApiComponents(),
  };
}
