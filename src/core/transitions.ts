/**
 * The only place a job's state change is decided (ARCHITECTURE.md rule 2).
 *
 * Each function looks at a job as read from the store and returns a {@link StateChange}: the new
 * state, the columns to write, and the guard the store must check in the same statement
 * (`WHERE id = ? AND state = <from> [AND lease_owner = ?] [AND lease_expires_at <= ?]`). If the job
 * moved in the meantime the guard fails and the change is refused; nobody overwrites a newer outcome.
 *
 * Claiming (pending/failed → processing) is a bulk statement in the store; its rule is
 * {@link CLAIMABLE_STATES} and {@link claimFields}.
 */
import { Conflict } from "./errors.ts";
import type { Job, JobState } from "./job.ts";
import { retryDelaySeconds, type RetryPolicy } from "./retry_policy.ts";

/** Every allowed move. Anything not listed is refused. */
export const ALLOWED_MOVES: Readonly<Record<JobState, readonly JobState[]>> = {
  pending: ["processing"],
  processing: ["completed", "failed", "dead", "pending"],
  failed: ["processing", "pending", "dead"],
  dead: ["pending"],
  completed: [],
};

export function isAllowed(from: JobState, to: JobState): boolean {
  return ALLOWED_MOVES[from].includes(to);
}

/** States a worker may claim from (when `run_at <= now`). */
export const CLAIMABLE_STATES: readonly JobState[] = ["pending", "failed"];

/** Columns a store may change through a state change. */
export type JobChangeFields = Partial<
  Pick<
    Job,
    | "attempts"
    | "run_at"
    | "started_at"
    | "finished_at"
    | "exit_code"
    | "error"
    | "lease_owner"
    | "lease_expires_at"
  >
>;

export interface StateChange {
  id: string;
  from: JobState;
  to: JobState;
  /** Guard: when `from` is processing, only the lease holder may settle. */
  leaseOwner?: string;
  /** Guard: the lease must have expired at or before this time (rescue of a lost worker). */
  leaseExpiredBy?: number;
  set: JobChangeFields;
  updated_at: number;
}

/** What a claim writes, given the claiming worker and lease length. */
export function claimFields(
  job: Pick<Job, "attempts">,
  now: number,
  workerId: string,
  leaseMs: number,
): JobChangeFields {
  return {
    attempts: job.attempts + 1,
    started_at: now,
    lease_owner: workerId,
    lease_expires_at: now + leaseMs,
  };
}

function change(
  job: Job,
  to: JobState,
  now: number,
  set: JobChangeFields,
  guard: Pick<StateChange, "leaseOwner" | "leaseExpiredBy"> = {},
): StateChange {
  if (!isAllowed(job.state, to)) {
    throw new Conflict(`Job ${JSON.stringify(job.id)} cannot move from ${job.state} to ${to}`);
  }
  return { id: job.id, from: job.state, to, set, updated_at: now, ...guard };
}

const CLEAR_LEASE = { lease_owner: null, lease_expires_at: null } as const;

export interface RunResult {
  now: number;
  workerId: string;
  exit_code: number | null;
  error?: string | null;
}

/** The command exited 0. */
export function complete(job: Job, result: RunResult): StateChange {
  return change(job, "completed", result.now, {
    ...CLEAR_LEASE,
    finished_at: result.now,
    exit_code: result.exit_code,
    error: null,
  }, { leaseOwner: result.workerId });
}

/**
 * The command failed (non-zero exit, timeout, could not start). Schedules retry number
 * `attempts` after backoff_base ^ attempts seconds while retries remain, else moves to the DLQ.
 */
export function fail(job: Job, result: RunResult, policy: RetryPolicy): StateChange {
  return failWith(job, result.now, result.exit_code, result.error ?? null, policy, {
    leaseOwner: result.workerId,
  });
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

/** The worker holding the lease stopped heartbeating: count the run as failed. */
export function loseLease(job: Job, now: number, policy: RetryPolicy): StateChange {
  if (job.state !== "processing" || job.lease_owner === null) {
    throw new Conflict(`Job ${JSON.stringify(job.id)} is not processing`);
  }
  return failWith(
    job,
    now,
    null,
    `worker lost: ${job.lease_owner} stopped renewing its lease`,
    policy,
    { leaseOwner: job.lease_owner, leaseExpiredBy: now },
  );
}

/**
 * A worker gives a job back unfinished (forced shutdown): back to pending without consuming a
 * retry, runnable at once.
 */
export function release(job: Job, now: number, workerId: string): StateChange {
  return change(job, "pending", now, {
    ...CLEAR_LEASE,
    attempts: Math.max(0, job.attempts - 1),
    run_at: now,
    started_at: null,
  }, { leaseOwner: workerId });
}

/**
 * `retry <id>`: a failed job runs now (its attempt count is kept); a dead job comes back from the
 * DLQ with a fresh retry budget (attempts reset to 0).
 */
export function retryNow(job: Job, now: number): StateChange {
  if (job.state !== "failed" && job.state !== "dead") {
    throw new Conflict(
      `Cannot retry job ${JSON.stringify(job.id)}: it is ${job.state}`,
      { hint: "only failed or dead jobs can be retried" },
    );
  }
  return change(job, "pending", now, {
    run_at: now,
    ...(job.state === "dead" ? { attempts: 0 } : {}),
  });
}

/** `dlq restore <id>`: dead → pending with a fresh retry budget. */
export function restore(job: Job, now: number): StateChange {
  if (job.state !== "dead") {
    throw new Conflict(`Cannot restore job ${JSON.stringify(job.id)}: it is ${job.state}`, {
      hint: "only jobs in the DLQ (dead) can be restored",
    });
  }
  return retryNow(job, now);
}

/** `dlq move <id>`: a failed job waiting for its retry goes to the DLQ by hand. */
export function moveToDlq(job: Job, now: number): StateChange {
  if (job.state !== "failed") {
    throw new Conflict(`Cannot move job ${JSON.stringify(job.id)} to the DLQ: it is ${job.state}`, {
      hint: "only failed jobs waiting for a retry can be moved",
    });
  }
  return change(job, "dead", now, { finished_at: now });
}

/** States from which `cancel` removes a job. */
export const CANCELLABLE_STATES: readonly JobState[] = ["pending", "failed"];
