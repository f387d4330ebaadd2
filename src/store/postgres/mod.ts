/**
 * The PostgreSQL backend. Imported dynamically by src/store/mod.ts only for `postgres://` URLs,
 * so SQLite users never load the driver.
 */
export { openPostgresStore, postgresStoreOn, type PostgresStoreOptions } from "./postgres_store.ts";
export { parsePgUrl, redactPgUrl } from "./url.ts";
