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

/** Inserts jobs `ids` as they would be after running at `at`: completed, or dead when `dead`. */
async function finishedJobs(db: string, ids: string[], at: number, dead: boolean): Promise<void> {
  const store = await openSqliteStore(db);
  try {
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
  } finally {
    await store.close();
  }
}

const DAY = 86_400_000;

Deno.test("worker start: the maintenance service deletes old finished jobs while the workers run new ones", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  // 1,100 jobs completed 8 days ago, 2 dead 31 days ago, 1 completed 2 days ago.
  await finishedJobs(
    db,
    Array.from({ length: 1100 }, (_, i) => `old-${i}`),
    Date.now() - 8 * DAY,
    false,
  );
  await finishedJobs(db, ["dead-1", "dead-2"], Date.now() - 31 * DAY, true);
  await finishedJobs(db, ["recent"], Date.now() - 2 * DAY, false);
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

Deno.test("worker start: a retention backlog does not hold the workers back", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  // Enough completed jobs past retention that the first maintenance step deletes for well over a
  // second (batches of 500, 20 ms apart): the workers start meanwhile, and the new job runs
  // before that step ends (it waited for the whole step before).
  const old = 30_000;
  await finishedJobs(
    db,
    Array.from({ length: old }, (_, i) => `old-${i}`),
    Date.now() - 8 * DAY,
    false,
  );
  assert.equal((await runCli(["enqueue", "--id", "new", "--", "true"], { db })).code, 0);

  const r = await runCli(["worker", "start", "--count", "1", "--until-empty"], { db });
  assert.equal(r.code, 0, r.stderr);
  const lines = (r.stdout + r.stderr).split("\n");
  const started = lines.findIndex((l) => /started new\b/.test(l));
  const retention = lines.findIndex((l) =>
    /\[maintenance\] retention: deleted \d+ completed/.test(l)
  );
  assert.ok(started >= 0 && retention >= 0, r.stdout + r.stderr);
  assert.ok(started < retention, `the job started after the retention step:\n${r.stdout}`);
  assert.equal((await runCliJson<{ state: string }>(["show", "new"], { db })).state, "completed");
});
