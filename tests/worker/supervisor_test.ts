/** The supervisor's small pure helpers. */
import assert from "node:assert/strict";
import {
  defaultRestartDelayMs,
  EMPTY_CHECK_MIN_MS,
  jobsLeft,
  nextLookMs,
} from "../../src/worker/supervisor.ts";
import { complete } from "../../src/core/transitions.ts";
import { tempStore } from "../helpers/temp.ts";

Deno.test("restart delay doubles per quick crash, capped at 5 s", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 10].map(defaultRestartDelayMs), [
    500,
    1000,
    2000,
    4000,
    5000,
    5000,
  ]);
});

Deno.test("--until-empty looks again sooner only when the jobs left would be done before the next look", () => {
  // No earlier look, or no progress since: the regular interval.
  assert.equal(nextLookMs(null, { left: 5, at: 1000 }, 100), 100);
  assert.equal(nextLookMs({ left: 5, at: 900 }, { left: 5, at: 1000 }, 100), 100);
  assert.equal(nextLookMs({ left: 5, at: 900 }, { left: 9, at: 1000 }, 100), 100);
  // 100 jobs done in 100 ms, 1000 left: ~1 s to go, more than the interval.
  assert.equal(nextLookMs({ left: 1100, at: 0 }, { left: 1000, at: 100 }, 100), 100);
  // 100 jobs done in 100 ms, 30 left: done in ~30 ms, look then.
  assert.equal(nextLookMs({ left: 130, at: 0 }, { left: 30, at: 100 }, 100), 30);
  // ...but not more often than EMPTY_CHECK_MIN_MS, nor less often than the interval asked for.
  assert.equal(nextLookMs({ left: 101, at: 0 }, { left: 1, at: 100 }, 100), EMPTY_CHECK_MIN_MS);
  assert.equal(nextLookMs({ left: 101, at: 0 }, { left: 1, at: 100 }, 5), 5);
});

Deno.test("--until-empty looks less often while the end is far, closer as it nears", () => {
  // 100 jobs in 100 ms, 1000 left (~1 s to go): a quarter of that, 250 ms, within farMs 1000.
  assert.equal(nextLookMs({ left: 1100, at: 0 }, { left: 1000, at: 100 }, 100, 1000), 250);
  // 10 s to go: no more than farMs.
  assert.equal(nextLookMs({ left: 10100, at: 0 }, { left: 10000, at: 100 }, 100, 1000), 1000);
  // 300 ms to go: never less than the regular interval while the end is beyond it...
  assert.equal(nextLookMs({ left: 400, at: 0 }, { left: 300, at: 100 }, 100, 1000), 100);
  // ...and within it, as before.
  assert.equal(nextLookMs({ left: 130, at: 0 }, { left: 30, at: 100 }, 100, 1000), 30);
  // No progress (long jobs, or new jobs came): the regular interval.
  assert.equal(nextLookMs({ left: 5, at: 900 }, { left: 5, at: 1000 }, 100, 1000), 100);
  assert.equal(nextLookMs({ left: 5, at: 900 }, { left: 9, at: 1000 }, 100, 1000), 100);
});

Deno.test("jobsLeft counts pending, processing and failed jobs, in the queues asked for", async () => {
  await using t = await tempStore();
  const { store } = t;
  const now = Date.now();
  await store.insertJobs({
    jobs: ["a", "b", "c", "d"].map((id, i) => ({
      id,
      command: "true",
      queue: i < 3 ? "default" : "other",
      priority: 0,
      max_retries: 0,
      timeout: null,
      run_at: now,
    })),
    now,
  });
  assert.equal(await jobsLeft(store, now, null), 4);
  const [job] = await store.claimJobs({
    workerId: "w",
    queues: ["default"],
    now,
    leaseMs: 1000,
    limit: 1,
  });
  assert.equal(await jobsLeft(store, now, null), 4); // pending 3 + processing 1
  await store.applyChange({ change: complete(job, { now, workerId: "w", exit_code: 0 }) });
  assert.equal(await jobsLeft(store, now, null), 3);
  assert.equal(await jobsLeft(store, now, ["default"]), 2);
  assert.equal(await jobsLeft(store, now, ["other"]), 1);
  assert.equal(await jobsLeft(store, now, ["default", "other"]), 3);
  assert.equal(await jobsLeft(store, now, ["none"]), 0);
});
