/**
 * Connecting to PostgreSQL (the pool's options: reconnect pace, int8 as numbers, search_path) and
 * applying the schema migrations.
 */
// postgres.js, vendored with a Deno transport (driver/polyfills.js): the npm build loads Deno's
// Node compatibility modules (net, tls, crypto, stream...), ~25 ms of every CLI call. Same code,
// same types; see docs/architecture.md, "PostgreSQL driver".
// @ts-types="postgres"
import postgres from "./driver/src/index.js";
import { useNodeSockets } from "./driver/polyfills.js";
import { StorageError } from "../../core/errors.ts";
import { MIGRATIONS } from "./migrations.ts";

// deno-lint-ignore no-explicit-any
export type Sql = postgres.Sql<any>;

const CONNECT_TIMEOUT_S = 10;
/**
 * TCP keepalive: the first probe after this many idle seconds (the interval and count between
 * probes are the system's). With the per-call limit (Store.setCallTimeout) it makes sure a
 * connection to a host that vanished does not linger unnoticed.
 */
const KEEP_ALIVE_S = 10;

/**
 * TCP connections made from now on in this process go through node:net, with keepalive probes
 * after {@link KEEP_ALIVE_S} idle seconds (long-running processes: workers, the dashboard), not
 * Deno.connect, whose keepalive starts after the system's idle time (usually 2 hours). Loading
 * node:net costs ~20 ms once, which a one-shot CLI call does not pay.
 */
export function keepAliveSockets(): void {
  useNodeSockets(true);
}

export interface PoolOptions {
  /** Idle connections are closed after this many seconds (default: kept). */
  idleTimeoutS?: number;
  /** The server's statement_timeout and lock_timeout for the pool's sessions, ms. */
  statementTimeoutMs?: number;
}
/**
 * How long postgres.js waits before connecting again after `failures` failed attempts in a row,
 * in seconds: 0.1 s doubling, at most 2 s, with jitter so that many workers do not reconnect in
 * step. (postgres.js's own default grows to 10-20 s, which a worker would wait on top of its
 * own retry backoff once the server is back. The LISTEN connection re-listens at this pace too.)
 */
function reconnectDelayS(failures: number): number {
  return Math.min(0.1 * 2 ** Math.max(0, failures - 1), 2) * (0.5 + Math.random() / 2);
}

/**
 * The session settings of a pool whose calls are bounded: the statement and lock timeouts, sent
 * as one simple query once each connection is up (the vendored driver's `session_sql`), not as
 * startup parameters, which PgBouncer and other poolers refuse (see docs/architecture.md,
 * "Connection poolers"). Null when there is nothing to set.
 */
function sessionSql(statementTimeoutMs?: number): string | null {
  if (statementTimeoutMs === undefined) return null;
  const ms = Math.round(statementTimeoutMs);
  return `SET statement_timeout = ${ms}; SET lock_timeout = ${ms}`;
}

/** A pool of at most `max` connections; `schema` (when given) is the search_path. */
export function connectPool(
  driverUrl: string,
  schema: string | undefined,
  max: number,
  opts: PoolOptions = {},
): Sql {
  const session = sessionSql(opts.statementTimeoutMs);
  // The vendored driver's own option (driver/README.md), not in postgres.js's types.
  const sessionOption: Record<string, unknown> = session === null ? {} : { session_sql: session };
  return postgres(driverUrl, {
    max,
    connect_timeout: CONNECT_TIMEOUT_S,
    keep_alive: KEEP_ALIVE_S,
    ...(opts.idleTimeoutS === undefined ? {} : { idle_timeout: opts.idleTimeoutS }),
    ...sessionOption,
    backoff: reconnectDelayS,
    fetch_types: false,
    onnotice: () => {},
    types: {
      // int8 (times, counts) as JS numbers: epoch milliseconds fit in 2^53.
      bigint: {
        to: 20,
        from: [20],
        serialize: (x: number) => String(x),
        parse: (x: string) => Number(x),
      },
    },
    // search_path as a startup parameter: a pooler that refuses it fails the connection with its
    // own message (see docs/architecture.md, "Connection poolers").
    connection: { application_name: "queuectl", ...(schema ? { search_path: schema } : {}) },
  });
}

/** What {@link migrate} found out about the session. */
export interface Migrated {
  /** The schema the tables live in. */
  schema: string;
  /**
   * Whether the session is reached through a connection pooler: the server process that ran
   * the last query (`pg_backend_pid()`) is not the one the connection's cancel key names, as it
   * always is on a direct connection (poolers hand out keys of their own).
   */
  pooled: boolean;
  /** That server process. */
  backendPid: number;
}

/** {@link Migrated} from a row with `s` (current_schema) and `pid` (pg_backend_pid). */
function migrated(rows: readonly { s: string; pid: number }[]): Migrated {
  // The driver's result carries the connection's cancel key (BackendKeyData) as `state`.
  const keyPid = (rows as unknown as { state?: { pid?: number | null } }).state?.pid;
  const { s, pid } = rows[0];
  return { schema: s, pooled: typeof keyPid === "number" && keyPid !== pid, backendPid: pid };
}

/**
 * Applies missing migrations once, even when several processes start at the same time. Returns
 * the schema the tables live in and whether a pooler stands between (see {@link Migrated}).
 */
export async function migrate(
  sql: Sql,
  schema: string | undefined,
  location: string,
): Promise<Migrated> {
  const target = MIGRATIONS.length;
  // Fast path (every CLI command): one read, no lock.
  try {
    const rows = await sql<{ v: number | null; s: string; pid: number }[]>`
      SELECT (SELECT max(version) FROM schema_migrations) AS v, current_schema() AS s,
        pg_backend_pid() AS pid`;
    const v = rows[0].v;
    if (v === target) return migrated(rows);
    if (v !== null && v > target) throw newerSchema(v, target, location);
  } catch (err) {
    // 42P01: no schema_migrations table yet (or no schema): create it below.
    if ((err as { code?: string }).code !== "42P01") throw err;
  }
  let rewrote = false;
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(hashtext(${"queuectl:migrate:" + (schema ?? "")}))`;
    if (schema) await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      applied_at bigint NOT NULL
    )`;
    // Re-read under the lock: another process may have migrated meanwhile.
    const [{ v }] = await tx<{ v: number | null }[]>`
      SELECT coalesce(max(version), 0) AS v FROM schema_migrations`;
    const current = v ?? 0;
    if (current > target) throw newerSchema(current, target, location);
    rewrote = current > 0 && current < REWRITE_MIGRATION && target >= REWRITE_MIGRATION;
    for (let version = current + 1; version <= target; version++) {
      await tx.unsafe(MIGRATIONS[version - 1]);
      await tx`INSERT INTO schema_migrations (version, applied_at)
        VALUES (${version}, ${Date.now()})`;
    }
    if (current < SEARCH_INDEX_MIGRATION && target >= SEARCH_INDEX_MIGRATION) {
      const [found] = await tx`SELECT 1 AS one FROM pg_indexes
        WHERE schemaname = current_schema() AND indexname = 'jobs_search'`;
      if (!found) {
        console.error(
          "queuectl: note: the PostgreSQL extension pg_trgm is unavailable here, so " +
            "`list --search` scans the jobs table; a superuser can run CREATE EXTENSION pg_trgm " +
            "(Debian: part of the postgresql package) and recreate the schema to index it",
        );
      }
    }
  });
  // Migration 17 rewrote a table that had jobs: its visibility map is empty until a vacuum. The
  // migration is committed: a vacuum that fails only leaves that to autovacuum.
  if (rewrote) {
    await sql.unsafe("VACUUM jobs").catch((err) =>
      console.error(
        `queuectl: note: could not vacuum the jobs table after its upgrade (${
          (err as Error).message
        }); run VACUUM on it, or reads stay slower until autovacuum does`,
      )
    );
  }
  return migrated(
    await sql<{ s: string; pid: number }[]>`SELECT current_schema() AS s, pg_backend_pid() AS pid`,
  );
}

/** The migration that rewrites the jobs table (its stored search_text), vacuumed after it. */
const REWRITE_MIGRATION = 17;

/** The migration that creates the trigram indexes of search (when pg_trgm is available). */
const SEARCH_INDEX_MIGRATION = 17;

function newerSchema(version: number, target: number, location: string): StorageError {
  return new StorageError(
    `The database ${location} has schema version ${version}, newer than this queuectl (${target})`,
    { hint: "upgrade queuectl to use this database" },
  );
}
