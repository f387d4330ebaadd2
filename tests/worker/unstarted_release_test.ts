/**
 * A worker SIGKILLed while it holds a job it never started (claimed, not yet spawned): its
 * supervisor gives the job back at once, the attempt not counted; a job it did start is left to
 * the lease rescue, counted (docs/architecture.md, "Claimed, not started").
 *
 * The claim-without-spawn is made deterministic: the worker serves queue `a` only, and the test
 * claims a job of queue `b` in the worker's name through the store, exactly as the worker's own
 * claim would have written it, then kills the worker before it could know of it.
 */
import assert from "node:assert/strict";
import { openSqliteStore } from "../../src/store/sqlite/sqlite_store.ts";
import { startCli } from "../helpers/cli_process.ts";
import { runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";
import { query } from "../reliability/profile.ts";

const UNIX = Deno.build.os !== "windows";

interface Row {
  state: string;
  attempts: number;
  lease_owner: string | null;
}

Deno.test({
  name: "worker killed between claim and spawn: the job goes back uncounted; a started one stays",
  ignore: !UNIX,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const log = dir.file("w.log");
    for (const [k, v] of [["lease", "60"], ["max_retries", "0"]]) {
      const r = await runCli(["config", "set", k, v], { db });
      assert.equal(r.code, 0, r.stderr);
    }
    await using sup = startCli(["worker", "start", "--count", "1", "--queue", "a", "--log", log], {
      db,
    });
    /** The record of a worker other than `not` (a dead worker's record stays until pruned). */
    const worker = (not = "") =>
      waitFor(() =>
        query<{ id: string; pid: number }>(
          db,
          "SELECT id, pid FROM workers WHERE supervisor_id IS NOT NULL AND id != ?",
          not,
        )[0], { what: "a worker record" });
    const first = await worker();
    // Deno reads /proc/<pid>/cmdline only with --allow-all: through `cat`.
    const cat = await new Deno.Command("cat", { args: [`/proc/${first.pid}/cmdline`] }).output();
    const cmdline = new TextDecoder().decode(cat.stdout).split("\0");
    const marker = cmdline[cmdline.indexOf("--start-marker") + 1];
    assert.ok(marker, "the worker is given a start marker");
    const markerDir = marker.replace(/\/[^/]*$/, "");
    assert.equal(Deno.statSync(markerDir).mode! & 0o777, 0o700, "a private directory");

    const enq = await runCli(
      ["enqueue", JSON.stringify({ id: "x", command: "true", queue: "b" })],
      {
        db,
      },
    );
    assert.equal(enq.code, 0, enq.stderr);
    const store = await openSqliteStore(db);
    try {
      const claimed = await store.claimJobs({
        workerId: first.id,
        queues: ["b"],
        now: Date.now(),
        leaseMs: 60_000,
        limit: 1,
      });
      assert.deepEqual(claimed.map((j) => [j.id, j.attempts]), [["x", 1]]);
    } finally {
      await store.close();
    }
    Deno.kill(first.pid, "SIGKILL");
    const job = (id: string) =>
      query<Row>(db, "SELECT state, attempts, lease_owner FROM jobs WHERE id = ?", id)[0];
    // Long before the 60 s lease: the supervisor saw its worker die.
    await waitFor(() => job("x").state === "pending", { what: "x back to pending" });
    assert.deepEqual(job("x"), { state: "pending", attempts: 0, lease_owner: null });
    assert.deepEqual(query(db, "SELECT * FROM job_runs WHERE job_id = 'x'"), [], "no run recorded");
    await waitFor(
      () =>
        Deno.readTextFileSync(log).match(
          new RegExp(
            `\\] released x: worker \\S+ \\(${first.id}\\) claimed it and died before starting it; ` +
              "back to pending, the attempt not counted\\n",
          ),
        ),
      { what: "the release line" },
    );

    // A job the (restarted) worker started: the marker names it, so it is not released.
    const second = await worker(first.id);
    const enq2 = await runCli(
      ["enqueue", JSON.stringify({ id: "y", command: "sleep 60", queue: "a" })],
      { db },
    );
    assert.equal(enq2.code, 0, enq2.stderr);
    await waitFor(() => job("y")?.state === "processing", { what: "y started" });
    await waitFor(() => Deno.readTextFileSync(log).includes("started y:"), { what: "y's start" });
    // The worker leads its session and process group; its job runs in both: kill them all.
    Deno.kill(-second.pid, "SIGKILL");
    await waitFor(() => Deno.readTextFileSync(log).includes(`(pid ${second.pid}) was killed`), {
      what: "the supervisor to see the death",
    });
    // A graceful stop waits for the supervisor's look at the dead worker's jobs.
    sup.kill("SIGTERM");
    assert.equal((await sup.status).code, 0, sup.stdout() + sup.stderr());
    assert.deepEqual(job("y"), { state: "processing", attempts: 1, lease_owner: second.id });
    assert.equal(
      Deno.readTextFileSync(log).match(/\] released y:/),
      null,
      "a started job is not released",
    );
    assert.throws(() => Deno.statSync(markerDir), Deno.errors.NotFound, "markers removed at exit");
  },
});
