/**
 * `/metrics` of the dashboard: the queue in the Prometheus text exposition format (version
 * 0.0.4). What each metric means is in its HELP line and in README ("Metrics"); how the run
 * totals stay monotonic is in docs/architecture.md ("Metrics").
 */
import { isAlive } from "../core/liveness.ts";
import { JOB_STATES } from "../core/job.ts";
import type { Ctx } from "./queue.ts";
import { loadConfig } from "./config.ts";

/**
 * Upper bounds (seconds) of the run duration histogram's buckets, as the run_totals triggers of
 * migration 12 (both backends) sort runs into them; +Inf follows.
 */
export const DURATION_BUCKETS: readonly number[] = [
  0.1,
  0.5,
  1,
  5,
  10,
  30,
  60,
  300,
  1800,
  3600,
];

/** Run outcomes counted by queuectl_runs_total (core/runs.ts; `running` is not an end). */
const COUNTED_OUTCOMES = ["completed", "failed", "dead", "interrupted"] as const;

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A label value as the text format wants it: backslash, double quote and newline escaped. */
function label(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** A number as the text format writes it. */
function num(n: number): string {
  if (n === Infinity) return "+Inf";
  return Number.isInteger(n) ? String(n) : String(Number(n.toFixed(6)));
}

/** The Prometheus text of the queue now: one read of each source. */
export async function prometheusMetrics(ctx: Ctx): Promise<string> {
  const now = ctx.clock.now();
  const [queues, totals, workers, config, schedules] = await Promise.all([
    ctx.store.queueMetrics({ now }),
    ctx.store.runTotals(),
    ctx.store.listWorkers(),
    loadConfig(ctx.store),
    ctx.store.listSchedules(),
  ]);
  const out: string[] = [];
  const family = (name: string, type: string, help: string) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  };

  family("queuectl_jobs", "gauge", "Jobs per queue and state.");
  for (const q of queues) {
    for (const state of JOB_STATES) {
      out.push(`queuectl_jobs{queue="${label(q.queue)}",state="${state}"} ${q.counts[state] ?? 0}`);
    }
  }

  family(
    "queuectl_oldest_pending_age_seconds",
    "gauge",
    "Per queue, how long the job waiting longest since it became due has waited (0 when none).",
  );
  for (const q of queues) {
    const age = q.oldest_due_at === null ? 0 : Math.max(0, now - q.oldest_due_at) / 1000;
    out.push(`queuectl_oldest_pending_age_seconds{queue="${label(q.queue)}"} ${num(age)}`);
  }

  family(
    "queuectl_runs_total",
    "counter",
    "Runs finished, by outcome (failed: a retry was scheduled; dead: no retry left).",
  );
  for (const outcome of COUNTED_OUTCOMES) {
    out.push(`queuectl_runs_total{outcome="${outcome}"} ${totals.get(`outcome:${outcome}`) ?? 0}`);
  }

  family("queuectl_run_duration_seconds", "histogram", "Duration of finished runs.");
  let cumulative = 0;
  for (const le of DURATION_BUCKETS) {
    cumulative += totals.get(`duration_le:${le}`) ?? 0;
    out.push(`queuectl_run_duration_seconds_bucket{le="${num(le)}"} ${cumulative}`);
  }
  cumulative += totals.get("duration_le:+Inf") ?? 0;
  out.push(`queuectl_run_duration_seconds_bucket{le="+Inf"} ${cumulative}`);
  out.push(
    `queuectl_run_duration_seconds_sum ${num((totals.get("duration_sum_ms") ?? 0) / 1000)}`,
  );
  out.push(`queuectl_run_duration_seconds_count ${cumulative}`);

  const alive = workers.filter((w) => isAlive(w.heartbeat_at, now, config.lease));
  family(
    "queuectl_workers_alive",
    "gauge",
    "Worker processes whose heartbeat is at most a lease old.",
  );
  out.push(`queuectl_workers_alive ${alive.filter((w) => w.supervisor_id !== null).length}`);
  family(
    "queuectl_supervisors_alive",
    "gauge",
    "Supervisors (worker start) whose heartbeat is at most a lease old.",
  );
  out.push(`queuectl_supervisors_alive ${alive.filter((w) => w.supervisor_id === null).length}`);

  family(
    "queuectl_schedule_lag_seconds",
    "gauge",
    "Per schedule not paused, how long its next slot is overdue (0 while it is not due yet).",
  );
  for (const s of schedules) {
    if (s.paused || s.next_run_at === null) continue;
    const lag = Math.max(0, now - s.next_run_at) / 1000;
    out.push(`queuectl_schedule_lag_seconds{schedule="${label(s.name)}"} ${num(lag)}`);
  }
  return out.join("\n") + "\n";
}
