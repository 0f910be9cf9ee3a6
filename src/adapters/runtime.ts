/**
 * One adapter instance: the options every framework adapter takes, validated once, and what
 * they decide about a request (https or not, the client's address).
 */
import { configError, isSessionError } from '../core/errors.js';
import { SessionManager } from '../core/manager.js';
import type { EventContext, SessionManagerOptions } from '../core/manager.js';
import type { SessionData } from '../core/session.js';
import { createBindingCheck, DEFAULT_BINDING } from '../security/binding.js';
import type { AnomalySubject, BindingOptions, BindingResult, BindableSession, ClientSignals } from '../security/binding.js';
import { RequestSession } from './request-session.js';
import type { BeginOptions } from './request-session.js';

/** Options every adapter takes besides the manager (or the options to build one). */
export interface AdapterCommonOptions {
  /**
   * Trust `X-Forwarded-Proto` from a TLS-terminating proxy in front of the app. Only then does a
   * request that reached the app over plain http count as https for the Secure-cookie check, and
   * the leftmost `X-Forwarded-For` entry is the client's address (binding signals, the `ip` of
   * security events). Never set it when clients can reach the app without passing the proxy.
   * @default false
   */
  trustProxy?: boolean;
  /**
   * On logout, also send `Clear-Site-Data: "cookies"`. Browsers then drop every cookie of the
   * site, not only the session's, so it is opt-in.
   * @default false
   */
  clearSiteData?: boolean;
  /**
   * Binding signals, checked automatically whenever a session is loaded (see
   * `createBindingCheck` in `elastic-session/security`, whose options these are): the session
   * remembers a keyed fingerprint of the client's User-Agent and network prefix, stored when the
   * session is first stored and renewed by `regenerate()` (login). A change publishes an event on
   * `elastic-session:anomaly`; with `onChange: 'destroy'` the session is also destroyed and the
   * request goes on with a fresh anonymous one. The client address is the socket's, or with
   * `trustProxy` the leftmost `X-Forwarded-For` entry: the proxy must then overwrite that header.
   */
  binding?: BindingOptions;
}

/** Either a manager you built (and may share) or the options to build one. */
export type AdapterOptions<Data extends SessionData = SessionData> = AdapterCommonOptions &
  ({ manager: SessionManager<Data> } | (SessionManagerOptions & { manager?: undefined }));

/** The validated binding check and the session field it uses. */
export interface Binding {
  check: (session: BindableSession, client: ClientSignals, subject?: AnomalySubject) => BindingResult;
  field: string;
}

/** One adapter instance: the manager plus the adapter options, validated once. */
export class SessionRuntime<Data extends SessionData = SessionData> {
  readonly manager: SessionManager<Data>;
  readonly trustProxy: boolean;
  readonly clearSiteData: boolean;
  /** Whether cookies are Secure outside the explicit development mode: then requests must be https. */
  readonly requireSecureTransport: boolean;
  /** The binding check, or null when `binding` is not configured. */
  readonly binding: Binding | null;

  constructor(options: AdapterOptions<Data>) {
    if (typeof options !== 'object' || options === null) throw configError('options', 'an options object is required');
    if (options.trustProxy !== undefined && typeof options.trustProxy !== 'boolean') throw configError('trustProxy', 'must be a boolean');
    this.trustProxy = options.trustProxy === true;
    if (options.clearSiteData !== undefined && typeof options.clearSiteData !== 'boolean') throw configError('clearSiteData', 'must be a boolean');
    this.clearSiteData = options.clearSiteData === true;
    this.binding = bindingOf(options.binding);
    if (options.manager !== undefined) {
      if (!(options.manager instanceof SessionManager)) throw configError('manager', 'must be a SessionManager');
      if ('store' in options || 'secrets' in options) throw configError('manager', 'give either a manager or the options to build one (store, secrets, ...), not both');
      this.manager = options.manager;
      this.requireSecureTransport = this.manager.cookie.secure;
    } else {
      const { trustProxy: _trustProxy, clearSiteData: _clearSiteData, binding: _binding, manager: _manager, ...managerOptions } = options;
      this.manager = new SessionManager<Data>(managerOptions);
      this.requireSecureTransport = this.manager.cookie.secure && managerOptions.insecureLocalhostDevelopment !== true;
    }
  }

  /** The per-request session state. Reads the cookie (no store call); loads nothing yet. */
  begin(cookieHeader: string | undefined | null, options: BeginOptions): RequestSession<Data> {
    const context = eventContextOf(options.client);
    return new RequestSession(this, this.manager.readCookies(cookieHeader ?? undefined, context), options, context);
  }

  /** Whether a request counts as https: TLS to us, or a trusted proxy saying the client used https. */
  isSecure(tls: boolean, forwardedProto: string | readonly string[] | null | undefined): boolean {
    return tls || (this.trustProxy && firstForwardedProto(forwardedProto) === 'https');
  }

  /**
   * The client's address: with `trustProxy` the leftmost `X-Forwarded-For` entry (the client as
   * the proxy saw it), otherwise the peer's address. Only ever a binding signal and a detail of
   * security events, never access control.
   */
  clientIp(forwardedFor: string | readonly string[] | null | undefined, peer: string | null | undefined): string | undefined {
    if (this.trustProxy) {
      const forwarded = firstForwardedFor(forwardedFor);
      if (forwarded !== null) return forwarded;
    }
    return typeof peer === 'string' && peer.length > 0 ? peer : undefined;
  }
}

/**
 * The request's event context. The client's address is read on first use, which is only when an
 * event is published: a request that raises none pays nothing for it.
 */
function eventContextOf(client: (() => ClientSignals) | undefined): EventContext {
  let ip: string | null | undefined;
  let read = false;
  return {
    get ip() {
      if (!read) {
        ip = client?.().ip;
        read = true;
      }
      return ip;
    },
  };
}

function bindingOf(options: BindingOptions | undefined): Binding | null {
  if (options === undefined) return null;
  if (typeof options !== 'object' || options === null) throw configError('binding', 'must be an options object ({ key, onChange?, signals? })');
  try {
    return { check: createBindingCheck(options), field: options.field ?? DEFAULT_BINDING.field };
  } catch (error) {
    // Name the adapter option: "binding.key", not "key".
    if (isSessionError(error, 'ESESS_CONFIG') && typeof error.context.option === 'string') {
      throw configError(`binding.${error.context.option}`, error.message.replace(/^Invalid option "[^"]*": /, ''));
    }
    throw error;
  }
}

/** The leftmost (client-facing) address in `X-Forwarded-For`, without brackets or port; null when there is none. */
export function firstForwardedFor(value: string | readonly string[] | null | undefined): string | null {
  const header = typeof value === 'string' ? value : value?.[0];
  if (!header) return null;
  let first = (header.split(',')[0] ?? '').trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(first);
  if (bracketed) first = bracketed[1] as string;
  else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(first)) first = first.slice(0, first.lastIndexOf(':'));
  return first.length > 0 && first.length <= 64 ? first : null;
}

/** The leftmost (client-facing) protocol in `X-Forwarded-Proto`, lower-cased. */
export function firstForwardedProto(value: string | readonly string[] | null | undefined): string | null {
  const header = typeof value === 'string' ? value : value?.[0];
  if (!header) return null;
  return (header.split(',')[0] ?? '').trim().toLowerCase() || null;
}
