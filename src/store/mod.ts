/**
 * Chooses the backend from a database URL: `postgres://` or `postgresql://` → PostgreSQL (driver
 * loaded only then), anything else (a path, or `sqlite:PATH`) → SQLite.
 */
import { checkDatabaseUrl, isPostgresUrl } from "./location.ts";
import type { Store } from "./store.ts";

export interface OpenOptions {
  /**
   * PostgreSQL: at most this many pooled connections (default 10, for workers and the dashboard).
   * A one-shot CLI command passes 1: its few queries pipeline on one connection, where a larger
   * pool would open (and authenticate) one connection per concurrent query.
   */
  connections?: number;
  /** PostgreSQL: short TCP keepalive on every connection, for a process that stays up. */
  keepAlive?: boolean;
}

export async function openStore(url: string, opts: OpenOptions = {}): Promise<Store> {
  checkDatabaseUrl(url);
  if (isPostgresUrl(url)) {
    const pg = { max: opts.connections, keepAlive: opts.keepAlive };
    // Connecting first: the server starts its backend while the store's code loads.
    const { connectAndMigrate } = await import("./postgres/open.ts");
    const connecting = connectAndMigrate(url, pg);
    connecting.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
    const { postgresStoreOn } = await import("./postgres/mod.ts");
    return postgresStoreOn(await connecting, pg);
  }
  // Loaded on use, like the PostgreSQL driver: commands that open no store do not pay for it.
  const { openSqliteStore } = await import("./sqlite/mod.ts");
  return await openSqliteStore(url.replace(/^sqlite:(\/\/)?/i, ""));
}
