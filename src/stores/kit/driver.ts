import { SessionError } from '../../core/errors.js';

/**
 * Loads a store's driver, an optional peer dependency, only when a store is opened from a URL;
 * a missing driver is a configuration error that says what to install.
 */
export function importDriver<T>(load: () => Promise<T>, store: string, pkg: string): Promise<T> {
  return importOptional(load, `The ${store} store`, pkg, 'store');
}

/**
 * Loads a module that needs an optional peer dependency. When the package is missing, an
 * ESESS_CONFIG that names who needs it and the command that installs it; any other failure of
 * the module passes through unchanged.
 */
export async function importOptional<T>(load: () => Promise<T>, subject: string, pkg: string, option: string): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    throw new SessionError('ESESS_CONFIG', { message: `${subject} needs the optional dependency ${pkg} (npm install ${pkg})`, cause: error, context: { option } });
  }
}
