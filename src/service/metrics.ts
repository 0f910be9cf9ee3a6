import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { createSessionMetrics, LATENCY_BUCKETS } from '../metrics.js';
import type { SessionMetrics, UsageSource } from '../metrics.js';
import { labelValue } from '../telemetry-labels.js';

/** The library's session metrics plus what only the service sees: HTTP requests and problem responses. */
export interface ServiceMetrics {
  readonly registry: Registry;
  /** The library part (store latency, lifecycle counters, usage), for callers that need it. */
  readonly session: SessionMetrics;
  /** One finished HTTP request; `route` is the route template, never the concrete path. */
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  /** One problem response, by its stable code. */
  countError(code: string): void;
  requestStarted(): void;
  requestEnded(): void;
  /** Unsubscribes from the telemetry channels. */
  close(): void;
}

export interface MetricsOptions {
  /** Also collect Node.js process metrics (CPU, memory, event loop). @default false */
  defaultMetrics?: boolean;
  /** Stores whose usage is reported (the service passes its own). */
  stores?: readonly UsageSource[];
}

const KNOWN_METHODS = new Set(['GET', 'POST', 'PATCH', 'PUT', 'DELETE', 'HEAD', 'OPTIONS']);

/**
 * A prom-client registry for one service: `createSessionMetrics` (fed by the process-wide
 * telemetry channels, so store and session counters include every manager in the process; one
 * service per process in deployment) plus HTTP request metrics of this service.
 */
export function createMetrics(options: MetricsOptions = {}): ServiceMetrics {
  const session = createSessionMetrics({ defaultMetrics: options.defaultMetrics === true, ...(options.stores ? { stores: options.stores } : {}) });
  const registers = [session.registry];

  const httpDuration = new Histogram({
    name: 'elastic_session_http_request_duration_seconds',
    help: 'HTTP request latency by method, route template and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const httpInFlight = new Gauge({ name: 'elastic_session_http_requests_in_flight', help: 'HTTP requests being served', registers });
  const errors = new Counter({
    name: 'elastic_session_errors_total',
    help: 'Problem responses by stable error code',
    labelNames: ['code'] as const,
    registers,
  });

  return {
    registry: session.registry,
    session,
    observeRequest(method, route, status, seconds) {
      httpDuration.observe({ method: KNOWN_METHODS.has(method) ? method : 'other', route, status: String(status) }, seconds);
    },
    countError(code) {
      errors.inc({ code: labelValue(code) });
    },
    requestStarted() {
      httpInFlight.inc();
    },
    requestEnded() {
      httpInFlight.dec();
    },
    close() {
      session.close();
    },
  };
}
