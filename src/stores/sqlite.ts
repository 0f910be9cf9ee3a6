/** The embedded default store (better-sqlite3): see `sqlite/store.ts`. */
export { SQLITE_SCHEMA_VERSION } from './sqlite/schema.js';
export { SqliteStore, sqliteStore } from './sqlite/store.js';
export type { SqliteStoreOptions } from './sqlite/store.js';
