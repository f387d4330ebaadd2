/**
 * `wait` (app/wait.ts) on both backends: the selection, the outcome, and wake-ups by another
 * connection's settle (the wait's own timeout is a minute, so only a wake-up ends it in time).
 */
import assert from "node:assert/strict";
import { systemClock } from "../../src/core/clock.ts";
import { DEFAULT_CONFIG } from "../../src/core/config.ts";
import { InvalidInput, NotFound } from "../../src/core/errors.ts";
import { complete, fail } from "../../src/core/transitions.ts";
import type { Ctx } from "../../src/app/queue.ts";
import { selectJobs, waitForJobs } from "../../src/app/wait.ts";
import { openPostgresStore } from "../../src/store/postgres/mod.ts";
import { openSqliteStore } from "../../src/store/sqlite/mod.ts";
import type { Store } from "../../src/store/store.ts";
import { admin, PG_URL, postgresAvailability } from "../helpers/postgres.ts";
import { tempDir } from "../helpers/temp.ts";
import { newJob } from "../store/conformance.ts";

const { ignore: noPg } = await postgresAvailability("app wait");

interface Backend {
  /** A fresh database: the store, a second connection to it, and a clean-up. */
  open(): Promise<{ store: Store; peer: () => Promise<Store>; dispose(): Promise<void> }>;
  ignore: boolean;
}

const BACKENDS: Record<string, Backend> = {
  sqlite: {
    ignore: false,
    async open() {
      const dir = await tempDir();
      const path = dir.file("q.db");
      return {
        store: await openSqliteStore(path),
        peer: () => openSqliteStore(path),
        dispose: async () => await dir[Symbol.asyncDispose](),
      };
    },
  },
  postgres: {
    ignore: noPg,
    async open() {
      const schema = `qt_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
      return {
        store: await openPostgresStore(PG_URL, { schema }),
        peer: () => openPostgresStore(PG_URL, { schema }),
        dispose: async () => {
          const sql = admin();
          await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          await sql.end();
        },
      };
    },
  },
};

/** Claims the job `id` (alone in its queue) and settles it from `store`: exit 0 or a failure. */
async function settle(store: Store, id: string, exitCode: number): Promise<void> {
  const now = Date.now();
  const queue = (await store.getJob({ id }))!.queue;
  const [job] = await store.claimJobs({
    workerId: "w1",
    queues: [queue],
    now,
    leaseMs: 30_000,
    limit: 1,
  });
  assert.equal(job?.id, id);
  const run = { now, workerId: "w1", exit_code: exitCode, error: exitCode ? "exit" : null };
  const change = exitCode === 0 ? complete(job, run) : fail(job, run, DEFAULT_CONFIG);
  assert.ok(await store.applyChange({ change }));
}

for (const [name, backend] of Object.entries(BACKENDS)) {
  Deno.test({
    name: `wait (${name}): selection, outcome, wake-ups`,
    ignore: backend.ignore,
    fn: async (t) => {
      const db = await backend.open();
      const store = db.store;
      const peer = await db.peer();
      const ctx: Ctx = { store, clock: systemClock };
      try {
        const now = Date.now();
        await store.insertJobs({
          jobs: [
            newJob("a", { queue: "qa", run_at: now }),
            newJob("b", { queue: "qb", run_at: now, max_retries: 0 }),
            newJob("c", { queue: "qc", run_at: now }),
          ],
          now,
        });

        await t.step("the selection: ids must exist, one kind at a time", async () => {
          await assert.rejects(selectJobs(ctx, { ids: ["a", "nope"] }), NotFound);
          await assert.rejects(selectJobs(ctx, { ids: ["bad id"] }), InvalidInput);
          await assert.rejects(selectJobs(ctx, {}), InvalidInput);
          await assert.rejects(selectJobs(ctx, { ids: ["a"], all: true }), InvalidInput);
          await assert.rejects(selectJobs(ctx, { queue: "qa", all: true }), InvalidInput);
          assert.deepEqual(await selectJobs(ctx, { ids: ["a", "a", "b"] }), ["a", "b"]);
          assert.deepEqual(await selectJobs(ctx, { all: true }), ["a", "b", "c"]);
          assert.deepEqual(await selectJobs(ctx, { queue: "qb" }), ["b"]);
        });

        await t.step("a timeout reports the unfinished jobs", async () => {
          const o = await waitForJobs(ctx, { ids: ["a", "b"], timeoutMs: 1 });
          assert.equal(o.timed_out, true);
          assert.equal(o.unfinished, 2);
          assert.deepEqual(o.unfinished_ids, ["a", "b"]);
          assert.equal(o.completed + o.dead + o.removed, 0);
        });

        await t.step("another connection's settles wake the wait", async () => {
          const waiting = waitForJobs(ctx, { ids: ["a", "b"], timeoutMs: 60_000 });
          // The first look happens before these settles or after: either way it must end.
          await settle(peer, "a", 0);
          await settle(peer, "b", 1);
          const o = await waiting;
          assert.equal(o.timed_out, false);
          assert.equal(o.completed, 1);
          assert.equal(o.dead, 1);
          assert.deepEqual(o.dead_ids, ["b"]);
          assert.ok(o.elapsed_ms < 30_000, `took ${o.elapsed_ms} ms: no wake-up`);
        });

        await t.step("finished jobs count at once; --all skips them", async () => {
          const o = await waitForJobs(ctx, { ids: ["a", "b"], timeoutMs: null });
          assert.deepEqual([o.completed, o.dead, o.timed_out], [1, 1, false]);
          assert.deepEqual(await selectJobs(ctx, { all: true }), ["c"]);
        });

        await t.step("a job deleted while waited for counts as removed", async () => {
          const waiting = waitForJobs(ctx, { ids: ["c"], timeoutMs: 60_000 });
          assert.deepEqual(await peer.deleteJobs({ states: ["pending"], ids: ["c"] }), ["c"]);
          const o = await waiting;
          assert.deepEqual([o.removed, o.removed_ids, o.timed_out], [1, ["c"], false]);
        });

        await t.step("nothing to wait for ends at once", async () => {
          const o = await waitForJobs(ctx, { ids: [], timeoutMs: null });
          assert.deepEqual([o.total, o.timed_out], [0, false]);
        });
      } finally {
        await peer.close();
        await store.close();
        await db.dispose();
      }
    },
  });
}
