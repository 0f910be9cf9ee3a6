import { SessionError } from '../../core/errors.js';

/** nats.js and JetStream failures as typed errors, with subjects (which carry store keys) cut out. */

export const STORE = 'nats';
/** JetStream API error codes (nats-server `errors.json`). */
const API = { wrongLastSequence: 10071, messageTooLarge: 10054, streamNotFound: 10059, notEnabledForAccount: 10039, notEnabled: 10076 } as const;

type ErrorKind = 'timeout' | 'closed' | 'connection' | 'jetstream' | 'bucket' | 'auth' | 'server';

function apiCode(error: unknown): unknown {
  return (error as { api_error?: { err_code?: unknown } } | null)?.api_error?.err_code;
}

export function isWrongLastSequence(error: unknown): boolean {
  return apiCode(error) === API.wrongLastSequence;
}

const KIND_MESSAGES: Record<ErrorKind, string> = {
  timeout: 'NATS did not answer in time; a write may or may not have been applied',
  closed: 'The NATS connection is closed',
  connection: 'NATS cannot be reached',
  jetstream: 'No JetStream stream answered: JetStream is not enabled on the NATS server (nats-server -js) or for the account, or the bucket is gone',
  bucket: 'The NATS KV bucket does not exist',
  auth: 'NATS refused the credentials or their permissions',
  server: 'NATS refused the request',
};

/** nats.js and JetStream failures as typed errors; the kind and the JetStream error code travel in the context. */
export function natsError(error: unknown, operation: string): SessionError {
  if (error instanceof SessionError) {
    if (error.context.operation !== undefined) return error;
    return new SessionError(error.code, { message: error.message, cause: error.cause, context: { ...error.context, operation } });
  }
  const code = String((error as { code?: unknown } | null)?.code ?? '');
  const api = apiCode(error);
  const context = { store: STORE, operation, ...(typeof api === 'number' ? { natsCode: api } : {}) };
  if (code === 'MAX_PAYLOAD_EXCEEDED' || api === API.messageTooLarge) {
    return new SessionError('ESESS_TOO_LARGE', { message: 'Session record exceeds the NATS message size limit (max_payload, or the bucket max_value_size)', context });
  }
  const kind = errorKind(code, api);
  return new SessionError('ESESS_STORE_UNAVAILABLE', { message: KIND_MESSAGES[kind], cause: redacted(error), context: { ...context, kind } });
}

function errorKind(code: string, api: unknown): ErrorKind {
  if (code === 'TIMEOUT' || code === '408') return 'timeout';
  if (code === 'CONNECTION_CLOSED' || code === 'CONNECTION_DRAINING') return 'closed';
  if (code === 'CONNECTION_REFUSED' || code === 'CONNECTION_TIMEOUT' || code === 'DISCONNECT' || code === 'TLS') return 'connection';
  if (code === '503' || api === API.notEnabled || api === API.notEnabledForAccount) return 'jetstream';
  if (api === API.streamNotFound) return 'bucket';
  if (/AUTH|PERMISSIONS|CREDS|ACCOUNT_EXPIRED/.test(code)) return 'auth';
  return 'server';
}

/** The cause without subjects: a permissions error names the subject, which carries a store key. */
function redacted(error: unknown): Error {
  const { name = 'Error', message = String(error), code } = (error ?? {}) as { name?: string; message?: string; code?: unknown };
  return Object.assign(new Error(message.replace(/\$KV\.[^\s"']*/g, '$KV.…')), { name, ...(typeof code === 'string' ? { code } : {}) });
}
