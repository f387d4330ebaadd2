/**
 * Puts jobs into given states the way workers would: enqueue through src/app/, then claim and
 * settle through the store with core/transitions.ts. Used by the dashboard tests and the
 * screenshot script.
 */
import type { ManualClock } from "../../src/core/clock.ts";
import {
  claimFields,
  complete,
  fail,
  isAllowed,
  type StateChange,
} from "../../src/core/transitions.ts";
import { enqueue } from "../../src/app/queue.ts";
import { DEFAULT_CONFIG } from "../../src/core/config.ts";
import type { Job } from "../../src/core/job.ts";
import type { RetryPolicy } from "../../src/core/retry_policy.ts";
import type { Store } from "../../src/store/store.ts";

export const WORKER = "worker-test-1";
const LEASE_MS = 30_000;

/** Enqueues one job spec at `clock` time; returns its id. */
export async function add(
  store: Store,
  clock: ManualClock,
  spec: Record<string, unknown>,
): Promise<string> {
  const [id] = await enqueue({ store, clock }, [{ value: spec }]);
  return id;
}

/**
 * Claims exactly the job `id` (pending or failed) for `workerId`: the claim columns of
 * core/transitions.ts applied as one guarded change, whatever other jobs are due.
 */
export async function claim(
  store: Store,
  clock: ManualClock,
  id: string,
  workerId = WORKER,
): Promise<Job> {
  const job = await store.getJob({ id });
  if (!job) throw new Error(`no job ${id}`);
  const now = clock.now();
  const change: StateChange = {
    id,
    from: job.state,
    to: "processing",
    set: claimFields(job, now, workerId, LEASE_MS),
    updated_at: now,
  };
  if (!isAllowed(job.state, "processing") || !await store.applyChange({ change })) {
    throw new Error(`cannot claim ${id} (${job.state})`);
  }
  return (await store.getJob({ id }))!;
}

/** Runs job `id` to completion with the given output. */
export async function completeJob(
  store: Store,
  clock: ManualClock,
  id: string,
  output = { stdout: "", stderr: "" },
  workerId = WORKER,
): Promise<void> {
  const job = await claim(store, clock, id, workerId);
  const change = complete(job, { now: clock.now(), workerId, exit_code: 0 });
  if (!await store.applyChange({ change, output })) throw new Error(`cannot complete ${id}`);
}

/** Runs job `id` once and fails it (it becomes failed, or dead when out of retries). */
export async function failJob(
  store: Store,
  clock: ManualClock,
  id: string,
  opts: {
    exit_code?: number;
    error?: string;
    stdout?: string;
    stderr?: string;
    policy?: RetryPolicy;
  } = {},
  workerId = WORKER,
): Promise<void> {
  const job = await claim(store, clock, id, workerId);
  const change = fail(job, {
    now: clock.now(),
    workerId,
    exit_code: opts.exit_code ?? 1,
    error: opts.error ?? `exit code ${opts.exit_code ?? 1}`, // as worker/executor.ts words it
  }, opts.policy ?? DEFAULT_CONFIG);
  const output = { stdout: opts.stdout ?? "", stderr: opts.stderr ?? "" };
  if (!await store.applyChange({ change, output })) throw new Error(`cannot fail ${id}`);
}

/** A job that is dead (in the DLQ) after one failed run. */
export async function deadJob(
  store: Store,
  clock: ManualClock,
  spec: Record<string, unknown>,
  opts: { exit_code?: number; error?: string; stderr?: string } = {},
): Promise<string> {
  const id = await add(store, clock, { ...spec, max_retries: 0 });
  await failJob(store, clock, id, opts);
  return id;
}
