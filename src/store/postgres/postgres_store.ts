/**
 * The PostgreSQL Store on postgres.js: many workers on many hosts share one queue.
 *
 * - Claims take rows with `FOR UPDATE SKIP LOCKED` in one statement, so concurrent workers never
 *   wait on each other and never get the same job.
 * - Every state change is one guarded UPDATE (see core/transitions.ts).
 * - Changes that make a job runnable send `NOTIFY queuectl_jobs` (payload: the schema), which
 *   wakes idle workers in {@link PostgresStore.waitForJobs} (listener.ts).
 * - Times are epoch milliseconds in bigint columns, parsed to numbers.
 * - Errors: see errors.ts (connection loss → StorageError with `transient: true`).
 * - Connecting and migrating: connect.ts.
 *
 * Durability: whatever a user asked for (enqueue, retry, cancel, restore, purge, config, stop
 * requests) commits synchronously, so a command that returned success survives a server crash. A
 * worker's own bookkeeping (claims, lease renewals, heartbeats, lease-guarded settles and rescues)
 * commits asynchronously, `synchronous_commit = off` for that one transaction: a server crash may
 * lose its last few hundred milliseconds, which only means that a job runs again once its lease
 * expires (at-least-once), never that a job is lost. Every synchronous commit flushes the WAL up to
 * its own record, so no durable write can depend on a relaxed one that was lost. This saves the
 * two WAL flushes per job of a worker (claim, settle): claim+settle 1.26x faster in the last full
 * benchmark run, 1.5-4x on busier disks when it was introduced (BENCHMARKS.md, "Commit policy").
 *
 * Over 500 lines because it is one cohesive thing: one short method per Store operation, all on
 * the same pool, error mapping and commit mode; connecting, migrations, wake-ups and error mapping
 * live in their own modules.
 */
import type postgres from "postgres";
import { Conflict, InvalidInput, NotFound, StorageError } from "../../core/errors.ts";
import { formatDuration } from "../../core/duration.ts";
import type { Job, JobOutput, JobState, JobToInsert } from "../../core/job.ts";
import type { JobRun, StoredRun } from "../../core/runs.ts";
import {
  CHANGE_COLUMNS,
  INSERT_SOURCES,
  JOB_COLUMNS,
  JOB_STATES,
  parseDependsOn,
  UNIQUE_KEY_STATES,
} from "../../core/job.ts";
import {
  CLAIM_RULE,
  CLAIMABLE_STATES,
  type ClaimParams,
  compareClaimOrder,
  LOST_RUN_PREFIX,
  LOST_RUN_STATES,
  type StateChange,
} from "../../core/transitions.ts";
import {
  BLOCKED_SQL,
  CLAIM_DUE_COLUMN,
  CLAIM_INCREMENT_COLUMN,
  CLAIM_SET_COLUMNS,
  CLAIM_TO_SQL,
  CLAIMABLE_SQL,
  claimOrderSql,
  claimWalksQueues,
  JOB_COLUMN_LIST,
  queueSizes,
  RUN_COLUMN_LIST,
  RUN_COLUMNS,
  sqlLiteral,
  walksQueues,
} from "../sql.ts";
import {
  collectQueueMetrics,
  type CountJobsParams,
  heldKeyConflict,
  type JobDependencies,
  type ListJobsParams,
  type QueueControl,
  type QueueMetrics,
  type QueueStats,
  type QueueSummary,
  type RunOutputChunk,
  scheduleExists,
  type ScheduleFire,
  type Store,
  summariseQueues,
  uniqueKeyConflict,
  type UniqueKeyOptions,
  type WorkerRecord,
} from "../store.ts";
import {
  duplicateKeyOf,
  type ErrorContext,
  isUniqueViolation,
  READ_ONLY,
  toQueueError,
} from "./errors.ts";
import type { PoolOptions, Sql } from "./connect.ts";
import { connectAndMigrate, type Connected, POOL_IDLE_S } from "./open.ts";
import { PgLeadership } from "./leader.ts";
import { CHANGES_CHANNEL, JobsListener, KILL_CHANNEL, NOTIFY_CHANNEL } from "./listener.ts";
import { quote } from "../../core/text.ts";
import type { Schedule, ScheduleView } from "../../core/schedule.ts";

/**
 * The columns of a new job's row that the INSERT sets: the user's fields, the enqueue time and
 * the non-null constants (the others default to NULL).
 */
/**
 * The columns an INSERT of new jobs names: all but those whose value is NULL (their default).
 * Constants (state, attempts) are written into the statement (see {@link insertSql}); the user's
 * fields and the enqueue time are bound ({@link INSERT_BOUND}, in order).
 */
const INSERT_SET = INSERT_SOURCES.filter(([, s]) => !(s.from === "constant" && s.value === null));
const INSERT_BOUND = INSERT_SET.filter(([, s]) => s.from !== "constant")
  .map(([name, s]) => ({ name: name as keyof JobToInsert, now: s.from === "now" }));
/** PostgreSQL types of the run columns (parameters of INSERT ... SELECT need a cast). */
const RUN_COLUMN_TYPES: Record<typeof RUN_COLUMNS[number], string> = {
  attempt: "integer",
  worker: "text",
  host: "text",
  started_at: "bigint",
  finished_at: "bigint",
  duration_ms: "bigint",
  exit_code: "integer",
  signal: "text",
  error: "text",
  outcome: "text",
  retry_delay_ms: "bigint",
};
/** How long a watcher's row lasts after its last renewal, and how often a watcher renews it. */
const WATCHER_TTL_MS = 60_000;
const WATCHER_RENEW_MS = 10_000;
/** Ids per DELETE statement, and at most rows per INSERT statement. */
const INSERT_CHUNK = 5000;
/** Rows per INSERT statement: their parameters stay below the protocol's 65,534 limit. */
const INSERT_ROWS = Math.min(INSERT_CHUNK, Math.floor(65_534 / INSERT_BOUND.length));

/**
 * A CTE that makes the statement's transaction commit asynchronously (`set_config(..., true)` is
 * SET LOCAL: the session keeps its setting). Statements join it (`FROM relaxed`), so it is
 * evaluated whenever they change a row; it is volatile, so PostgreSQL never inlines it away.
 */
const RELAXED_CTE =
  "relaxed AS (SELECT set_config('synchronous_commit', 'off', true) AS relaxed_commit)";
/** The same shape without the setting, for {@link PostgresStoreOptions.relaxedCommits} false. */
const DURABLE_CTE = "relaxed AS (SELECT 'on'::text AS relaxed_commit)";

/**
 * The server's clock in epoch milliseconds, read when the statement writes the row: leases are
 * written and compared on it (see {@link PostgresStoreOptions.leaseClock}).
 */
const SERVER_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/** Stops of everything kept in stop_requests (see Store.lastStopRequest). */
const STOPS_KEPT = 100;

const WORKER_COLUMNS =
  "id, pid, host, queues, started_at, heartbeat_at, current_job, stop_requested_at, supervisor_id";

/** The claim order; last ties: insertion order (seq). */
const CLAIM_ORDER = claimOrderSql("seq");

type Fragment = ReturnType<Sql["unsafe"]> | postgres.PendingQuery<postgres.Row[]>;
type Row = Record<string, unknown>;

/**
 * A statement's text and its parameters, built as a plain string: the hot statements of a
 * worker (settle, claim, settle-and-claim) are written this way and sent with
 * `sql.unsafe(text, params, { prepare: true })` (still prepared once per connection and text),
 * because postgres.js's nested tagged fragments cost a Promise-based object per piece and a walk
 * of them per call: more than half of the client's CPU per job (docs/architecture.md "Settle and
 * claim").
 */
class Statement {
  readonly params: (string | number | null)[] = [];
  /** `$n`, the placeholder of a new parameter (postgres.js infers its type as for `${x}`). */
  p(value: string | number | null): string {
    this.params.push(value);
    return `$${this.params.length}`;
  }
  /** `($a, $b, ...)` for `IN`. */
  list(values: readonly string[]): string {
    return `(${values.map((v) => this.p(v)).join(", ")})`;
  }
  run(sql: Sql, text: string, prepare = true): Promise<postgres.RowList<Row[]>> {
    return sql.unsafe(text, this.params, { prepare }) as unknown as Promise<
      postgres.RowList<Row[]>
    >;
  }
}

export interface PostgresStoreOptions {
  /** Keep queuectl's tables in this schema (created if missing); also `?schema=` in the URL. */
  schema?: string;
  /** Maximum connections in the pool (default 10). */
  max?: number;
  /**
   * Commit workers' bookkeeping asynchronously (default true; see the module comment). False
   * makes every commit synchronous, for comparison in the benchmark.
   */
  relaxedCommits?: boolean;
  /**
   * Whose clock lease times come from (default `"server"`). `"server"`: a claim and a renewal
   * write `lease_expires_at` from the server's clock at the moment the row is written, and a
   * rescue (findExpiredLeases, the `leaseExpiredBy` guard) compares with the server's clock: the
   * callers' `now` is not used for leases, so neither a stale `now` (computed before an outage)
   * nor a host's clock skew can make a fresh lease look expired. `"caller"`: from the `now` the
   * caller passes, as the Store contract's conformance suite drives it with a manual clock.
   */
  leaseClock?: "server" | "caller";
  /**
   * Short TCP keepalive for every connection (see connect.ts keepAliveSockets), for a process that
   * stays up (workers, the dashboard). Default false: a one-shot call skips loading node:net.
   */
  keepAlive?: boolean;
}

/**
 * The next due time among claimable jobs (Store.nextRunAt): $1..$queues the queue names to filter
 * on, then, when `after`, the lower bound. The condition is jobs_run_at's (migration 13), which
 * holds claimable jobs only: the lookup never walks jobs waiting for their dependencies.
 */
export function nextRunAtSql(queues: number, after: boolean): string {
  const queueFilter = queues > 0
    ? ` AND queue IN (${Array.from({ length: queues }, (_, i) => `$${i + 1}`).join(", ")})`
    : "";
  return `SELECT min(${CLAIM_DUE_COLUMN}) AS t FROM jobs WHERE ${CLAIMABLE_SQL}${queueFilter}` +
    (after ? ` AND ${CLAIM_DUE_COLUMN} > $${queues + 1}` : "");
}

/**
 * Scheduled jobs (stats): claimable jobs not due yet, the query followed by now. The condition is
 * jobs_run_at's, so the count is an index-only scan.
 */
export const SCHEDULED_COUNT_SQL: string =
  `SELECT count(*) FROM jobs WHERE ${CLAIMABLE_SQL} AND ${CLAIM_DUE_COLUMN} >`;

/**
 * Connects, creates or migrates the schema (once, under an advisory lock) and returns the store.
 * Throws StorageError when the server is unreachable (with `transient: true`) or when the
 * database's schema is newer than this program.
 */
export async function openPostgresStore(
  url: string,
  opts: PostgresStoreOptions = {},
): Promise<Store> {
  return postgresStoreOn(await connectAndMigrate(url, opts), opts);
}

/** The store on a pool that {@link connectAndMigrate} opened (store/mod.ts overlaps the two). */
export function postgresStoreOn(c: Connected, opts: PostgresStoreOptions = {}): Store {
  return new PostgresStore({
    ...c,
    relaxedCommits: opts.relaxedCommits ?? true,
    leaseClock: opts.leaseClock ?? "server",
  });
}

/**
 * `INSERT INTO jobs (...) VALUES (...), ...` of `rows` new jobs, the constants in place and $n for
 * the bound values, row after row (kept for the full chunk size: the statement is prepared).
 */
function insertSql(rows: number): string {
  if (rows === INSERT_ROWS && fullInsertSql !== undefined) return fullInsertSql;
  let n = 0;
  const row = () =>
    `(${
      INSERT_SET.map(([, s]) => s.from === "constant" ? sqlLiteral(s.value) : `$${++n}`)
        .join(", ")
    })`;
  const sql = `INSERT INTO jobs (${INSERT_SET.map(([name]) => name).join(", ")}) VALUES ${
    Array.from({ length: rows }, row).join(", ")
  }`;
  if (rows === INSERT_ROWS) fullInsertSql = sql;
  return sql;
}

/** {@link insertSql} and `NOTIFY queuectl_jobs` as one statement (a single-row insert's SQL kept). */
function insertAndNotifySql(rows: number): string {
  if (rows === 1 && oneRowNotifySql !== undefined) return oneRowNotifySql;
  const sql = `WITH ins AS (${insertSql(rows)} RETURNING 1) SELECT pg_notify(${
    sqlLiteral(NOTIFY_CHANNEL)
  }, current_schema()) FROM (SELECT 1 FROM ins LIMIT 1) AS inserted`;
  if (rows === 1) oneRowNotifySql = sql;
  return sql;
}
let oneRowNotifySql: string | undefined;
let fullInsertSql: string | undefined;

/** The states that hold a unique key, as the partial index jobs_unique_key says them. */
const UNIQUE_STATES_SQL = `state IN (${UNIQUE_KEY_STATES.map(sqlLiteral).join(", ")})`;
/** One job's insert that does nothing when an active job holds its unique key. */
const INSERT_KEYED_SQL = `${insertSql(1)} ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL ` +
  `AND ${UNIQUE_STATES_SQL} DO NOTHING RETURNING id`;

/** PostgreSQL cannot store NUL in text; captured output may contain it. */
function noNul(text: string): string {
  return text.includes("\0") ? text.replaceAll("\0", "\uFFFD") : text;
}

/**
 * Records the dependencies of `jobs` (just inserted, in this transaction): each must be a job
 * inserted before it (a lower seq: it existed, or came earlier in this input; so no cycle can
 * form), else InvalidInput rolls the whole insert back. The dependencies are locked (FOR SHARE)
 * before their states are read, so a settle of one waits for this commit and its trigger then sees
 * the new edges: blocked_by is never left counting a dependency that completed meanwhile. A job
 * after a dead one is dead at once, as if it had died since (docs/architecture.md "Flow control").
 */
async function linkDependencies(
  tx: postgres.TransactionSql,
  jobs: readonly JobToInsert[],
  now: number,
): Promise<void> {
  const pairs: [string, string][] = [];
  for (const job of jobs) {
    if (!job.depends_on) continue;
    for (const dep of parseDependsOn(job.depends_on)) pairs.push([job.id, dep]);
  }
  if (pairs.length === 0) return;
  const q = tx as unknown as Sql;
  // The edges, in input order (n), as one JSON parameter.
  const edges = q`(SELECT v->>0 AS job_id, v->>1 AS dep_id, n
    FROM jsonb_array_elements(${
    JSON.stringify(pairs)
  }::text::jsonb) WITH ORDINALITY AS x(v, n)) AS e`;
  const [bad] = await q`SELECT e.job_id, e.dep_id, d.id IS NOT NULL AS later FROM ${edges}
    JOIN jobs j ON j.id = e.job_id LEFT JOIN jobs d ON d.id = e.dep_id
    WHERE d.id IS NULL OR d.seq >= j.seq ORDER BY e.n LIMIT 1`;
  if (bad) {
    throw new InvalidInput(
      `Job ${quote(bad.job_id)} runs after ${quote(bad.dep_id)}, ${
        bad.later ? "which comes later in the input" : "which does not exist"
      }`,
      { hint: "a job may run after jobs already enqueued or earlier in the same file" },
    );
  }
  await q`WITH e AS (SELECT * FROM ${edges}),
    deps AS (SELECT id, state FROM jobs WHERE id IN (SELECT dep_id FROM e) FOR SHARE),
    linked AS (INSERT INTO job_deps (job_id, dep_id) SELECT job_id, dep_id FROM e),
    tally AS (
      SELECT e.job_id, count(*) FILTER (WHERE deps.state <> 'completed') AS n,
        (array_agg(e.dep_id ORDER BY e.n) FILTER (WHERE deps.state = 'dead'))[1] AS dead_dep
      FROM e JOIN deps ON deps.id = e.dep_id GROUP BY e.job_id
    )
    UPDATE jobs SET blocked_by = tally.n,
      state = CASE WHEN tally.dead_dep IS NULL THEN jobs.state ELSE 'dead' END,
      error = CASE WHEN tally.dead_dep IS NULL THEN jobs.error
        ELSE 'dependency ' || tally.dead_dep || ' failed' END,
      finished_at = CASE WHEN tally.dead_dep IS NULL THEN jobs.finished_at ELSE ${now}::bigint END
    FROM tally WHERE jobs.id = tally.job_id AND tally.n > 0`;
}

/** The columns a state change writes, with their values (NUL bytes out of the error). */
function changeValues(c: StateChange): Record<string, string | number | null> {
  const values: Record<string, string | number | null> = { state: c.to, updated_at: c.updated_at };
  for (const col of CHANGE_COLUMNS) {
    if (col in c.set) values[col] = c.set[col] ?? null;
  }
  if (typeof values.error === "string") values.error = noNul(values.error);
  return values;
}

/** Claimed rows in the claim order (CLAIM_RULE), then insertion order, as jobs. */
function sortClaimed(rows: readonly Row[]): Job[] {
  return [...rows]
    .sort((a, b) =>
      compareClaimOrder(a as unknown as Job, b as unknown as Job) ||
      (a.seq as number) - (b.seq as number)
    )
    .map(toJob);
}

/** A row's job columns (not seq, stdout, stderr). */
function toJob(r: Row): Job {
  const job: Record<string, unknown> = {};
  for (const c of JOB_COLUMNS) job[c] = r[c];
  return job as Job;
}

const SCHEDULE_COLUMNS = "name, cron, every_ms, tz, job, catch_up, paused, next_run_at, " +
  "last_run_at, last_job_id, created_at, updated_at";
/** A schedule's row with the state of its last job (jobs are looked up by primary key). */
const SCHEDULE_VIEW = `SELECT ${
  SCHEDULE_COLUMNS.split(", ").map((c) => `s.${c}`).join(", ")
}, j.state AS last_job_state FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job_id`;

function toWorker(r: Row): WorkerRecord {
  return {
    id: r.id as string,
    pid: r.pid as number,
    host: r.host as string,
    queues: r.queues === null ? null : JSON.parse(r.queues as string) as string[],
    started_at: r.started_at as number,
    heartbeat_at: r.heartbeat_at as number,
    current_job: r.current_job as string | null,
    stop_requested_at: r.stop_requested_at as number | null,
    supervisor_id: r.supervisor_id as string | null,
  };
}

/** A PostgreSQL array literal of `values` (text[] input syntax: each quoted, \\ and " escaped). */
function textArray(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replace(/[\\"]/g, (c) => "\\" + c)}"`).join(",")}}`;
}

/** How many of the newest jobs a search tests before it asks the trigram index (see listJobs). */
const SEARCH_WINDOW = 2000;

/** The queues closed to claims now: paused, or as many of their jobs running as their limit. */
const CLOSED_QUEUES_SQL = `SELECT c.name FROM queues c WHERE c.paused OR (c.max_running > 0
  AND c.max_running <= (SELECT count(*) FROM jobs r
    WHERE r.state = 'processing' AND r.queue = c.name))`;

/**
 * The workers' hint of a state change, an expression over the `changed` row (its id and queue):
 * `NOTIFY queuectl_jobs` when the job may now be claimed (or rescheduled); when a running job of a
 * limited queue (not paused) leaves `processing`, also, since it freed a slot and idle workers
 * leave full queues out of their wait (nextRunAt with open); otherwise NULL.
 */
function wakeSql(c: StateChange): string {
  const notify = `pg_notify('${NOTIFY_CHANNEL}', current_schema())`;
  if (CLAIMABLE_STATES.includes(c.to)) return notify;
  if (c.from !== "processing") return "NULL";
  return `(SELECT ${notify} FROM queues q
    WHERE q.name = changed.queue AND q.max_running > 0 AND NOT q.paused)`;
}

/**
 * When the fast-path claim takes the jobs it picked (the head of the claim order): only when none
 * of them is of a limited queue. Otherwise it takes none (their row locks end with the statement)
 * and the flow-controlled claim takes them in order, counting the limited queues' running jobs
 * under a lock: so a limit costs the claims of other queues' jobs that transaction only while a
 * limited queue's job is at the head (docs/architecture.md "Flow control").
 */
const FAST_TAKE_SQL = `AND NOT EXISTS (SELECT 1 FROM picked l JOIN queues q ON q.name = l.queue
  WHERE q.max_running > 0)`;

/** Every queue that has jobs, by name: a skip scan of jobs_queue_created (a seek per queue). */
const QUEUES_WITH_JOBS_SQL = `WITH RECURSIVE q(name) AS (
    SELECT (SELECT min(queue) FROM jobs)
    UNION ALL SELECT (SELECT min(queue) FROM jobs WHERE queue > q.name) FROM q
    WHERE q.name IS NOT NULL)
  SELECT name FROM q WHERE name IS NOT NULL`;

/** The names of the queues closed to claims now (see CLOSED_QUEUES_SQL). */
async function closedQueues(sql: Sql): Promise<Set<string>> {
  return new Set((await sql.unsafe(CLOSED_QUEUES_SQL)).map((r) => r.name as string));
}

/**
 * The open queues, listed exactly: the `served` ones (every queue that has jobs when null, by a
 * skip scan of jobs_queue_created) less the `closed` ones.
 */
async function openNames(
  sql: Sql,
  served: readonly string[] | null,
  closed: ReadonlySet<string>,
): Promise<string[]> {
  const names = served ?? (await sql.unsafe(QUEUES_WITH_JOBS_SQL)).map((r) => r.name as string);
  return names.filter((name) => !closed.has(name));
}

/** How long a store keeps claiming on the flow-controlled path once it met a controlled queue. */
const CONTROLLED_HOLD_MS = 1000;

class PostgresStore implements Store {
  readonly kind = "postgres" as const;
  readonly location: string;
  #sql: Sql;
  readonly #connect: (max: number, pool?: PoolOptions) => Sql;
  readonly #max: number;
  /** See {@link setCallTimeout}; null: calls are not bounded. */
  #callTimeoutMs: number | null = null;
  readonly #ctx: ErrorContext;
  readonly #cols: Fragment;
  /** `relaxed AS (...)`: see {@link RELAXED_CTE}. */
  readonly #relaxed: Fragment;
  /** The same, as text (see {@link Statement}). */
  readonly #relaxedText: string;
  /** The fixed parts of the claim statement, built once from core's claim rule (CLAIM_RULE). */
  readonly #claimParts: { due: string; order: string; moves: string; returning: string };
  /** The wake-ups of {@link waitForJobs}. */
  readonly #listener: JobsListener;
  /** The wake-ups of {@link waitForChanges}, and this store's row in `watchers` (once recorded). */
  readonly #changes: JobsListener;
  #watcherId: string | null = null;
  #watcherRenewedAt = -Infinity;
  /**
   * Until when (performance.now()) this store's claims go straight to the flow-controlled path:
   * set for {@link CONTROLLED_HOLD_MS} each time the fast path claimed nothing while a paused or
   * limited queue is among those it serves (a paused one turns the fast path off; a limited
   * queue's job at the head makes it take nothing). That path is right whatever the queues (it
   * takes turns on the limited ones and filters out the paused and full ones, none if there are
   * none), so a control lifted meanwhile costs at most that long on the slower path; meanwhile
   * each claim skips the fast path's statement and the test of the queues table: two round trips
   * of seven per job of a busy worker (settle, fast claim, test, then BEGIN, the queues' lock, the
   * claim, COMMIT).
   */
  #controlledUntil = -Infinity;
  /**
   * Whether the flow-controlled claim reads the open queues' own jobs (see #openQueues), decided
   * from the counters at most every {@link CONTROLLED_HOLD_MS}: for which queue filter (JSON),
   * until when, and what.
   */
  #walkDecision: { key: string; until: number; byQueue: boolean } | null = null;
  #closed = false;
  /** Calls under way, awaited by close(). */
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #leadership: PgLeadership;
  /** Lease times from the server's clock (see {@link PostgresStoreOptions.leaseClock}). */
  readonly #serverLeases: boolean;
  /** The claim's columns but the lease's expiry (written from the lease clock). */
  static readonly #claimSetColumns = CLAIM_SET_COLUMNS.filter((c) => c !== "lease_expires_at");

  constructor(
    o: {
      sql: Sql;
      connect: (max: number, pool?: PoolOptions) => Sql;
      max: number;
      location: string;
      ctx: ErrorContext;
      schema: string;
      relaxedCommits: boolean;
      leaseClock: "server" | "caller";
    },
  ) {
    const sql = o.sql;
    this.#sql = sql;
    this.#connect = o.connect;
    this.#max = o.max;
    this.location = o.location;
    this.#ctx = o.ctx;
    this.#serverLeases = o.leaseClock === "server";
    this.#listener = new JobsListener(o.connect, o.schema);
    this.#changes = new JobsListener(o.connect, o.schema, CHANGES_CHANNEL);
    this.#cols = sql.unsafe(JOB_COLUMN_LIST);
    this.#relaxedText = o.relaxedCommits ? RELAXED_CTE : DURABLE_CTE;
    this.#relaxed = sql.unsafe(this.#relaxedText);
    this.#leadership = new PgLeadership(o.connect, o.schema, o.ctx);
    this.#claimParts = {
      // `state IN (...) AND run_at <=`, followed by now.
      due: `${CLAIMABLE_SQL} AND ${CLAIM_DUE_COLUMN} <=`,
      order: CLAIM_ORDER,
      // `state = 'processing', attempts = jobs.attempts + 1`
      moves:
        `state = ${CLAIM_TO_SQL}, ${CLAIM_INCREMENT_COLUMN} = jobs.${CLAIM_INCREMENT_COLUMN} + 1`,
      // The insertion order (to sort by) and every job column.
      returning: ["seq", ...JOB_COLUMNS].map((c) => `jobs.${c}`).join(", "),
    };
  }

  /** Now on the lease clock: the server's (SQL) or the caller's `now`. */
  #leaseNow(sql: Sql, now: number): Fragment {
    return this.#serverLeases ? sql.unsafe(SERVER_MS) : sql`${now}::bigint`;
  }

  /** {@link #leaseNow} as text. */
  #leaseNowText(st: Statement, now: number): string {
    return this.#serverLeases ? SERVER_MS : `${st.p(now)}::bigint`;
  }

  /** See {@link Store.setCallTimeout}. */
  setCallTimeout(ms: number): void {
    if (this.#closed || ms === this.#callTimeoutMs) return;
    this.#callTimeoutMs = ms;
    // New sessions carry the server-side limits; the old pool's calls finish first.
    this.#replacePool(this.#sql, false);
  }

  /** Replaces `old` (if still current) with a new pool; `now`: destroy old's connections. */
  #replacePool(old: Sql, now: boolean): void {
    if (this.#sql !== old || this.#closed) return;
    const ms = this.#callTimeoutMs;
    this.#sql = this.#connect(this.#max, {
      idleTimeoutS: POOL_IDLE_S,
      ...(ms === null ? {} : { statementTimeoutMs: ms }),
    });
    old.end({ timeout: now ? 0 : 5 }).catch(() => {});
  }

  /**
   * Runs a driver call, mapping its errors to QueueErrors; bounded by the call timeout when one
   * is set: a call with no answer by then drops the pool (its connection is dead or stuck, e.g. a
   * network cut: no error ever comes) and fails as transient.
   */
  #run<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    const sql = this.#sql;
    const limit = this.#callTimeoutMs;
    const call = (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        if (limit === null) return await fn(sql);
        const late = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            this.#replacePool(sql, true);
            reject(
              new StorageError(
                `No answer from PostgreSQL at ${this.location} within ${formatDuration(limit)}`,
                {
                  hint: "check the network and the server; the call is retried",
                  transient: true,
                },
              ),
            );
          }, limit);
        });
        return await Promise.race([fn(sql), late]);
      } catch (err) {
        // A read-only session stays read-only (a demoted primary, a database set read-only
        // after it opened): the next call connects afresh, where a primary may answer.
        if ((err as { code?: unknown } | null)?.code === READ_ONLY) this.#replacePool(sql, true);
        throw toQueueError(err, this.#ctx);
      } finally {
        clearTimeout(timer);
      }
    })();
    this.#inflight.add(call);
    const forget = () => this.#inflight.delete(call);
    call.then(forget, forget);
    return call;
  }

  // --- jobs ---------------------------------------------------------------------------------

  insertJobs(
    p: { jobs: readonly JobToInsert[]; now: number } & UniqueKeyOptions,
  ): Promise<number> {
    const seen = new Set<string>();
    for (const job of p.jobs) {
      if (seen.has(job.id)) return Promise.reject(duplicate(job.id));
      seen.add(job.id);
    }
    if (p.jobs.length === 0) return Promise.resolve(0);
    if (
      p.jobs.length <= INSERT_ROWS && p.jobs.every((j) => j.unique_key == null && !j.depends_on)
    ) {
      // One statement, one round trip (docs/architecture.md "Wake-ups"): the rows and the
      // NOTIFY commit together in the statement's own transaction (the INSERT in a CTE runs
      // whole), instead of BEGIN, INSERT, pg_notify and COMMIT: four round trips on the
      // enqueue-to-start path.
      return this.#run(async (sql) => {
        const values: (string | number | null)[] = [];
        for (const job of p.jobs) {
          for (const b of INSERT_BOUND) values.push(b.now ? p.now : job[b.name] ?? null);
        }
        try {
          await sql.unsafe(insertAndNotifySql(p.jobs.length), values, { prepare: true });
        } catch (err) {
          if (isUniqueViolation(err)) throw duplicate(duplicateKeyOf(err) ?? "?");
          throw err;
        }
        return p.jobs.length;
      });
    }
    return this.#run(async (sql) => {
      try {
        return await sql.begin(async (tx) => {
          let n = 0;
          if (p.jobs.some((j) => j.unique_key != null)) {
            n = await this.#insertKeyed(tx, p.jobs, p.now, p);
          } else {
            for (let i = 0; i < p.jobs.length; i += INSERT_ROWS) {
              const rows = p.jobs.slice(i, i + INSERT_ROWS);
              const values: (string | number | null)[] = [];
              for (const job of rows) {
                for (const b of INSERT_BOUND) values.push(b.now ? p.now : job[b.name] ?? null);
              }
              await tx.unsafe(insertSql(rows.length), values, { prepare: true });
              await linkDependencies(tx, rows, p.now);
            }
            n = p.jobs.length;
          }
          if (n > 0) await tx`SELECT pg_notify(${NOTIFY_CHANNEL}, current_schema())`;
          return n;
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw duplicate(duplicateKeyOf(err) ?? "?");
        throw err;
      }
    });
  }

  insertJobStream(
    p: { batches: AsyncIterable<readonly JobToInsert[]>; now: number } & UniqueKeyOptions,
  ): Promise<number> {
    return this.#run(async (sql) => {
      let n = 0;
      try {
        await sql.begin(async (tx) => {
          // Rows gathered up to one full INSERT statement, then sent.
          let values: (string | number | null)[] = [];
          let rows = 0;
          // The jobs of the rows gathered that have dependencies (linked once they are inserted).
          let dependent: JobToInsert[] = [];
          const flush = async () => {
            if (rows === 0) return;
            await tx.unsafe(insertSql(rows), values, { prepare: true });
            n += rows;
            values = [];
            rows = 0;
            if (dependent.length > 0) await linkDependencies(tx, dependent, p.now);
            dependent = [];
          };
          for await (const jobs of p.batches) {
            if (jobs.some((j) => j.unique_key != null)) {
              // In input order: what was gathered first, then this batch one by one.
              await flush();
              n += await this.#insertKeyed(tx, jobs, p.now, p);
              continue;
            }
            for (const job of jobs) {
              for (const b of INSERT_BOUND) values.push(b.now ? p.now : job[b.name] ?? null);
              if (job.depends_on) dependent.push(job);
              if (++rows === INSERT_ROWS) await flush();
            }
          }
          await flush();
          if (n > 0) await tx`SELECT pg_notify(${NOTIFY_CHANNEL}, current_schema())`;
        });
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        const id = duplicateKeyOf(err) ?? "?";
        // Rolled back: the id is in the database only if it was there before this input.
        const [row] = await sql`SELECT 1 AS one FROM jobs WHERE id = ${id}`;
        throw row
          ? duplicate(id)
          : new Conflict(`Job id ${JSON.stringify(id)} appears twice in the input`);
      }
      return n;
    });
  }

  /**
   * Inserts `jobs` one by one inside `tx`, a job with a unique key by an INSERT that does nothing
   * when an active job holds the key (the partial unique index decides, waiting for a concurrent
   * insert of the same key to commit or roll back), then per OnDuplicate (store.ts). Each
   * statement sees what committed before it (READ COMMITTED), so a holder that finished or was
   * replaced meanwhile makes the next try insert. Returns how many were inserted.
   */
  async #insertKeyed(
    tx: postgres.TransactionSql,
    jobs: readonly JobToInsert[],
    now: number,
    unique: UniqueKeyOptions,
  ): Promise<number> {
    const q = tx as unknown as Sql;
    let n = 0;
    for (const job of jobs) {
      const values = INSERT_BOUND.map((b) => b.now ? now : job[b.name] ?? null);
      const key = job.unique_key;
      if (key == null) {
        await q.unsafe(insertSql(1), values, { prepare: true });
        if (job.depends_on) await linkDependencies(tx, [job], now);
        n++;
        continue;
      }
      for (let attempt = 0;; attempt++) {
        if (attempt === 50) {
          throw new Conflict(`A job with unique key ${quote(key)} keeps changing; try again`);
        }
        const inserted = await q.unsafe(INSERT_KEYED_SQL, values, { prepare: true });
        if (inserted.length === 1) {
          if (job.depends_on) await linkDependencies(tx, [job], now);
          n++;
          break;
        }
        const [held] = await q`SELECT id, state FROM jobs
          WHERE unique_key = ${key} AND ${q.unsafe(UNIQUE_STATES_SQL)}`;
        if (!held) continue; // finished meanwhile: try again
        const holder = { id: held.id as string, state: held.state as string };
        const mode = unique.onDuplicate ?? "existing";
        if (mode === "existing") {
          unique.onExisting?.(job.id, holder.id);
          break;
        }
        if (mode === "error" || holder.state === "processing") {
          throw uniqueKeyConflict(key, holder, mode === "replace");
        }
        await q`DELETE FROM jobs WHERE id = ${holder.id} AND state IN ('pending', 'failed')`;
      }
    }
    return n;
  }

  getJob(p: { id: string }): Promise<Job | null> {
    return this.#run(async (sql) => {
      const rows = await sql`SELECT ${this.#cols} FROM jobs WHERE id = ${p.id}`;
      return rows.length ? toJob(rows[0]) : null;
    });
  }

  getJobOutput(p: { id: string }): Promise<JobOutput | null> {
    return this.#run(async (sql) => {
      const rows = await sql`SELECT r.stdout, r.stderr FROM jobs j
        LEFT JOIN LATERAL (SELECT stdout, stderr FROM job_runs WHERE job_id = j.id
          ORDER BY id DESC LIMIT 1) r ON TRUE
        WHERE j.id = ${p.id}`;
      if (!rows.length) return null;
      return { stdout: rows[0].stdout ?? "", stderr: rows[0].stderr ?? "" };
    });
  }

  getStderrTails(p: { ids: readonly string[]; chars: number }): Promise<Map<string, string>> {
    if (p.ids.length === 0) return Promise.resolve(new Map());
    return this.#run(async (sql) => {
      const rows = await sql`SELECT DISTINCT ON (job_id) job_id, right(stderr, ${p.chars}) AS tail
        FROM job_runs WHERE job_id IN ${sql([...new Set(p.ids)])} ORDER BY job_id, id DESC`;
      return new Map(
        rows.filter((r) => r.tail !== "").map((r) => [r.job_id as string, r.tail as string]),
      );
    });
  }

  listRuns(p: { jobId: string; outputChars: number }): Promise<StoredRun[]> {
    return this.#run(async (sql) =>
      (await sql`SELECT ${sql.unsafe(RUN_COLUMN_LIST)},
          right(stdout, ${p.outputChars}) AS stdout, right(stderr, ${p.outputChars}) AS stderr
        FROM job_runs WHERE job_id = ${p.jobId} ORDER BY id`).map((r, i) => ({
        ...(r as unknown as StoredRun),
        run: i + 1,
        stdout: p.outputChars > 0 ? r.stdout as string : "",
        stderr: p.outputChars > 0 ? r.stderr as string : "",
      }))
    );
  }

  getLatestRun(p: { jobId: string }): Promise<StoredRun | null> {
    return this.#run(async (sql) => {
      const rows = await sql`SELECT ${sql.unsafe(RUN_COLUMN_LIST)}, stdout, stderr,
          (SELECT count(*) FROM job_runs WHERE job_id = ${p.jobId})::integer AS run
        FROM job_runs WHERE job_id = ${p.jobId} ORDER BY id DESC LIMIT 1`;
      return rows.length ? { ...(rows[0] as unknown as StoredRun) } : null;
    });
  }

  getRunOutput(p: { jobId: string; attempt: number }): Promise<JobOutput | null> {
    return this.#run(async (sql) => {
      const rows = await sql`SELECT stdout, stderr FROM job_runs
        WHERE job_id = ${p.jobId} AND attempt = ${p.attempt} ORDER BY id DESC LIMIT 1`;
      return rows.length ? { stdout: rows[0].stdout, stderr: rows[0].stderr } : null;
    });
  }

  getJobStates(p: { ids: readonly string[] }): Promise<Map<string, JobState>> {
    if (p.ids.length === 0) return Promise.resolve(new Map());
    return this.#run(async (sql) => {
      const states = new Map<string, JobState>();
      for (let i = 0; i < p.ids.length; i += INSERT_CHUNK) {
        const chunk = p.ids.slice(i, i + INSERT_CHUNK) as string[];
        for (const r of await sql`SELECT id, state FROM jobs WHERE id IN ${sql(chunk)}`) {
          states.set(r.id as string, r.state as JobState);
        }
      }
      return states;
    });
  }

  listJobIds(p: { states: readonly JobState[]; queue?: string }): Promise<string[]> {
    if (p.states.length === 0) return Promise.resolve([]);
    return this.#run(async (sql) =>
      (await sql`SELECT id FROM jobs WHERE state IN ${sql(p.states as string[])}
        ${p.queue !== undefined ? sql`AND queue = ${p.queue}` : sql``} ORDER BY seq`)
        .map((r) => r.id as string)
    );
  }

  appendRunOutput(p: RunOutputChunk): Promise<boolean> {
    const stdout = noNul(p.stdout);
    const stderr = noNul(p.stderr);
    return this.#run(async (sql) => {
      // One statement: the lease guard, the append (or the first row), and the watchers' hint.
      // A worker's own bookkeeping: committed asynchronously, like its settles.
      const rows = await sql`WITH ${this.#relaxed},
        held AS (SELECT id FROM jobs, relaxed WHERE id = ${p.jobId} AND state = 'processing'
          AND lease_owner = ${p.worker}),
        appended AS (
          UPDATE job_runs SET stdout = right(stdout || ${stdout}::text, ${p.limit}),
            stderr = right(stderr || ${stderr}::text, ${p.limit})
          WHERE id = (SELECT max(id) FROM job_runs WHERE job_id = ${p.jobId}
              AND attempt = ${p.attempt} AND worker = ${p.worker} AND outcome = 'running')
            AND EXISTS (SELECT 1 FROM held)
          RETURNING job_runs.id),
        added AS (
          INSERT INTO job_runs (job_id, attempt, worker, host, started_at, outcome, stdout, stderr)
          SELECT held.id, ${p.attempt}::integer, ${p.worker}::text, ${p.host}::text,
            ${p.startedAt}::bigint, 'running', right(${stdout}::text, ${p.limit}),
            right(${stderr}::text, ${p.limit})
          FROM held WHERE NOT EXISTS (SELECT 1 FROM appended))
        SELECT (SELECT pg_notify(${CHANGES_CHANNEL}, current_schema()) FROM watchers
          WHERE expires_at > ${p.now} LIMIT 1) AS watched
        FROM held`;
      return rows.length === 1;
    });
  }

  /** The state and queue filters (a search is tested by #searchTerm). */
  #where(p: CountJobsParams): Fragment {
    const sql = this.#sql;
    let where = sql`TRUE`;
    if (p.state) where = sql`${where} AND state = ${p.state}`;
    if (p.queue) where = sql`${where} AND queue = ${p.queue}`;
    return where;
  }

  /**
   * The substring test, case-insensitive: the job's `search_text` (migration 17: lower(id), a
   * newline, lower(command), stored) LIKE the lower-cased text. That is what `id ILIKE` or
   * `command ILIKE` computes inside, each side lowered by its own collation, tested once per row
   * on a stored text, and the trigram index on `search_text` answers it (or a scan). The server
   * lowers the pattern first (unless it is ASCII without capitals), in a statement of its own, by
   * the database's collation as it lowered the commands (JavaScript's toLowerCase differs for a
   * few letters and locales: Turkish I, final sigma), so the search statements carry it as a
   * plain value: the planner sees it (pg_trgm's estimates), and the generic plan of a prepared
   * statement does not lower it again for every row it tests, as `LIKE lower($1)` did
   * (docs/architecture.md, "Reads at a million jobs"). Ids hold no newline, so only a text with
   * one could match across the two parts: that one is also tested on the command. A subquery
   * that tests it must select `search_text` and `command`, or the names bind to the outer `jobs`
   * (the same rows, through a scan).
   */
  async #searchTerm(sql: Sql, search: string): Promise<{ term: Fragment }> {
    const pattern = `%${search.replace(/[\\%_]/g, (c) => "\\" + c)}%`;
    // ASCII without capitals is its own lower case in every collation: no round trip.
    const lowered = /^\p{ASCII}*$/u.test(pattern) && !/[A-Z]/.test(pattern)
      ? pattern
      : (await sql`SELECT lower(${pattern}::text) AS lowered`)[0].lowered as string;
    const term = sql`search_text LIKE ${lowered}`;
    // Wrapped: a fragment is a thenable, which an async function's return would run.
    return { term: search.includes("\n") ? sql`(${term} AND command ILIKE ${pattern})` : term };
  }

  listJobs(p: ListJobsParams): Promise<Job[]> {
    const order = p.order ?? "newest";
    const orderBy = order === "oldest"
      ? "created_at ASC, seq ASC"
      : order === "next"
      ? CLAIM_ORDER
      : "created_at DESC, seq DESC";
    return this.#run(async (sql) => {
      let filter = this.#where(p);
      if (p.after !== undefined) {
        filter = sql`${filter} AND ${(await this.#cursorTerm(sql, p.after, order, false)).term}`;
      }
      if (p.through !== undefined) {
        filter = sql`${filter} AND ${(await this.#cursorTerm(sql, p.through, order, true)).term}`;
      }
      const offset = p.offset ?? 0;
      const by = sql.unsafe(orderBy);
      if (!p.search) {
        const rows = await sql`SELECT ${this.#cols} FROM jobs WHERE ${filter}
          ORDER BY ${by} LIMIT ${p.limit} OFFSET ${offset}`;
        return rows.map(toJob);
      }
      const { term: match } = await this.#searchTerm(sql, p.search);
      if (p.through !== undefined) {
        // The bounded search: the jobs up to `through` in list order (an index walk), each
        // tested (docs/architecture.md, "Short searches").
        const rows = await sql`SELECT ${this.#cols} FROM jobs WHERE id IN (
            SELECT id FROM (SELECT id, search_text, command, created_at, seq FROM jobs WHERE ${filter}
              ORDER BY ${by} OFFSET 0) AS tested
            WHERE ${match} ORDER BY ${by} LIMIT ${p.limit} OFFSET ${offset})
          ORDER BY ${by}`;
        return rows.map(toJob);
      }
      if (order !== "next") {
        // As on SQLite (docs/architecture.md, "Reads at a million jobs"); left to itself the
        // planner walks jobs_created testing each row: seconds when the matches are old.
        // 1. The newest (or oldest) SEARCH_WINDOW jobs of the filter, tested one by one: a
        //    frequent text fills the page there.
        const windowed = await sql`SELECT ${this.#cols} FROM jobs WHERE id IN (
            SELECT id FROM (SELECT id, search_text, command, created_at, seq FROM jobs WHERE ${filter}
              ORDER BY ${by} LIMIT ${SEARCH_WINDOW}) AS newest
            WHERE ${match} ORDER BY ${by} LIMIT ${p.limit} OFFSET ${offset})
          ORDER BY ${by}`;
        if (windowed.length === p.limit) return windowed.map(toJob);
        // 2. A rarer text: every match (from the trigram index, a bitmap scan; for texts
        //    shorter than a trigram, a sequential scan), then the page's by a top-N sort.
        //    OFFSET 0 keeps the planner from walking jobs_created instead (and from writing
        //    the matches out, as a materialized CTE did). The sort carries each match's
        //    ctid, not its id: the bitmap scan yields matches oldest first, so nearly every one
        //    enters the top-N heap, and a fixed-size ctid copies cheaper than a text id
        //    (docs/architecture.md, "Reads at a million jobs", has the measure). One statement,
        //    one snapshot: the page's rows are read at the ctids of the very versions that matched.
        const rows = await sql`SELECT ${this.#cols} FROM jobs WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM (SELECT ctid, created_at, seq FROM jobs WHERE ${filter} AND ${match}
              OFFSET 0) AS hits
            ORDER BY ${by} LIMIT ${p.limit} OFFSET ${offset}))
          ORDER BY ${by}`;
        return rows.map(toJob);
      }
      const rows = await sql`SELECT ${this.#cols} FROM jobs WHERE ${filter} AND ${match}
        ORDER BY ${by} LIMIT ${p.limit} OFFSET ${offset}`;
      return rows.map(toJob);
    });
  }

  countJobs(p: CountJobsParams): Promise<number> {
    return this.#run(async (sql) => {
      if (!p.search) {
        // The trigger-kept counters per queue and state answer without a scan.
        const [{ n }] = await sql`SELECT coalesce(sum(n), 0)::bigint AS n FROM job_counts
          WHERE ${p.state ? sql`state = ${p.state}` : sql`true`}
            AND ${p.queue ? sql`queue = ${p.queue}` : sql`true`}`;
        return p.cap === undefined ? n as number : Math.min(n as number, p.cap);
      }
      const { term: match } = await this.#searchTerm(sql, p.search);
      if (p.scan !== undefined) {
        // Among the newest `scan` jobs of the filter only (see CountJobsParams.scan).
        const [{ n }] =
          await sql`SELECT count(*) AS n FROM (SELECT id, search_text, command FROM jobs
          WHERE ${this.#where(p)}
          ORDER BY created_at DESC, seq DESC LIMIT ${Math.max(0, Math.floor(p.scan))}) AS tested
          WHERE ${match}`;
        return p.cap === undefined ? n as number : Math.min(n as number, p.cap);
      }
      const cap = p.cap === undefined ? sql`` : sql`LIMIT ${Math.max(0, Math.floor(p.cap))}`;
      const [{ n }] = await sql`SELECT count(*) AS n FROM
        (SELECT 1 FROM jobs WHERE ${this.#where(p)} AND ${match} ${cap}) AS matching`;
      return n as number;
    });
  }

  countDeadSince(p: { since: number; queues: readonly string[] | null }): Promise<number> {
    return this.#run(async (sql) => {
      const queues = p.queues?.length ? [...p.queues] : null;
      const [{ n }] = await sql`SELECT count(*)::bigint AS n FROM jobs
        WHERE state = 'dead' AND updated_at >= ${p.since}
          AND coalesce(finished_at, updated_at) >= ${p.since}
          ${queues ? sql`AND queue IN ${sql(queues)}` : sql``}`;
      return n as number;
    });
  }

  stats(p: { now: number }): Promise<QueueStats> {
    return this.#run(async (sql) => {
      const [byState, [extra]] = await Promise.all([
        sql`SELECT state, sum(n)::bigint AS n FROM job_counts GROUP BY state`,
        sql`SELECT
          (SELECT min(created_at) FROM jobs
            WHERE state = 'pending' AND run_at <= ${p.now} AND blocked_by = 0)
            AS oldest,
          (${sql.unsafe(SCHEDULED_COUNT_SQL)} ${p.now}) AS scheduled,
          (SELECT count(*) FROM jobs WHERE ${sql.unsafe(BLOCKED_SQL)}) AS blocked`,
      ]);
      const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<
        JobState,
        number
      >;
      for (const r of byState) counts[r.state as JobState] = r.n as number;
      return {
        counts,
        oldest_pending_at: (extra.oldest as number | null) ?? null,
        scheduled: extra.scheduled as number,
        blocked: extra.blocked as number,
      };
    });
  }

  queueMetrics(p: { now: number }): Promise<QueueMetrics[]> {
    return this.#run(async (sql) => {
      // Counts from the counters. The oldest due job of each queue that has waiting jobs, by the
      // shorter of two walks (walksQueues; not a GROUP BY of every job): the next-due index
      // (jobs_run_at) in run_at order up to the queue's first job, one statement for every
      // such queue; or, for queues smaller than that walk, their own jobs in one statement,
      // planned with its values (unprepared: a cached generic plan, which cannot tell a small
      // queue from a large one, walks jobs_run_at there too).
      const rows = (await sql`SELECT queue, state, sum(n)::bigint AS n FROM job_counts
          GROUP BY queue, state HAVING sum(n) <> 0 ORDER BY queue, state`).map((r) => ({
        queue: r.queue as string,
        state: r.state as JobState,
        n: Number(r.n),
      }));
      const sizes = queueSizes(rows);
      const walked: string[] = [];
      const small: string[] = [];
      for (const [queue, size] of sizes.queues) {
        if (size.waiting === 0) continue;
        (walksQueues({ ...size, allWaiting: sizes.allWaiting }) ? small : walked).push(queue);
      }
      const due = new Map<string, number | null>();
      if (walked.length > 0) {
        for (
          const r of await sql`SELECT q.queue, (SELECT run_at FROM jobs
              WHERE state IN ('pending', 'failed') AND blocked_by = 0 AND queue = q.queue
                AND run_at <= ${p.now} ORDER BY run_at LIMIT 1) AS due
            FROM json_array_elements_text(${JSON.stringify(walked)}::text::json) AS q(queue)`
        ) due.set(r.queue as string, r.due === null ? null : Number(r.due));
      }
      if (small.length > 0) {
        for (
          const r of await sql.unsafe(
            `SELECT queue, min(run_at) AS due FROM jobs WHERE queue = ANY($1::text::text[])
              AND state IN ('pending', 'failed') AND blocked_by = 0 AND run_at <= $2
              GROUP BY queue`,
            [textArray(small), p.now],
            { prepare: false },
          )
        ) due.set(r.queue as string, Number(r.due));
      }
      return collectQueueMetrics(rows.map((r) => ({
        ...r,
        due: r.state === "pending" || r.state === "failed" ? due.get(r.queue) ?? null : null,
      })));
    });
  }

  runTotals(): Promise<Map<string, number>> {
    return this.#run(async (sql) => {
      const rows = await sql`SELECT name, sum(n) AS n FROM run_totals GROUP BY name`;
      return new Map(rows.map((r) => [r.name as string, Number(r.n)]));
    });
  }

  completedPerBucket(p: { since: number; bucketMs: number }): Promise<number[]> {
    return this.#run(async (sql) => {
      const rows = await sql`SELECT (finished_at - ${p.since}::bigint) / ${p.bucketMs}::bigint AS b,
          count(*) AS n
        FROM jobs WHERE state = 'completed' AND finished_at >= ${p.since} GROUP BY b`;
      const size = rows.reduce((m, r) => Math.max(m, (r.b as number) + 1), 0);
      const buckets = new Array<number>(size).fill(0);
      for (const r of rows) buckets[r.b as number] = r.n as number;
      return buckets;
    });
  }

  /**
   * `(created_at, seq) < (...)` of the job `id` in list `order`: the jobs after a cursor, or with
   * `through`, those up to and including a bound (as the SQLite store's #cursorTerm). Wrapped in
   * an object: a fragment is thenable, and an async function would run it as a query.
   */
  async #cursorTerm(
    sql: Sql,
    id: string,
    order: "newest" | "oldest" | "next",
    through: boolean,
  ): Promise<{ term: Fragment }> {
    if (order === "next") {
      throw new InvalidInput(
        through
          ? "A bound (through) pages newest or oldest first"
          : "A cursor (after) pages newest or oldest first",
      );
    }
    const [at] = await sql`SELECT created_at, seq FROM jobs WHERE id = ${id}`;
    if (!at) throw cursorGone(id);
    const op = through ? (order === "newest" ? ">=" : "<=") : order === "newest" ? "<" : ">";
    return { term: sql`(created_at, seq) ${sql.unsafe(op)} (${at.created_at}, ${at.seq})` };
  }

  applyChange(p: { change: StateChange; output?: JobOutput }): Promise<boolean> {
    const c = p.change;
    const values = changeValues(c);
    // A worker's settle or a rescue (lease-guarded): losing it only means running the job again.
    const relaxed = c.leaseOwner !== undefined || c.leaseExpiredBy !== undefined;
    if (c.lostRun) return this.#settleLost(c, values, p.output);
    return this.#run(async (sql) => {
      const st = new Statement();
      const ctes = relaxed ? `${this.#relaxedText},` : "";
      const changed = this.#changeCtes(st, c, values, relaxed, p.output);
      // Workers' hint when the job may be claimed; watchers' hint (wait, logs --follow) only
      // while one is recorded: one look at the small watchers table, no NOTIFY otherwise.
      let rows;
      try {
        rows = await st.run(
          sql,
          `WITH ${ctes} ${changed}
        SELECT ${wakeSql(c)} AS woke,
          (SELECT pg_notify('${CHANGES_CHANNEL}', current_schema()) FROM watchers
            WHERE expires_at > ${st.p(c.updated_at)} LIMIT 1) AS watched
        FROM changed`,
        );
      } catch (err) {
        // Back to an active state while another job holds the unique key (retry, restore).
        if (!isUniqueViolation(err)) throw err;
        const [job] = await sql`SELECT unique_key FROM jobs WHERE id = ${c.id}`;
        const key = (job?.unique_key as string | null | undefined) ?? null;
        const [held] = key === null ? [] : await sql`SELECT id, state FROM jobs
          WHERE unique_key = ${key} AND ${sql.unsafe(UNIQUE_STATES_SQL)}`;
        throw heldKeyConflict(
          c.id,
          key,
          held ? { id: held.id as string, state: held.state as string } : undefined,
        );
      }
      return rows.length === 1;
    });
  }

  /**
   * `changed AS (...)`: the guarded UPDATE of one state change (see core/transitions.ts), returning
   * the job's id and queue when it was applied, followed by the run's CTEs (see {@link #runCtes})
   * if any.
   * `relaxed`: the UPDATE joins the `relaxed` CTE, which the statement must define.
   */
  #changeCtes(
    st: Statement,
    c: StateChange,
    values: Record<string, string | number | null>,
    relaxed: boolean,
    output: JobOutput | undefined,
  ): string {
    const guard = `id = ${st.p(c.id)} AND state = ${st.p(c.from)}` +
      (c.leaseOwner !== undefined ? ` AND lease_owner = ${st.p(c.leaseOwner)}` : "") +
      (c.leaseExpiredBy !== undefined
        ? ` AND lease_expires_at <= ${this.#leaseNowText(st, c.leaseExpiredBy)}`
        : "");
    const set = Object.keys(values).map((k) => `"${k}" = ${st.p(values[k])}`).join(", ");
    const update = relaxed
      ? `UPDATE jobs SET ${set} FROM relaxed WHERE ${guard}`
      : `UPDATE jobs SET ${set} WHERE ${guard}`;
    const run = c.run ? `, ${this.#runCtes(st, c.id, c.run, output)}` : "";
    return `changed AS (${update} RETURNING jobs.id, jobs.queue) ${run}`;
  }

  /**
   * A late result (transitions.completeLate), one statement: the job is completed and the run a
   * rescue closed as lost is rewritten, only while that run is still the job's latest and its
   * attempt the job's (no other run started).
   */
  #settleLost(
    c: StateChange,
    values: Record<string, string | number | null>,
    output: JobOutput | undefined,
  ): Promise<boolean> {
    const lost = c.lostRun!;
    return this.#run(async (sql) => {
      const runValues: Record<string, string | number | null> = {};
      for (const col of RUN_COLUMNS) {
        const v = c.run ? c.run[col] : null;
        runValues[col] = typeof v === "string" ? noNul(v) : v;
      }
      if (output) {
        runValues.stdout = noNul(output.stdout);
        runValues.stderr = noNul(output.stderr);
      }
      const states = LOST_RUN_STATES as string[];
      const rows = await sql`WITH latest AS (
          SELECT id FROM job_runs WHERE job_id = ${c.id} ORDER BY id DESC LIMIT 1
        ), lost AS (
          SELECT r.id FROM job_runs r JOIN latest USING (id)
          WHERE r.worker = ${lost.worker} AND r.attempt = ${lost.attempt}
            AND r.outcome IN ${sql(states)} AND starts_with(r.error, ${LOST_RUN_PREFIX})
        ), changed AS (
          UPDATE jobs SET ${sql(values, Object.keys(values))}
          WHERE id = ${c.id} AND state IN ${sql(states)} AND attempts = ${lost.attempt}
            AND EXISTS (SELECT 1 FROM lost)
          RETURNING jobs.id
        ), rewritten AS (
          UPDATE job_runs SET ${sql(runValues, Object.keys(runValues))}
          WHERE id IN (SELECT id FROM lost) AND ${c.run ? sql`TRUE` : sql`FALSE`}
            AND EXISTS (SELECT 1 FROM changed)
          RETURNING job_runs.id
        )
        SELECT (SELECT pg_notify(${CHANGES_CHANNEL}, current_schema()) FROM watchers
            WHERE expires_at > ${c.updated_at} LIMIT 1) AS watched,
          (SELECT count(*) FROM rewritten) AS rewritten
        FROM changed`;
      return rows.length === 1;
    });
  }

  requestKill(
    p: { id: string; signal: string; retry: boolean; now: number },
  ): Promise<boolean> {
    return this.#run(async (sql) => {
      const rows = await sql`WITH changed AS (
          UPDATE jobs SET kill_signal = ${p.signal}, kill_retry = ${p.retry ? 1 : 0},
            updated_at = ${p.now}
          WHERE id = ${p.id} AND state = 'processing' RETURNING id
        ) SELECT pg_notify(${KILL_CHANNEL}, current_schema()) FROM changed`;
      return rows.length === 1;
    });
  }

  /** See {@link JobsListener.onKillRequest}. */
  watchKillRequests(onHint: () => void): () => void {
    return this.#listener.onKillRequest(onHint);
  }

  /**
   * `closed AS (...), added AS (...)`: the run a settle ends (see Store.applyChange), written only
   * when `changed` (the guarded UPDATE of the job) has its row.
   */
  #runCtes(st: Statement, jobId: string, run: JobRun, output: JobOutput | undefined): string {
    // Each column's value once, cast (the UPDATE and the INSERT use the same parameter).
    const values = RUN_COLUMNS.map((c) => {
      const value = run[c];
      return `${st.p(typeof value === "string" ? noNul(value) : value)}::${RUN_COLUMN_TYPES[c]}`;
    });
    const sets = RUN_COLUMNS.map((c, i) => `${c} = ${values[i]}`);
    const stdout = st.p(output ? noNul(output.stdout) : "");
    const stderr = st.p(output ? noNul(output.stderr) : "");
    if (output) sets.push(`stdout = ${stdout}::text`, `stderr = ${stderr}::text`);
    return `closed AS (
        UPDATE job_runs SET ${sets.join(", ")}
        WHERE job_id = ${st.p(jobId)} AND attempt = ${st.p(run.attempt)}
          AND worker IS NOT DISTINCT FROM ${st.p(run.worker)}::text AND outcome = 'running'
          AND EXISTS (SELECT 1 FROM changed)
        RETURNING job_runs.id),
      added AS (
        INSERT INTO job_runs (job_id, ${RUN_COLUMN_LIST}, stdout, stderr)
        SELECT changed.id, ${values.join(", ")}, ${stdout}::text, ${stderr}::text
        FROM changed WHERE NOT EXISTS (SELECT 1 FROM closed))`;
  }

  claimJobs(p: ClaimParams): Promise<Job[]> {
    if (p.limit <= 0) return Promise.resolve([]);
    return this.#run(async (sql) => {
      const served = () =>
        p.queues && p.queues.length ? sql`AND name IN ${sql(p.queues as string[])}` : sql``;
      if (performance.now() < this.#controlledUntil) {
        return await this.#claimControlled(sql, p, served());
      }
      // Fast path: one statement, taken only while no queue of the worker's is paused (a test
      // on the small queues table evaluated once per statement), and which takes nothing when a
      // job it picked is of a limited queue (see FAST_TAKE_SQL).
      const claimed = await this.#claimStatement(
        sql,
        p,
        p.limit,
        (st) => this.#uncontrolled(st, p),
        true,
        FAST_TAKE_SQL,
      );
      if (claimed.length > 0) return claimed;
      const queues = served();
      const [controlled] = await sql`SELECT 1 AS one FROM queues
        WHERE (paused OR max_running > 0) ${queues} LIMIT 1`;
      if (!controlled) return claimed;
      this.#controlledUntil = performance.now() + CONTROLLED_HOLD_MS;
      return await this.#claimControlled(sql, p, queues);
    });
  }

  /**
   * The claim while some queue is paused or limited: one transaction that first locks the rows of
   * the limited queues the worker serves (in name order), so claims from a limited queue take
   * turns, and then, in a statement with a fresh snapshot (READ COMMITTED), counts each limited
   * queue's running jobs and claims one job at a time from the queues not paused and not full.
   * A limit is thus never overshot, whatever the number of workers and hosts (docs/architecture.md
   * "Flow control").
   */
  #claimControlled(sql: Sql, p: ClaimParams, served: Fragment): Promise<Job[]> {
    return sql.begin(async (tx) => {
      const q = tx as unknown as Sql;
      await q`SELECT name FROM queues WHERE max_running > 0 AND NOT paused ${served}
        ORDER BY name FOR UPDATE`;
      const open = await this.#openQueues(q, p);
      const claimed: Job[] = [];
      // Nothing ahead on this path (ClaimParams.ahead): no held job takes a limited queue's slot.
      for (let i = 0; i < p.limit - (p.ahead ?? 0); i++) {
        const one = await this.#claimStatement(
          q,
          p,
          1,
          (st) =>
            `${open ? `AND queue = ANY(${st.p(textArray(open))}::text::text[])` : ""}
            AND queue NOT IN (${CLOSED_QUEUES_SQL})`,
          // With the open queues named: planned with their names (a cached generic plan cannot
          // tell a small queue from a large one).
          open === null,
        );
        if (one.length === 0) break;
        claimed.push(...one);
      }
      return claimed;
    }) as Promise<Job[]>;
  }

  /**
   * The queues a flow-controlled claim reads through their own jobs (jobs_queue_created), or null
   * when it walks jobs_claim past the closed queues' jobs (paused or full: they pile up at its
   * head, 42-45 ms a claim with 200,000 of them). As on SQLite (walksQueues, with the closed
   * queues' waiting jobs ahead), decided from the counters at most once a
   * {@link CONTROLLED_HOLD_MS}; the list itself is exact, read in this transaction: the worker's
   * queues, or every queue that has jobs (a skip scan of jobs_queue_created), less those closed
   * now. The claim statement keeps its own test of the closed queues.
   */
  async #openQueues(q: Sql, p: ClaimParams): Promise<string[] | null> {
    const served = p.queues && p.queues.length ? p.queues : null;
    const key = JSON.stringify(served);
    let decided = this.#walkDecision;
    if (decided === null || decided.key !== key || performance.now() >= decided.until) {
      const rows = await q`SELECT c.queue, c.state, sum(c.n)::bigint AS n,
          c.queue IN (${q.unsafe(CLOSED_QUEUES_SQL)}) AS closed
        FROM job_counts c GROUP BY c.queue, c.state HAVING sum(c.n) <> 0`;
      decided = this.#walkDecision = {
        key,
        until: performance.now() + CONTROLLED_HOLD_MS,
        byQueue: claimWalksQueues(
          rows.map((r) => ({ queue: r.queue as string, state: r.state as string, n: Number(r.n) })),
          served,
          new Set(rows.filter((r) => r.closed).map((r) => r.queue as string)),
        ),
      };
    }
    if (!decided.byQueue) return null;
    return await openNames(q, served, await closedQueues(q));
  }

  /**
   * The claim statement (CLAIM_RULE) of up to `limit` jobs, with `filter` on the candidates and
   * `take` on those of them it claims (see {@link #claimCtes}); `prepare` false: planned with its
   * values each time.
   */
  async #claimStatement(
    sql: Sql,
    p: ClaimParams,
    limit: number,
    filter: (st: Statement) => string,
    prepare = true,
    take = "",
  ): Promise<Job[]> {
    const st = new Statement();
    const { picked, update } = this.#claimCtes(st, p, limit, filter(st), take);
    const rows = await st.run(sql, `WITH ${this.#relaxedText}, ${picked} ${update}`, prepare);
    return sortClaimed(rows);
  }

  /**
   * The claim's two parts: `picked AS (...)` (the candidates, id and queue, locked, SKIP LOCKED)
   * and the UPDATE of them, or of those `take` (a condition on `picked`) keeps (joins `relaxed`,
   * returns the insertion order and every job column).
   */
  #claimCtes(
    st: Statement,
    p: ClaimParams,
    limit: number,
    filter: string,
    take = "",
  ): { picked: string; update: string } {
    const queueFilter = p.queues && p.queues.length ? `AND queue IN ${st.list(p.queues)}` : "";
    const c = this.#claimParts;
    const values = CLAIM_RULE.set(p) as Record<string, string | number | null>;
    const set = PostgresStore.#claimSetColumns.map((k) => `"${k}" = ${st.p(values[k])}`)
      .join(", ");
    return {
      picked: `picked AS (
        SELECT id, queue FROM jobs
        WHERE ${c.due} ${st.p(p.now)} ${queueFilter} ${filter}
        ORDER BY ${c.order}
        LIMIT ${st.p(limit)}
        FOR UPDATE SKIP LOCKED
      )`,
      update: `UPDATE jobs SET ${set},
        lease_expires_at = ${this.#leaseNowText(st, p.now)} + ${st.p(p.leaseMs)}::bigint,
        ${c.moves}, updated_at = ${st.p(p.now)}
      FROM picked, relaxed WHERE jobs.id = picked.id ${take}
      RETURNING ${c.returning}`,
    };
  }

  /** The fast path's filter: no queue the worker serves is paused (see claimJobs). */
  #uncontrolled(st: Statement, p: ClaimParams): string {
    const served = p.queues && p.queues.length ? `AND name IN ${st.list(p.queues)}` : "";
    return `AND NOT EXISTS (SELECT 1 FROM queues WHERE paused ${served})`;
  }

  async settleAndClaim(
    p: {
      change: StateChange;
      output?: JobOutput;
      claim: ClaimParams;
    },
  ): Promise<{ applied: boolean; claimed: Job[] }> {
    const c = p.change;
    // A worker's lease-guarded settle and the fast-path claim in one statement, one round trip
    // (docs/architecture.md "Settle and claim").
    if (!c.lostRun && c.leaseOwner !== undefined && p.claim.limit > 0) {
      let one: { applied: boolean; claimed: Job[] } | null = null;
      try {
        one = await this.#settleAndClaimOne(p);
      } catch (err) {
        // Lost connection or timeout: whether it was written is unknown, as for applyChange, and
        // the caller retries the settle alone. Any other error rolled the whole statement back
        // (nothing was written): the two statements below do it as before.
        if (err instanceof StorageError && err.transient) throw err;
      }
      if (one) {
        // Nothing claimed: the statement saw the queue as it was before the settle (one
        // snapshot) and took the fast path only; a claim of its own sees what the settle made
        // due and takes the flow-controlled path when needed.
        if (one.claimed.length > 0) return one;
        return { applied: one.applied, claimed: await this.claimJobs(p.claim).catch(() => []) };
      }
    }
    // Two statements. A claim that fails after the settle is written is the caller's next
    // claimJobs' business, not an error here.
    const applied = await this.applyChange({ change: p.change, output: p.output });
    const claimed = await this.claimJobs(p.claim).catch(() => [] as Job[]);
    return { applied, claimed };
  }

  /**
   * settleAndClaim as one statement: `changed` (the lease-guarded settle, with its run) and the
   * fast-path claim (`picked`, `claimed`) are data-modifying CTEs of one statement, so one
   * implicit transaction, committed asynchronously (worker bookkeeping). They update different
   * rows (the settled job is processing, never a candidate). The settle's result does not depend
   * on the claim; the statement either writes both or nothing.
   */
  #settleAndClaimOne(
    p: { change: StateChange; output?: JobOutput; claim: ClaimParams },
  ): Promise<{ applied: boolean; claimed: Job[] }> {
    const c = p.change;
    const values = changeValues(c);
    return this.#run(async (sql) => {
      const st = new Statement();
      const changed = this.#changeCtes(st, c, values, true, p.output);
      const { picked, update } = this.#claimCtes(
        st,
        p.claim,
        p.claim.limit,
        this.#uncontrolled(st, p.claim),
        FAST_TAKE_SQL,
      );
      // The hints of applyChange, sent only when the settle was applied.
      const woke = `(SELECT ${wakeSql(c)} FROM changed)`;
      const rows = await st.run(
        sql,
        `WITH ${this.#relaxedText}, ${changed}, ${picked}, claimed AS (${update}),
        settled AS (SELECT count(*) AS applied, ${woke} AS woke,
          (SELECT pg_notify('${CHANGES_CHANNEL}', current_schema()) FROM watchers
            WHERE expires_at > ${st.p(c.updated_at)} AND EXISTS (SELECT 1 FROM changed) LIMIT 1)
            AS watched
          FROM changed)
        SELECT settled.applied AS settle_applied, claimed.* FROM settled LEFT JOIN claimed ON true`,
      );
      const applied = rows.length > 0 && Number(rows[0].settle_applied) === 1;
      return { applied, claimed: sortClaimed(rows.filter((r) => r.id !== null)) };
    });
  }

  renewLeases(
    p: { workerId: string; now: number; leaseMs: number; jobIds?: readonly string[] },
  ): Promise<number> {
    return this.#run(async (sql) => {
      if (p.jobIds && p.jobIds.length === 0) return 0;
      const only = p.jobIds ? sql`AND id IN ${sql(p.jobIds as string[])}` : sql``;
      return (await sql`WITH ${this.#relaxed}
        UPDATE jobs SET lease_expires_at = ${this.#leaseNow(sql, p.now)} + ${p.leaseMs}::bigint
        FROM relaxed
        WHERE state = 'processing' AND lease_owner = ${p.workerId} ${only}`).count;
    });
  }

  findExpiredLeases(
    p: { now: number; limit: number; restartGraceMs?: number },
  ): Promise<Job[]> {
    return this.#run(async (sql) => {
      // A server that restarted less than the grace ago: its clients are still reconnecting.
      const upLongEnough = this.#serverLeases && p.restartGraceMs !== undefined
        ? sql`AND ${sql.unsafe(SERVER_MS)} -
          (extract(epoch FROM pg_postmaster_start_time()) * 1000)::bigint >= ${p.restartGraceMs}`
        : sql``;
      return (await sql`SELECT ${this.#cols} FROM jobs
        WHERE state = 'processing' AND lease_expires_at <= ${this.#leaseNow(sql, p.now)}
          ${upLongEnough}
        ORDER BY lease_expires_at, seq LIMIT ${p.limit}`).map(toJob);
    });
  }

  listLeased(p: { worker: string }): Promise<Job[]> {
    return this.#run(async (sql) =>
      (await sql`SELECT ${this.#cols} FROM jobs
        WHERE state = 'processing' AND lease_owner = ${p.worker}`).map(toJob)
    );
  }

  nextRunAt(
    p: { queues: readonly string[] | null; after?: number; open?: boolean },
  ): Promise<number | null> {
    return this.#run(async (sql) => {
      if (p.open) {
        // Paused and full queues left out (a resume, a settle that frees a limited queue's slot
        // and a raised limit wake the workers). Their jobs pile up at the head of jobs_run_at, so
        // the open queues are named (the worker's, or a skip scan of jobs_queue_created), in a
        // statement planned with those names (see #openQueues).
        const closed = await closedQueues(sql);
        if (closed.size > 0) {
          const names = await openNames(sql, p.queues?.length ? p.queues : null, closed);
          if (names.length === 0) return null;
          const [{ t }] = await sql.unsafe(
            `SELECT min(${CLAIM_DUE_COLUMN}) AS t FROM jobs WHERE ${CLAIMABLE_SQL}
              AND queue = ANY($1::text::text[])${
              p.after === undefined ? "" : ` AND ${CLAIM_DUE_COLUMN} > $2`
            }`,
            p.after === undefined ? [textArray(names)] : [textArray(names), p.after],
            { prepare: false },
          );
          return (t as number | null) ?? null;
        }
      }
      const queues = p.queues ?? [];
      const [{ t }] = await sql.unsafe(
        nextRunAtSql(queues.length, p.after !== undefined),
        p.after === undefined ? [...queues] : [...queues, p.after],
      );
      return (t as number | null) ?? null;
    });
  }

  deleteJobs(
    p: {
      states: readonly JobState[];
      ids?: readonly string[];
      updatedBefore?: number;
      limit?: number;
    },
  ): Promise<string[]> {
    if (p.states.length === 0 || (p.ids && p.ids.length === 0)) return Promise.resolve([]);
    if (p.limit !== undefined && !p.ids) {
      const limit = p.limit;
      // Per state, the jobs updated longest ago (index jobs_retention); runs go by cascade.
      // SKIP LOCKED: a row a worker or a user holds now is left for the next batch.
      return this.#run(async (sql) => {
        const out: string[] = [];
        for (const state of p.states) {
          const left = limit - out.length;
          if (left <= 0) break;
          // By ctid (a TID scan): no index lookup per row, whose plan on a table the planner
          // misjudges (fresh statistics missing) once went through the trigram index at 6 ms a
          // row. ARRAY(...) is evaluated once (a subquery under IN may be scanned again, past its
          // limit); the rows stay locked, so their ctids hold until the DELETE.
          const rows = await sql`DELETE FROM jobs WHERE ctid = ANY(ARRAY(
              SELECT ctid FROM jobs WHERE state = ${sql.unsafe(sqlLiteral(state))}
                AND updated_at < ${p.updatedBefore ?? Number.MAX_SAFE_INTEGER}
              ORDER BY updated_at LIMIT ${left} FOR UPDATE SKIP LOCKED))
            AND state = ${sql.unsafe(sqlLiteral(state))} RETURNING id`;
          out.push(...rows.map((r) => r.id as string));
        }
        if (out.length > 0) {
          await sql.unsafe("SELECT pg_notify($1, current_schema()) FROM watchers LIMIT 1", [
            CHANGES_CHANNEL,
          ]);
        }
        return out;
      });
    }
    return this.#run(async (sql) => {
      const conds = [sql`state IN ${sql(p.states as string[])}`];
      if (p.updatedBefore !== undefined) conds.push(sql`updated_at < ${p.updatedBefore}`);
      const del = (extra: Fragment | null) =>
        sql`DELETE FROM jobs WHERE ${
          [...conds, ...(extra ? [extra] : [])].reduce((a, b) => sql`${a} AND ${b}`)
        } RETURNING id`;
      // Watchers (wait) learn of deletions too.
      const hint = (q: postgres.TransactionSql | Sql) =>
        (q as Sql).unsafe(
          "SELECT pg_notify($1, current_schema()) FROM watchers LIMIT 1",
          [CHANGES_CHANNEL],
        );
      if (!p.ids) {
        const deleted = (await del(null)).map((r) => r.id as string);
        if (deleted.length > 0) await hint(sql);
        return deleted;
      }
      const ids = p.ids;
      return await sql.begin(async (tx) => {
        const out: string[] = [];
        for (let i = 0; i < ids.length; i += INSERT_CHUNK) {
          const chunk = ids.slice(i, i + INSERT_CHUNK) as string[];
          const [first, ...rest] = conds;
          const where = rest.reduce((a, b) => tx`${a} AND ${b}`, first);
          const rows = await tx`DELETE FROM jobs WHERE ${where} AND id IN ${tx(chunk)}
            RETURNING id`;
          out.push(...rows.map((r) => r.id as string));
        }
        if (out.length > 0) await hint(tx);
        return out;
      });
    });
  }

  // --- flow control -------------------------------------------------------------------------

  getDependencies(p: { id: string; limit: number }): Promise<JobDependencies | null> {
    return this.#run(async (sql) => {
      const [job] = await sql`SELECT depends_on FROM jobs WHERE id = ${p.id}`;
      if (!job) return null;
      const ids = parseDependsOn(job.depends_on as string | null);
      const states = new Map<string, JobState>();
      if (ids.length > 0) {
        for (const r of await sql`SELECT id, state FROM jobs WHERE id IN ${sql(ids)}`) {
          states.set(r.id as string, r.state as JobState);
        }
      }
      const dependents = await sql`SELECT j.id, j.state FROM job_deps d
        JOIN jobs j ON j.id = d.job_id WHERE d.dep_id = ${p.id} ORDER BY j.seq LIMIT ${p.limit}`;
      return {
        dependencies: ids.map((id) => ({ id, state: states.get(id) ?? null })),
        dependents: dependents.map((r) => ({ id: r.id as string, state: r.state as JobState })),
      };
    });
  }

  getBlockers(p: { ids: readonly string[] }): Promise<Map<string, string[]>> {
    return this.#run(async (sql) => {
      const out = new Map<string, string[]>();
      if (p.ids.length === 0) return out;
      const rows = await sql`SELECT j.id, j.depends_on,
          array(SELECT d.id FROM jobs d JOIN job_deps e ON e.dep_id = d.id
            WHERE e.job_id = j.id AND d.state = 'completed') AS done
        FROM jobs j WHERE j.id IN ${sql([...new Set(p.ids)])} AND ${sql.unsafe(BLOCKED_SQL)}`;
      for (const r of rows) {
        const done = new Set(r.done as string[]);
        out.set(
          r.id as string,
          parseDependsOn(r.depends_on as string | null).filter((d) => !done.has(d)),
        );
      }
      return out;
    });
  }

  setQueueControl(
    p: { name: string; paused?: boolean; maxRunning?: number; now: number },
  ): Promise<QueueControl> {
    return this.#run(async (sql) => {
      const [row] = await sql`WITH upserted AS (
          INSERT INTO queues (name, paused, max_running, updated_at)
          VALUES (${p.name}, ${p.paused ?? false}, ${p.maxRunning ?? 0}, ${p.now})
          ON CONFLICT (name) DO UPDATE SET
            paused = coalesce(${p.paused ?? null}::boolean, queues.paused),
            max_running = coalesce(${p.maxRunning ?? null}::integer, queues.max_running),
            updated_at = EXCLUDED.updated_at
          RETURNING name, paused, max_running
        ) SELECT upserted.*, pg_notify(${NOTIFY_CHANNEL}, current_schema()) FROM upserted`;
      return {
        name: row.name as string,
        paused: row.paused as boolean,
        max_running: row.max_running as number,
      };
    });
  }

  listQueueControls(): Promise<QueueControl[]> {
    return this.#run(async (sql) =>
      (await sql`SELECT name, paused, max_running FROM queues
        WHERE paused OR max_running > 0 ORDER BY name`).map((r) => ({
        name: r.name as string,
        paused: r.paused as boolean,
        max_running: r.max_running as number,
      }))
    );
  }

  listQueues(): Promise<QueueSummary[]> {
    return this.#run(async (sql) => {
      const [byState, blocked, controls] = await Promise.all([
        sql`SELECT queue, state, sum(n)::bigint AS n FROM job_counts
          GROUP BY queue, state HAVING sum(n) <> 0`,
        sql`SELECT queue, count(*)::bigint AS n FROM jobs WHERE ${sql.unsafe(BLOCKED_SQL)}
          GROUP BY queue`,
        sql`SELECT name, paused, max_running FROM queues`,
      ]);
      return summariseQueues(
        byState.map((r) => ({
          queue: r.queue as string,
          state: r.state as JobState,
          n: Number(r.n),
        })),
        blocked.map((r) => ({ queue: r.queue as string, n: Number(r.n) })),
        controls.map((r) => ({
          name: r.name as string,
          paused: r.paused as boolean,
          max_running: r.max_running as number,
        })),
      );
    });
  }

  // --- config ---------------------------------------------------------------------------------

  // --- schedules ----------------------------------------------------------------------------

  insertSchedule(p: { schedule: Schedule }): Promise<void> {
    const s = p.schedule;
    return this.#run(async (sql) => {
      try {
        await sql`INSERT INTO schedules (${sql.unsafe(SCHEDULE_COLUMNS)}) VALUES (
          ${s.name}, ${s.cron}, ${s.every_ms}, ${s.tz}, ${s.job}, ${s.catch_up}, ${s.paused},
          ${s.next_run_at}, ${s.last_run_at}, ${s.last_job_id}, ${s.created_at}, ${s.updated_at})`;
      } catch (err) {
        if (isUniqueViolation(err)) throw scheduleExists(s.name);
        throw err;
      }
    });
  }

  listSchedules(): Promise<ScheduleView[]> {
    return this.#run(async (sql) =>
      (await sql.unsafe(
        `${SCHEDULE_VIEW} ORDER BY s.name COLLATE "C"`,
      )) as unknown as ScheduleView[]
    );
  }

  getSchedule(p: { name: string }): Promise<ScheduleView | null> {
    return this.#run(async (sql) => {
      const rows = await sql.unsafe(`${SCHEDULE_VIEW} WHERE s.name = $1`, [p.name]);
      return (rows[0] as unknown as ScheduleView | undefined) ?? null;
    });
  }

  deleteSchedule(p: { name: string }): Promise<boolean> {
    return this.#run(async (sql) =>
      (await sql`DELETE FROM schedules WHERE name = ${p.name}`).count === 1
    );
  }

  setSchedulePaused(
    p: { name: string; paused: boolean; nextRunAt?: number; now: number },
  ): Promise<boolean> {
    return this.#run(async (sql) =>
      (await sql`UPDATE schedules SET paused = ${p.paused},
        next_run_at = coalesce(${p.nextRunAt ?? null}::bigint, next_run_at), updated_at = ${p.now}
        WHERE name = ${p.name}`).count === 1
    );
  }

  dueSchedules(p: { now: number; limit: number }): Promise<Schedule[]> {
    return this.#run(async (sql) =>
      (await sql`SELECT ${sql.unsafe(SCHEDULE_COLUMNS)} FROM schedules
        WHERE NOT paused AND next_run_at <= ${p.now}
        ORDER BY next_run_at LIMIT ${p.limit}`) as unknown as Schedule[]
    );
  }

  fireSchedule(p: {
    name: string;
    expectNextRunAt: number | null;
    nextRunAt?: number;
    job?: JobToInsert;
    now: number;
  }): Promise<ScheduleFire | null> {
    return this.#run(async (sql) => {
      try {
        return await sql.begin(async (tx): Promise<ScheduleFire | null> => {
          // The row lock this takes makes a second leader's fire of the slot wait, then find the
          // guard false (READ COMMITTED re-reads the row).
          const changed = (await tx`UPDATE schedules SET
              next_run_at = coalesce(${p.nextRunAt ?? null}::bigint, next_run_at),
              updated_at = ${p.now}
            WHERE name = ${p.name}
              AND (${p.expectNextRunAt}::bigint IS NULL OR next_run_at = ${p.expectNextRunAt})`)
            .count;
          if (changed !== 1) return null;
          if (!p.job) return { heldBy: null };
          // A keyed job: the partial unique index decides against a racing enqueue.
          const found: ScheduleFire = { heldBy: null };
          await this.#insertKeyed(tx, [p.job], p.now, {
            onExisting: (_id, held) => found.heldBy = held,
          });
          const heldBy = found.heldBy;
          await tx`UPDATE schedules SET
              last_run_at = CASE WHEN ${heldBy}::text IS NULL THEN ${p.now}::bigint
                ELSE last_run_at END,
              last_job_id = ${heldBy ?? p.job.id}
            WHERE name = ${p.name}`;
          if (heldBy === null) await tx`SELECT pg_notify(${NOTIFY_CHANNEL}, current_schema())`;
          return { heldBy };
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw duplicate(duplicateKeyOf(err) ?? "?");
        throw err;
      }
    });
  }

  getConfig(): Promise<Record<string, string>> {
    return this.#run(async (sql) =>
      Object.fromEntries(
        (await sql`SELECT key, value FROM config ORDER BY key`).map((r) => [r.key, r.value]),
      )
    );
  }

  setConfig(p: { key: string; value: string }): Promise<void> {
    return this.#run(async (sql) => {
      await sql`INSERT INTO config (key, value) VALUES (${p.key}, ${p.value})
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`;
    });
  }

  unsetConfig(p: { key: string }): Promise<boolean> {
    return this.#run(async (sql) => (await sql`DELETE FROM config WHERE key = ${p.key}`).count > 0);
  }

  // --- workers ------------------------------------------------------------------------------

  registerWorker(p: { worker: WorkerRecord }): Promise<void> {
    const w = p.worker;
    return this.#run(async (sql) => {
      await sql`INSERT INTO workers (${sql.unsafe(WORKER_COLUMNS)}) VALUES (
          ${w.id}, ${w.pid}, ${w.host}, ${w.queues ? JSON.stringify(w.queues) : null},
          ${w.started_at}, ${w.heartbeat_at}, ${w.current_job}, ${w.stop_requested_at},
          ${w.supervisor_id})
        ON CONFLICT (id) DO UPDATE SET pid = EXCLUDED.pid, host = EXCLUDED.host,
          queues = EXCLUDED.queues, started_at = EXCLUDED.started_at,
          heartbeat_at = EXCLUDED.heartbeat_at, current_job = EXCLUDED.current_job,
          stop_requested_at = EXCLUDED.stop_requested_at, supervisor_id = EXCLUDED.supervisor_id`;
    });
  }

  heartbeatWorker(
    p: { id: string; now: number; currentJob: string | null },
  ): Promise<number | null | undefined> {
    return this.#run(async (sql) => {
      const rows = await sql`WITH ${this.#relaxed}
        UPDATE workers SET heartbeat_at = ${p.now}, current_job = ${p.currentJob}
        FROM relaxed WHERE id = ${p.id} RETURNING stop_requested_at`;
      return rows.length ? (rows[0].stop_requested_at as number | null) : undefined;
    });
  }

  removeWorker(p: { id: string }): Promise<void> {
    return this.#run(async (sql) => {
      await sql`DELETE FROM workers WHERE id = ${p.id}`;
    });
  }

  listWorkers(): Promise<WorkerRecord[]> {
    return this.#run(async (sql) =>
      (await sql`SELECT ${sql.unsafe(WORKER_COLUMNS)} FROM workers ORDER BY started_at, id`)
        .map(toWorker)
    );
  }

  requestStop(p: { ids?: readonly string[]; now: number }): Promise<number> {
    if (p.ids && p.ids.length === 0) return Promise.resolve(0);
    return this.#run(async (sql) => {
      // All: mark the workers not yet asked. By id: every named record (keeping the first time).
      if (p.ids) {
        return (await sql`UPDATE workers
          SET stop_requested_at = coalesce(stop_requested_at, ${p.now})
          WHERE id IN ${sql(p.ids as string[])}`).count;
      }
      return await sql.begin(async (tx) => {
        // The latest hundred are kept: a returning worker compares with the newest only.
        await tx`WITH added AS (
            INSERT INTO stop_requests (requested_at) VALUES (${p.now}) RETURNING seq
          )
          DELETE FROM stop_requests WHERE seq <= (SELECT seq FROM added) - ${STOPS_KEPT}`;
        return (await tx`UPDATE workers SET stop_requested_at = ${p.now}
          WHERE stop_requested_at IS NULL`).count;
      });
    });
  }

  lastStopRequest(): Promise<number> {
    return this.#run(async (sql) =>
      (await sql`SELECT coalesce(max(seq), 0)::bigint AS seq FROM stop_requests`)[0].seq as number
    );
  }

  pruneWorkers(p: { before: number }): Promise<string[]> {
    return this.#run(async (sql) =>
      (await sql`DELETE FROM workers WHERE heartbeat_at < ${p.before} RETURNING id`)
        .map((r) => r.id as string)
    );
  }

  compactCounts(p: { limit: number }): Promise<{ found: number; removed: number }> {
    const limit = Math.max(0, Math.floor(p.limit));
    return this.#run((sql) =>
      sql.begin(async (tx) => {
        const q = tx as unknown as Sql;
        // The counters split over shards (the triggers write the shard of their session) or
        // at zero; of their rows only those no other transaction holds, locked: nobody waits on
        // a row this transaction would wait for, so no deadlock. The next statements see the
        // locked rows as locked (a new snapshot each, read committed): nobody changes them.
        const rows = await q`SELECT queue, state, shard, n FROM job_counts
          WHERE (queue, state) IN (SELECT queue, state FROM job_counts GROUP BY queue, state
            HAVING count(*) > 1 OR sum(n) = 0 LIMIT ${limit})
          ORDER BY queue, state, shard FOR UPDATE SKIP LOCKED`;
        // Each counter's locked rows folded into its lowest shard, or deleted when they sum
        // to zero: its count (the sum of its rows) is the same at every moment.
        const drop: { queue: string; state: string; shard: number }[] = [];
        const keep: { queue: string; state: string; shard: number; n: number }[] = [];
        let found = 0;
        for (let i = 0; i < rows.length;) {
          let j = i;
          let total = 0;
          for (
            ;
            j < rows.length && rows[j].queue === rows[i].queue &&
            rows[j].state === rows[i].state;
            j++
          ) total += rows[j].n as number;
          found++;
          const group = rows.slice(i, j).map((r) => ({
            queue: r.queue as string,
            state: r.state as string,
            shard: r.shard as number,
          }));
          if (total === 0) drop.push(...group);
          else {
            drop.push(...group.slice(1));
            if (rows[i].n !== total) keep.push({ ...group[0], n: total });
          }
          i = j;
        }
        if (drop.length > 0) {
          // Sent as text: a json parameter would be sent as one JSON string.
          const dropped = JSON.stringify(drop);
          await q`DELETE FROM job_counts c
            USING json_to_recordset(${dropped}::text::json) AS d(queue text, state text, shard int)
            WHERE c.queue = d.queue AND c.state = d.state AND c.shard = d.shard`;
        }
        if (keep.length > 0) {
          await q`UPDATE job_counts c SET n = k.n
            FROM json_to_recordset(${JSON.stringify(keep)}::text::json)
              AS k(queue text, state text, shard int, n bigint)
            WHERE c.queue = k.queue AND c.state = k.state AND c.shard = k.shard`;
        }
        return { found, removed: drop.length };
      })
    );
  }

  // --- leadership (see leader.ts) --------------------------------------------------------------

  tryLead(p: { name: string; holder: string; now: number; leaseMs: number }): Promise<boolean> {
    return this.#leadership.tryLead(p);
  }

  resign(p: { name: string; holder: string }): Promise<void> {
    return this.#leadership.resign(p);
  }

  // --- wake-ups -----------------------------------------------------------------------------

  /** See {@link JobsListener.wait}. */
  waitForJobs(p: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean> {
    return this.#listener.wait(p);
  }

  /**
   * See {@link Store.waitForChanges}. The watcher row lives {@link WATCHER_TTL_MS} past its last
   * renewal (one every {@link WATCHER_RENEW_MS} of the caller's clock), so a watcher that died
   * costs settles a NOTIFY for at most that long; registrations prune expired rows.
   */
  async waitForChanges(p: { now: number; timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    if (this.#watcherId === null || p.now - this.#watcherRenewedAt >= WATCHER_RENEW_MS) {
      const id = this.#watcherId ?? `${crypto.randomUUID()}`;
      await this.#run(async (sql) => {
        await sql`INSERT INTO watchers (id, expires_at) VALUES (${id}, ${p.now + WATCHER_TTL_MS})
          ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at`;
        if (this.#watcherId === null) {
          await sql`DELETE FROM watchers WHERE expires_at < ${p.now - WATCHER_TTL_MS}`;
        }
      });
      this.#watcherId = id;
      this.#watcherRenewedAt = p.now;
    }
    await this.#changes.wait(p);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.stop();
    this.#changes.stop();
    // Every wait is bounded: a call on a connection that died mid-query can stay unanswered
    // forever (seen after a cut link), and a stopping worker must still exit. end() below ends
    // whatever is left.
    await within(Promise.allSettled([...this.#inflight]), CLOSE_WAIT_MS);
    if (this.#watcherId !== null) {
      await within(
        this.#sql`DELETE FROM watchers WHERE id = ${this.#watcherId}`.catch(() => {}),
        CLOSE_WAIT_MS,
      );
    }
    await within(this.#listener.close().catch(() => {}), CLOSE_WAIT_MS);
    await within(this.#changes.close().catch(() => {}), CLOSE_WAIT_MS);
    await within(this.#leadership.close().catch(() => {}), CLOSE_WAIT_MS);
    // Nothing is in flight: close at once. (A connection killed mid-query can keep postgres.js's
    // graceful end() waiting forever; timeout 0 still sends Terminate on healthy connections.)
    await this.#sql.end({ timeout: 0 });
  }
}

/** How long close() waits for each part before ending the connections regardless. */
const CLOSE_WAIT_MS = 3000;

/** Resolves when `p` settles or after `ms`, whichever comes first. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([p, new Promise<void>((resolve) => timer = setTimeout(resolve, ms))]);
  } finally {
    clearTimeout(timer);
  }
}

function cursorGone(id: string): NotFound {
  return new NotFound(`No job with id ${quote(id)}: the page cursor (after) is gone`, {
    hint: "the job was deleted meanwhile; start again from the first page",
  });
}

function duplicate(id: string): Conflict {
  return new Conflict(`A job with id ${quote(id)} already exists`, {
    hint: "choose another id, or leave id out to have one generated",
  });
}
