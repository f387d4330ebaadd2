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
  isAbsolutePath,
  type Job,
  type JobDefaults,
  type JobOutput,
  type JobState,
  type NewJob,
  parseJobSpec,
  parseKillSignal,
  validateJobId,
} from "../core/job.ts";
import { Conflict } from "../core/errors.ts";
import { findDuplicateKey } from "../core/json_input.ts";
import { quote } from "../core/text.ts";
import { isAlive } from "../core/liveness.ts";
import type { StoredRun } from "../core/runs.ts";
import type {
  JobDependencies,
  OnDuplicate,
  QueueControl,
  QueueStats,
  Store,
  WorkerRecord,
} from "../store/store.ts";
import { SEARCH_INDEX_MIN_CHARS, SHORT_SEARCH_SCAN } from "../store/store.ts";
import { loadConfig } from "./config.ts";

/** For the CLI, which imports app/ only: a search text shorter than this has no index. */
export { SEARCH_INDEX_MIN_CHARS };

export interface Ctx {
  store: Store;
  clock: Clock;
}

/**
 * JSON.parse's message quotes the input; escape its control characters (newline, NUL, ESC...)
 * so the error stays one line and nothing raw reaches the terminal.
 */
export function jsonErrorMessage(err: unknown): string {
  return (err as Error).message.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Parses a job file: a JSON array of job objects, or JSON Lines (one object per line). A key
 * given twice in one object is refused (`line N: duplicate key "x"`), not "last one wins".
 */
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
    const dup = findDuplicateKey(text);
    if (dup) {
      const line = text.slice(0, dup.offset).split("\n").length;
      throw new InvalidInput(`line ${line}: duplicate key ${quote(dup.key)}`, {
        hint: "give each field once",
      });
    }
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
    const dup = findDuplicateKey(line);
    if (dup) {
      throw new InvalidInput(`line ${i + 1}: duplicate key ${quote(dup.key)}`, {
        hint: "give each field once",
      });
    }
  }
  return out;
}

/** Parses the single job given on the command line (a key given twice is refused). */
export function parseJobArgument(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InvalidInput(`Invalid JSON: ${jsonErrorMessage(err)}`, {
      hint: `quote the whole job, e.g. queuectl enqueue '{"command":"echo hi"}'`,
    });
  }
  const dup = findDuplicateKey(text);
  if (dup) {
    throw new InvalidInput(`Duplicate key ${quote(dup.key)} in the job`, {
      hint: "give each field once",
    });
  }
  return value;
}

/**
 * The directory of the process that enqueues (a job's default `cwd`): `INIT_CWD` when set (`deno
 * task` and `npm run` run in the project root and keep the caller's directory there), else the
 * working directory; null when neither is known (the directory was deleted).
 */
export function callerDirectory(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): string | null {
  const init = env("INIT_CWD");
  if (init && isAbsolutePath(init)) return init;
  try {
    return Deno.cwd();
  } catch {
    return null;
  }
}

export interface EnqueueOptions {
  /** The enqueuer's directory: default `cwd` of the jobs, base of a relative one. */
  cwd?: string | null;
  /**
   * A job whose unique key an active job holds: `existing` (default) enqueues nothing and gives
   * that job's id in its place; `error` refuses the whole input; `replace` replaces a waiting
   * job (see OnDuplicate in store/store.ts).
   */
  onDuplicate?: OnDuplicate;
}

export const ON_DUPLICATE_MODES: readonly OnDuplicate[] = ["existing", "error", "replace"];

export function parseOnDuplicate(value: string, where = "--on-duplicate"): OnDuplicate {
  if (!(ON_DUPLICATE_MODES as readonly string[]).includes(value)) {
    throw new InvalidInput(
      `Invalid ${where} ${quote(value)}: expected one of ${ON_DUPLICATE_MODES.join(", ")}`,
    );
  }
  return value as OnDuplicate;
}

/** Job specs as an input gives them: the value, and where it came from (`line N: `). */
export type SpecGroups = AsyncIterable<readonly { value: unknown; where?: string }[]>;

/** What a spec leaves out: the configured retries, the time of the enqueue, the caller's cwd. */
async function jobDefaults(ctx: Ctx, opts: EnqueueOptions): Promise<JobDefaults> {
  const config = await loadConfig(ctx.store);
  return { max_retries: config.max_retries, now: ctx.clock.now(), cwd: opts.cwd ?? null };
}

/**
 * Validates every spec, then inserts all of them in one transaction: either every job is
 * enqueued or none is. Returns the ids in input order.
 */
export async function enqueue(
  ctx: Ctx,
  specs: readonly { value: unknown; where?: string }[],
  opts: EnqueueOptions = {},
): Promise<string[]> {
  if (specs.length === 0) throw new InvalidInput(EMPTY_INPUT);
  const defaults = await jobDefaults(ctx, opts);
  const now = defaults.now;
  const jobs: NewJob[] = specs.map((s) => parseJobSpec(s.value, defaults, s.where ?? ""));
  const seen = new Set<string>();
  for (const job of jobs) {
    if (seen.has(job.id)) {
      throw new Conflict(`Job id ${quote(job.id)} appears twice in the input`);
    }
    seen.add(job.id);
  }
  const existing = new Map<string, string>();
  await ctx.store.insertJobs({
    jobs,
    now,
    onDuplicate: opts.onDuplicate,
    onExisting: (id, held) => existing.set(id, held),
  });
  return jobs.map((j) => existing.get(j.id) ?? j.id);
}

/** Jobs per batch a bulk enqueue validates and hands to the store at a time. */
const BULK_BATCH = 1000;

export type EnqueueStreamOptions = EnqueueOptions & { onIds?: (lines: string) => void };

const EMPTY_INPUT = "No jobs to enqueue: the input is empty";

/**
 * Validates `specs` as {@link enqueueStream} does, without inserting anything: the first error is
 * thrown as soon as its spec is read.
 */
export async function checkJobSpecs(
  ctx: Ctx,
  specs: SpecGroups,
  opts: EnqueueOptions = {},
): Promise<void> {
  const defaults = await jobDefaults(ctx, opts);
  let count = 0;
  for await (const group of specs) {
    for (const s of group) parseJobSpec(s.value, defaults, s.where ?? "");
    count += group.length;
  }
  if (count === 0) throw new InvalidInput(EMPTY_INPUT);
}

/** What {@link enqueueStream} enqueued. */
export interface BulkEnqueued {
  count: number;
  /**
   * The ids in input order, as lines ("\n"-joined), one string per batch: compact in memory.
   * Empty when the caller took them with `onIds`.
   */
  idLines: string[];
  /**
   * Jobs left out because an active job held their unique key: their id → the holder's id, the
   * id to report in their place (already applied to `idLines`, not to what `onIds` was given).
   */
  existing: Map<string, string>;
}

/**
 * Validates and inserts `specs` as they come (a job file read line by line), in one transaction:
 * either every job is enqueued or none is; a bad spec found after a million good ones still rolls
 * everything back. Memory stays flat but for the ids kept to report (about 27 bytes a job), unless
 * `onIds` takes each batch's ids (lines) as they are made: they are not enqueued until this returns.
 */
export async function enqueueStream(
  ctx: Ctx,
  specs: SpecGroups,
  opts: EnqueueStreamOptions = {},
): Promise<BulkEnqueued> {
  const defaults = await jobDefaults(ctx, opts);
  const now = defaults.now;
  const idLines: string[] = [];
  let count = 0;
  async function* batches(): AsyncGenerator<NewJob[]> {
    let batch: NewJob[] = [];
    const flush = () => {
      const lines = batch.map((j) => j.id).join("\n");
      if (opts.onIds) opts.onIds(lines);
      else idLines.push(lines);
      count += batch.length;
      const full = batch;
      batch = [];
      return full;
    };
    for await (const group of specs) {
      for (const s of group) {
        batch.push(parseJobSpec(s.value, defaults, s.where ?? ""));
        if (batch.length === BULK_BATCH) yield flush();
      }
    }
    if (batch.length > 0) yield flush();
    if (count === 0) throw new InvalidInput(EMPTY_INPUT);
  }
  // Jobs left out for the active job holding their unique key: that job's id is printed instead.
  const existing = new Map<string, string>();
  await ctx.store.insertJobStream({
    batches: batches(),
    now,
    onDuplicate: opts.onDuplicate,
    onExisting: (id, held) => existing.set(id, held),
  });
  if (existing.size > 0) {
    for (let i = 0; i < idLines.length; i++) {
      idLines[i] = idLines[i].split("\n").map((id) => existing.get(id) ?? id).join("\n");
    }
  }
  return { count, idLines, existing };
}

export async function getJob(ctx: Ctx, id: string): Promise<Job> {
  validateJobId(id);
  const job = await ctx.store.getJob({ id });
  if (!job) {
    throw new NotFound(`No job with id ${quote(id)}`, {
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
  /**
   * Keyset pagination, the only paging there is: jobs after this job id, newest first (see
   * ListJobsParams.after). A deep page costs what the first does; no offset is offered.
   */
  after?: string;
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

/** The list parameters checked, the limit filled in. */
function validateList(p: ListParams): ListParams & { limit: number } {
  const limit = validateLimit(p.limit);
  if (p.after !== undefined) validateJobId(p.after);
  return { ...p, limit };
}

export async function listJobs(ctx: Ctx, p: ListParams): Promise<Job[]> {
  return (await listJobsSearched(ctx, p)).jobs;
}

/** Whether a search is too short for the substring index: it is bounded (SHORT_SEARCH_SCAN). */
export function isShortSearch(search: string | undefined): boolean {
  return search !== undefined && search !== "" && search.length < SEARCH_INDEX_MIN_CHARS;
}

/** A page of a list, and where a bounded search stopped when it left jobs untested. */
export interface SearchedJobs {
  jobs: Job[];
  /**
   * Set when the search (a text shorter than SEARCH_INDEX_MIN_CHARS) stopped before the page was
   * full with jobs left untested: it tested `scanned` jobs of the filter (after the cursor, newest
   * first) up to and including the job `through`; `jobs` are the matches among them. The next page
   * continues with `after: through`. Null: every job the page could hold was looked at.
   */
  incomplete: { scanned: number; through: string } | null;
}

/**
 * A page of jobs (newest first). A text too short for the substring index (no index can serve it)
 * tests at most `scan` jobs of the filter from the page's start instead of every job, and says
 * where it stopped (docs/architecture.md, "Short searches").
 */
export async function listJobsSearched(
  ctx: Ctx,
  p: ListParams,
  scan = SHORT_SEARCH_SCAN,
): Promise<SearchedJobs> {
  const q = validateList(p);
  if (!isShortSearch(q.search)) return { jobs: await ctx.store.listJobs(q), incomplete: null };
  const filter = { state: q.state, queue: q.queue, after: q.after };
  // The last job to test: the scan-th of the filter after the cursor, or (fewer left) the filter's
  // last; the search then tests the jobs up to it, found by id, so a job written or deleted
  // meanwhile cannot shift the bound past a job left untested.
  // (And the job after it: whether any job is left untested.) The store's offset skips at most
  // scan - 1 index entries here: bounded, unlike a user's offset (paging is by cursor only).
  const [edge, beyond] = await ctx.store.listJobs({ ...filter, limit: 2, offset: scan - 1 });
  const last = edge ??
    (await ctx.store.listJobs({ state: q.state, queue: q.queue, limit: 1, order: "oldest" }))[0];
  if (!last) return { jobs: [], incomplete: null };
  const jobs = await ctx.store.listJobs({ ...q, through: last.id });
  return {
    jobs,
    incomplete: beyond && jobs.length < q.limit ? { scanned: scan, through: edge.id } : null,
  };
}

export interface StatusReport extends QueueStats {
  /** run_at of the next job scheduled for later (delayed, or waiting for a retry), or null. */
  next_scheduled_at: number | null;
  total: number;
  oldest_pending_age_ms: number | null;
  workers_alive: number;
  database: string;
  /** The queues that are paused or limited. */
  controls: QueueControl[];
}

export async function status(ctx: Ctx): Promise<StatusReport> {
  const now = ctx.clock.now();
  const [stats, workers, config, controls] = await Promise.all([
    ctx.store.stats({ now }),
    ctx.store.listWorkers(),
    loadConfig(ctx.store),
    ctx.store.listQueueControls(),
  ]);
  const nextScheduledAt = stats.scheduled > 0
    ? await ctx.store.nextRunAt({ queues: null, after: now })
    : null;
  return {
    ...stats,
    next_scheduled_at: nextScheduledAt,
    total: Object.values(stats.counts).reduce((a, b) => a + b, 0),
    oldest_pending_age_ms: stats.oldest_pending_at === null
      ? null
      : Math.max(0, now - stats.oldest_pending_at),
    workers_alive:
      workers.filter((w) => w.supervisor_id !== null && isAlive(w.heartbeat_at, now, config.lease))
        .length,
    database: ctx.store.location,
    controls,
  };
}

/**
 * For each of `jobs` that waits for dependencies, the ids of those not completed yet ("waiting
 * (blocked on X)" in `list` and the dashboard).
 */
export async function blockersOf(
  ctx: Ctx,
  jobs: readonly Job[],
): Promise<Map<string, string[]>> {
  const waiting = jobs.filter((j) =>
    j.blocked_by > 0 && (j.state === "pending" || j.state === "failed")
  );
  if (waiting.length === 0) return new Map();
  return await ctx.store.getBlockers({ ids: waiting.map((j) => j.id) });
}

/** What `show` lists of the dependency graph: at most this many dependents. */
export const DEPENDENTS_SHOWN = 100;

async function applyOrConflict(ctx: Ctx, change: StateChange): Promise<Job> {
  if (!await ctx.store.applyChange({ change })) {
    throw new Conflict(`Job ${quote(change.id)} changed while we acted on it`, {
      hint: "look at it again with `queuectl show` and retry",
    });
  }
  return await getJob(ctx, change.id);
}

/**
 * `retry <id>`: a failed, dead or completed job becomes pending and runs as soon as a worker is
 * free (see core/transitions.ts retryNow for its attempt count).
 */
export async function retryJob(ctx: Ctx, id: string): Promise<Job> {
  return await applyOrConflict(ctx, retryNow(await getJob(ctx, id), ctx.clock.now()));
}

/** `dlq restore <id>`: a dead job becomes pending with a fresh retry budget. */
export async function restoreJob(ctx: Ctx, id: string): Promise<Job> {
  return await applyOrConflict(ctx, restore(await getJob(ctx, id), ctx.clock.now()));
}

/** `dlq restore --all`: every dead job back to pending; returns the ids restored. */
export async function restoreAll(
  ctx: Ctx,
  onKept: (id: string, reason: string) => void = () => {},
): Promise<string[]> {
  const restored: string[] = [];
  // Pages after the last job looked at: a job kept dead (its unique key is held) is not met again.
  let after: string | undefined;
  for (;;) {
    const page = await ctx.store.listJobs({ state: "dead", limit: 500, order: "oldest", after })
      .catch((err) => {
        if (err instanceof NotFound && after !== undefined) return null; // cursor job gone
        throw err;
      });
    if (page === null) {
      after = undefined;
      continue;
    }
    if (page.length === 0) return restored;
    let progressed = false;
    for (const job of page) {
      const now = ctx.clock.now();
      try {
        if (await ctx.store.applyChange({ change: restore(job, now) })) {
          restored.push(job.id);
          progressed = true;
        }
      } catch (err) {
        // Another job holds its unique key now: it stays in the DLQ, said so; the rest goes on.
        if (!(err instanceof Conflict)) throw err;
        onKept(job.id, err.message);
        progressed = true;
      }
      after = job.id;
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
    throw new Conflict(`Cannot cancel job ${quote(id)}: it is ${job.state}`, {
      hint: job.state === "dead"
        ? "use `queuectl dlq purge` to remove dead jobs"
        : job.state === "processing"
        ? "it is running: use `queuectl kill " + id + "` to stop it"
        : "only pending or failed jobs can be cancelled",
    });
  }
  const removed = await ctx.store.deleteJobs({ states: CANCELLABLE_STATES, ids: [id] });
  if (removed.length !== 1) {
    throw new Conflict(`Job ${quote(id)} changed while we acted on it`, {
      hint: "look at it again with `queuectl show`",
    });
  }
  return job;
}

/**
 * `kill <id> [--signal SIG] [--retry]`: asks the worker running the job, on whatever host, to
 * signal its process group (`signal`, default SIGTERM; SIGKILL after the grace period if anything
 * is still alive). The request goes through the database; the worker reads it at once through
 * the store's kill hint, else at its next heartbeat. The run is then recorded as killed: dead,
 * or under the retry policy with `retry`. Returns the job as it was when asked.
 */
export async function killJob(
  ctx: Ctx,
  id: string,
  opts: { signal?: string; retry?: boolean } = {},
): Promise<Job> {
  const signal = parseKillSignal(opts.signal ?? "SIGTERM");
  const job = await getJob(ctx, id);
  if (job.state !== "processing") {
    throw new Conflict(`Cannot kill job ${quote(id)}: it is ${job.state}, not running`, {
      hint: job.state === "pending" || job.state === "failed"
        ? "use `queuectl cancel` to remove a job that waits"
        : "only a running (processing) job can be killed",
    });
  }
  const applied = await ctx.store.requestKill({
    id,
    signal,
    retry: opts.retry === true,
    now: ctx.clock.now(),
  });
  if (!applied) {
    throw new Conflict(`Cannot kill job ${quote(id)}: it finished meanwhile`, {
      hint: "look at it with `queuectl show`",
    });
  }
  return { ...job, kill_signal: signal, kill_retry: opts.retry ? 1 : 0 };
}

/**
 * Jobs a purge deletes per transaction (docs/architecture.md, "Purges in batches"). One
 * transaction for the whole purge held SQLite's write lock for as long as it took, so every other
 * writer (workers' settles, enqueues) waited, and past 10 s failed. Each job still goes whole (row,
 * runs, edges, counters); an interrupted purge leaves whole jobs, which the next one deletes.
 */
export const PURGE_BATCH = 5000;

/** Deletes the jobs that match, {@link PURGE_BATCH} per transaction, oldest first. */
async function deleteInBatches(
  ctx: Ctx,
  p: { states: readonly JobState[]; updatedBefore?: number },
): Promise<string[]> {
  const ids: string[] = [];
  for (;;) {
    const batch = await ctx.store.deleteJobs({ ...p, limit: PURGE_BATCH });
    for (const id of batch) ids.push(id);
    if (batch.length < PURGE_BATCH) return ids;
  }
}

/** `dlq purge`: deletes every dead job; returns the ids removed. */
export async function purgeDlq(ctx: Ctx): Promise<string[]> {
  return await deleteInBatches(ctx, { states: ["dead"] });
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
  return await deleteInBatches(ctx, {
    states: p.states,
    updatedBefore: ctx.clock.now() - p.olderThanMs,
  });
}

// --- read models for the dashboard ------------------------------------------------------------

export interface JobPage {
  jobs: Job[];
  /** Jobs matching the filter, over all pages, counted up to {@link TOTAL_CAP}. */
  total: number;
  /**
   * True when counting stopped at TOTAL_CAP, or when a short search counted among the newest
   * SHORT_SEARCH_SCAN jobs of the filter only: there are at least `total` jobs.
   */
  total_capped: boolean;
  limit: number;
  /**
   * The cursor of the next page (`after`): the last job's id, or null on the last page; after an
   * incomplete search, the last job it tested.
   */
  next: string | null;
  /** A short search that left jobs untested (see SearchedJobs.incomplete). */
  incomplete: SearchedJobs["incomplete"];
}

/**
 * A page's total is counted up to this: exact counts of a filter or a search over a million jobs
 * would cost a scan of the matches on every page (the dashboard shows "1,000+").
 */
export const TOTAL_CAP = 1_000;

/** A page of jobs (newest first) plus how many match the filter in all. */
export async function listJobsPage(
  ctx: Ctx,
  p: ListParams,
  scan = SHORT_SEARCH_SCAN,
): Promise<JobPage> {
  const { limit } = validateList(p);
  // One more than the page: whether a next page exists, without counting.
  const { jobs: rows, incomplete } = await listJobsSearched(ctx, { ...p, limit: limit + 1 }, scan);
  const jobs = rows.slice(0, limit);
  const short = isShortSearch(p.search);
  // A short search's first page that is not full tested the same jobs the count would: its
  // matches are the count.
  const counted = short && p.after === undefined && rows.length <= limit
    ? rows.length
    : await ctx.store.countJobs({
      state: p.state,
      queue: p.queue,
      search: p.search,
      cap: TOTAL_CAP + 1,
      ...(short ? { scan } : {}),
    });
  // A short search counts among the newest `scan` jobs of the filter only: with more jobs than
  // that, there are at least `total` matches.
  const untested = short && await ctx.store.countJobs({ state: p.state, queue: p.queue }) > scan;
  return {
    jobs,
    total: Math.min(counted, TOTAL_CAP),
    total_capped: counted > TOTAL_CAP || untested,
    limit,
    next: rows.length > limit ? jobs[jobs.length - 1].id : incomplete?.through ?? null,
    incomplete,
  };
}

/** How much of a dead job's stderr the DLQ view shows (characters, cut in the database). */
export const STDERR_TAIL_CHARS = 200;

/** A page of dead jobs with the tail of each one's last stderr ("" when it wrote none). */
export async function listDlqPage(
  ctx: Ctx,
  p: Omit<ListParams, "state">,
): Promise<JobPage & { stderr_tails: Map<string, string> }> {
  const page = await listJobsPage(ctx, { ...p, state: "dead" });
  const stderr_tails = await ctx.store.getStderrTails({
    ids: page.jobs.map((j) => j.id),
    chars: STDERR_TAIL_CHARS,
  });
  return { ...page, stderr_tails };
}

export interface JobDetail {
  job: Job;
  output: JobOutput;
  /** Every run of the job, oldest first, each with its output's last RUN_TAIL_CHARS characters. */
  runs: StoredRun[];
  /** When a failed job runs again (its run_at), else null. */
  next_retry_at: number | null;
  /** The config's job_timeout, seconds (0 = none): what a job without its own timeout gets. */
  default_timeout: number;
  /** The jobs it runs after (with their states) and the first DEPENDENTS_SHOWN running after it. */
  dependencies: JobDependencies;
}

/** How much of each run's output `show` and the dashboard's runs table carry (characters). */
export const RUN_TAIL_CHARS = 2000;

/** One job with its output and its run history (`queuectl show`, the dashboard). */
export async function getJobDetail(ctx: Ctx, id: string): Promise<JobDetail> {
  const { job, output } = await getJobWithOutput(ctx, id);
  const [runs, config, dependencies] = await Promise.all([
    ctx.store.listRuns({ jobId: id, outputChars: RUN_TAIL_CHARS }),
    loadConfig(ctx.store),
    ctx.store.getDependencies({ id, limit: DEPENDENTS_SHOWN }),
  ]);
  return {
    job,
    output,
    runs,
    next_retry_at: job.state === "failed" ? job.run_at : null,
    default_timeout: config.job_timeout,
    dependencies: dependencies ?? { dependencies: [], dependents: [] },
  };
}

/** `logs ID --attempt N`: the output of the job's (latest) run with that attempt number. */
export async function getAttemptOutput(ctx: Ctx, id: string, attempt: number): Promise<JobOutput> {
  const job = await getJob(ctx, id);
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new InvalidInput(`Invalid --attempt: expected a whole number from 1, got ${attempt}`);
  }
  const output = await ctx.store.getRunOutput({ jobId: id, attempt });
  if (!output) {
    throw new NotFound(`Job ${quote(id)} has no run with attempt ${attempt}`, {
      hint: `see \`queuectl show ${id}\` for its runs (attempt ${job.attempts} is the latest)`,
    });
  }
  return output;
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
    alive: isAlive(w.heartbeat_at, now, config.lease),
  }));
}

export interface Throughput {
  /** Start of the first bucket (epoch ms, aligned to bucket_ms). */
  since: number;
  bucket_ms: number;
  /** Jobs completed per bucket, oldest first; the last bucket is the current, partial one. */
  completed: number[];
  /** Jobs completed per second over the last `rate_window_ms`. */
  per_second: number;
  /** The window of `per_second` (one minute), shorter than the chart's. */
  rate_window_ms: number;
}

const RATE_WINDOW_MS = 60_000;

/**
 * A chart bucket that ended this long ago is counted once and kept (settledBuckets): completions
 * are stamped by their worker's clock when they commit, so a bucket still gains jobs for a moment
 * after it ends (commits in flight, hosts' clocks a little apart on PostgreSQL), never later.
 */
export const SETTLED_BUCKET_MS = 60_000;

/**
 * Per store, the counts of settled chart buckets by bucket start: a dashboard reads the chart
 * every second, and counting the whole 10-minute window each time costs as many index entries as
 * jobs completed in it (39,000 at 65 jobs/s: 10 ms on PostgreSQL). With these only the last minute
 * or so is counted (docs/architecture.md, "Reads at a million jobs").
 */
const settledBuckets = new WeakMap<Store, { bucketMs: number; counts: Map<number, number> }>();

/** Completed jobs per bucket over the last `windowMs` (dashboard chart). */
export async function throughput(
  ctx: Ctx,
  p: { windowMs: number; bucketMs: number },
): Promise<Throughput> {
  const now = ctx.clock.now();
  const n = Math.max(1, Math.ceil(p.windowMs / p.bucketMs));
  const since = Math.floor(now / p.bucketMs) * p.bucketMs - (n - 1) * p.bucketMs;
  let cache = settledBuckets.get(ctx.store);
  if (!cache || cache.bucketMs !== p.bucketMs) {
    cache = { bucketMs: p.bucketMs, counts: new Map() };
    settledBuckets.set(ctx.store, cache);
  }
  for (const start of cache.counts.keys()) {
    if (start < since || start + p.bucketMs > now - SETTLED_BUCKET_MS) cache.counts.delete(start);
  }
  const start = (i: number) => since + i * p.bucketMs;
  let first = 0;
  while (first < n && cache.counts.has(start(first))) first++;
  const raw = await ctx.store.completedPerBucket({ since: start(first), bucketMs: p.bucketMs });
  const completed = Array.from(
    { length: n },
    (_, i) => i < first ? cache.counts.get(start(i))! : raw[i - first] ?? 0,
  );
  for (let i = first; i < n && start(i) + p.bucketMs <= now - SETTLED_BUCKET_MS; i++) {
    cache.counts.set(start(i), completed[i]);
  }
  const [recent] = await ctx.store.completedPerBucket({
    since: now - RATE_WINDOW_MS,
    bucketMs: RATE_WINDOW_MS,
  });
  return {
    since,
    bucket_ms: p.bucketMs,
    completed,
    per_second: (recent ?? 0) / (RATE_WINDOW_MS / 1000),
    rate_window_ms: RATE_WINDOW_MS,
  };
}
