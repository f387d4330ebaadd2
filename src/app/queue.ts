/**
 * Use cases over the store: what the CLI and the dashboard do to the queue. Both call these
 * functions, so validation and errors are the same everywhere.
 */
import type { Clock } from "../core/clock.ts";
import { InvalidInput, NotFound } from "../core/errors.ts";
import {
  CANCELLABLE_STATES,
  moveToDlq,
  restore,
  retryNow,
  type StateChange,
} from "../core/transitions.ts";
import {
  type Job,
  type JobOutput,
  type JobState,
  type NewJob,
  parseJobSpec,
  validateJobId,
} from "../core/job.ts";
import { Conflict } from "../core/errors.ts";
import type { QueueStats, Store, WorkerRecord } from "../store/store.ts";
import { type Config, loadConfig } from "./config.ts";
import { retryDelaySeconds } from "../core/retry_policy.ts";

export interface Ctx {
  store: Store;
  clock: Clock;
}

/**
 * JSON.parse's message quotes the input; escape its control characters (newline, NUL, ESC...)
 * so the error stays one line and nothing raw reaches the terminal.
 */
function jsonErrorMessage(err: unknown): string {
  return (err as Error).message.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Parses a job file: a JSON array of job objects, or JSON Lines (one object per line). */
export function parseJobFile(text: string): { value: unknown; where: string }[] {
  const trimmed = text.trimStart();
  if (trimmed.startsWith("[")) {
    let values: unknown;
    try {
      values = JSON.parse(text);
    } catch (err) {
      throw new InvalidInput(`Invalid JSON array: ${jsonErrorMessage(err)}`);
    }
    if (!Array.isArray(values)) throw new InvalidInput("Invalid JSON array");
    return values.map((value, i) => ({ value, where: `job ${i + 1}: ` }));
  }
  const out: { value: unknown; where: string }[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    try {
      out.push({ value: JSON.parse(line), where: `line ${i + 1}: ` });
    } catch (err) {
      throw new InvalidInput(`line ${i + 1}: invalid JSON: ${jsonErrorMessage(err)}`);
    }
  }
  return out;
}

/** Parses the single job given on the command line. */
export function parseJobArgument(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidInput(`Invalid JSON: ${jsonErrorMessage(err)}`, {
      hint: `quote the whole job, e.g. queuectl enqueue '{"command":"echo hi"}'`,
    });
  }
}

/**
 * Validates every spec, then inserts all of them in one transaction: either every job is
 * enqueued or none is. Returns the ids in input order.
 */
export async function enqueue(
  ctx: Ctx,
  specs: readonly { value: unknown; where?: string }[],
): Promise<string[]> {
  if (specs.length === 0) throw new InvalidInput("No jobs to enqueue: the input is empty");
  const config = await loadConfig(ctx.store);
  const now = ctx.clock.now();
  const jobs: NewJob[] = specs.map((s) =>
    parseJobSpec(s.value, { max_retries: config.max_retries, now }, s.where ?? "")
  );
  const seen = new Set<string>();
  for (const job of jobs) {
    if (seen.has(job.id)) {
      throw new Conflict(`Job id ${JSON.stringify(job.id)} appears twice in the input`);
    }
    seen.add(job.id);
  }
  await ctx.store.insertJobs({ jobs, now });
  return jobs.map((j) => j.id);
}

export async function getJob(ctx: Ctx, id: string): Promise<Job> {
  validateJobId(id);
  const job = await ctx.store.getJob({ id });
  if (!job) {
    throw new NotFound(`No job with id ${JSON.stringify(id)}`, {
      hint: "see `queuectl list` for job ids",
    });
  }
  return job;
}

export async function getJobWithOutput(
  ctx: Ctx,
  id: string,
): Promise<{ job: Job; output: JobOutput }> {
  const job = await getJob(ctx, id);
  const output = await ctx.store.getJobOutput({ id }) ?? { stdout: "", stderr: "" };
  return { job, output };
}

export const MAX_LIST_LIMIT = 10_000;

export interface ListParams {
  state?: JobState;
  queue?: string;
  search?: string;
  limit?: number;
  offset?: number;
}

export function validateLimit(limit: number | undefined, fallback = 50): number {
  const n = limit ?? fallback;
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIST_LIMIT) {
    throw new InvalidInput(
      `Invalid limit: expected a whole number from 1 to ${MAX_LIST_LIMIT}, got ${limit}`,
    );
  }
  return n;
}

export async function listJobs(ctx: Ctx, p: ListParams): Promise<Job[]> {
  const limit = validateLimit(p.limit);
  const offset = p.offset ?? 0;
  if (!Number.isInteger(offset) || offset < 0) {
    throw new InvalidInput(`Invalid offset: expected a whole number >= 0, got ${offset}`);
  }
  return await ctx.store.listJobs({ ...p, limit, offset });
}

export interface StatusReport extends QueueStats {
  total: number;
  oldest_pending_age_ms: number | null;
  workers_alive: number;
  database: string;
}

/** A worker is alive while its heartbeat is younger than one lease. */
export function isAlive(worker: WorkerRecord, now: number, config: Config): boolean {
  return now - worker.heartbeat_at <= config.lease * 1000;
}

export async function status(ctx: Ctx): Promise<StatusReport> {
  const now = ctx.clock.now();
  const [stats, workers, config] = await Promise.all([
    ctx.store.stats({ now }),
    ctx.store.listWorkers(),
    loadConfig(ctx.store),
  ]);
  return {
    ...stats,
    total: Object.values(stats.counts).reduce((a, b) => a + b, 0),
    oldest_pending_age_ms: stats.oldest_pending_at === null
      ? null
      : Math.max(0, now - stats.oldest_pending_at),
    workers_alive: workers.filter((w) => w.supervisor_id !== null && isAlive(w, now, config))
      .length,
    database: ctx.store.location,
  };
}

async function applyOrConflict(ctx: Ctx, change: StateChange): Promise<Job> {
  if (!await ctx.store.applyChange({ change })) {
    throw new Conflict(`Job ${JSON.stringify(change.id)} changed while we acted on it`, {
      hint: "look at it again with `queuectl show` and retry",
    });
  }
  return await getJob(ctx, change.id);
}

/** `retry <id>`: a failed or dead job becomes pending and runs as soon as a worker is free. */
export async function retryJob(ctx: Ctx, id: string): Promise<Job> {
  return await applyOrConflict(ctx, retryNow(await getJob(ctx, id), ctx.clock.now()));
}

/** `dlq restore <id>`: a dead job becomes pending with a fresh retry budget. */
export async function restoreJob(ctx: Ctx, id: string): Promise<Job> {
  return await applyOrConflict(ctx, restore(await getJob(ctx, id), ctx.clock.now()));
}

/** `dlq restore --all`: every dead job back to pending; returns the ids restored. */
export async function restoreAll(ctx: Ctx): Promise<string[]> {
  const restored: string[] = [];
  for (;;) {
    const page = await ctx.store.listJobs({ state: "dead", limit: 500, order: "oldest" });
    if (page.length === 0) return restored;
    let progressed = false;
    for (const job of page) {
      const now = ctx.clock.now();
      if (await ctx.store.applyChange({ change: restore(job, now) })) {
        restored.push(job.id);
        progressed = true;
      }
    }
    if (!progressed) return restored;
  }
}

/** `dlq move <id>`: a failed job waiting for a retry goes to the DLQ now. */
export async function moveJobToDlq(ctx: Ctx, id: string): Promise<Job> {
  return await applyOrConflict(ctx, moveToDlq(await getJob(ctx, id), ctx.clock.now()));
}

/**
 * `cancel <id>`: removes a pending or failed job from the queue (it is deleted, not kept in a
 * cancelled state). A running job cannot be cancelled.
 */
export async function cancelJob(ctx: Ctx, id: string): Promise<Job> {
  const job = await getJob(ctx, id);
  if (!CANCELLABLE_STATES.includes(job.state)) {
    throw new Conflict(`Cannot cancel job ${JSON.stringify(id)}: it is ${job.state}`, {
      hint: job.state === "dead"
        ? "use `queuectl dlq purge` to remove dead jobs"
        : "only pending or failed jobs can be cancelled",
    });
  }
  const removed = await ctx.store.deleteJobs({ states: CANCELLABLE_STATES, ids: [id] });
  if (removed.length !== 1) {
    throw new Conflict(`Job ${JSON.stringify(id)} changed while we acted on it`, {
      hint: "look at it again with `queuectl show`",
    });
  }
  return job;
}

/** `dlq purge`: deletes every dead job; returns the ids removed. */
export async function purgeDlq(ctx: Ctx): Promise<string[]> {
  return await ctx.store.deleteJobs({ states: ["dead"] });
}

export const PURGEABLE_STATES: readonly JobState[] = ["completed", "dead"];

/** `purge --state S --older-than D`: deletes finished jobs last updated before now - D. */
export async function purgeJobs(
  ctx: Ctx,
  p: { states: readonly JobState[]; olderThanMs: number },
): Promise<string[]> {
  for (const s of p.states) {
    if (!PURGEABLE_STATES.includes(s)) {
      throw new InvalidInput(`Cannot purge ${s} jobs: only completed or dead jobs can be purged`, {
        hint: "use `queuectl cancel <id>` for pending or failed jobs",
      });
    }
  }
  return await ctx.store.deleteJobs({
    states: p.states,
    updatedBefore: ctx.clock.now() - p.olderThanMs,
  });
}

// --- read models for the dashboard ------------------------------------------------------------

export interface JobPage {
  jobs: Job[];
  /** Jobs matching the filter, over all pages. */
  total: number;
  limit: number;
  offset: number;
}

/** A page of jobs (newest first) plus how many match the filter in all. */
export async function listJobsPage(ctx: Ctx, p: ListParams): Promise<JobPage> {
  const limit = validateLimit(p.limit);
  const offset = p.offset ?? 0;
  const jobs = await listJobs(ctx, { ...p, limit, offset });
  const total = await ctx.store.countJobs({ state: p.state, queue: p.queue, search: p.search });
  return { jobs, total, limit, offset };
}

export const MAX_SCHEDULE_ENTRIES = 50;

export interface JobDetail {
  job: Job;
  output: JobOutput;
  /** Seconds before retry 1, 2, ... under the current config (at most 50 entries). */
  retry_delays: number[];
}

/** One job with its output and its retry schedule. */
export async function getJobDetail(ctx: Ctx, id: string): Promise<JobDetail> {
  const { job, output } = await getJobWithOutput(ctx, id);
  const config = await loadConfig(ctx.store);
  const retry_delays: number[] = [];
  for (let n = 1; n <= Math.min(job.max_retries, MAX_SCHEDULE_ENTRIES); n++) {
    retry_delays.push(retryDelaySeconds(n, config));
  }
  return { job, output, retry_delays };
}

export interface WorkerStatus extends WorkerRecord {
  role: "supervisor" | "worker";
  /** Heartbeat younger than one lease. */
  alive: boolean;
}

/** Every worker and supervisor record, with whether it is alive. */
export async function listWorkerStatus(ctx: Ctx): Promise<WorkerStatus[]> {
  const now = ctx.clock.now();
  const [workers, config] = await Promise.all([ctx.store.listWorkers(), loadConfig(ctx.store)]);
  return workers.map((w) => ({
    ...w,
    role: w.supervisor_id === null ? "supervisor" : "worker",
    alive: isAlive(w, now, config),
  }));
}

export interface Throughput {
  /** Start of the first bucket (epoch ms, aligned to bucket_ms). */
  since: number;
  bucket_ms: number;
  /** Jobs completed per bucket, oldest first; the last bucket is the current, partial one. */
  completed: number[];
  /** Jobs completed per second over the last minute. */
  per_second: number;
}

/** Completed jobs per bucket over the last `windowMs` (dashboard chart). */
export async function throughput(
  ctx: Ctx,
  p: { windowMs: number; bucketMs: number },
): Promise<Throughput> {
  const now = ctx.clock.now();
  const n = Math.max(1, Math.ceil(p.windowMs / p.bucketMs));
  const since = Math.floor(now / p.bucketMs) * p.bucketMs - (n - 1) * p.bucketMs;
  const raw = await ctx.store.completedPerBucket({ since, bucketMs: p.bucketMs });
  const completed = Array.from({ length: n }, (_, i) => raw[i] ?? 0);
  const [lastMinute] = await ctx.store.completedPerBucket({
    since: now - 60_000,
    bucketMs: 60_000,
  });
  return { since, bucket_ms: p.bucketMs, completed, per_second: (lastMinute ?? 0) / 60 };
}
