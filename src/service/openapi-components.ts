import { MAX_TIMEOUT_SECONDS } from '../core/manager.js';
import { AUTH_LEVELS } from '../core/session.js';

/** The reusable parts of the OpenAPI document (`openapi.ts`): shared shapes and `components`. */

export const problem = (description: string): Record<string, unknown> => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

export /** A session as the API shows it, besides how it is named (`id`, or a token's `handle`). */
const sessionProperties = {
  userId: { type: ['string', 'null'] },
  data: { type: 'object', additionalProperties: true },
  createdAt: { type: 'string', format: 'date-time' },
  lastSeenAt: { type: 'string', format: 'date-time' },
  expiresAt: { type: 'string', format: 'date-time' },
  absoluteExpiresAt: { type: 'string', format: 'date-time' },
};
export const SESSION_FIELDS = Object.keys(sessionProperties);

export const timeout = { type: 'number', minimum: 1, maximum: MAX_TIMEOUT_SECONDS, description: 'Seconds' };

export function openApiComponents(): Record<string, unknown> {
  return {
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
      Misdirected: problem('The Host header names neither the listen address nor an allowed host (ESESS_MISDIRECTED): the DNS-rebinding defence'),
      SessionNotFound: problem('Unknown, expired or destroyed session (ESESS_NOT_FOUND), or one destroyed while this request wrote to it (ESESS_GONE)'),
      TooLarge: problem('Body or session too large (ESESS_TOO_LARGE, ESESS_TOO_DEEP)'),
      StoreUnavailable: problem('Store unavailable (ESESS_STORE_UNAVAILABLE, ESESS_STORE_CLOSED)'),
      TokenInvalid: {
        description: 'The token was refused (ESESS_TOKEN_INVALID); `reason` says why',
        content: {
          'application/problem+json': {
            schema: { allOf: [{ $ref: '#/components/schemas/Problem' }, { type: 'object', required: ['reason'], properties: { reason: { type: 'string' } } }] },
          },
        },
      },
    },
    schemas: {
      Session: {
        type: 'object',
        required: ['id', ...SESSION_FIELDS, 'authentication'],
        properties: {
          id: { type: 'string', pattern: '^[A-Za-z0-9_-]{43}$' },
          ...sessionProperties,
          authentication: {
            description: 'The latest authentication (PATCH `authenticate`), or null for an anonymous session',
            oneOf: [
              { type: 'null' },
              {
                type: 'object',
                required: ['at', 'method', 'level'],
                properties: { at: { type: 'string', format: 'date-time' }, method: { type: 'string' }, level: { enum: [...AUTH_LEVELS] } },
              },
            ],
          },
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
          authenticate: {
            type: 'object',
            additionalProperties: false,
            required: ['method'],
            description: 'The user just authenticated: recorded as the session\'s authentication (step-up: a higher level)',
            properties: { method: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$' }, level: { enum: [...AUTH_LEVELS], default: 'aal1' } },
          },
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
      TokenPair: {
        type: 'object',
        required: ['accessToken', 'refreshToken', 'expiresIn', 'tokenType'],
        properties: {
          accessToken: { type: 'string', description: 'JWT, typ at+jwt, EdDSA' },
          refreshToken: { type: 'string', pattern: '^[A-Za-z0-9_-]{43}$', description: 'Opaque, single use' },
          expiresIn: { type: 'integer', minimum: 1, description: 'Seconds until the access token expires' },
          tokenType: { const: 'Bearer' },
        },
      },
      TokenSession: {
        type: 'object',
        required: ['handle', ...SESSION_FIELDS],
        properties: { handle: { type: 'string' }, ...sessionProperties },
      },
      AdminStats: {
        type: 'object',
        required: ['intervalMs', 'updatedAt', 'store', 'version', 'totals', 'errorsByCode', 'recent', 'series'],
        properties: {
          intervalMs: { type: 'integer' },
          updatedAt: { type: 'string', format: 'date-time' },
          store: { type: 'object', properties: { name: { type: 'string' }, nativeTtl: { type: 'boolean' }, userIndex: { type: 'boolean' } } },
          version: { type: 'string' },
          totals: { type: 'object', additionalProperties: true },
          errorsByCode: { type: 'array', items: { type: 'object', properties: { code: { type: 'string' }, status: { type: 'integer' }, count: { type: 'number' } } } },
          recent: {
            type: 'object',
            required: ['windowMs', 'rps', 'p50', 'p99'],
            properties: { windowMs: { type: 'integer' }, rps: { type: 'number' }, p50: { type: ['number', 'null'] }, p99: { type: ['number', 'null'] } },
          },
          series: {
            type: 'object',
            description: 'Columns of equal length, oldest first; t is milliseconds since the epoch',
            additionalProperties: { type: 'array', items: { type: ['number', 'null'] } },
          },
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
  };
}
