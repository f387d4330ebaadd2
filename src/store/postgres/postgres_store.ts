/**
 * The PostgreSQL Store on postgres.js: many workers on many hosts share one queue.
 *
 * - Claims take rows with `FOR UPDATE SKIP LOCKED` in one statement, so concurrent workers never
 *   wait on each other and never get the same job.
 * - Every state change is one guarded UPDATE (see core/transitions.ts).
 * - Changes that make a job runnable send `NOTIFY queuectl_jobs` (payload: the schema), which
 *   wakes idle workers in {@link PostgresStore.waitForJobs}.
 * - Times are epoch milliseconds in bigint columns, parsed to numbers.
 * - Errors: see errors.ts (connection loss → StorageError with `transient: true`).
 *
 * Durability: whatever a user asked for (enqueue, retry, cancel, restore, purge, config, stop
 * requests) commits synchronously, so a command that returned success survives a server crash. A
 * worker's own bookkeeping (claims, lease renewals, heartbeats, lease-guarded settles and rescues)
 * commits asynchronously, `synchronous_commit = off` for that one transaction: a server crash may
 * lose its last few hundred milliseconds, which only means that a job runs again once its lease
 * expires (at-least-once), never that a job is lost. Every synchronous commit flushes the WAL up to
 * its own record, so no durable write can depend on a relaxed one that was lost. This saves the
 * two WAL flushes per job of a worker (claim, settle): 1.5-4x faster claim+settle (BENCHMARKS.md).
 */
import postgres from "postgres";
import { Conflict, StorageError } from "../../core/errors.ts";
import type { Job, JobOutput, JobState, NewJob } from "../../core/job.ts";
import { JOB_STATES } from "../../core/job.ts";
import type { JobChangeFields, StateChange } from "../../core/transitions.ts";
import type { ListJobsParams, QueueStats, Store, WorkerRecord } from "../store.ts";
import { duplicateKeyOf, type ErrorContext, isUniqueViolation, toQueueError } from "./errors.ts";
import { MIGRATIONS } from "./migrations.ts";
import { parsePgUrl, redactPgUrl, validateSchemaName } from "./url.ts";

/** Channel of the "jobs may be runnable" hint; the payload names the schema. */
export const NOTIFY_CHANNEL = "queuectl_jobs";
const CONNECT_TIMEOUT_S = 10;
/** After a failed LISTEN, wait this long before trying again (callers poll meanwhile). */
const LISTEN_RETRY_MS = 5000;
/**
 * How long postgres.js waits before connecting again after `failures` failed attempts in a row,
 * in seconds: 0.1 s doubling, at most 2 s, with jitter so that many workers do not reconnect in
 * step. (postgres.js's own default grows to 10-20 s, which a worker would wait on top of its
 * own retry backoff once the server is back. The LISTEN connection re-listens at this pace too.)
 */
function reconnectDelayS(failures: number): number {
  return Math.min(0.1 * 2 ** Math.max(0, failures - 1), 2) * (0.5 + Math.random() / 2);
}

/** Rows per INSERT statement: 11 parameters each, below the protocol's 65,534 limit. */
const INSERT_CHUNK = 5000;

/**
 * A CTE that makes the statement's transaction commit asynchronously (`set_config(..., true)` is
 * SET LOCAL: the session keeps its setting). Statements join it (`FROM relaxed`), so it is
 * evaluated whenever they change a row; it is volatile, so PostgreSQL never inlines it away.
 */
const RELAXED_CTE =
  "relaxed AS (SELECT set_config('synchronous_commit', 'off', true) AS relaxed_commit)";
/** The same shape without the setting, for {@link PostgresStoreOptions.relaxedCommits} false. */
const DURABLE_CTE = "relaxed AS (SELECT 'on'::text AS relaxed_commit)";

const JOB_COLUMNS =
  "id, command, queue, state, priority, attempts, max_retries, timeout, run_at, created_at, " +
  "updated_at, started_at, finished_at, exit_code, error, lease_owner, lease_expires_at";
const WORKER_COLUMNS =
  "id, pid, host, queues, started_at, heartbeat_at, current_job, stop_requested_at, supervisor_id";

const CHANGE_COLUMNS: readonly (keyof JobChangeFields)[] = [
  "attempts",
  "run_at",
  "started_at",
  "finished_at",
  "exit_code",
  "error",
  "lease_owner",
  "lease_expires_at",
];

// deno-lint-ignore no-explicit-any
type Sql = postgres.Sql<any>;
type Fragment = ReturnType<Sql["unsafe"]> | postgres.PendingQuery<postgres.Row[]>;
type Row = Record<string, unknown>;

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
}

/**
 * Connects, creates or migrates the schema (once, under an advisory lock) and returns the store.
 * Throws StorageError when the server is unreachable (with `transient: true`) or when the
 * database's schema is newer than this program.
 */
export async function openPostgresStore(
  url: string,
  opts: PostgresStoreOptions = {},
): Promise<Store> {
  const parsed = parsePgUrl(url);
  const schema = opts.schema !== undefined ? validateSchemaName(opts.schema) : parsed.schema;
  const base = redactPgUrl(parsed.driverUrl);
  const location = schema ? `${base}${base.includes("?") ? "&" : "?"}schema=${schema}` : base;
  const ctx: ErrorContext = { location, password: parsed.password };
  const connect = (max: number): Sql =>
    postgres(parsed.driverUrl, {
      max,
      connect_timeout: CONNECT_TIMEOUT_S,
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
      connection: {
        application_name: "queuectl",
        ...(schema ? { search_path: schema } : {}),
      },
    });
  const sql = connect(opts.max ?? 10);
  try {
    const currentSchema = await migrate(sql, schema, location);
    return new PostgresStore({
      sql,
      connect,
      location,
      ctx,
      schema: currentSchema,
      relaxedCommits: opts.relaxedCommits ?? true,
    });
  } catch (err) {
    await sql.end({ timeout: 1 }).catch(() => {});
    throw toQueueError(err, ctx);
  }
}

/**
 * Applies missing migrations once, even when several processes start at the same time. Returns
 * the schema the tables live in.
 */
async function migrate(sql: Sql, schema: string | undefined, location: string): Promise<string> {
  const target = MIGRATIONS.length;
  // Fast path (every CLI command): one read, no lock.
  try {
    const [{ v, s }] = await sql<{ v: number | null; s: string }[]>`
      SELECT (SELECT max(version) FROM schema_migrations) AS v, current_schema() AS s`;
    if (v === target) return s;
    if (v !== null && v > target) throw newerSchema(v, target, location);
  } catch (err) {
    // 42P01: no schema_migrations table yet (or no schema): create it below.
    if ((err as { code?: string }).code !== "42P01") throw err;
  }
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
    for (let version = current + 1; version <= target; version++) {
      await tx.unsafe(MIGRATIONS[version - 1]);
      await tx`INSERT INTO schema_migrations (version, applied_at)
        VALUES (${version}, ${Date.now()})`;
    }
  });
  const [{ s }] = await sql<{ s: string }[]>`SELECT current_schema() AS s`;
  return s;
}

function newerSchema(version: number, target: number, location: string): StorageError {
  return new StorageError(
    `The database ${location} has schema version ${version}, newer than this queuectl (${target})`,
    { hint: "upgrade queuectl to use this database" },
  );
}

/** PostgreSQL cannot store NUL in text; captured output may contain it. */
function noNul(text: string): string {
  return text.includes("\0") ? text.replaceAll("\0", "\uFFFD") : text;
}

function toJob(r: Row): Job {
  return {
    id: r.id as string,
    command: r.command as string,
    queue: r.queue as string,
    state: r.state as JobState,
    priority: r.priority as number,
    attempts: r.attempts as number,
    max_retries: r.max_retries as number,
    timeout: r.timeout as number | null,
    run_at: r.run_at as number,
    created_at: r.created_at as number,
    updated_at: r.updated_at as number,
    started_at: r.started_at as number | null,
    finished_at: r.finished_at as number | null,
    exit_code: r.exit_code as number | null,
    error: r.error as string | null,
    lease_owner: r.lease_owner as string | null,
    lease_expires_at: r.lease_expires_at as number | null,
  };
}

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

class PostgresStore implements Store {
  readonly kind = "postgres" as const;
  readonly location: string;
  readonly #sql: Sql;
  /** Opens another pool on the same server (for the LISTEN connection). */
  readonly #connect: (max: number) => Sql;
  readonly #ctx: ErrorContext;
  /** The schema the tables live in: the NOTIFY payload that concerns this store. */
  readonly #schema: string;
  readonly #cols: Fragment;
  /** `relaxed AS (...)`: see {@link RELAXED_CTE}. */
  readonly #relaxed: Fragment;
  /** The pool that owns the LISTEN connection, and its setup (true once listening). */
  #listener: Sql | null = null;
  #listening: Promise<boolean> | null = null;
  /** When LISTEN last failed: wait a while before trying again (meanwhile: plain polling). */
  #listenFailedAt = -Infinity;
  readonly #waiters = new Set<() => void>();
  /** A hint arrived while nobody waited: the next wait returns at once. */
  #hinted = false;
  #closed = false;
  /** Calls under way, awaited by close(). */
  readonly #inflight = new Set<Promise<unknown>>();

  constructor(
    o: {
      sql: Sql;
      connect: (max: number) => Sql;
      location: string;
      ctx: ErrorContext;
      schema: string;
      relaxedCommits: boolean;
    },
  ) {
    const sql = o.sql;
    this.#sql = sql;
    this.#connect = o.connect;
    this.location = o.location;
    this.#ctx = o.ctx;
    this.#schema = o.schema;
    this.#cols = sql.unsafe(JOB_COLUMNS);
    this.#relaxed = sql.unsafe(o.relaxedCommits ? RELAXED_CTE : DURABLE_CTE);
  }

  /** Runs a driver call, mapping its errors to QueueErrors. */
  #run<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    const call = (async () => {
      try {
        return await fn(this.#sql);
      } catch (err) {
        throw toQueueError(err, this.#ctx);
      }
    })();
    this.#inflight.add(call);
    const forget = () => this.#inflight.delete(call);
    call.then(forget, forget);
    return call;
  }

  // --- jobs ---------------------------------------------------------------------------------

  insertJobs(p: { jobs: readonly NewJob[]; now: number }): Promise<void> {
    const seen = new Set<string>();
    for (const job of p.jobs) {
      if (seen.has(job.id)) return Promise.reject(duplicate(job.id));
      seen.add(job.id);
    }
    if (p.jobs.length === 0) return Promise.resolve();
    const rows = p.jobs.map((j) => ({
      id: j.id,
      command: j.command,
      queue: j.queue,
      state: "pending",
      priority: j.priority,
      max_retries: j.max_retries,
      timeout: j.timeout,
      run_at: j.run_at,
      created_at: p.now,
      updated_at: p.now,
    }));
    const cols = Object.keys(rows[0]) as (keyof typeof rows[0])[];
    return this.#run(async (sql) => {
      try {
        await sql.begin(async (tx) => {
          for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
            await tx`INSERT INTO jobs ${tx(rows.slice(i, i + INSERT_CHUNK), cols)}`;
          }
          await tx`SELECT pg_notify(${NOTIFY_CHANNEL}, current_schema())`;
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw duplicate(duplicateKeyOf(err) ?? "?");
        throw err;
      }
    });
  }

  getJob(p: { id: string }): Promise<Job | null> {
    return this.#run(async (sql) => {
      const rows = await sql`SELECT ${this.#cols} FROM jobs WHERE id = ${p.id}`;
      return rows.length ? toJob(rows[0]) : null;
    });
  }

  getJobOutput(p: { id: string }): Promise<JobOutput | null> {
    return this.#run(async (sql) => {
      const rows = await sql`SELECT stdout, stderr FROM jobs WHERE id = ${p.id}`;
      if (!rows.length) return null;
      return { stdout: rows[0].stdout ?? "", stderr: rows[0].stderr ?? "" };
    });
  }

  #where(p: Omit<ListJobsParams, "limit" | "offset" | "order">): Fragment {
    const sql = this.#sql;
    let where = sql`TRUE`;
    if (p.state) where = sql`${where} AND state = ${p.state}`;
    if (p.queue) where = sql`${where} AND queue = ${p.queue}`;
    if (p.search) {
      const s = p.search.toLowerCase();
      where = sql`${where} AND (strpos(lower(id), ${s}::text) > 0
        OR strpos(lower(command), ${s}::text) > 0)`;
    }
    return where;
  }

  listJobs(p: ListJobsParams): Promise<Job[]> {
    const order = p.order === "oldest"
      ? "created_at ASC, seq ASC"
      : p.order === "next"
      ? "priority DESC, run_at ASC, created_at ASC, seq ASC"
      : "created_at DESC, seq DESC";
    return this.#run(async (sql) => {
      const rows = await sql`SELECT ${this.#cols} FROM jobs WHERE ${this.#where(p)}
        ORDER BY ${sql.unsafe(order)} LIMIT ${p.limit} OFFSET ${p.offset ?? 0}`;
      return rows.map(toJob);
    });
  }

  countJobs(p: Omit<ListJobsParams, "limit" | "offset" | "order">): Promise<number> {
    return this.#run(async (sql) => {
      if (!p.queue && !p.search) {
        // Whole table or one state: the trigger-kept counters answer without a scan.
        const [{ n }] = await sql`SELECT coalesce(sum(n), 0)::bigint AS n FROM job_counts
          ${p.state ? sql`WHERE state = ${p.state}` : sql``}`;
        return n as number;
      }
      const [{ n }] = await sql`SELECT count(*) AS n FROM jobs WHERE ${this.#where(p)}`;
      return n as number;
    });
  }

  stats(p: { now: number }): Promise<QueueStats> {
    return this.#run(async (sql) => {
      const [byState, [extra]] = await Promise.all([
        sql`SELECT state, sum(n)::bigint AS n FROM job_counts GROUP BY state`,
        sql`SELECT
          (SELECT min(created_at) FROM jobs WHERE state = 'pending' AND run_at <= ${p.now})
            AS oldest,
          (SELECT count(*) FROM jobs WHERE state IN ('pending', 'failed') AND run_at > ${p.now})
            AS scheduled`,
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
      };
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

  applyChange(p: { change: StateChange; output?: JobOutput }): Promise<boolean> {
    const c = p.change;
    const values: Record<string, string | number | null> = {
      state: c.to,
      updated_at: c.updated_at,
    };
    for (const col of CHANGE_COLUMNS) {
      if (col in c.set) values[col] = c.set[col] ?? null;
    }
    if (typeof values.error === "string") values.error = noNul(values.error);
    if (p.output) {
      values.stdout = noNul(p.output.stdout);
      values.stderr = noNul(p.output.stderr);
    }
    // Only a job that may now be claimed (or rescheduled) is worth waking workers for.
    const wake = c.to === "pending" || c.to === "failed";
    // A worker's settle or a rescue (lease-guarded): losing it only means running the job again.
    const relaxed = c.leaseOwner !== undefined || c.leaseExpiredBy !== undefined;
    return this.#run(async (sql) => {
      const guard = sql`id = ${c.id} AND state = ${c.from}
        ${c.leaseOwner !== undefined ? sql`AND lease_owner = ${c.leaseOwner}` : sql``}
        ${
        c.leaseExpiredBy !== undefined ? sql`AND lease_expires_at <= ${c.leaseExpiredBy}` : sql``
      }`;
      const set = sql(values, Object.keys(values));
      const update = relaxed
        ? sql`UPDATE jobs SET ${set} FROM relaxed WHERE ${guard}`
        : sql`UPDATE jobs SET ${set} WHERE ${guard}`;
      const ctes = relaxed ? sql`${this.#relaxed},` : sql``;
      if (!wake) {
        return (await (relaxed ? sql`WITH ${this.#relaxed} ${update}` : update)).count === 1;
      }
      const rows = await sql`WITH ${ctes} changed AS (${update} RETURNING jobs.id)
        SELECT pg_notify(${NOTIFY_CHANNEL}, current_schema()) FROM changed`;
      return rows.length === 1;
    });
  }

  claimJobs(
    p: {
      workerId: string;
      queues: readonly string[] | null;
      now: number;
      leaseMs: number;
      limit: number;
    },
  ): Promise<Job[]> {
    if (p.limit <= 0) return Promise.resolve([]);
    return this.#run(async (sql) => {
      const queueFilter = p.queues && p.queues.length
        ? sql`AND queue IN ${sql(p.queues as string[])}`
        : sql``;
      const rows = await sql`
        WITH ${this.#relaxed}, picked AS (
          SELECT id FROM jobs
          WHERE state IN ('pending', 'failed') AND run_at <= ${p.now} ${queueFilter}
          ORDER BY priority DESC, run_at ASC, created_at ASC, seq ASC
          LIMIT ${p.limit}
          FOR UPDATE SKIP LOCKED
        )
        UPDATE jobs SET state = 'processing', attempts = jobs.attempts + 1,
          started_at = ${p.now}, lease_owner = ${p.workerId},
          lease_expires_at = ${p.now + p.leaseMs}, updated_at = ${p.now}
        FROM picked, relaxed WHERE jobs.id = picked.id
        RETURNING jobs.seq, ${sql.unsafe(JOB_COLUMNS.replace(/(\w+)/g, "jobs.$1"))}`;
      return rows
        .sort((a, b) =>
          (b.priority as number) - (a.priority as number) ||
          (a.run_at as number) - (b.run_at as number) ||
          (a.created_at as number) - (b.created_at as number) ||
          (a.seq as number) - (b.seq as number)
        )
        .map(toJob);
    });
  }

  async settleAndClaim(
    p: {
      change: StateChange;
      output?: JobOutput;
      claim: {
        workerId: string;
        queues: readonly string[] | null;
        now: number;
        leaseMs: number;
        limit: number;
      };
    },
  ): Promise<{ applied: boolean; claimed: Job[] }> {
    // Two statements, as the worker made them before settleAndClaim existed. A claim that fails
    // after the settle is written is the caller's next claimJobs' business, not an error here.
    const applied = await this.applyChange({ change: p.change, output: p.output });
    const claimed = await this.claimJobs(p.claim).catch(() => [] as Job[]);
    return { applied, claimed };
  }

  renewLeases(
    p: { workerId: string; now: number; leaseMs: number; jobIds?: readonly string[] },
  ): Promise<number> {
    return this.#run(async (sql) => {
      if (p.jobIds && p.jobIds.length === 0) return 0;
      const only = p.jobIds ? sql`AND id IN ${sql(p.jobIds as string[])}` : sql``;
      return (await sql`WITH ${this.#relaxed}
        UPDATE jobs SET lease_expires_at = ${p.now + p.leaseMs} FROM relaxed
        WHERE state = 'processing' AND lease_owner = ${p.workerId} ${only}`).count;
    });
  }

  findExpiredLeases(p: { now: number; limit: number }): Promise<Job[]> {
    return this.#run(async (sql) =>
      (await sql`SELECT ${this.#cols} FROM jobs
        WHERE state = 'processing' AND lease_expires_at <= ${p.now}
        ORDER BY lease_expires_at, seq LIMIT ${p.limit}`).map(toJob)
    );
  }

  nextRunAt(p: { queues: readonly string[] | null }): Promise<number | null> {
    return this.#run(async (sql) => {
      const queueFilter = p.queues && p.queues.length
        ? sql`AND queue IN ${sql(p.queues as string[])}`
        : sql``;
      const [{ t }] = await sql`SELECT min(run_at) AS t FROM jobs
        WHERE state IN ('pending', 'failed') ${queueFilter}`;
      return (t as number | null) ?? null;
    });
  }

  deleteJobs(
    p: { states: readonly JobState[]; ids?: readonly string[]; updatedBefore?: number },
  ): Promise<string[]> {
    if (p.states.length === 0 || (p.ids && p.ids.length === 0)) return Promise.resolve([]);
    return this.#run(async (sql) => {
      const conds = [sql`state IN ${sql(p.states as string[])}`];
      if (p.updatedBefore !== undefined) conds.push(sql`updated_at < ${p.updatedBefore}`);
      const del = (extra: Fragment | null) =>
        sql`DELETE FROM jobs WHERE ${
          [...conds, ...(extra ? [extra] : [])].reduce((a, b) => sql`${a} AND ${b}`)
        } RETURNING id`;
      if (!p.ids) return (await del(null)).map((r) => r.id as string);
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
        return out;
      });
    });
  }

  // --- config ---------------------------------------------------------------------------------

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
      const result = p.ids
        ? await sql`UPDATE workers SET stop_requested_at = coalesce(stop_requested_at, ${p.now})
          WHERE id IN ${sql(p.ids as string[])}`
        : await sql`UPDATE workers SET stop_requested_at = ${p.now}
          WHERE stop_requested_at IS NULL`;
      return result.count;
    });
  }

  pruneWorkers(p: { before: number }): Promise<string[]> {
    return this.#run(async (sql) =>
      (await sql`DELETE FROM workers WHERE heartbeat_at < ${p.before} RETURNING id`)
        .map((r) => r.id as string)
    );
  }

  // --- wake-ups -----------------------------------------------------------------------------

  /**
   * Waits up to `timeoutMs` for a NOTIFY saying jobs were enqueued or became runnable. The first
   * call opens the LISTEN connection (and waits until it listens); when that fails the call
   * degrades to a plain timer, so the caller's polling goes on.
   */
  async waitForJobs(p: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    if (this.#closed || p.signal?.aborted) return;
    const listening = await this.#listen();
    if (this.#hinted && listening) {
      this.#hinted = false;
      return;
    }
    if (this.#closed || p.signal?.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        p.signal?.removeEventListener("abort", done);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, p.timeoutMs));
      p.signal?.addEventListener("abort", done, { once: true });
      this.#waiters.add(done);
    });
  }

  #listen(): Promise<boolean> {
    if (this.#listening) return this.#listening;
    if (performance.now() - this.#listenFailedAt < LISTEN_RETRY_MS) return Promise.resolve(false);
    // A pool of its own: when LISTEN fails, postgres.js keeps the failed channel in its pool, so
    // the next attempt needs a fresh one. Once listening, postgres.js re-listens by itself after
    // a lost connection and calls onlisten again.
    const listener = this.#connect(1);
    this.#listener = listener;
    let first = true;
    this.#listening = listener.listen(
      NOTIFY_CHANNEL,
      (payload) => {
        if (payload === this.#schema) this.#wake();
      },
      () => {
        // Re-listening after a lost connection: notifications may have been missed.
        if (!first) this.#wake();
        first = false;
      },
    ).then(() => true, async () => {
      this.#listenFailedAt = performance.now();
      this.#listening = null;
      this.#listener = null;
      await listener.end({ timeout: 0 }).catch(() => {});
      return false;
    });
    return this.#listening;
  }

  #wake(): void {
    if (this.#waiters.size === 0) {
      this.#hinted = true;
      return;
    }
    for (const done of [...this.#waiters]) done();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const done of [...this.#waiters]) done();
    await Promise.allSettled([...this.#inflight, this.#listening]);
    await this.#listener?.end({ timeout: 0 });
    // Nothing is in flight: close at once. (A connection killed mid-query can keep postgres.js's
    // graceful end() waiting forever; timeout 0 still sends Terminate on healthy connections.)
    await this.#sql.end({ timeout: 0 });
  }
}

function duplicate(id: string): Conflict {
  return new Conflict(`A job with id ${JSON.stringify(id)} already exists`, {
    hint: "choose another id, or leave id out to have one generated",
  });
}
