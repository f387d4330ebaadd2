/**
 * The first half of opening a PostgreSQL store: parse the URL, create the pool and check (or
 * apply) the schema migrations. It loads only the driver (connect.ts), not the store's queries,
 * so store/mod.ts can start connecting (the server starts a backend for the session: several ms)
 * while the rest of the store's code loads (see docs/architecture.md, "PostgreSQL driver").
 */
import { connectPool, keepAliveSockets, migrate, type PoolOptions, type Sql } from "./connect.ts";
import { StorageError } from "../../core/errors.ts";
import { type ErrorContext, toQueueError } from "./errors.ts";
import { parsePgUrl, redactPgUrl, validateSchemaName } from "./url.ts";

/** The main pool closes connections idle this long (s): a long-idle one may have died unseen. */
export const POOL_IDLE_S = 120;

/** The options of the connection itself (the rest: PostgresStoreOptions). */
export interface ConnectOptions {
  schema?: string;
  max?: number;
  keepAlive?: boolean;
}

/** A pool with the schema checked: what a PostgresStore is built on. */
export interface Connected {
  sql: Sql;
  /** Opens another pool on the same server (LISTEN connections, the leader's). */
  connect: (max: number, pool?: PoolOptions) => Sql;
  max: number;
  location: string;
  ctx: ErrorContext;
  /** The schema the tables live in. */
  schema: string;
}

/**
 * Connects and migrates; rejects with a QueueError (StorageError `transient: true` when the server
 * is unreachable), the pool then ended.
 */
export async function connectAndMigrate(
  url: string,
  opts: ConnectOptions = {},
): Promise<Connected> {
  const parsed = parsePgUrl(url);
  const schema = opts.schema !== undefined ? validateSchemaName(opts.schema) : parsed.schema;
  const base = redactPgUrl(parsed.driverUrl);
  const location = schema ? `${base}${base.includes("?") ? "&" : "?"}schema=${schema}` : base;
  const ctx: ErrorContext = { location, password: parsed.password };
  const connect = (max: number, pool?: PoolOptions): Sql =>
    connectPool(parsed.driverUrl, schema, max, pool);
  const max = opts.max ?? 10;
  if (opts.keepAlive) keepAliveSockets();
  const sql = connect(max, { idleTimeoutS: POOL_IDLE_S });
  try {
    const current = await migrate(sql, schema, location);
    if (current.pooled) await refuseSharedSessions(connect, current.backendPid, location);
    return { sql, connect, max, location, ctx, schema: current.schema };
  } catch (err) {
    await sql.end({ timeout: 1 }).catch(() => {});
    throw toQueueError(err, ctx);
  }
}

/**
 * Behind a connection pooler, refuses one that shares server sessions between its clients
 * (PgBouncer's transaction or statement pooling): queuectl's LISTEN wake-ups, its leader's
 * advisory lock and its session settings need a session of their own, and PgBouncer drops the
 * answers to pipelined queries there, so calls would hang. A second connection asks which server
 * process answers it: a pool that shares sessions hands it the one `backendPid` (the first
 * connection's) just went back to, as PgBouncer does (it reuses the last one freed); a session
 * pool cannot, that process being bound to the first connection. See docs/architecture.md,
 * "Connection poolers".
 */
async function refuseSharedSessions(
  connect: (max: number) => Sql,
  backendPid: number,
  location: string,
): Promise<void> {
  const probe = connect(1);
  try {
    const [{ pid }] = await probe<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
    if (pid !== backendPid) return;
  } finally {
    await probe.end({ timeout: 0 }).catch(() => {});
  }
  throw new StorageError(
    `${location} is a connection pool that shares server sessions between clients ` +
      "(PgBouncer's transaction or statement pooling): queuectl needs a session of its own",
    {
      hint: "connect to PostgreSQL directly, or through a pool in session mode (PgBouncer: " +
        "pool_mode = session)",
    },
  );
}
