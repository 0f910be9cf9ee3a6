import { SessionError } from '../core/errors.js';

/**
 * Loads a store's driver, an optional peer dependency, only when a store is opened from a URL;
 * a missing driver is a configuration error that says what to install.
 */
export async function importDriver<T>(load: () => Promise<T>, store: string, pkg: string): Promise<T> {
  try {
    return await load();
  } catch (error) {
    throw new SessionError('ESESS_CONFIG', { message: `The ${store} store needs the optional dependency ${pkg} (npm install ${pkg})`, cause: error, context: { option: 'store' } });
  }
}
