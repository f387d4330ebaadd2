/**
 * The SQL both backends share, derived from core's job field list (JOB_FIELDS in core/job.ts) and
 * claim rule (CLAIM_RULE in core/transitions.ts): neither store lists the job columns or restates
 * the claim rule.
 */
import { JOB_COLUMNS, type JobChangeField } from "../core/job.ts";
import type { JobRun } from "../core/runs.ts";
import { CLAIM_RULE, type ClaimParams } from "../core/transitions.ts";

/** A constant as an SQL literal (strings quoted, quotes doubled). */
export function sqlLiteral(value: string | number | null): string {
  if (value === null) return "NULL";
  if (typeof value === "number") return String(value);
  return `'${value.replaceAll("'", "''")}'`;
}

/** `id, command, queue, ...`: every job column, in list order. */
export const JOB_COLUMN_LIST: string = JOB_COLUMNS.join(", ");

/** `state IN ('pending', 'failed')`: the states a job is claimed from (when unblocked and due). */
export const CLAIMABLE_STATES_SQL: string = `state IN (${
  CLAIM_RULE.from.map(sqlLiteral).join(", ")
})`;

/**
 * `state IN ('pending', 'failed') AND blocked_by = 0`: claimable jobs once due (the condition of
 * the partial claim indexes): in a claimable state, every dependency completed.
 */
export const CLAIMABLE_SQL: string = `${CLAIMABLE_STATES_SQL} AND ${CLAIM_RULE.unblockedField} = 0`;

/** Jobs waiting for their dependencies: claimable states, blocked (see docs/architecture.md). */
export const BLOCKED_SQL: string = `${CLAIM_RULE.unblockedField} > 0 AND ${CLAIMABLE_STATES_SQL}`;

/** `run_at`: a claimable job is due once this column is at or before now. */
export const CLAIM_DUE_COLUMN: string = CLAIM_RULE.dueField;

/**
 * `priority DESC, run_at ASC, created_at ASC, <insertion> ASC`: the claim order, last ties broken
 * by `insertion` (the backend's insertion-order column).
 */
export function claimOrderSql(insertion: string): string {
  return [
    ...CLAIM_RULE.order.map((o) => `${o.field} ${o.desc ? "DESC" : "ASC"}`),
    `${insertion} ASC`,
  ].join(", ");
}

/** `'processing'`: the state a claim moves jobs to. */
export const CLAIM_TO_SQL: string = sqlLiteral(CLAIM_RULE.to);

/** `attempts`: the column a claim increments. */
export const CLAIM_INCREMENT_COLUMN: string = CLAIM_RULE.increment;

/** The columns a claim sets to a value (CLAIM_RULE.set), in the order of {@link claimSetValues}. */
export const CLAIM_SET_COLUMNS: readonly JobChangeField[] = Object.keys(
  CLAIM_RULE.set({ now: 0, workerId: "", leaseMs: 0 }),
) as JobChangeField[];

/** The values of {@link CLAIM_SET_COLUMNS} for one claim. */
export function claimSetValues(p: ClaimParams): (string | number | null)[] {
  const set = CLAIM_RULE.set(p);
  return CLAIM_SET_COLUMNS.map((c) => set[c] ?? null);
}

/** The columns of a run record (core/runs.ts JobRun) in `job_runs`, besides job_id and output. */
export const RUN_COLUMNS = [
  "attempt",
  "worker",
  "host",
  "started_at",
  "finished_at",
  "duration_ms",
  "exit_code",
  "signal",
  "error",
  "outcome",
  "retry_delay_ms",
] as const satisfies readonly (keyof JobRun)[];
export const RUN_COLUMN_LIST = RUN_COLUMNS.join(", ");

/**
 * Whether a claim, next-due or oldest-due lookup filtered by queues reads those queues' own jobs
 * (`total`: all of theirs, any state) rather than walking the claimable jobs of every queue in
 * order until one of theirs: a walk that passes about `allWaiting / waiting` jobs when theirs are
 * spread among the others, and every one when they have none due (a worker of a quiet queue beside
 * another queue's backlog). `ahead`: jobs known to stand before theirs in that walk (those of
 * paused queues, which pile up while paused). From the counters, so a counter gone wrong costs
 * time, never a job.
 */
export function walksQueues(
  c: { total: number; waiting: number; allWaiting: number; ahead?: number },
): boolean {
  return c.total < (c.ahead ?? 0) + c.allWaiting / Math.max(1, c.waiting);
}

/**
 * From counter rows (queue, state, n): each queue's jobs (`total`, any state) and claimable ones
 * (`waiting`: pending or failed), and the claimable ones of every queue: {@link walksQueues}'s
 * inputs.
 */
export function queueSizes(
  rows: readonly { queue: string; state: string; n: number }[],
): { queues: Map<string, { total: number; waiting: number }>; allWaiting: number } {
  const queues = new Map<string, { total: number; waiting: number }>();
  let allWaiting = 0;
  for (const r of rows) {
    const size = queues.get(r.queue) ?? { total: 0, waiting: 0 };
    size.total += r.n;
    if (r.state === "pending" || r.state === "failed") {
      size.waiting += r.n;
      allWaiting += r.n;
    }
    queues.set(r.queue, size);
  }
  return { queues, allWaiting };
}

/**
 * {@link walksQueues} for a claim (or an idle worker's next-due lookup) of the `served` queues
 * (every queue when null) while the `closed` ones are paused or full, sized by counter rows
 * (queue, state, n): the closed queues' waiting jobs stand ahead of theirs.
 */
export function claimWalksQueues(
  rows: readonly { queue: string; state: string; n: number }[],
  served: readonly string[] | null,
  closed: ReadonlySet<string>,
): boolean {
  const sizes = queueSizes(rows);
  const serving = served && served.length > 0 ? new Set(served) : null;
  let total = 0;
  let waiting = 0;
  let ahead = 0;
  for (const [queue, size] of sizes.queues) {
    if (closed.has(queue)) ahead += size.waiting;
    else if (!serving || serving.has(queue)) {
      total += size.total;
      waiting += size.waiting;
    }
  }
  return walksQueues({ total, waiting, ahead, allWaiting: sizes.allWaiting });
}
