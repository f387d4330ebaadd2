/**
 * The SQLite backend (the default): the Store's queries in sqlite_store.ts, its connection
 * (opening, migrations, transactions, counters) in connection.ts, the workers' lock file in
 * hot_lock.ts, error mapping in errors.ts, file creation in file.ts.
 */
export { openSqliteStore, type SqliteOptions } from "./sqlite_store.ts";
export { HOT_LOCK_SUFFIX } from "./hot_lock.ts";
