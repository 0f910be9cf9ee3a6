import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { ConnectionOptions, SecureContext, SecureContextOptions } from 'node:tls';
import { configError } from '../../core/errors.js';

export const SSL_MODES = ['disabled', 'required', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** The TLS settings of a store URL, files read. */
export interface UrlTls {
  mode: SslMode;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * The TLS query parameters of a store URL (removed from `params`): `ssl-mode` (`disabled`,
 * `required`: encrypted but unverified, `verify-ca`: the certificate chains to a trusted CA,
 * `verify-full`: and names the host; the default when any `ssl-*` is given), `ssl-ca` (PEM file
 * of the CAs to trust instead of Node's), `ssl-cert` and `ssl-key` (PEM files of a client
 * certificate). Undefined when the URL has none of them. Problems are ESESS_CONFIG for `store`.
 */
export async function tlsFromUrl(params: URLSearchParams): Promise<UrlTls | undefined> {
  const get = (name: string): string | undefined => {
    const values = params.getAll(name);
    params.delete(name);
    if (values.length > 1) throw configError('store', `has more than one ${name} parameter`);
    if (values[0] === '') throw configError('store', `has an empty ${name} parameter`);
    return values[0];
  };
  const modeText = get('ssl-mode')?.toLowerCase();
  const paths = { ca: get('ssl-ca'), cert: get('ssl-cert'), key: get('ssl-key') };
  if (modeText === undefined && paths.ca === undefined && paths.cert === undefined && paths.key === undefined) return undefined;
  if (modeText !== undefined && !(SSL_MODES as readonly string[]).includes(modeText)) throw configError('store', `has an unknown ssl-mode (use ${SSL_MODES.join(', ')})`);
  const mode = (modeText ?? 'verify-full') as SslMode;
  if ((paths.cert === undefined) !== (paths.key === undefined)) throw configError('store', 'needs both ssl-cert and ssl-key for a client certificate');
  if (mode === 'disabled') {
    if (paths.ca !== undefined || paths.cert !== undefined) throw configError('store', 'has ssl-mode=disabled with ssl-ca, ssl-cert or ssl-key');
    return { mode };
  }
  const read = async (name: string, path: string | undefined): Promise<Buffer | undefined> => {
    if (path === undefined) return undefined;
    try {
      return await readFile(path);
    } catch (error) {
      throw configError('store', `has an ${name} file that cannot be read (${(error as { code?: string }).code ?? String(error)})`);
    }
  };
  const [ca, cert, key] = await Promise.all([read('ssl-ca', paths.ca), read('ssl-cert', paths.cert), read('ssl-key', paths.key)]);
  return { mode, ...(ca ? { ca } : {}), ...(cert && key ? { cert, key } : {}) };
}

/**
 * URL TLS settings as `tls.connect` options, with the files checked once here (a file that is
 * not usable PEM is ESESS_CONFIG for `store`, not a failure on every connection). Undefined for
 * `ssl-mode=disabled`. `verify-ca` keeps the chain check and skips the host name check.
 */
export function nodeTlsOptions(settings: UrlTls): ConnectionOptions | undefined {
  const { mode, ...files } = settings;
  if (mode === 'disabled') return undefined;
  return {
    secureContext: secureContext(files, 'store', 'has ssl-ca, ssl-cert or ssl-key files that '),
    rejectUnauthorized: mode !== 'required',
    ...(mode === 'verify-full' ? {} : { checkServerIdentity: () => undefined }),
  };
}

/** A TLS context from `options`, or ESESS_CONFIG naming `option` with OpenSSL's reason (never key material). */
export function secureContext(options: SecureContextOptions, option: string, subject = ''): SecureContext {
  try {
    return createSecureContext(options);
  } catch (error) {
    throw configError(option, `${subject}cannot be used for TLS (${error instanceof Error ? error.message : String(error)})`);
  }
}
