/**
 * Run history: one record per run of a job (attempt, worker, host, times, how it ended, the retry
 * delay it led to), kept in the store's `job_runs` table with the run's output. A state change out
 * of `processing` carries its run ({@link StateChange.run}, built in transitions.ts), and the store
 * writes it in the same transaction as the change (docs/architecture.md "Run history").
 */

/**
 * How a run ended: `running` while it runs (its output so far is stored); `completed`; `failed`
 * (a retry was scheduled); `dead` (no retry left); `interrupted` (a forced stop gave the job back,
 * the attempt not counted).
 */
export const RUN_OUTCOMES = ["running", "completed", "failed", "dead", "interrupted"] as const;
export type RunOutcome = typeof RUN_OUTCOMES[number];

/** One run of a job, as a settle records it. Times are epoch ms. */
export interface JobRun {
  /** The job's attempt number during this run (1 = first run; a forced stop does not count). */
  attempt: number;
  /** Worker id that ran it (the lease owner). */
  worker: string | null;
  /** Host of that worker, when known (the maintenance service rescuing a lost run does not know). */
  host: string | null;
  started_at: number | null;
  finished_at: number | null;
  duration_ms: number | null;
  exit_code: number | null;
  /** Signal that ended the shell, e.g. "SIGKILL". */
  signal: string | null;
  error: string | null;
  outcome: RunOutcome;
  /** The backoff this run's failure led to (failed runs only), ms. */
  retry_delay_ms: number | null;
}

/** A run as the store gives it back: its number among the job's runs, and its output. */
export interface StoredRun extends JobRun {
  /** 1, 2, ... in the order the runs started. */
  run: number;
  stdout: string;
  stderr: string;
}

/** The JSON shape of a run (`show --json`, the dashboard API): ISO-8601 times. */
export function runToJson(r: StoredRun): Record<string, unknown> {
  const iso = (t: number | null) => t === null ? null : new Date(t).toISOString();
  return {
    run: r.run,
    attempt: r.attempt,
    outcome: r.outcome,
    worker: r.worker,
    host: r.host,
    started_at: iso(r.started_at),
    finished_at: iso(r.finished_at),
    duration_ms: r.duration_ms,
    exit_code: r.exit_code,
    signal: r.signal,
    error: r.error,
    retry_delay_ms: r.retry_delay_ms,
    stdout: r.stdout,
    stderr: r.stderr,
  };
}
