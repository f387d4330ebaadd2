/**
 * The storage contract. Every backend (SQLite, PostgreSQL) implements this interface and passes the
 * same conformance suite (tests/store/conformance.ts).
 *
 * Rules:
 * - Every method takes one params object and says what it reads and writes.
 * - A state change is applied as one guarded statement (see core/transitions.ts): the store never
 *   decides a state itself, it only checks the guard and writes.
 * - Times are epoch milliseconds, passed in by the caller (a Clock), never read by the store.
 */
import {
  type Job,
  JOB_STATES,
  type JobOutput,
  type JobState,
  type JobToInsert,
} from "../core/job.ts";
import type { StoredRun } from "../core/runs.ts";
import type { Schedule, ScheduleView } from "../core/schedule.ts";
import type { ClaimParams, StateChange } from "../core/transitions.ts";
import { Conflict } from "../core/errors.ts";
import { quote } from "../core/text.ts";

export type { ClaimParams };

export type JobOrder = "newest" | "oldest" | "next";

export interface ListJobsParams {
  state?: JobState;
  queue?: string;
  /** Case-insensitive substring of the id or the command. */
  search?: string;
  limit: number;
  offset?: number;
  /**
   * Keyset pagination: only jobs that come after the job with this id in the list's order
   * (newest or oldest; not next). Costs what the first page does, however deep; throws NotFound
   * when that job no longer exists. Combines with the filters (and with offset, which it precedes).
   */
  after?: string;
  /** newest: created_at desc (default); oldest: created_at asc; next: claim order. */
  order?: JobOrder;
  /**
   * Newest or oldest order: only jobs up to and including the job with this id in the list's
   * order (after the cursor, if any); NotFound when it no longer exists. With a search, the jobs in
   * between are walked in list order, each tested, whatever the text: the bounded search of texts
   * too short for the substring index (see {@link SHORT_SEARCH_SCAN}).
   */
  through?: string;
}

/**
 * Searches of at least this many characters use the substring index (SQLite FTS5 trigram,
 * PostgreSQL pg_trgm); shorter ones scan the jobs in list order (the app bounds that scan: see
 * {@link SHORT_SEARCH_SCAN}).
 */
export const SEARCH_INDEX_MIN_CHARS = 3;

/**
 * A search shorter than {@link SEARCH_INDEX_MIN_CHARS} (no index serves it) tests at most this
 * many jobs per page, newest first, and says so when jobs were left untested (docs/architecture.md,
 * "Short searches").
 */
export const SHORT_SEARCH_SCAN = 10_000;

export interface CountJobsParams {
  state?: ListJobsParams["state"];
  queue?: string;
  search?: string;
  cap?: number;
  /** With a search: count the matches among the newest `scan` jobs of the filter only. */
  scan?: number;
}

export interface QueueStats {
  counts: Record<JobState, number>;
  /** created_at of the oldest job that is pending, due (run_at <= now) and not waiting, or null. */
  oldest_pending_at: number | null;
  /** Failed jobs whose retry time has not come yet, plus pending jobs scheduled for later. */
  scheduled: number;
  /** Pending or failed jobs waiting for their dependencies (blocked_by > 0). */
  blocked: number;
}

/** A queue's flow control (`queue pause`, `queue limit`); a queue without a row has neither. */
export interface QueueControl {
  name: string;
  paused: boolean;
  /** At most this many of its jobs run at once, across every worker and host; 0 = no limit. */
  max_running: number;
}

/** A queue as `queue list` shows it: its control and its jobs. */
export interface QueueSummary extends QueueControl {
  counts: Record<JobState, number>;
  /** Pending or failed jobs waiting for their dependencies. */
  blocked: number;
}

/**
 * The rows both stores read for `queue list` (jobs per queue and state, waiting jobs per queue,
 * the queues' controls) → one QueueSummary per queue that has jobs or a control, by name.
 */
export function summariseQueues(
  byState: Iterable<{ queue: string; state: JobState; n: number }>,
  blocked: Iterable<{ queue: string; n: number }>,
  controls: Iterable<QueueControl>,
): QueueSummary[] {
  const queues = new Map<string, QueueSummary>();
  const entry = (name: string): QueueSummary => {
    let q = queues.get(name);
    if (!q) {
      q = {
        name,
        paused: false,
        max_running: 0,
        counts: Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>,
        blocked: 0,
      };
      queues.set(name, q);
    }
    return q;
  };
  for (const r of byState) entry(r.queue).counts[r.state] = r.n;
  for (const r of blocked) entry(r.queue).blocked = r.n;
  for (const r of controls) {
    const q = entry(r.name);
    q.paused = r.paused;
    q.max_running = r.max_running;
  }
  return [...queues.values()].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** A job's place in the dependency graph (`show`). */
export interface JobDependencies {
  /** The jobs it runs after, in its `after` order; state null when the job was deleted. */
  dependencies: { id: string; state: JobState | null }[];
  /** The jobs that run after it, oldest first (at most the limit asked for). */
  dependents: { id: string; state: JobState }[];
}

/** Jobs of one queue for metrics (see {@link Store.queueMetrics}). */
export interface QueueMetrics {
  queue: string;
  /** Jobs per state (states without jobs absent). */
  counts: Partial<Record<JobState, number>>;
  /** Least run_at among claimable jobs already due (pending, or failed with a retry due), or null. */
  oldest_due_at: number | null;
}

/** Rows of `queue, state, n, due` (one per queue and state) → one QueueMetrics per queue. */
export function collectQueueMetrics(
  rows: readonly { queue: string; state: JobState; n: number; due: number | null }[],
): QueueMetrics[] {
  const byQueue = new Map<string, QueueMetrics>();
  for (const r of rows) {
    let q = byQueue.get(r.queue);
    if (!q) byQueue.set(r.queue, q = { queue: r.queue, counts: {}, oldest_due_at: null });
    q.counts[r.state] = Number(r.n);
    if (r.due !== null) {
      const due = Number(r.due);
      q.oldest_due_at = q.oldest_due_at === null ? due : Math.min(q.oldest_due_at, due);
    }
  }
  return [...byQueue.values()].sort((a, b) => a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0);
}

export interface WorkerRecord {
  id: string;
  pid: number;
  host: string;
  queues: string[] | null;
  started_at: number;
  heartbeat_at: number;
  current_job: string | null;
  /** Set when `worker stop` asked this worker to finish its job and exit. */
  stop_requested_at: number | null;
  /** The supervisor that spawned the worker, or null for the supervisor itself. */
  supervisor_id: string | null;
}

/** A running job's output since the last write (see {@link Store.appendRunOutput}). */
export interface RunOutputChunk {
  jobId: string;
  attempt: number;
  worker: string;
  host: string | null;
  startedAt: number | null;
  stdout: string;
  stderr: string;
  limit: number;
  now: number;
}

/**
 * What an insert does with a job whose `unique_key` an active job holds (one in UNIQUE_KEY_STATES
 * of core/job.ts, the input's earlier jobs included): `existing` (the default) inserts nothing
 * for it and reports the holder through `onExisting`; `error` throws Conflict, rolling back the
 * whole insert; `replace` deletes a waiting holder (pending or failed, with its runs) and inserts
 * the new job, and throws Conflict when the holder is running. Race-free: the partial unique
 * index `jobs_unique_key` decides between concurrent inserts.
 */
export type OnDuplicate = "existing" | "error" | "replace";

export interface UniqueKeyOptions {
  onDuplicate?: OnDuplicate;
  /** Called for each job left out because the active job `existingId` holds its key. */
  onExisting?: (jobId: string, existingId: string) => void;
}

/** What Store.fireSchedule did (null: nothing, the slot was fired by another or the schedule is gone). */
export interface ScheduleFire {
  /** The active job holding the unique key of the job given, which was thus not inserted; or null. */
  heldBy: string | null;
}

/** The Conflict of a schedule added under a name that is taken (both stores, on the unique index). */
export function scheduleExists(name: string): Conflict {
  return new Conflict(`A schedule named ${quote(name)} already exists`, {
    hint: "choose another name, or remove it first: queuectl schedule remove NAME",
  });
}

/** The Conflict of a job whose unique key an active job holds (`error`, or a running holder). */
export function uniqueKeyConflict(
  key: string,
  holder: { id: string; state: string },
  replacing: boolean,
): Conflict {
  const what = `A job with unique key ${quote(key)} is ${holder.state}: ${quote(holder.id)}`;
  return replacing
    ? new Conflict(`${what} (only a waiting job can be replaced)`, {
      hint: "wait for it to finish, or kill it",
    })
    : new Conflict(what, { hint: "--on-duplicate replace replaces a waiting job" });
}

/** A change of `jobId` back to an active state refused: `holder` has its unique key meanwhile. */
export function heldKeyConflict(
  jobId: string,
  key: string | null,
  holder: { id: string; state: string } | undefined,
): Conflict {
  return new Conflict(
    `Job ${quote(jobId)} cannot be queued again: ${
      holder ? `job ${quote(holder.id)} (${holder.state})` : "another active job"
    } holds its unique key${key === null ? "" : ` ${quote(key)}`}`,
    { hint: "wait for that job to finish, or delete it" },
  );
}

export interface Store {
  /** "sqlite" or "postgres". */
  readonly kind: "sqlite" | "postgres";
  /** Where the data lives, safe to print (no password). */
  readonly location: string;

  // --- jobs ---------------------------------------------------------------------------------
  /**
   * Writes: inserts all jobs in one transaction; throws Conflict naming a duplicate id. Jobs with
   * a `unique_key` held by an active job: see {@link OnDuplicate}. Returns how many were inserted.
   */
  insertJobs(
    p: { jobs: readonly JobToInsert[]; now: number } & UniqueKeyOptions,
  ): Promise<number>;
  /**
   * Writes: inserts every job of every batch in ONE transaction, pulling one batch at a time, so a
   * bulk enqueue of any size streams through in constant memory. All or nothing: an error thrown
   * by `batches` (a bad line found mid-file) or a duplicate id rolls back every row. Throws
   * Conflict naming a duplicate id (already in the database, or twice in the input). Returns how
   * many jobs were inserted. Unique keys as in {@link insertJobs}.
   */
  insertJobStream(
    p: { batches: AsyncIterable<readonly JobToInsert[]>; now: number } & UniqueKeyOptions,
  ): Promise<number>;
  /** Reads one job (without output), or null. */
  getJob(p: { id: string }): Promise<Job | null>;
  /**
   * Reads the captured output of the job's last run (the running one: its output so far), empty
   * when it never ran, or null if the job does not exist.
   */
  getJobOutput(p: { id: string }): Promise<JobOutput | null>;
  /**
   * Reads the last `chars` characters of the stderr of each job's last run, cut in SQL (whole
   * outputs are never loaded): id → tail, for jobs with a non-empty stderr (DLQ "Last error").
   */
  getStderrTails(p: { ids: readonly string[]; chars: number }): Promise<Map<string, string>>;
  /**
   * Reads every run of the job, oldest first, each with the last `outputChars` characters of its
   * output (cut in SQL; 0 = none); [] for an unknown job.
   */
  listRuns(p: { jobId: string; outputChars: number }): Promise<StoredRun[]>;
  /** Reads the job's latest run with its whole output, or null if it has none. */
  getLatestRun(p: { jobId: string }): Promise<StoredRun | null>;
  /** Reads the output of the job's latest run with this attempt number, or null if none. */
  getRunOutput(p: { jobId: string; attempt: number }): Promise<JobOutput | null>;
  /**
   * Writes output a running job printed since the last call (live output, `logs --follow`):
   * appended to the job's `running` run row of that attempt and worker, which the first call
   * creates (with `host` and `startedAt`); each stream keeps its last `limit` characters. Only
   * while the job is processing under `worker`'s lease: returns false, writing nothing, otherwise.
   * The settle of the run closes the row (applyChange). PostgreSQL: notifies watchers.
   */
  appendRunOutput(p: RunOutputChunk): Promise<boolean>;
  /** Reads the state of each job of `ids` that exists; a missing id is absent from the map. */
  getJobStates(p: { ids: readonly string[] }): Promise<Map<string, JobState>>;
  /** Reads the ids of every job in one of `states` (only of `queue` when given). */
  listJobIds(p: { states: readonly JobState[]; queue?: string }): Promise<string[]>;
  /** Reads a page of jobs (no output columns). */
  listJobs(p: ListJobsParams): Promise<Job[]>;
  /**
   * Reads the number of jobs matching the filter of listJobs; with `cap`, counting stops there
   * (the result is then at most `cap`: "cap or more").
   */
  countJobs(p: CountJobsParams): Promise<number>;
  /**
   * Reads the number of dead jobs (only of `queues` when given) whose run ended, or that were
   * moved to the DLQ without one, at or after `since`: `coalesce(finished_at, updated_at) >=
   * since`. An index range of the dead jobs changed since then (`jobs_retention`: a change sets
   * updated_at to its time, never below finished_at), not a walk of the whole DLQ.
   */
  countDeadSince(p: { since: number; queues: readonly string[] | null }): Promise<number>;
  /** Reads counts per state and the oldest due pending job. */
  stats(p: { now: number }): Promise<QueueStats>;
  /**
   * Reads jobs per queue and state, and per queue the least run_at of the claimable jobs due at
   * `now` (one pass over the jobs: costs what a scan does; `/metrics`).
   */
  queueMetrics(p: { now: number }): Promise<QueueMetrics[]>;
  /**
   * Reads the run totals, which only grow: `outcome:<outcome>` (runs finished per outcome),
   * `duration_le:<seconds>` (finished runs per duration bucket, not cumulative; buckets in
   * app/metrics.ts), `duration_sum_ms`. Kept by the database in the same transaction as the run
   * (migration 12), so they survive restarts and the deletion of jobs and runs.
   */
  runTotals(): Promise<Map<string, number>>;
  /** Reads completed-job counts per bucket since `since` (dashboard throughput chart). */
  completedPerBucket(p: { since: number; bucketMs: number }): Promise<number[]>;
  /**
   * Writes one guarded state change and, in the same transaction, the run it ends (`change.run`,
   * with `output` as the run's output; without `output` a running row keeps its output so far):
   * the job's `running` run row of that attempt and worker is closed, or a run row is added.
   * Returns false, changing nothing, when the guard does not hold (job gone, state or lease owner
   * changed). Deleting a job deletes its runs. Once committed, it wakes idle workers (see
   * worker/wake.ts) when the job may be claimed now or later, when a dependent became claimable,
   * and when a job of a limited queue (not paused) left `processing`: its slot is free.
   */
  applyChange(p: { change: StateChange; output?: JobOutput }): Promise<boolean>;
  /**
   * Writes: atomically claims up to `limit` due jobs by the claim rule (CLAIM_RULE in
   * core/transitions.ts): pending or failed with run_at <= now, highest priority first, then
   * oldest run_at, then created_at, then insertion order; only from `queues` when given. Each
   * claimed job becomes processing with attempts + 1, started_at = now and a lease for `workerId`
   * until now + leaseMs. Returns the claimed jobs as they are after the claim. No job is claimed
   * twice.
   */
  claimJobs(p: ClaimParams): Promise<Job[]>;
  /**
   * Writes: applyChange({change, output}), then claimJobs(claim): a worker settles its job and
   * takes the next. SQLite does both in one transaction (one commit per job instead of two);
   * another backend may do them one after the other. A refused change (applied false) does not
   * prevent the claim. If the claim fails once the change is written, the result says so with no
   * claimed jobs (the caller claims again later), never an error.
   */
  settleAndClaim(
    p: { change: StateChange; output?: JobOutput; claim: ClaimParams },
  ): Promise<{ applied: boolean; claimed: Job[] }>;
  /**
   * Writes: extends to now + leaseMs the lease of every job the worker holds, or only of `jobIds`
   * (a worker renews just the job in hand, so that a claim whose reply it never received expires
   * and is rescued); returns how many.
   */
  renewLeases(
    p: { workerId: string; now: number; leaseMs: number; jobIds?: readonly string[] },
  ): Promise<number>;
  /**
   * Reads processing jobs whose lease expired at or before `now`. `restartGraceMs`: on PostgreSQL
   * (server lease clock), none while the server has been up for less than this (it restarted:
   * every owner lost its connection and gets this long to reconnect and renew first, see
   * docs/architecture.md "Rescue rules"); SQLite has no server and ignores it.
   */
  findExpiredLeases(p: { now: number; limit: number; restartGraceMs?: number }): Promise<Job[]>;
  /**
   * Reads the processing jobs leased to `worker`, whatever their lease's expiry (a supervisor
   * looks for the jobs its dead worker claimed and never started).
   */
  listLeased(p: { worker: string }): Promise<Job[]>;
  /**
   * Reads the earliest run_at among claimable jobs in `queues` (null = all), or null if none;
   * with `after`, among those due after that time only (the next scheduled job). `open`: leaving
   * out the jobs of paused queues and of full ones (limited, their limit reached): an idle
   * worker's wait. Those jobs cannot be claimed until a resume, a raised limit or the end of a
   * running job of the queue, and each of those wakes the workers ({@link applyChange}).
   */
  nextRunAt(
    p: { queues: readonly string[] | null; after?: number; open?: boolean },
  ): Promise<number | null>;
  /**
   * Writes: deletes jobs in one of `states` (guard), optionally only the given ids and/or those
   * whose updated_at is before `updatedBefore`. With `limit` (and no `ids`): at most that many,
   * those updated longest ago first, in one short transaction (retention deletes in small
   * batches). Returns the ids deleted.
   */
  deleteJobs(
    p: {
      states: readonly JobState[];
      ids?: readonly string[];
      updatedBefore?: number;
      limit?: number;
    },
  ): Promise<string[]>;

  // --- flow control -------------------------------------------------------------------------
  /** Reads the dependencies and dependents (at most `limit`) of a job; null when it is unknown. */
  getDependencies(p: { id: string; limit: number }): Promise<JobDependencies | null>;
  /**
   * Reads, for each of `ids` that waits for dependencies (blocked_by > 0), the ids of those not
   * completed yet (in its `after` order); jobs not waiting are absent from the map.
   */
  getBlockers(p: { ids: readonly string[] }): Promise<Map<string, string[]>>;
  /**
   * Writes a queue's pause and/or limit (the others kept; a queue without a row has neither):
   * claims read them in the same statement or transaction that takes jobs, so a paused queue
   * gives no job and a limit is never overshot, across every worker and host. Returns the
   * queue's control after the write.
   */
  setQueueControl(
    p: { name: string; paused?: boolean; maxRunning?: number; now: number },
  ): Promise<QueueControl>;
  /** Reads the control of every queue that has one (paused or limited), by name. */
  listQueueControls(): Promise<QueueControl[]>;
  /**
   * Reads every queue that has jobs or a control, by name, with its job counts per state (a scan
   * of the jobs: for `queue list`, not for a hot path).
   */
  listQueues(): Promise<QueueSummary[]>;
  // --- schedules (docs/architecture.md "Schedules") -----------------------------------------
  /** Writes a new schedule; throws Conflict when one with its name exists (changing nothing). */
  insertSchedule(p: { schedule: Schedule }): Promise<void>;
  /** Reads every schedule by name, each with the state of its last job (null when gone). */
  listSchedules(): Promise<ScheduleView[]>;
  /** Reads one schedule, or null. */
  getSchedule(p: { name: string }): Promise<ScheduleView | null>;
  /** Deletes a schedule (its jobs stay); returns whether it existed. */
  deleteSchedule(p: { name: string }): Promise<boolean>;
  /**
   * Writes paused (and, when given, next_run_at) of a schedule; returns whether it exists.
   */
  setSchedulePaused(
    p: { name: string; paused: boolean; nextRunAt?: number; now: number },
  ): Promise<boolean>;
  /** Reads up to `limit` schedules not paused whose next_run_at <= now, earliest first. */
  dueSchedules(p: { now: number; limit: number }): Promise<Schedule[]>;
  /**
   * Writes, in ONE transaction: the schedule's next_run_at = `nextRunAt` (when given) guarded by
   * next_run_at = `expectNextRunAt` (when not null) and, only if that guard holds, `job` (when
   * given) inserted and recorded as the schedule's last job (last_run_at = now). Returns null,
   * changing nothing, when the schedule is gone or the guard fails (another leader fired that
   * slot): a slot thus enqueues at most one job whoever races. A job inserted wakes the workers
   * like an enqueue. A `job` whose unique_key an active job holds is not inserted (OnDuplicate
   * `existing`, decided in the same transaction, so no enqueue or other fire racing it can make a
   * second active job with the key): the slot still counts as fired (next_run_at moves on,
   * last_run_at stays), last_job_id becomes the holder, and the result names it in `heldBy`.
   */
  fireSchedule(p: {
    name: string;
    expectNextRunAt: number | null;
    nextRunAt?: number;
    job?: JobToInsert;
    now: number;
  }): Promise<ScheduleFire | null>;

  // --- config ---------------------------------------------------------------------------------
  /** Reads every stored config value (raw strings, validated by core/config.ts). */
  getConfig(): Promise<Record<string, string>>;
  /** Writes one config value. */
  setConfig(p: { key: string; value: string }): Promise<void>;
  /** Deletes one config value; returns whether it was set. */
  unsetConfig(p: { key: string }): Promise<boolean>;

  // --- workers ------------------------------------------------------------------------------
  /** Writes: registers (or replaces) a worker or supervisor record. */
  registerWorker(p: { worker: WorkerRecord }): Promise<void>;
  /**
   * Writes the worker's heartbeat and current job; returns its stop_requested_at (null when it
   * may go on), or undefined when the record is gone (treat as a stop request).
   */
  heartbeatWorker(
    p: { id: string; now: number; currentJob: string | null },
  ): Promise<number | null | undefined>;
  /** Deletes a worker record. */
  removeWorker(p: { id: string }): Promise<void>;
  /** Reads every worker and supervisor record. */
  listWorkers(): Promise<WorkerRecord[]>;
  /**
   * Writes a stop request on the given records (all when `ids` is absent); returns how many.
   * Without `ids` it also records a stop of everything (a number that {@link lastStopRequest}
   * returns), which outlives the records: a worker or supervisor whose record was removed while
   * it was away (cut off, frozen) learns from it that it must stop rather than register again.
   */
  requestStop(p: { ids?: readonly string[]; now: number }): Promise<number>;
  /** Reads the number of the latest stop of everything (0 when none was ever recorded). */
  lastStopRequest(): Promise<number>;
  /** Deletes worker records whose heartbeat is older than `before` (dead hosts); returns ids. */
  pruneWorkers(p: { before: number }): Promise<string[]>;
  /**
   * Writes: compacts the job counters (table job_counts, per queue and state; on PostgreSQL in
   * shards), so that they hold about one row per queue and state that has jobs, not one for
   * every queue ever used: up to `limit` counters that read zero or are split over several rows
   * are folded into one row, or none when zero (docs/architecture.md, "Reads at a million
   * jobs"). Every count reads the same before and after, at every moment. Never waits for a
   * counter row another transaction holds (skipped until the next call). `found`: counters that
   * needed it (when it equals `limit`, more may); `removed`: rows deleted.
   */
  compactCounts(p: { limit: number }): Promise<{ found: number; removed: number }>;

  // --- leadership ---------------------------------------------------------------------------
  /**
   * Takes or keeps the lead of `name` for `holder` (a unique id per candidate): true when
   * `holder` leads now, false when another holder does. Candidates call it again at least three
   * times per lease; a holder that stops calling loses the lead within `leaseMs` and another may
   * take it; a holder never learns it lost the lead other than by a later call returning false.
   * SQLite: a row lease (`leaders` table) until now + leaseMs, taken by a guarded upsert.
   * PostgreSQL: a session-level advisory lock on a connection of its own, which the server ends
   * after `leaseMs` without a call (idle_session_timeout), releasing the lock; `now` is not used.
   */
  tryLead(p: { name: string; holder: string; now: number; leaseMs: number }): Promise<boolean>;
  /** Gives up the lead of `name` if `holder` has it: another candidate may take it at once. */
  resign(p: { name: string; holder: string }): Promise<void>;

  /**
   * A file the store writes to after every commit that makes a job claimable (enqueue, retry,
   * restore, release, a retry scheduled) and at no other time: idle workers watch it (SQLite:
   * `<db>-wake`; see docs/architecture.md "Wake-ups"). Absent when the store has no such file.
   */
  readonly wakeFile?: string;

  /**
   * `queuectl kill`. Writes: on a processing job (guard `state = 'processing'`), kill_signal =
   * `signal`, kill_retry = 1 or 0, updated_at = now; then hints the workers (SQLite: one byte to
   * `<db>-kill`; PostgreSQL: `NOTIFY queuectl_kill`), so that the one running it reads the
   * request at once (see {@link watchKillRequests}). False, changing nothing, when the job is not
   * processing. Every settle of the run clears the request (core/transitions.ts).
   */
  requestKill(p: { id: string; signal: string; retry: boolean; now: number }): Promise<boolean>;

  /**
   * Calls `onHint` soon after any requestKill on this database (from any process or host; a hint
   * may be spurious), until the returned function is called. Best effort: a worker also reads
   * its job's request at every heartbeat.
   */
  watchKillRequests?(onHint: () => void): () => void;

  /**
   * Waits up to `timeoutMs` for a hint that jobs were enqueued (LISTEN/NOTIFY, file watch...).
   * True when a hint ended the wait, false on the timeout or the signal.
   */
  waitForJobs?(p: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean>;
  /**
   * Waits up to `timeoutMs` for a hint that a job was settled (or its output grew), for `wait`
   * and `logs --follow` (docs/architecture.md "Watching jobs"). PostgreSQL: the first call
   * records this store as a watcher (renewed by later calls, `now` = the caller's clock, removed
   * by close()); while any watcher is recorded, settles send `NOTIFY queuectl_changes`. Call it
   * once with timeoutMs 0 before the first look, so no change after that look goes unnoticed.
   * A backend without it (SQLite) is watched through its files by the caller.
   */
  waitForChanges?(p: { now: number; timeoutMs: number; signal?: AbortSignal }): Promise<void>;

  /**
   * Bounds every later call in time: one that gets no answer within `ms` fails with a transient
   * StorageError, so that a worker cut off from the database notices instead of waiting forever
   * (see docs/architecture.md "No unbounded waits"). Workers and supervisors set it from the lease.
   * PostgreSQL: a client-side limit on each call (connecting included) and the server's
   * `statement_timeout`/`lock_timeout`; a call that times out drops the pool's connections (one
   * of them is dead or stuck) and the next call connects afresh. SQLite has no such method: its
   * calls are local, their lock waits bounded by the driver.
   */
  setCallTimeout?(ms: number): void;

  close(): Promise<void>;
}
