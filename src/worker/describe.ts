/** How jobs, runs and state changes read in worker and maintenance log lines. */
import { formatDuration } from "../core/duration.ts";
import type { Job } from "../core/job.ts";
import type { StateChange } from "../core/transitions.ts";
import type { ExecResult } from "./executor.ts";

/** What a settle or rescue did, in the words of the log line (without the `[worker N]` prefix). */
export function describeChange(job: Job, change: StateChange, reason: string): string {
  if (change.to === "dead") {
    return `${job.id} moved to DLQ (${reason}, ${job.attempts} attempt${
      job.attempts === 1 ? "" : "s"
    })`;
  }
  if (change.to === "failed") {
    const delay = (change.set.run_at ?? change.updated_at) - change.updated_at;
    return `failed ${job.id} (${reason}), retry ${job.attempts}/${job.max_retries} in ${
      formatDuration(delay)
    }`;
  }
  if (change.to === "pending") return `released ${job.id} back to pending (${reason})`;
  return `${change.to} ${job.id} (${reason})`;
}

/** Short reason a run failed, for log lines: `exit 127`, `timed out after 5s`, `killed by SIGKILL`. */
export function failureReason(r: Pick<ExecResult, "exit_code" | "timed_out" | "error">): string {
  if (r.timed_out) return (r.error ?? "timed out").replace(/\s*\(.*\)$/, "");
  if (r.exit_code !== null) return `exit ${r.exit_code}`;
  return r.error ?? "failed";
}

/** The first line of `text`, at most `max` characters (a job's command in a `started` line). */
export function oneLine(text: string, max: number): string {
  const first = text.replace(/\s*[\r\n][\s\S]*/, " …");
  return first.length > max ? first.slice(0, max - 1) + "…" : first;
}

/** A run's duration in a `completed` line: `0.12s`. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)}s`;
}

/**
 * A worker's name in log lines: `<supervisor>.<n>` (`3fa2c1.1`), so that the workers of two
 * supervisors sharing a database never read alike; `<n>` alone without a supervisor.
 */
export function workerLabel(supervisorId: string | null, index: number): string {
  return supervisorId ? `${supervisorId.replace(/^s-/, "")}.${index}` : String(index);
}
