import { SessionError } from '../../core/errors.js';
import { toInteger } from './record-codec.js';

/** A stored schema version, refused when unreadable or newer than this release's `supported`. */
export function readSchemaVersion(store: string, found: unknown, supported: number): number {
  const version = toInteger(found ?? 0);
  if (version === undefined || version < 0) {
    throw new SessionError('ESESS_CONFIG', { message: 'The session tables have an unreadable schema version', context: { store } });
  }
  if (version > supported) {
    throw new SessionError('ESESS_CONFIG', {
      message: `The session tables have schema version ${version}, newer than this elastic-session understands (${supported}); upgrade elastic-session`,
      context: { store, schemaVersion: version, supportedVersion: supported },
    });
  }
  return version;
}

/** With `migrate: false`, tables behind this release are a configuration error that says what to run. */
export function schemaBehindError(store: string, found: number, supported: number): SessionError {
  return new SessionError('ESESS_CONFIG', {
    message: `The session tables are at schema version ${found}, this elastic-session needs ${supported}: run "elastic-session migrate" or set migrate: true`,
    context: { store, schemaVersion: found, supportedVersion: supported },
  });
}

/**
 * A SQL store's first step: migrate (`migrate: true`), or read the schema version and refuse
 * tables behind this release with a message that says what to run.
 */
export async function migrateOrCheck(options: {
  store: string;
  migrate: boolean;
  run: () => Promise<unknown>;
  version: () => Promise<number>;
  supported: number;
  wrap: (error: unknown) => Error;
}): Promise<void> {
  if (options.migrate) {
    await options.run();
    return;
  }
  let found: number;
  try {
    found = await options.version();
  } catch (error) {
    throw options.wrap(error);
  }
  if (found < options.supported) throw schemaBehindError(options.store, found, options.supported);
}
