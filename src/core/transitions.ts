/**
 * The only place a job's state change is decided (see docs/architecture.md).
 *
 * Each function looks at a job as read from the store and returns a {@link StateChange}: the new
 * state, the columns to write, and the guard the store must check in the same statement
 * (`WHERE id = ? AND state = <from> [AND lease_owner = ?] [AND lease_expires_at <= ?]`). If the job
 * moved in the meantime the guard fails and the change is refused; nobody overwrites a newer outcome.
 *
 * Claiming (pending/failed → processing) is a bulk statement in the store; its rule is
 * {@link CLAIM_RULE}, from which both stores build their claim SQL.
 */
import { Conflict } from "./errors.ts";
import type { Job, JobChangeField, JobState } from "./job.ts";
import { retryDelaySeconds, type RetryPolicy } from "./retry_policy.ts";
import { quote } from "./text.ts";
import type { JobRun, RunOutcome } from "./runs.ts";

/** Every allowed move. Anything not listed is refused. */
export const ALLOWED_MOVES: Readonly<Record<JobState, readonly JobState[]>> = {
  pending: ["processing"],
  processing: ["completed", "failed", "dead", "pending"],
  failed: ["processing", "pending", "dead"],
  dead: ["pending"],
  completed: ["pending"],
};

export function isAllowed(from: JobState, to: JobState): boolean {
  return ALLOWED_MOVES[from].includes(to);
}

/** Columns a store may change through a state change. */
export type JobChangeFields = Partial<Pick<Job, JobChangeField>>;

export interface StateChange {
  id: string;
  from: JobState;
  to: JobState;
  /** Guard: when `from` is processing, only the lease holder may settle. */
  leaseOwner?: string;
  /** Guard: the lease must have expired at or before this time (rescue of a lost worker). */
  leaseExpiredBy?: number;
  /**
   * Guard of a late result ({@link completeLate}), in place of `from` and `leaseOwner`: the job is
   * failed or dead, its attempts still equal `attempt`, and its latest run is that attempt's run
   * by `worker`, closed as "worker lost" by a rescue. That run's record is rewritten.
   */
  lostRun?: { worker: string; attempt: number };
  set: JobChangeFields;
  updated_at: number;
  /**
   * The run that ends with this change (every move out of processing): the store records it in
   * `job_runs` in the same transaction, when the guard holds (core/runs.ts).
   */
  run?: JobRun;
}

/** What a worker asks for when it claims jobs. */
export interface ClaimParams {
  workerId: string;
  /** Only jobs of these queues; null = every queue. */
  queues: readonly string[] | null;
  now: number;
  /** The lease runs until now + leaseMs (renewed by the worker's heartbeat). */
  leaseMs: number;
  /** At most this many jobs. */
  limit: number;
  /**
   * How many of `limit` (the last ones) are claimed ahead: held, not run, until the job the worker
   * runs now ends (docs/architecture.md, "Claimed ahead"). Never from a queue with a running
   * limit, where a held job would keep a slot from a worker that could run it now. Default 0.
   */
  ahead?: number;
}

/**
 * The claim rule: which jobs a worker may claim, in which order, and what a claim writes. Both
 * stores build their claim statements from it (and `list --order next` uses its order).
 */
export const CLAIM_RULE = {
  /** Claimable states; a job in one of them is due once `dueField <= now`. */
  from: ["pending", "failed"],
  dueField: "run_at",
  /**
   * A claimable job must also have this column at 0: its dependencies are all completed (jobs
   * without any keep 0). The claim indexes leave blocked jobs out.
   */
  unblockedField: "blocked_by",
  /**
   * Claim order: by the first field, ties broken by the next, last ties by insertion order
   * (SQLite's rowid, PostgreSQL's seq). Both stores keep an index in exactly this order
   * (`jobs_claim`, partial on the claimable states): change it and the index together.
   */
  order: [
    { field: "priority", desc: true },
    { field: "run_at", desc: false },
    { field: "created_at", desc: false },
  ],
  /** The claimed job's new state. */
  to: "processing",
  /** Incremented by one: a claim is a start. */
  increment: "attempts",
  /** The columns it sets to a value: the start time and the lease (see {@link claimSet}). */
  set: claimSet,
  // ...and updated_at = now, as every state change.
} as const satisfies {
  from: readonly JobState[];
  dueField: keyof Job;
  unblockedField: keyof Job;
  order: readonly { field: keyof Job; desc: boolean }[];
  to: JobState;
  increment: JobChangeField;
  set: (p: Pick<ClaimParams, "now" | "workerId" | "leaseMs">) => JobChangeFields;
};

/** States a worker may claim from (when `run_at <= now`). */
export const CLAIMABLE_STATES: readonly JobState[] = CLAIM_RULE.from;

/** The columns a claim sets to a value (part of {@link CLAIM_RULE}): started_at and the lease. */
export function claimSet(p: Pick<ClaimParams, "now" | "workerId" | "leaseMs">): JobChangeFields {
  return {
    started_at: p.now,
    lease_owner: p.workerId,
    lease_expires_at: p.now + p.leaseMs,
  };
}

/** What a claim writes, given the claiming worker and lease length. */
export function claimFields(
  job: Pick<Job, "attempts">,
  now: number,
  workerId: string,
  leaseMs: number,
): JobChangeFields {
  return {
    [CLAIM_RULE.increment]: job[CLAIM_RULE.increment] + 1,
    ...CLAIM_RULE.set({ now, workerId, leaseMs }),
  };
}

/** Compares two jobs in claim order (negative: `a` first); 0 leaves insertion order to decide. */
export function compareClaimOrder(
  a: Pick<Job, ClaimOrderField>,
  b: Pick<Job, ClaimOrderField>,
): number {
  for (const { field, desc } of CLAIM_RULE.order) {
    const d = a[field] - b[field];
    if (d !== 0) return desc ? -d : d;
  }
  return 0;
}

type ClaimOrderField = typeof CLAIM_RULE.order[number]["field"];

function change(
  job: Job,
  to: JobState,
  now: number,
  set: JobChangeFields,
  guard: Pick<StateChange, "leaseOwner" | "leaseExpiredBy"> = {},
): StateChange {
  if (!isAllowed(job.state, to)) {
    throw new Conflict(`Job ${quote(job.id)} cannot move from ${job.state} to ${to}`);
  }
  return { id: job.id, from: job.state, to, set, updated_at: now, ...guard };
}

/** What every end of a run clears: the lease, and a kill request that was for that run. */
const CLEAR_LEASE = {
  lease_owner: null,
  lease_expires_at: null,
  kill_signal: null,
  kill_retry: null,
} as const;

export interface RunResult {
  now: number;
  workerId: string;
  exit_code: number | null;
  error?: string | null;
  /** For the run history (core/runs.ts): the signal that ended the shell, the host, how long. */
  signal?: string | null;
  host?: string | null;
  duration_ms?: number | null;
}

/** The record of the run of `job` (as claimed) that `change` ends. */
function runOf(
  job: Job,
  change: StateChange,
  result: Omit<RunResult, "workerId"> & { workerId: string | null },
): StateChange {
  const outcome: RunOutcome = change.to === "pending"
    ? "interrupted"
    : change.to as "completed" | "failed" | "dead";
  const run: JobRun = {
    attempt: job.attempts,
    worker: result.workerId,
    host: result.host ?? null,
    started_at: job.started_at,
    finished_at: result.now,
    duration_ms: result.duration_ms ??
      (job.started_at === null ? null : Math.max(0, result.now - job.started_at)),
    exit_code: result.exit_code,
    signal: result.signal ?? null,
    error: result.error ?? null,
    outcome,
    retry_delay_ms: change.to === "failed" && change.set.run_at != null
      ? change.set.run_at - result.now
      : null,
  };
  return { ...change, run };
}

/** The command exited 0. */
export function complete(job: Job, result: RunResult): StateChange {
  return runOf(
    job,
    change(job, "completed", result.now, {
      ...CLEAR_LEASE,
      finished_at: result.now,
      exit_code: result.exit_code,
      error: null,
    }, { leaseOwner: result.workerId }),
    { ...result, error: null },
  );
}

/**
 * The run exited 0 but its settle was refused: a rescue had taken the job over while the worker
 * was cut off from the database. While no other run has started (the store checks
 * {@link StateChange.lostRun}), the job is completed and the rescued run's record says how it
 * really ended (docs/architecture.md "Rescue rules").
 */
export function completeLate(job: Job, result: RunResult): StateChange {
  const done = complete(job, result);
  return {
    ...done,
    leaseOwner: undefined,
    lostRun: { worker: result.workerId, attempt: job.attempts },
  };
}

/**
 * The command failed (non-zero exit, timeout, could not start). Schedules retry number
 * `attempts` after backoff_base ^ attempts seconds while retries remain, else moves to the DLQ.
 */
export function fail(job: Job, result: RunResult, policy: RetryPolicy): StateChange {
  return runOf(
    job,
    failWith(job, result.now, result.exit_code, result.error ?? null, policy, {
      leaseOwner: result.workerId,
    }),
    result,
  );
}

/**
 * The run was killed by `queuectl kill` (its error says so): by default straight to the DLQ (dead),
 * not retried; with `retry` (kill --retry) a failure like any other under the retry policy.
 */
export function killed(
  job: Job,
  result: RunResult,
  policy: RetryPolicy,
  retry: boolean,
): StateChange {
  if (retry) return fail(job, result, policy);
  // The killed run is recorded like any other (run history).
  return runOf(
    job,
    change(job, "dead", result.now, {
      ...CLEAR_LEASE,
      finished_at: result.now,
      exit_code: result.exit_code,
      error: result.error ?? null,
    }, { leaseOwner: result.workerId }),
    result,
  );
}

/** True when the job has used its last run: it ran 1 + max_retries times. */
export function retriesExhausted(job: Pick<Job, "attempts" | "max_retries">): boolean {
  return job.attempts > job.max_retries;
}

function failWith(
  job: Job,
  now: number,
  exit_code: number | null,
  error: string | null,
  policy: RetryPolicy,
  guard: Pick<StateChange, "leaseOwner" | "leaseExpiredBy">,
): StateChange {
  const base = { ...CLEAR_LEASE, finished_at: now, exit_code, error };
  if (retriesExhausted(job)) return change(job, "dead", now, base, guard);
  const delayMs = Math.round(retryDelaySeconds(job.attempts, policy) * 1000);
  return change(job, "failed", now, { ...base, run_at: now + delayMs }, guard);
}

/** How the error of a run closed by a rescue starts (a late result may rewrite that run). */
export const LOST_RUN_PREFIX = "worker lost:";
/** The states a rescue leaves a job in: where a late result may still find it. */
export const LOST_RUN_STATES: readonly JobState[] = ["failed", "dead"];

/** The worker holding the lease stopped heartbeating: count the run as failed. */
export function loseLease(job: Job, now: number, policy: RetryPolicy): StateChange {
  if (job.state !== "processing" || job.lease_owner === null) {
    throw new Conflict(`Job ${quote(job.id)} is not processing`);
  }
  const error = `${LOST_RUN_PREFIX} ${job.lease_owner} stopped renewing its lease`;
  return runOf(
    job,
    failWith(job, now, null, error, policy, {
      leaseOwner: job.lease_owner,
      leaseExpiredBy: now,
    }),
    { now, workerId: job.lease_owner, exit_code: null, error },
  );
}

/**
 * A worker gives a job back unfinished (forced shutdown): back to pending without consuming a
 * retry, runnable at once. The run is recorded as interrupted (with `result`), unless `result` is
 * null: a job claimed ahead and never started.
 */
export function release(
  job: Job,
  now: number,
  workerId: string,
  result: Partial<Omit<RunResult, "now" | "workerId">> | null = {},
): StateChange {
  const released = change(job, "pending", now, {
    ...CLEAR_LEASE,
    attempts: Math.max(0, job.attempts - 1),
    run_at: now,
    started_at: null,
  }, { leaseOwner: workerId });
  // null: claimed but never started, so there is no run to record.
  if (result === null) return released;
  return runOf(job, released, {
    exit_code: null,
    error: "interrupted: the worker was stopped",
    ...result,
    now,
    workerId,
  });
}

/**
 * `retry <id>`: a failed job runs now (its attempt count is kept); a dead job comes back from the
 * DLQ, and a completed job runs again (as pueue's `restart`), both with a fresh retry budget
 * (attempts reset to 0).
 */
export function retryNow(job: Job, now: number): StateChange {
  if (job.state !== "failed" && job.state !== "dead" && job.state !== "completed") {
    throw new Conflict(
      `Cannot retry job ${quote(job.id)}: it is ${job.state}`,
      {
        hint: job.state === "processing"
          ? "it is running; use `queuectl kill` to stop it"
          : "it has not run yet",
      },
    );
  }
  return change(job, "pending", now, {
    run_at: now,
    ...(job.state === "failed" ? {} : { attempts: 0 }),
  });
}

/** `dlq restore <id>`: dead → pending with a fresh retry budget. */
export function restore(job: Job, now: number): StateChange {
  if (job.state !== "dead") {
    throw new Conflict(`Cannot restore job ${quote(job.id)}: it is ${job.state}`, {
      hint: "only jobs in the DLQ (dead) can be restored",
    });
  }
  return retryNow(job, now);
}

/** `dlq move <id>`: a failed job waiting for its retry goes to the DLQ by hand. */
export function moveToDlq(job: Job, now: number): StateChange {
  if (job.state !== "failed") {
    throw new Conflict(`Cannot move job ${quote(job.id)} to the DLQ: it is ${job.state}`, {
      hint: "only failed jobs waiting for a retry can be moved",
    });
  }
  return change(job, "dead", now, { finished_at: now });
}

/**
 * The error of a job that went dead because a job it runs after went dead (as pueue): restoring
 * that dependency (dlq restore, retry) restores the jobs whose error is exactly this text.
 */
export function dependencyFailedError(depId: string): string {
  return `dependency ${depId} failed`;
}

/** The error of a job that went dead because a job it runs after was deleted unfinished. */
export function dependencyDeletedError(depId: string): string {
  return `dependency ${depId} was deleted before it completed`;
}

/** States from which `cancel` removes a job. */
export const CANCELLABLE_STATES: readonly JobState[] = ["pending", "failed"];
