/**
 * The SQLite Store on Deno's built-in `node:sqlite`.
 *
 * - WAL journal: readers (status, list, the dashboard) never block the writer and vice versa.
 * - synchronous=NORMAL: in WAL mode a commit is durable against a process crash; a power loss
 *   may lose the last commits but never corrupts the database.
 * - busy_timeout: concurrent writers (many worker processes) wait for the lock instead of
 *   failing with "database is locked".
 * - Workers' claims and settles also take a lock file beside the database (see {@link HotLock}):
 *   they queue for each other in the kernel rather than retry.
 * - Every state change is one guarded UPDATE (see core/transitions.ts).
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { Conflict, StorageError } from "../../core/errors.ts";
import type { Job, JobOutput, JobState, NewJob } from "../../core/job.ts";
import { JOB_STATES } from "../../core/job.ts";
import type { StateChange } from "../../core/transitions.ts";
import type { ListJobsParams, QueueStats, Store, WorkerRecord } from "../store.ts";
import { MIGRATIONS } from "./migrations.ts";

const BUSY_TIMEOUT_MS = 10_000;
/**
 * Workers' claim and settle transactions (after the lock file, see {@link HotLock}) first try to
 * take the write lock without waiting, and while another process holds it (for a fraction of a
 * millisecond: one claim or settle) try again on the next turn of the event loop, for up to this
 * long; then they wait in SQLite's busy handler like any other write. That handler sleeps 1 ms,
 * then 2, 5... at its first retry: with two busy workers about one transaction in ten met the
 * other's lock and slept 1-3 ms, for a lock held ~0.1 ms.
 */
const LOCK_RETRY_MS = 3;
/** The lock file of {@link HotLock}: the database path plus this. */
export const HOT_LOCK_SUFFIX = "-lock";
/** "QCTL": marks the file as a queuectl database. */
const APPLICATION_ID = 0x5143544c;

const JOB_COLUMNS =
  "id, command, queue, state, priority, attempts, max_retries, timeout, run_at, created_at, " +
  "updated_at, started_at, finished_at, exit_code, error, lease_owner, lease_expires_at";

const CHANGE_COLUMNS = [
  "attempts",
  "run_at",
  "started_at",
  "finished_at",
  "exit_code",
  "error",
  "lease_owner",
  "lease_expires_at",
] as const;

type Row = Record<string, SQLInputValue>;
type ClaimParams = Parameters<Store["claimJobs"]>[0];

export interface SqliteOptions {
  /** Create the database file if missing (default true). */
  create?: boolean;
}

/** Opens (creating and migrating when needed) the SQLite database at `path`. */
export function openSqliteStore(path: string, options: SqliteOptions = {}): Promise<Store> {
  return Promise.resolve(new SqliteStore(path, options));
}

function storageError(path: string, err: unknown): StorageError {
  const message = err instanceof Error ? err.message : String(err);
  if (/not a database|malformed|corrupt/i.test(message)) {
    return new StorageError(`${path} is not a queuectl database or is corrupt (${message})`, {
      hint: "point --db at another file, or restore it from a backup",
      cause: err,
    });
  }
  if (/readonly|read-only|permission denied|unable to open/i.test(message)) {
    return new StorageError(`Cannot write the database ${path}: ${message}`, {
      hint: "check that the directory exists and is writable, or choose another path with --db",
      cause: err,
    });
  }
  if (/locked|busy/i.test(message)) {
    return new StorageError(`The database ${path} stayed locked: ${message}`, {
      hint: "another process holds a long write; try again",
      cause: err,
    });
  }
  return new StorageError(`Database error on ${path}: ${message}`, { cause: err });
}

/** SQLITE_BUSY: another connection holds the lock (node:sqlite gives no error code, only this). */
function isLocked(err: unknown): boolean {
  return err instanceof Error && /database is locked/i.test(err.message);
}

class SqliteStore implements Store {
  readonly kind = "sqlite" as const;
  readonly location: string;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  #hotLock: HotLock | undefined;
  /**
   * busy_timeout is 0 between calls (set once this connection took the lock file): the hot
   * writes try the database's lock without waiting, and #run restores the usual wait around
   * everything else.
   */
  #failFast = false;
  /** Counter changes of the open write transaction (see #count). */
  readonly #counts = new Map<JobState, number>();

  constructor(path: string, options: SqliteOptions) {
    this.location = path;
    try {
      if (path !== ":memory:" && options.create !== false) ensureFile(path);
      this.#db = new DatabaseSync(path);
    } catch (err) {
      throw err instanceof StorageError ? err : storageError(path, err);
    }
    try {
      this.#db.exec(
        `PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; ` +
          "PRAGMA synchronous = NORMAL;",
      );
      this.#migrate();
    } catch (err) {
      this.#db.close();
      if (err instanceof StorageError) throw err;
      throw storageError(path, err);
    }
  }

  #migrate(): void {
    const version = this.#value("PRAGMA user_version") as number;
    if (version === MIGRATIONS.length) return;
    if (version > MIGRATIONS.length) {
      throw new StorageError(
        `The database ${this.location} has schema version ${version}, newer than this queuectl (${MIGRATIONS.length})`,
        { hint: "upgrade queuectl to use this database" },
      );
    }
    const appId = this.#value("PRAGMA application_id") as number;
    if (version === 0 && appId !== 0 && appId !== APPLICATION_ID) {
      throw new StorageError(`${this.location} belongs to another application`, {
        hint: "choose another path with --db",
      });
    }
    if (version === 0 && appId === 0) {
      const tables = this.#value("SELECT count(*) FROM sqlite_schema") as number;
      if (tables > 0) {
        throw new StorageError(`${this.location} is an SQLite database of another application`, {
          hint: "choose another path with --db",
        });
      }
    }
    this.#transaction(() => {
      // Re-read inside the write lock: another process may have migrated meanwhile.
      const current = this.#value("PRAGMA user_version") as number;
      for (let v = current + 1; v <= MIGRATIONS.length; v++) {
        this.#db.exec(MIGRATIONS[v - 1]);
        this.#stmt("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)").run(
          v,
          Date.now(),
        );
        this.#db.exec(`PRAGMA user_version = ${v}`);
      }
      this.#db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    });
  }

  #stmt(sql: string): StatementSync {
    let s = this.#statements.get(sql);
    if (!s) {
      s = this.#db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }

  #value(sql: string, ...params: SQLInputValue[]): unknown {
    const row = this.#stmt(sql).get(...params) as Row | undefined;
    return row ? Object.values(row)[0] : undefined;
  }

  /** Runs `fn` in a write transaction (BEGIN IMMEDIATE takes the lock up front). */
  #transaction<T>(fn: () => T): T {
    this.#stmt("BEGIN IMMEDIATE").run();
    try {
      const result = fn();
      this.#writeCounts();
      this.#stmt("COMMIT").run();
      return result;
    } catch (err) {
      this.#counts.clear();
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw err;
    }
  }

  /**
   * A write transaction of the workers' hot path: see {@link LOCK_RETRY_MS}. `fn` may run more
   * than once (each failed attempt is rolled back), so it must have no effect outside the
   * database. `serialized`: first take the lock file (see {@link HotLock}), as workers' claims and
   * settles do, so that they wait for each other in the kernel instead of retrying.
   */
  async #hotWrite<T>(fn: () => T, serialized = false): Promise<T> {
    if (serialized) {
      const done = this.#lockedWrite(fn);
      if (done) return done.value;
    }
    const giveUpAt = performance.now() + LOCK_RETRY_MS;
    for (;;) {
      const done = this.#tryWrite(fn);
      if (done) return done.value;
      if (performance.now() >= giveUpAt) return this.#run(() => this.#transaction(fn));
      await new Promise((next) => setImmediate(next));
    }
  }

  /** One attempt at the write transaction without waiting; undefined if the lock was held. */
  #tryWrite<T>(fn: () => T): { value: T } | undefined {
    const failFast = this.#failFast;
    if (!failFast) this.#stmt("PRAGMA busy_timeout = 0").get();
    try {
      return { value: this.#transaction(fn) };
    } catch (err) {
      if (!isLocked(err)) throw this.#mapError(err);
      return undefined;
    } finally {
      // Before any await: other calls (a heartbeat) may run meanwhile and must wait as usual
      // (on a #failFast connection, they set the wait themselves).
      if (!failFast) this.#stmt(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`).get();
    }
  }

  /**
   * #tryWrite under the lock file, held only for that synchronous attempt (never across an await:
   * another store of this process may want it). Undefined when there is no lock file, or the
   * database's lock was held by a writer that does not take it (CLI, dashboard, a heartbeat):
   * the caller then retries like those writers do.
   *
   * A connection that takes the lock file does little else than these writes, so from then on
   * it keeps busy_timeout at 0 (see #failFast) instead of setting it around each of them.
   */
  #lockedWrite<T>(fn: () => T): { value: T } | undefined {
    let lock = this.#hotLock;
    if (lock === undefined) {
      lock = this.#hotLock = HotLock.open(this.location);
      if (lock.usable) {
        this.#stmt("PRAGMA busy_timeout = 0").get();
        this.#failFast = true;
      }
    }
    if (!lock.acquire()) return undefined;
    try {
      return this.#tryWrite(fn);
    } finally {
      lock.release();
    }
  }

  #mapError(err: unknown): Error {
    if (err instanceof Conflict || err instanceof StorageError) return err;
    return storageError(this.location, err);
  }

  /**
   * Maps driver errors to StorageError; QueueErrors pass through. On a #failFast connection,
   * `fn` runs with the usual busy_timeout: it waits for the write lock like any other writer.
   */
  #run<T>(fn: () => T): Promise<T> {
    const failFast = this.#failFast;
    try {
      if (failFast) this.#stmt(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`).get();
      return Promise.resolve(fn());
    } catch (err) {
      if (err instanceof Conflict || err instanceof StorageError) return Promise.reject(err);
      return Promise.reject(storageError(this.location, err));
    } finally {
      if (failFast) this.#noWait();
    }
  }

  /** busy_timeout back to 0 on a #failFast connection (a closed one has nothing to set). */
  #noWait(): void {
    try {
      this.#stmt("PRAGMA busy_timeout = 0").get();
    } catch {
      // closed meanwhile
    }
  }

  insertJobs(p: { jobs: readonly NewJob[]; now: number }): Promise<void> {
    return this.#run(() => {
      const insert = this.#stmt(
        `INSERT INTO jobs (${JOB_COLUMNS}) VALUES ` +
          "(?, ?, ?, 'pending', ?, 0, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, NULL)",
      );
      this.#transaction(() => {
        for (const job of p.jobs) {
          try {
            insert.run(
              job.id,
              job.command,
              job.queue,
              job.priority,
              job.max_retries,
              job.timeout,
              job.run_at,
              p.now,
              p.now,
            );
          } catch (err) {
            if (err instanceof Error && /UNIQUE constraint/i.test(err.message)) {
              throw new Conflict(`A job with id ${JSON.stringify(job.id)} already exists`, {
                hint: "choose another id, or leave id out to have one generated",
              });
            }
            throw err;
          }
        }
        this.#count("pending", p.jobs.length);
      });
    });
  }

  /**
   * Adjusts the per-state counter; callers are inside the write transaction, which writes the
   * sum of its changes to each counter once, before it commits (a settle and the claim that
   * follows it move one job out of processing and one in: no write for that counter at all).
   */
  #count(state: JobState, delta: number): void {
    this.#counts.set(state, (this.#counts.get(state) ?? 0) + delta);
  }

  #writeCounts(): void {
    if (this.#counts.size === 0) return;
    const update = this.#stmt("UPDATE job_counts SET n = n + ? WHERE state = ?");
    for (const [state, delta] of this.#counts) if (delta !== 0) update.run(delta, state);
    this.#counts.clear();
  }

  getJob(p: { id: string }): Promise<Job | null> {
    return this.#run(() =>
      (this.#stmt(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`).get(p.id) as Job | undefined) ??
        null
    );
  }

  getJobOutput(p: { id: string }): Promise<JobOutput | null> {
    return this.#run(() => {
      const row = this.#stmt(
        "SELECT o.stdout, o.stderr, j.id AS job FROM jobs j LEFT JOIN job_output o ON o.id = j.id WHERE j.id = ?",
      ).get(p.id) as { stdout: string | null; stderr: string | null } | undefined;
      if (!row) return null;
      return { stdout: row.stdout ?? "", stderr: row.stderr ?? "" };
    });
  }

  #where(p: Omit<ListJobsParams, "limit" | "offset" | "order">): [string, SQLInputValue[]] {
    const terms: string[] = [];
    const params: SQLInputValue[] = [];
    if (p.state) {
      terms.push("state = ?");
      params.push(p.state);
    }
    if (p.queue) {
      terms.push("queue = ?");
      params.push(p.queue);
    }
    if (p.search) {
      terms.push("(instr(lower(id), ?) > 0 OR instr(lower(command), ?) > 0)");
      params.push(p.search.toLowerCase(), p.search.toLowerCase());
    }
    return [terms.length ? `WHERE ${terms.join(" AND ")}` : "", params];
  }

  listJobs(p: ListJobsParams): Promise<Job[]> {
    return this.#run(() => {
      const [where, params] = this.#where(p);
      const order = p.order === "oldest"
        ? "created_at ASC, rowid ASC"
        : p.order === "next"
        ? "priority DESC, run_at ASC, created_at ASC, rowid ASC"
        : "created_at DESC, rowid DESC";
      return this.#stmt(
        `SELECT ${JOB_COLUMNS} FROM jobs ${where} ORDER BY ${order} LIMIT ? OFFSET ?`,
      ).all(...params, p.limit, p.offset ?? 0) as unknown as Job[];
    });
  }

  countJobs(p: Omit<ListJobsParams, "limit" | "offset" | "order">): Promise<number> {
    return this.#run(() => {
      const [where, params] = this.#where(p);
      return this.#value(`SELECT count(*) FROM jobs ${where}`, ...params) as number;
    });
  }

  stats(p: { now: number }): Promise<QueueStats> {
    return this.#run(() => {
      const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<
        JobState,
        number
      >;
      for (
        const row of this.#stmt("SELECT state, n FROM job_counts").all() as {
          state: JobState;
          n: number;
        }[]
      ) counts[row.state] = row.n;
      const oldest = this.#value(
        "SELECT min(created_at) FROM jobs WHERE state = 'pending' AND run_at <= ?",
        p.now,
      ) as number | null;
      const scheduled = this.#value(
        "SELECT count(*) FROM jobs INDEXED BY jobs_waiting " +
          "WHERE state IN ('pending', 'failed') AND run_at > ?",
        p.now,
      ) as number;
      return { counts, oldest_pending_at: oldest ?? null, scheduled };
    });
  }

  completedPerBucket(p: { since: number; bucketMs: number }): Promise<number[]> {
    return this.#run(() => {
      const rows = this.#stmt(
        "SELECT CAST((finished_at - ?) / ? AS INTEGER) AS b, count(*) AS n " +
          "FROM jobs INDEXED BY jobs_finished " +
          "WHERE state = 'completed' AND finished_at >= ? GROUP BY b",
      ).all(p.since, p.bucketMs, p.since) as { b: number; n: number }[];
      const size = rows.reduce((m, r) => Math.max(m, r.b + 1), 0);
      const buckets = new Array<number>(size).fill(0);
      for (const r of rows) buckets[r.b] = r.n;
      return buckets;
    });
  }

  applyChange(p: { change: StateChange; output?: JobOutput }): Promise<boolean> {
    return this.#hotWrite(() => this.#settle(p.change, p.output));
  }

  claimJobs(p: ClaimParams): Promise<Job[]> {
    return this.#hotWrite(() => this.#claim(p), true);
  }

  settleAndClaim(
    p: { change: StateChange; output?: JobOutput; claim: ClaimParams },
  ): Promise<{ applied: boolean; claimed: Job[] }> {
    // One transaction, one commit: the settle and the claim write the same pages (the job rows,
    // the counters, the state indexes), and each commit costs its WAL writes and lock round.
    return this.#hotWrite(() => ({
      applied: this.#settle(p.change, p.output),
      claimed: this.#claim(p.claim),
    }), true);
  }

  /** The guarded UPDATE of one state change; callers are inside the write transaction. */
  #settle(c: StateChange, output: JobOutput | undefined): boolean {
    const sets = ["state = ?", "updated_at = ?"];
    const params: SQLInputValue[] = [c.to, c.updated_at];
    for (const col of CHANGE_COLUMNS) {
      if (col in c.set) {
        sets.push(`${col} = ?`);
        params.push(c.set[col] ?? null);
      }
    }
    let guard = "id = ? AND state = ?";
    params.push(c.id, c.from);
    if (c.leaseOwner !== undefined) {
      guard += " AND lease_owner = ?";
      params.push(c.leaseOwner);
    }
    if (c.leaseExpiredBy !== undefined) {
      guard += " AND lease_expires_at <= ?";
      params.push(c.leaseExpiredBy);
    }
    const update = this.#stmt(`UPDATE jobs SET ${sets.join(", ")} WHERE ${guard}`);
    if (Number(update.run(...params).changes) !== 1) return false;
    this.#count(c.from, -1);
    this.#count(c.to, 1);
    if (output) {
      this.#stmt(
        "INSERT OR REPLACE INTO job_output (id, stdout, stderr) VALUES (?, ?, ?)",
      ).run(c.id, output.stdout, output.stderr);
    }
    return true;
  }

  /** Claims up to p.limit due jobs; callers are inside the write transaction. */
  #claim(p: ClaimParams): Job[] {
    const queueFilter = p.queues && p.queues.length
      ? ` AND queue IN (${p.queues.map(() => "?").join(", ")})`
      : "";
    // INDEXED BY: claim order must come from the index, never from sorting every due job.
    const candidates = this.#stmt(
      "SELECT id, state FROM jobs INDEXED BY jobs_claim WHERE state IN ('pending', 'failed') " +
        `AND run_at <= ?${queueFilter} ORDER BY priority DESC, run_at ASC, created_at ASC, rowid ASC LIMIT ?`,
    ).all(p.now, ...(p.queues ?? []), p.limit) as { id: string; state: JobState }[];
    if (candidates.length === 0) return [];
    const claim = this.#stmt(
      "UPDATE jobs SET state = 'processing', attempts = attempts + 1, started_at = ?, " +
        "lease_owner = ?, lease_expires_at = ?, updated_at = ? " +
        `WHERE id = ? AND state IN ('pending', 'failed') RETURNING ${JOB_COLUMNS}`,
    );
    const claimed: Job[] = [];
    for (const c of candidates) {
      const job = claim.get(p.now, p.workerId, p.now + p.leaseMs, p.now, c.id) as
        | Job
        | undefined;
      if (!job) continue;
      claimed.push(job);
      this.#count(c.state, -1);
      this.#count("processing", 1);
    }
    return claimed;
  }

  renewLeases(
    p: { workerId: string; now: number; leaseMs: number; jobIds?: readonly string[] },
  ): Promise<number> {
    return this.#run(() => {
      const sql =
        "UPDATE jobs SET lease_expires_at = ? WHERE state = 'processing' AND lease_owner = ?";
      if (!p.jobIds) {
        return Number(this.#stmt(sql).run(p.now + p.leaseMs, p.workerId).changes);
      }
      let n = 0;
      for (const id of p.jobIds) {
        n += Number(
          this.#stmt(`${sql} AND id = ?`).run(p.now + p.leaseMs, p.workerId, id).changes,
        );
      }
      return n;
    });
  }

  findExpiredLeases(p: { now: number; limit: number }): Promise<Job[]> {
    return this.#run(() =>
      this.#stmt(
        `SELECT ${JOB_COLUMNS} FROM jobs WHERE state = 'processing' AND lease_expires_at <= ? ` +
          "ORDER BY lease_expires_at LIMIT ?",
      ).all(p.now, p.limit) as unknown as Job[]
    );
  }

  nextRunAt(p: { queues: readonly string[] | null }): Promise<number | null> {
    return this.#run(() => {
      const queueFilter = p.queues && p.queues.length
        ? ` AND queue IN (${p.queues.map(() => "?").join(", ")})`
        : "";
      return (this.#value(
        "SELECT min(run_at) FROM jobs INDEXED BY jobs_waiting " +
          `WHERE state IN ('pending', 'failed')${queueFilter}`,
        ...(p.queues ?? []),
      ) as number | null) ?? null;
    });
  }

  deleteJobs(
    p: { states: readonly JobState[]; ids?: readonly string[]; updatedBefore?: number },
  ): Promise<string[]> {
    return this.#run(() => {
      if (p.states.length === 0 || (p.ids && p.ids.length === 0)) return [];
      const terms = [`state IN (${p.states.map(() => "?").join(", ")})`];
      const params: SQLInputValue[] = [...p.states];
      if (p.updatedBefore !== undefined) {
        terms.push("updated_at < ?");
        params.push(p.updatedBefore);
      }
      const del = (extra: string, extraParams: SQLInputValue[]): string[] => {
        const rows = this.#db.prepare(
          `DELETE FROM jobs WHERE ${[...terms, ...(extra ? [extra] : [])].join(" AND ")} ` +
            "RETURNING id, state",
        ).all(...params, ...extraParams) as { id: string; state: JobState }[];
        const ids = rows.map((r) => r.id);
        for (const state of JOB_STATES) {
          this.#count(
            state,
            -rows.filter((r) => r.state === state).length,
          );
        }
        const delOut = this.#stmt("DELETE FROM job_output WHERE id = ?");
        for (const id of ids) delOut.run(id);
        return ids;
      };
      return this.#transaction(() => {
        if (!p.ids) return del("", []);
        const out: string[] = [];
        for (let i = 0; i < p.ids.length; i += 500) {
          const chunk = p.ids.slice(i, i + 500);
          out.push(...del(`id IN (${chunk.map(() => "?").join(", ")})`, chunk));
        }
        return out;
      });
    });
  }

  getConfig(): Promise<Record<string, string>> {
    return this.#run(() =>
      Object.fromEntries(
        (this.#stmt("SELECT key, value FROM config").all() as { key: string; value: string }[])
          .map((r) => [r.key, r.value]),
      )
    );
  }

  setConfig(p: { key: string; value: string }): Promise<void> {
    return this.#run(() => {
      this.#stmt(
        "INSERT INTO config (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      ).run(p.key, p.value);
    });
  }

  unsetConfig(p: { key: string }): Promise<boolean> {
    return this.#run(() =>
      Number(this.#stmt("DELETE FROM config WHERE key = ?").run(p.key).changes) === 1
    );
  }

  registerWorker(p: { worker: WorkerRecord }): Promise<void> {
    return this.#run(() => {
      const w = p.worker;
      this.#stmt(
        "INSERT OR REPLACE INTO workers (id, pid, host, queues, started_at, heartbeat_at, " +
          "current_job, stop_requested_at, supervisor_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      ).run(
        w.id,
        w.pid,
        w.host,
        w.queues ? JSON.stringify(w.queues) : null,
        w.started_at,
        w.heartbeat_at,
        w.current_job,
        w.stop_requested_at,
        w.supervisor_id,
      );
    });
  }

  heartbeatWorker(
    p: { id: string; now: number; currentJob: string | null },
  ): Promise<number | null | undefined> {
    return this.#run(() => {
      const row = this.#stmt(
        "UPDATE workers SET heartbeat_at = ?, current_job = ? WHERE id = ? RETURNING stop_requested_at",
      ).get(p.now, p.currentJob, p.id) as { stop_requested_at: number | null } | undefined;
      return row === undefined ? undefined : row.stop_requested_at;
    });
  }

  removeWorker(p: { id: string }): Promise<void> {
    return this.#run(() => {
      this.#stmt("DELETE FROM workers WHERE id = ?").run(p.id);
    });
  }

  listWorkers(): Promise<WorkerRecord[]> {
    return this.#run(() =>
      (this.#stmt(
        "SELECT id, pid, host, queues, started_at, heartbeat_at, current_job, stop_requested_at, " +
          "supervisor_id FROM workers ORDER BY started_at, id",
      ).all() as (Omit<WorkerRecord, "queues"> & { queues: string | null })[]).map((r) => ({
        ...r,
        queues: r.queues ? JSON.parse(r.queues) as string[] : null,
      }))
    );
  }

  requestStop(p: { ids?: readonly string[]; now: number }): Promise<number> {
    return this.#run(() => {
      if (!p.ids) {
        return Number(
          this.#stmt(
            "UPDATE workers SET stop_requested_at = ? WHERE stop_requested_at IS NULL",
          ).run(p.now).changes,
        );
      }
      let n = 0;
      const stmt = this.#stmt(
        "UPDATE workers SET stop_requested_at = coalesce(stop_requested_at, ?) WHERE id = ?",
      );
      for (const id of p.ids) n += Number(stmt.run(p.now, id).changes);
      return n;
    });
  }

  pruneWorkers(p: { before: number }): Promise<string[]> {
    return this.#run(() =>
      (this.#stmt("DELETE FROM workers WHERE heartbeat_at < ? RETURNING id").all(p.before) as {
        id: string;
      }[]).map((r) => r.id)
    );
  }

  close(): Promise<void> {
    this.#hotLock?.close();
    try {
      if (this.#db.isOpen) this.#db.close();
    } catch {
      // closing twice is harmless
    }
    return Promise.resolve();
  }
}

/**
 * The lock file beside the database (`<db>-lock`, mode 0600) that workers' claim and settle
 * transactions hold while they run: a worker that finds the other one's transaction under way
 * sleeps in the kernel until it ends, instead of retrying on every turn of its event loop
 * (with two busy workers, about half of all transactions met the other's lock; each retry is a
 * failed BEGIN, an exception, and CPU taken from the jobs). An advisory lock (flock(2) on Unix,
 * LockFileEx on Windows): released by the kernel when its holder dies, and ignored by every
 * other writer, which keep SQLite's own locking. Unavailable (no lock at all) for `:memory:` and
 * when the file cannot be opened or locked.
 */
class HotLock {
  #file: Deno.FsFile | null;

  private constructor(file: Deno.FsFile | null) {
    this.#file = file;
  }

  static open(dbPath: string): HotLock {
    if (dbPath === "" || dbPath === ":memory:" || dbPath.startsWith("file:")) {
      return new HotLock(null);
    }
    try {
      return new HotLock(
        Deno.openSync(`${dbPath}${HOT_LOCK_SUFFIX}`, {
          read: true,
          write: true,
          create: true,
          mode: 0o600,
        }),
      );
    } catch {
      return new HotLock(null);
    }
  }

  /** True while there is a lock file to take. */
  get usable(): boolean {
    return this.#file !== null;
  }

  /** Waits for the lock; false (and no lock from now on) if there is none or it failed. */
  acquire(): boolean {
    if (this.#file === null) return false;
    try {
      this.#file.lockSync(true);
      return true;
    } catch {
      this.close();
      return false;
    }
  }

  release(): void {
    try {
      this.#file?.unlockSync();
    } catch {
      this.close(); // closing the file releases the lock
    }
  }

  close(): void {
    try {
      this.#file?.close();
    } catch {
      // already closed
    }
    this.#file = null;
  }
}

/** Creates the database file with mode 0600 when missing (SQLite copies it to -wal and -shm). */
function ensureFile(path: string): void {
  try {
    Deno.lstatSync(path);
    return;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  const dir = slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
  try {
    if (!Deno.statSync(dir).isDirectory) throw new Error("not a directory");
  } catch {
    throw new StorageError(`Cannot create the database ${path}: directory ${dir} does not exist`, {
      hint: "create the directory first, or choose another path with --db",
    });
  }
  try {
    const file = Deno.openSync(path, { createNew: true, write: true, mode: 0o600 });
    file.close();
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return;
    throw new StorageError(
      `Cannot create the database ${path}: ${err instanceof Error ? err.message : err}`,
      { hint: "check that the directory is writable, or choose another path with --db" },
    );
  }
}
