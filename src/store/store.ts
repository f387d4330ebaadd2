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
import type { Job, JobOutput, JobState, NewJob } from "../core/job.ts";
import type { StateChange } from "../core/transitions.ts";

export type JobOrder = "newest" | "oldest" | "next";

export interface ListJobsParams {
  state?: JobState;
  queue?: string;
  /** Case-insensitive substring of the id or the command. */
  search?: string;
  limit: number;
  offset?: number;
  /** newest: created_at desc (default); oldest: created_at asc; next: claim order. */
  order?: JobOrder;
}

export interface QueueStats {
  counts: Record<JobState, number>;
  /** created_at of the oldest job that is pending and due (run_at <= now), or null. */
  oldest_pending_at: number | null;
  /** Failed jobs whose retry time has not come yet, plus pending jobs scheduled for later. */
  scheduled: number;
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

export interface Store {
  /** "sqlite" or "postgres". */
  readonly kind: "sqlite" | "postgres";
  /** Where the data lives, safe to print (no password). */
  readonly location: string;

  // --- jobs ---------------------------------------------------------------------------------
  /** Writes: inserts all jobs in one transaction; throws Conflict naming a duplicate id. */
  insertJobs(p: { jobs: readonly NewJob[]; now: number }): Promise<void>;
  /** Reads one job (without output), or null. */
  getJob(p: { id: string }): Promise<Job | null>;
  /** Reads the captured output of the job's last run, or null if the job does not exist. */
  getJobOutput(p: { id: string }): Promise<JobOutput | null>;
  /** Reads a page of jobs (no output columns). */
  listJobs(p: ListJobsParams): Promise<Job[]>;
  /** Reads the number of jobs matching the filter of listJobs. */
  countJobs(p: Omit<ListJobsParams, "limit" | "offset" | "order">): Promise<number>;
  /** Reads counts per state and the oldest due pending job. */
  stats(p: { now: number }): Promise<QueueStats>;
  /** Reads completed-job counts per bucket since `since` (dashboard throughput chart). */
  completedPerBucket(p: { since: number; bucketMs: number }): Promise<number[]>;
  /**
   * Writes one guarded state change (and the run's output, when given). Returns false, changing
   * nothing, when the guard does not hold (job gone, state or lease owner changed).
   */
  applyChange(p: { change: StateChange; output?: JobOutput }): Promise<boolean>;
  /**
   * Writes: atomically claims up to `limit` due jobs (pending or failed with run_at <= now), highest
   * priority first, then oldest run_at, then created_at; only from `queues` when given. Each claimed
   * job becomes processing with attempts + 1, started_at = now and a lease for `workerId` until
   * now + leaseMs. Returns the claimed jobs as they are after the claim. No job is claimed twice.
   */
  claimJobs(
    p: {
      workerId: string;
      queues: readonly string[] | null;
      now: number;
      leaseMs: number;
      limit: number;
    },
  ): Promise<Job[]>;
  /**
   * Writes: applyChange({change, output}), then claimJobs(claim): a worker settles its job and
   * takes the next. SQLite does both in one transaction (one commit per job instead of two);
   * another backend may do them one after the other. A refused change (applied false) does not
   * prevent the claim. If the claim fails once the change is written, the result says so with no
   * claimed jobs (the caller claims again later), never an error.
   */
  settleAndClaim(
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
  ): Promise<{ applied: boolean; claimed: Job[] }>;
  /**
   * Writes: extends to now + leaseMs the lease of every job the worker holds, or only of `jobIds`
   * (a worker renews just the job in hand, so that a claim whose reply it never received expires
   * and is rescued); returns how many.
   */
  renewLeases(
    p: { workerId: string; now: number; leaseMs: number; jobIds?: readonly string[] },
  ): Promise<number>;
  /** Reads processing jobs whose lease expired at or before `now`. */
  findExpiredLeases(p: { now: number; limit: number }): Promise<Job[]>;
  /** Reads the earliest run_at among claimable jobs in `queues` (null = all), or null if none. */
  nextRunAt(p: { queues: readonly string[] | null }): Promise<number | null>;
  /**
   * Writes: deletes jobs in one of `states` (guard), optionally only the given ids and/or those
   * whose updated_at is before `updatedBefore`. Returns the ids deleted.
   */
  deleteJobs(
    p: { states: readonly JobState[]; ids?: readonly string[]; updatedBefore?: number },
  ): Promise<string[]>;

  // --- config ---------------------------------------------------------------------------------
  /** Reads every stored config value (raw strings, validated by app/config.ts). */
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
   */
  requestStop(p: { ids?: readonly string[]; now: number }): Promise<number>;
  /** Deletes worker records whose heartbeat is older than `before` (dead hosts); returns ids. */
  pruneWorkers(p: { before: number }): Promise<string[]>;

  /** Waits up to `timeoutMs` for a hint that jobs were enqueued (LISTEN/NOTIFY, file watch...). */
  waitForJobs?(p: { timeoutMs: number; signal?: AbortSignal }): Promise<void>;

  close(): Promise<void>;
}
