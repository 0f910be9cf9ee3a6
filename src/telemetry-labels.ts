/**
 * Label values from telemetry, shared by the Prometheus metrics and the OpenTelemetry spans.
 * Apart from `metrics.ts` so that tracing never loads prom-client.
 */
import { SessionError } from './core/errors.js';

/** A store error's kind as a low-cardinality label: our code (with the store's failure kind), a driver's upper-case code, or "unknown". */
export function errorKind(error: unknown): string {
  if (error instanceof SessionError) {
    const kind = error.context.kind;
    return typeof kind === 'string' && /^[a-z]{1,20}$/.test(kind) ? `${error.code}:${kind}` : error.code;
  }
  const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,39}$/.test(code) ? code : 'unknown';
}

/** A label value from telemetry, bounded so a misbehaving publisher cannot explode cardinality. */
export function labelValue(value: unknown): string {
  return typeof value === 'string' && /^[A-Za-z0-9_:.-]{1,40}$/.test(value) ? value : 'other';
}
