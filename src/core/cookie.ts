import { configError } from './errors.js';

export interface CookieOptions {
  /** @default '__Host-sid' ('sid' with `insecureLocalhostDevelopment`) */
  name: string;
  /** @default '/' */
  path: string;
  /** Not allowed with the `__Host-` prefix. */
  domain?: string;
  /** @default true */
  httpOnly: boolean;
  /** @default true (false with `insecureLocalhostDevelopment`) */
  secure: boolean;
  /** @default 'lax' */
  sameSite: 'strict' | 'lax' | 'none';
  /** Cookie lives until the session's absolute expiry; `false` makes it a browser-session cookie. @default true */
  persistent: boolean;
}

export const DEFAULT_COOKIE: CookieOptions = {
  name: '__Host-sid',
  path: '/',
  httpOnly: true,
  secure: true,
  sameSite: 'lax',
  persistent: true,
};

/** Cookie headers longer than this are not parsed (RFC 6265 user agents send at most ~4 KiB per cookie). */
export const MAX_COOKIE_HEADER = 8192;
/** At most this many cookie pairs are looked at. */
export const MAX_COOKIE_PAIRS = 64;

const NAME_PATTERN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function resolveCookieOptions(given: Partial<CookieOptions> | undefined, insecureDevelopment: boolean): CookieOptions {
  const base: CookieOptions = insecureDevelopment ? { ...DEFAULT_COOKIE, name: 'sid', secure: false } : DEFAULT_COOKIE;
  const options: CookieOptions = { ...base, ...given };
  if (!NAME_PATTERN.test(options.name)) throw configError('cookie.name', 'must be a cookie token (RFC 6265)');
  // Printable ASCII only: a control character would make Node refuse the Set-Cookie header at the first response.
  if (typeof options.path !== 'string' || !options.path.startsWith('/') || !/^[\x21-\x3a\x3c-\x7e]*$/.test(options.path)) {
    throw configError('cookie.path', 'must start with "/" and hold only printable ASCII without spaces or ";"');
  }
  if (options.domain !== undefined && !/^[A-Za-z0-9.-]+$/.test(options.domain)) throw configError('cookie.domain', 'must be a host name');
  if (!['strict', 'lax', 'none'].includes(options.sameSite)) throw configError('cookie.sameSite', 'must be "strict", "lax" or "none"');
  if (!options.secure && !insecureDevelopment) {
    throw configError('cookie.secure', 'false is only allowed with insecureLocalhostDevelopment: true');
  }
  if (options.sameSite === 'none' && !options.secure) throw configError('cookie.sameSite', '"none" requires secure cookies');
  if (options.name.startsWith('__Host-')) {
    if (!options.secure) throw configError('cookie.name', 'the __Host- prefix requires secure: true');
    if (options.path !== '/') throw configError('cookie.path', 'the __Host- prefix requires path "/"');
    if (options.domain !== undefined) throw configError('cookie.domain', 'the __Host- prefix forbids a domain');
  }
  if (options.name.startsWith('__Secure-') && !options.secure) throw configError('cookie.name', 'the __Secure- prefix requires secure: true');
  return options;
}

/** Values of every cookie called `name` in a Cookie header, in order, within the parsing limits. */
export function cookieValues(header: string | undefined, name: string): string[] {
  if (!header || header.length > MAX_COOKIE_HEADER) return [];
  const values: string[] = [];
  let pairs = 0;
  for (const part of header.split(';')) {
    if (++pairs > MAX_COOKIE_PAIRS) break;
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    values.push(value);
  }
  return values;
}

/** A Set-Cookie value; `expiry` makes it persistent until `expiresAt` (ms), seen from `now` (ms). */
export function serializeCookie(options: CookieOptions, value: string, expiry: { expiresAt: number; now: number } | null): string {
  let cookie = `${options.name}=${value}; Path=${options.path}`;
  if (options.domain !== undefined) cookie += `; Domain=${options.domain}`;
  if (expiry) {
    const maxAge = Math.max(0, Math.floor((expiry.expiresAt - expiry.now) / 1000));
    cookie += `; Expires=${new Date(expiry.expiresAt).toUTCString()}; Max-Age=${maxAge}`;
  }
  if (options.httpOnly) cookie += '; HttpOnly';
  if (options.secure) cookie += '; Secure';
  return `${cookie}; SameSite=${options.sameSite[0]?.toUpperCase()}${options.sameSite.slice(1)}`;
}

/** A Set-Cookie value that makes the browser drop the session cookie. */
export function clearingCookie(options: CookieOptions): string {
  return serializeCookie(options, '', { expiresAt: 0, now: 0 });
}
