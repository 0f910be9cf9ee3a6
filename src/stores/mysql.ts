/**
 * The MySQL / MariaDB store (`elastic-session/stores/mysql`). The implementation lives in
 * `./mysql/`: schema and migrations, rows, the store, and the URL opener.
 */
export { migrateMysql, MYSQL_SCHEMA_VERSION, mysqlSweepLockName } from './mysql/schema.js';
export { MysqlStore, mysqlStore } from './mysql/store.js';
export type { MysqlStoreOptions } from './mysql/store.js';
export { openMysqlStore } from './mysql/open.js';
