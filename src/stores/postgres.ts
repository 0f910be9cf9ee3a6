/**
 * The PostgreSQL store (`elastic-session/stores/postgres`). The implementation lives in
 * `./postgres/`: schema and migrations, statements, rows, the store, and the URL opener.
 */
export { migratePostgres, POSTGRES_SCHEMA_VERSION, postgresSweepLockKey } from './postgres/schema.js';
export type { PostgresTarget } from './postgres/schema.js';
export { PostgresStore, postgresStore } from './postgres/store.js';
export type { PostgresStoreOptions } from './postgres/store.js';
export { openPostgresStore } from './postgres/open.js';
