import { createHmac } from 'node:crypto';
import { isIP } from 'node:net';
import { configError } from '../core/errors.js';
import { publishAnomaly, subjectOf } from '../core/telemetry.js';
import type { AnomalyEvent, EventSubject } from '../core/telemetry.js';

/**
 * Optional binding signals: a session remembers a keyed fingerprint of the client that uses it
 * (its User-Agent and network prefix) and raises an `anomaly` event on
 * `elastic-session:anomaly` when they change, instead of failing the request: user agents
 * update and mobile clients change networks, so a change is a signal for monitoring, not proof
 * of theft. `onChange: 'destroy'` tells the caller to end the session instead.
 *
 * The fingerprint is an HMAC, so the stored value reveals neither the User-Agent nor the
 * address. Events say which signals changed, never their values; like every security event they
 * carry the time, the principal, the session's opaque handle (when given) and the address the
 * request came from, so an operator can act on them.
 *
 * @example
 * const bind = createBindingCheck({ key: process.env.BINDING_KEY });
 * app.use(async (req, res, next) => {
 *   const session = await req.loadSession();
 *   const { action } = bind(session, { userAgent: req.get('user-agent'), ip: req.ip }, () => ({ handle: manager.handleOf(session) }));
 *   if (action === 'destroy') await session.destroy();
 *   next();
 * });
 */

export type BindingSignal = AnomalyEvent['signals'][number];

export interface BindingOptions {
  /** At least 32 bytes; keys the fingerprint so it cannot be matched against known values. */
  key: string | Buffer;
  /** What a change asks for: `'event'` (publish and rebind) or `'destroy'` (publish; the caller destroys). @default 'event' */
  onChange?: 'event' | 'destroy';
  /** @default ['user-agent', 'network'] */
  signals?: readonly BindingSignal[];
  /** The session field that holds the fingerprint. @default '_binding' */
  field?: string;
  /** Leading bits of an IPv4 address compared. @default 24 */
  ipv4Prefix?: number;
  /** Leading bits of an IPv6 address compared. @default 48 */
  ipv6Prefix?: number;
}

export interface ClientSignals {
  userAgent?: string | null | undefined;
  ip?: string | null | undefined;
}

/** What a session offers that the check needs: the core `Session` and the adapters' session objects both fit. */
export interface BindableSession {
  get(field: string): unknown;
  set(field: string, value: unknown): void;
  /** The principal, reported in anomaly events. */
  readonly userId?: string | null;
}

/**
 * What an anomaly event should say about the session beyond what the check knows (the
 * principal, the client's address, the time): its opaque handle. `manager.eventSubject(session)`
 * gives all of it, the time by the manager's clock. Called only when an event is published.
 */
export type AnomalySubject = () => Partial<EventSubject>;

export interface BindingResult {
  /** Signals that differ from the ones the session was bound to (empty on first use and when unchanged). */
  changed: BindingSignal[];
  /** `'none'`, or the configured reaction when something changed. */
  action: 'none' | 'event' | 'destroy';
}

export const DEFAULT_BINDING = { onChange: 'event', signals: ['user-agent', 'network'], field: '_binding', ipv4Prefix: 24, ipv6Prefix: 48 } as const;

const MAX_USER_AGENT = 1024;

/** Validates the options once and returns the per-request check. */
export function createBindingCheck(options: BindingOptions): (session: BindableSession, client: ClientSignals, subject?: AnomalySubject) => BindingResult {
  const key = Buffer.from(options?.key ?? '');
  if (key.length < 32) throw configError('key', 'must be at least 32 bytes');
  const onChange = options.onChange ?? DEFAULT_BINDING.onChange;
  if (onChange !== 'event' && onChange !== 'destroy') throw configError('onChange', 'must be "event" or "destroy"');
  const signals = [...(options.signals ?? DEFAULT_BINDING.signals)];
  if (signals.length === 0 || !signals.every((signal) => signal === 'user-agent' || signal === 'network')) {
    throw configError('signals', 'must list "user-agent" and/or "network"');
  }
  const field = options.field ?? DEFAULT_BINDING.field;
  if (typeof field !== 'string' || field.length === 0) throw configError('field', 'must be a field name');
  const v4 = prefixLength('ipv4Prefix', options.ipv4Prefix ?? DEFAULT_BINDING.ipv4Prefix, 32);
  const v6 = prefixLength('ipv6Prefix', options.ipv6Prefix ?? DEFAULT_BINDING.ipv6Prefix, 128);
  const fingerprint = (signal: BindingSignal, value: string): string => createHmac('sha256', key).update(`${signal}\0${value}`).digest('base64url').slice(0, 22);

  return (session, client, subject) => {
    const current: Partial<Record<BindingSignal, string>> = {};
    for (const signal of signals) {
      const value = signal === 'user-agent' ? userAgentOf(client.userAgent) : networkOf(client.ip, v4, v6);
      if (value !== null) current[signal] = fingerprint(signal, value);
    }
    const stored = session.get(field);
    const bound = typeof stored === 'object' && stored !== null && !Array.isArray(stored) ? (stored as Partial<Record<BindingSignal, unknown>>) : null;
    const changed = bound === null ? [] : signals.filter((signal) => current[signal] !== undefined && typeof bound[signal] === 'string' && bound[signal] !== current[signal]);
    const differs = bound === null || signals.some((signal) => current[signal] !== undefined && bound[signal] !== current[signal]);
    if (changed.length > 0) {
      publishAnomaly(() => ({ signals: changed, action: onChange, ...subjectOf({ userId: session.userId, ip: client.ip }), ...subject?.() }) satisfies AnomalyEvent);
    }
    if (changed.length > 0 && onChange === 'destroy') return { changed, action: 'destroy' };
    // First use, a signal seen for the first time, or a change that was only reported: (re)bind.
    if (differs) session.set(field, { ...(bound ?? {}), ...current });
    return { changed, action: changed.length > 0 ? 'event' : 'none' };
  };
}

function prefixLength(option: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 0 || value > max) throw configError(option, `must be an integer from 0 to ${max}`);
  return value;
}

function userAgentOf(value: string | null | undefined): string | null {
  return typeof value === 'string' && value.length > 0 ? value.slice(0, MAX_USER_AGENT) : null;
}

/** The network prefix of an address (IPv4-mapped IPv6 counts as IPv4), or null when there is none. */
export function networkOf(ip: string | null | undefined, v4Bits: number, v6Bits: number): string | null {
  if (typeof ip !== 'string') return null;
  const address = ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '').replace(/%.*$/, '');
  const family = isIP(address);
  if (family === 4) return `4/${maskBits(address.split('.').map(Number), 8, v4Bits)}`;
  if (family === 6) return `6/${maskBits(expandIpv6(address), 16, v6Bits)}`;
  return null;
}

function maskBits(groups: number[], width: number, bits: number): string {
  return groups
    .map((group, index) => {
      const keep = Math.max(0, Math.min(width, bits - index * width));
      return keep === 0 ? 0 : group & (((1 << width) - 1) ^ ((1 << (width - keep)) - 1));
    })
    .join('.');
}

function expandIpv6(address: string): number[] {
  let text = address;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : Array.from({ length: 8 - left.length - right.length }, () => '0');
  return [...left, ...zeros, ...right].map((group) => Number.parseInt(group, 16) || 0);
}
