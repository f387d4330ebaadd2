/**
 * `wait`: until the chosen jobs are finished (completed or dead), woken by changes
 * (app/watch.ts), never by a busy poll. Loaded with import() by the CLI (it loads worker/wake.ts).
 */
import { InvalidInput, NotFound } from "../core/errors.ts";
import { quote } from "../core/text.ts";
import { type JobState, validateJobId, validateQueueName } from "../core/job.ts";
import type { Ctx } from "./queue.ts";
import { SAFETY_POLL_MS, watchChanges } from "./watch.ts";
import { sleep } from "../worker/wake.ts";

/** States in which a job is not finished yet. */
export const UNFINISHED_STATES: readonly JobState[] = ["pending", "processing", "failed"];
/** At most this many ids in each id list of an outcome (the counts are exact). */
export const OUTCOME_IDS_SHOWN = 1000;

export interface WaitSelection {
  /** These jobs (each must exist when the wait starts). */
  ids?: readonly string[];
  /** Every job of this queue not finished when the wait starts. */
  queue?: string;
  /** Every job not finished when the wait starts. */
  all?: boolean;
}

export interface WaitOutcome {
  /** Jobs waited for. */
  total: number;
  completed: number;
  dead: number;
  /** Deleted while waited for (cancel, purge). */
  removed: number;
  /** Not finished when the time ran out (0 unless timed_out). */
  unfinished: number;
  timed_out: boolean;
  elapsed_ms: number;
  /** Up to {@link OUTCOME_IDS_SHOWN} ids of each kind, in the order given (or enqueued). */
  dead_ids: string[];
  removed_ids: string[];
  unfinished_ids: string[];
}

/**
 * Checks the selection and returns the ids to wait for. Explicit ids must all exist (a finished
 * one counts at once); `queue` and `all` take the jobs not finished now: jobs enqueued later, and
 * jobs already completed or dead, are not waited for.
 */
export async function selectJobs(ctx: Ctx, sel: WaitSelection): Promise<string[]> {
  const given = (sel.ids?.length ? 1 : 0) + (sel.queue !== undefined ? 1 : 0) + (sel.all ? 1 : 0);
  if (given === 0) {
    throw new InvalidInput("Nothing to wait for", { hint: "give job ids, --queue Q or --all" });
  }
  if (given > 1) {
    throw new InvalidInput("Give either job ids, --queue Q or --all, not more than one");
  }
  if (sel.ids?.length) {
    const ids = [...new Set(sel.ids)];
    for (const id of ids) validateJobId(id);
    const states = await ctx.store.getJobStates({ ids });
    const missing = ids.find((id) => !states.has(id));
    if (missing !== undefined) {
      throw new NotFound(`No job with id ${quote(missing)}`, {
        hint: "see `queuectl list` for job ids",
      });
    }
    return ids;
  }
  if (sel.queue !== undefined) validateQueueName(sel.queue);
  return await ctx.store.listJobIds({ states: UNFINISHED_STATES, queue: sel.queue });
}

/**
 * Waits until every job of `ids` is completed, dead or deleted, or `timeoutMs` (real time; null =
 * no limit) passed, or `signal` aborts (then timed_out too). Looks at the jobs still unfinished
 * only, once per change hint (and at least every few seconds).
 */
export async function waitForJobs(
  ctx: Ctx,
  p: { ids: readonly string[]; timeoutMs: number | null; signal?: AbortSignal },
): Promise<WaitOutcome> {
  const started = performance.now();
  const outcome: WaitOutcome = {
    total: p.ids.length,
    completed: 0,
    dead: 0,
    removed: 0,
    unfinished: 0,
    timed_out: false,
    elapsed_ms: 0,
    dead_ids: [],
    removed_ids: [],
    unfinished_ids: [],
  };
  const note = (list: string[], id: string) => {
    if (list.length < OUTCOME_IDS_SHOWN) list.push(id);
  };
  let pending = [...p.ids];
  const watch = pending.length > 0 ? await watchChanges(ctx) : null;
  try {
    while (pending.length > 0) {
      const lookStarted = performance.now();
      const states = await ctx.store.getJobStates({ ids: pending });
      const lookMs = performance.now() - lookStarted;
      const still: string[] = [];
      for (const id of pending) {
        const state = states.get(id);
        if (state === undefined) {
          outcome.removed++;
          note(outcome.removed_ids, id);
        } else if (state === "completed") outcome.completed++;
        else if (state === "dead") {
          outcome.dead++;
          note(outcome.dead_ids, id);
        } else still.push(id);
      }
      pending = still;
      if (pending.length === 0) break;
      const left = p.timeoutMs === null
        ? SAFETY_POLL_MS
        : p.timeoutMs - (performance.now() - started);
      if (left <= 0 || p.signal?.aborted) {
        outcome.timed_out = true;
        break;
      }
      await watch!.wait(Math.min(left, SAFETY_POLL_MS), p.signal);
      // Thousands of jobs make a look slow: then look at most once per 4 looks' time, so that a
      // wait never keeps the database busy.
      if (lookMs > 20) await sleep(Math.min(left, lookMs * 3), p.signal);
    }
  } finally {
    watch?.close();
  }
  outcome.unfinished = pending.length;
  for (const id of pending) note(outcome.unfinished_ids, id);
  outcome.elapsed_ms = Math.round(performance.now() - started);
  return outcome;
}
