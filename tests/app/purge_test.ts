/** `purge` and `dlq purge` (app/queue.ts) delete in batches, each its own transaction. */
import assert from "node:assert/strict";
import { systemClock } from "../../src/core/clock.ts";
import type { JobState } from "../../src/core/job.ts";
import { type Ctx, PURGE_BATCH, purgeDlq, purgeJobs } from "../../src/app/queue.ts";
import type { Store } from "../../src/store/store.ts";

type DeleteParams = Parameters<Store["deleteJobs"]>[0];

/** A store holding `n` deletable jobs that records each deleteJobs call. */
function storeWith(n: number) {
  const calls: DeleteParams[] = [];
  let left = Array.from({ length: n }, (_, i) => `job-${i}`);
  const store = {
    deleteJobs: (p: DeleteParams) => {
      calls.push(p);
      const taken = left.slice(0, p.limit ?? left.length);
      left = left.slice(taken.length);
      return Promise.resolve(taken);
    },
  } as unknown as Store;
  const ctx: Ctx = { store, clock: systemClock };
  return { ctx, calls, left: () => left.length };
}

for (
  const [name, purge, states] of [
    ["dlq purge", (ctx: Ctx) => purgeDlq(ctx), ["dead"]],
    [
      "purge",
      (ctx: Ctx) => purgeJobs(ctx, { states: ["completed", "dead"], olderThanMs: 60_000 }),
      ["completed", "dead"],
    ],
  ] as const
) {
  Deno.test(`${name}: at most ${PURGE_BATCH} jobs per call, until a call finds fewer`, async () => {
    for (const n of [0, 1, PURGE_BATCH, 2 * PURGE_BATCH + 17]) {
      const { ctx, calls, left } = storeWith(n);
      const ids = await purge(ctx);
      assert.equal(ids.length, n);
      assert.equal(new Set(ids).size, n);
      assert.equal(left(), 0);
      assert.equal(calls.length, Math.floor(n / PURGE_BATCH) + 1);
      for (const c of calls) {
        assert.equal(c.limit, PURGE_BATCH);
        assert.deepEqual(c.states, states as readonly JobState[]);
        assert.equal(c.ids, undefined);
      }
      // One cut-off for the whole purge (purge), none for the DLQ (every dead job).
      assert.equal(new Set(calls.map((c) => c.updatedBefore)).size, 1);
      if (name === "dlq purge") assert.equal(calls[0].updatedBefore, undefined);
    }
  });
}
