/**
 * Retention through a real `worker start` (issue 17.3): the supervisor's maintenance service
 * deletes finished jobs past `retain_completed` / `retain_dead` (in batches, in its first step)
 * while its workers run the pending jobs; `purge` still deletes by hand.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../../src/core/clock.ts";
import { DEFAULT_CONFIG } from "../../src/core/config.ts";
import { complete, fail } from "../../src/core/transitions.ts";
import { openSqliteStore } from "../../src/store/sqlite/mod.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";

Deno.test("worker start: the maintenance service deletes old finished jobs while the workers run new ones", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const day = 86_400_000;
  // 1,100 jobs completed 8 days ago, 2 dead 31 days ago, 1 completed 2 days ago.
  const store = await openSqliteStore(db);
  try {
    const settle = async (ids: string[], at: number, dead: boolean) => {
      const clock = new ManualClock(at);
      await store.insertJobs({
        jobs: ids.map((id) => ({
          id,
          command: "true",
          queue: "default",
          priority: 0,
          max_retries: 0,
          run_at: at,
        })),
        now: at,
      });
      const held = await store.claimJobs({
        workerId: "old",
        queues: null,
        now: clock.now(),
        leaseMs: 60_000,
        limit: ids.length,
      });
      for (const j of held) {
        const r = { now: clock.now(), workerId: "old", exit_code: dead ? 1 : 0 };
        await store.applyChange({ change: dead ? fail(j, r, DEFAULT_CONFIG) : complete(j, r) });
      }
    };
    await settle(Array.from({ length: 1100 }, (_, i) => `old-${i}`), Date.now() - 8 * day, false);
    await settle(["dead-1", "dead-2"], Date.now() - 31 * day, true);
    await settle(["recent"], Date.now() - 2 * day, false);
  } finally {
    await store.close();
  }
  assert.equal((await runCli(["enqueue", "--id", "new", "--", "true"], { db })).code, 0);

  const r = await runCli(["worker", "start", "--count", "1", "--until-empty"], { db });
  assert.equal(r.code, 0, r.stderr);
  const log = r.stdout + r.stderr;
  assert.match(log, /\[maintenance\] retention: deleted 1100 completed jobs older than 7d/);
  assert.match(log, /\[maintenance\] retention: deleted 2 dead jobs older than 30d/);
  const left = await runCliJson<{ id: string; state: string }[]>(["list", "--limit", "100"], {
    db,
  });
  assert.deepEqual(left.map((j) => `${j.id} ${j.state}`).sort(), [
    "new completed",
    "recent completed",
  ]);
  // purge is still there for by-hand use.
  const purged = await runCli(["purge", "--state", "completed", "--older-than", "1d"], { db });
  assert.equal(purged.code, 0, purged.stderr);
  assert.deepEqual(
    (await runCliJson<{ id: string }[]>(["list"], { db })).map((j) => j.id),
    ["new"],
  );
});
