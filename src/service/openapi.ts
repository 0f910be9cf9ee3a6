import { MAX_TIMEOUT_SECONDS } from '../core/manager.js';

/**
 * The OpenAPI 3.1 description of the service, served at `/openapi.json`. Written by hand (it is
 * documentation); a test checks it against the route table both ways.
 */

const problem = (description: string): Record<string, unknown> => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

const sessionResponse = (description: string): Record<string, unknown> => ({
  description,
  headers: { ETag: { $ref: '#/components/headers/ETag' } },
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Session' } } },
});

const common = {
  '400': { $ref: '#/components/responses/BadRequest' },
  '401': { $ref: '#/components/responses/Unauthorized' },
  '503': { $ref: '#/components/responses/StoreUnavailable' },
};

const sessionId = { $ref: '#/components/parameters/SessionId' };
const userId = { $ref: '#/components/parameters/UserId' };
const timeout = { type: 'number', minimum: 1, maximum: MAX_TIMEOUT_SECONDS, description: 'Seconds' };

export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'elastic-session service',
      version,
      description:
        'Shared session state over HTTP. Sessions live in the configured store; any instance serves any request. ' +
        'Session IDs are secrets: keep them out of logs. Unknown, expired, destroyed and malformed IDs all answer 404.',
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
          responses: { '200': sessionResponse('The session'), '404': { $ref: '#/components/responses/SessionNotFound' }, ...common },
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
          summary: 'Prometheus metrics',
          security: [],
          responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } },
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
    },
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key from --api-key or ELASTIC_SESSION_API_KEYS; not required when none is configured' } },
      parameters: {
        SessionId: { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{43}$' }, description: 'The raw session ID (secret)' },
        UserId: { name: 'userId', in: 'path', required: true, schema: { type: 'string', minLength: 1, maxLength: 512 } },
      },
      headers: {
        ETag: { description: 'The session version, for If-Match', schema: { type: 'string', examples: ['"3"'] } },
      },
      responses: {
        BadRequest: problem('Malformed input, or a body that is not application/json (ESESS_INVALID_INPUT, ESESS_UNSAFE_KEY, ESESS_NOT_SERIALIZABLE)'),
        Unauthorized: problem('Missing or invalid API key (ESESS_UNAUTHORIZED)'),
        SessionNotFound: problem('Unknown, expired or destroyed session (ESESS_NOT_FOUND), or one destroyed while this request wrote to it (ESESS_GONE)'),
        TooLarge: problem('Body or session too large (ESESS_TOO_LARGE, ESESS_TOO_DEEP)'),
        StoreUnavailable: problem('Store unavailable (ESESS_STORE_UNAVAILABLE, ESESS_STORE_CLOSED)'),
      },
      schemas: {
        Session: {
          type: 'object',
          required: ['id', 'userId', 'data', 'createdAt', 'lastSeenAt', 'expiresAt', 'absoluteExpiresAt'],
          properties: {
            id: { type: 'string', pattern: '^[A-Za-z0-9_-]{43}$' },
            userId: { type: ['string', 'null'] },
            data: { type: 'object', additionalProperties: true },
            createdAt: { type: 'string', format: 'date-time' },
            lastSeenAt: { type: 'string', format: 'date-time' },
            expiresAt: { type: 'string', format: 'date-time' },
            absoluteExpiresAt: { type: 'string', format: 'date-time' },
          },
        },
        CreateSession: {
          type: 'object',
          additionalProperties: false,
          properties: {
            data: { type: 'object', additionalProperties: true },
            userId: { type: ['string', 'null'], minLength: 1, maxLength: 512 },
            idleTimeout: timeout,
            absoluteTimeout: timeout,
          },
        },
        PatchSession: {
          type: 'object',
          additionalProperties: false,
          properties: {
            set: { type: 'object', additionalProperties: true },
            unset: { type: 'array', items: { type: 'string' } },
            userId: { type: ['string', 'null'], minLength: 1, maxLength: 512 },
          },
        },
        UserSession: {
          type: 'object',
          required: ['handle', 'createdAt', 'lastSeenAt', 'expiresAt'],
          properties: {
            handle: { type: 'string' },
            createdAt: { type: 'string', format: 'date-time' },
            lastSeenAt: { type: 'string', format: 'date-time' },
            expiresAt: { type: 'string', format: 'date-time' },
          },
        },
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'code'],
          properties: {
            type: { type: 'string', format: 'uri' },
            title: { type: 'string' },
            status: { type: 'integer' },
            code: { type: 'string', pattern: '^ESESS_[A-Z_]+$' },
            detail: { type: 'string' },
          },
        },
      },
    },
  };
}
