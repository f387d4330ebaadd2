/**
 * Use cases of queues as a whole (`queuectl queue ...`, the dashboard): pause and resume, a limit
 * of jobs running at once across every worker and host, and the list of queues with their counts.
 * The store applies pause and limits inside the claim (docs/architecture.md "Flow control").
 */
import { InvalidInput, NotFound } from "../core/errors.ts";
import { validateQueueName } from "../core/job.ts";
import { quote } from "../core/text.ts";
import type { QueueControl, QueueSummary } from "../store/store.ts";
import type { Ctx } from "./queue.ts";

export type { QueueControl, QueueSummary };

/** The largest limit `queue limit` accepts (a larger one is no limit in practice). */
export const MAX_QUEUE_LIMIT = 1_000_000;

/** `queue limit NAME N`: N as typed (a whole number >= 0; 0 = no limit). */
export function parseQueueLimit(text: string): number {
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n > MAX_QUEUE_LIMIT) {
    throw new InvalidInput(
      `Invalid limit: expected a whole number from 0 (no limit) to ${MAX_QUEUE_LIMIT}, got ${
        quote(text)
      }`,
    );
  }
  return n;
}

/** Every queue: those with jobs and those with a pause or limit, by name. */
export async function listQueues(ctx: Ctx): Promise<QueueSummary[]> {
  return await ctx.store.listQueues();
}

/** The queues that are paused or limited (cheap: no job is read). */
export async function queueControls(ctx: Ctx): Promise<QueueControl[]> {
  return await ctx.store.listQueueControls();
}

/**
 * `queue limit NAME N`: at most N jobs of the queue run at once (0 = no limit). A queue that has
 * no job yet may be limited before its jobs come.
 */
export async function limitQueue(ctx: Ctx, name: string, limit: number): Promise<QueueControl> {
  validateQueueName(name);
  if (!Number.isSafeInteger(limit) || limit < 0 || limit > MAX_QUEUE_LIMIT) {
    throw new InvalidInput(
      `Invalid limit: expected a whole number from 0 (no limit) to ${MAX_QUEUE_LIMIT}, got ${
        quote(limit)
      }`,
    );
  }
  return await ctx.store.setQueueControl({ name, maxRunning: limit, now: ctx.clock.now() });
}

/**
 * `queue pause NAME`: no job of the queue is claimed until it is resumed; running jobs finish. A
 * queue that has no job yet may be paused before its jobs come.
 */
export async function pauseQueue(ctx: Ctx, name: string): Promise<QueueControl> {
  validateQueueName(name);
  return await ctx.store.setQueueControl({ name, paused: true, now: ctx.clock.now() });
}

/** `queue resume NAME`: its jobs are claimed again. NotFound for a queue never seen. */
export async function resumeQueue(ctx: Ctx, name: string): Promise<QueueControl> {
  validateQueueName(name);
  const known = (await ctx.store.listQueues()).some((q) => q.name === name);
  if (!known) {
    throw new NotFound(`No queue named ${quote(name)}: it has no jobs and was never paused`, {
      hint: "see `queuectl queue list`",
    });
  }
  return await ctx.store.setQueueControl({ name, paused: false, now: ctx.clock.now() });
}

/** `queue pause --all`: every queue known now (with jobs, or a control); returns them. */
export async function pauseAll(ctx: Ctx): Promise<QueueControl[]> {
  const out: QueueControl[] = [];
  for (const q of await ctx.store.listQueues()) out.push(await pauseQueue(ctx, q.name));
  return out;
}

/** `queue resume --all`: every paused queue; returns those resumed. */
export async function resumeAll(ctx: Ctx): Promise<QueueControl[]> {
  const out: QueueControl[] = [];
  for (const q of await ctx.store.listQueueControls()) {
    if (!q.paused) continue;
    out.push(
      await ctx.store.setQueueControl({ name: q.name, paused: false, now: ctx.clock.now() }),
    );
  }
  return out;
}
