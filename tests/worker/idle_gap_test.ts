/**
 * The idle gap of the runner (worker/runner.ts): a wait ended by a hint (a commit that made a job
 * claimable) is followed by a claim at once, even right after a claim that found nothing, up to
 * a few per gap; waits their timer ended, and hints beyond those few, are paced by the gap.
 * Counted, not timed: `Runner.idleGaps`.
 */
import assert from "node:assert/strict";
import type { Store } from "../../src/store/store.ts";
import type { Waker } from "../../src/worker/wake.ts";
import { Runner } from "../../src/worker/runner.ts";
import { tempStore } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

/**
 * The first `count` waits return at once, as if ended by a hint (`hinted`) or by their timer;
 * later waits last until the runner stops.
 */
class ScriptedWaker implements Waker {
  waits = 0;
  constructor(readonly hinted: boolean, readonly count: number) {}
  idle(): boolean {
    return false;
  }
  busy(): void {}
  arm(): void {}
  wait(_timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (++this.waits <= this.count) return Promise.resolve(this.hinted);
    return new Promise((resolve) => {
      if (signal?.aborted) resolve(false);
      signal?.addEventListener("abort", () => resolve(false), { once: true });
    });
  }
  close(): void {}
}

async function runIdle(hinted: boolean, count: number): Promise<Runner> {
  await using t = await tempStore();
  const waker = new ScriptedWaker(hinted, count);
  const runner = new Runner({ store: t.store, log: () => {}, graceMs: 200, waker });
  const exit = runner.run();
  try {
    await waitFor(() => waker.waits > count, { what: `${count} idle waits` });
  } finally {
    runner.requestStop("graceful", "test");
    assert.equal(await exit, 0);
  }
  return runner;
}

Deno.test("a few hints in quick succession are each followed by a claim at once, without the idle gap", async () => {
  // Four: a worker that lost the race for three jobs of a burst still starts the fourth at once.
  const runner = await runIdle(true, 4);
  assert.equal(runner.idleGaps, 0, "no gap after a hint");
  assert.ok(runner.claimAttempts >= 5, `a claim after each hint (${runner.claimAttempts})`);
});

Deno.test("a storm of hints that bring nothing claimable is paced by the idle gap", async () => {
  const runner = await runIdle(true, 40);
  assert.ok(runner.idleGaps > 0, "the gap paced the claims");
});

Deno.test("idle waits ended by their timer in quick succession are paced by the idle gap", async () => {
  // As a due job this worker cannot claim (a paused queue) would make them: waitMs 0.
  const runner = await runIdle(false, 5);
  assert.ok(runner.idleGaps > 0, "the gap paced the loop");
});

/**
 * The timeouts of an idle runner's first four waits, beside a queue `held` with due jobs that
 * `close` makes unclaimable.
 */
async function waitsBesideClosedQueue(
  close: (store: Store) => Promise<void>,
): Promise<number[]> {
  await using t = await tempStore();
  await t.store.insertJobs({
    jobs: ["held-1", "held-2"].map((id) => ({
      id,
      command: "true",
      queue: "held",
      priority: 0,
      max_retries: 0,
      timeout: null,
      run_at: 0,
    })),
    now: 0,
  });
  await close(t.store);
  const timeouts: number[] = [];
  const waker = new (class extends ScriptedWaker {
    override wait(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
      timeouts.push(timeoutMs);
      return super.wait(timeoutMs, signal);
    }
  })(false, 3);
  const runner = new Runner({ store: t.store, log: () => {}, graceMs: 200, waker });
  const exit = runner.run();
  try {
    await waitFor(() => timeouts.length > 3, { what: "4 idle waits" });
  } finally {
    runner.requestStop("graceful", "test");
    assert.equal(await exit, 0);
  }
  return timeouts.slice(0, 4);
}

Deno.test("a paused queue's due jobs do not end an idle worker's waits: it waits its poll interval", async () => {
  const timeouts = await waitsBesideClosedQueue(async (store) => {
    await store.setQueueControl({ name: "held", paused: true, now: Date.now() });
  });
  // The poll interval (1 s by default), not 0: the held jobs are due but cannot be claimed.
  assert.deepEqual(timeouts, [1000, 1000, 1000, 1000]);
});

Deno.test("a full queue's due jobs do not end an idle worker's waits: it waits its poll interval", async () => {
  const timeouts = await waitsBesideClosedQueue(async (store) => {
    await store.setQueueControl({ name: "held", maxRunning: 1, now: Date.now() });
    // Another worker runs one: the queue is at its limit.
    const claimed = await store.claimJobs({
      workerId: "other",
      queues: null,
      now: Date.now(),
      leaseMs: 600_000,
      limit: 1,
    });
    assert.equal(claimed.length, 1);
  });
  // Not 0: held-2 is due, but its queue is full until held-1 ends (whose settle wakes workers).
  assert.deepEqual(timeouts, [1000, 1000, 1000, 1000]);
});
