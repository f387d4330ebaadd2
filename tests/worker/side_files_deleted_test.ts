/**
 * The files beside an SQLite database that workers watch, deleted under running workers (someone
 * cleaning up `q.db-*`): `<db>-wake` (an enqueue wakes idle workers) and `<db>-kill` (`queuectl
 * kill` reaches the worker running the job). The workers watch the new files from then on, so an
 * enqueue still starts at once and a kill still lands at once. The poll interval and the heartbeat
 * are made rare (poll_interval 60 s; lease 300 s: a heartbeat every 100 s), so a start or a kill
 * seen within the test's deadline came through the watch.
 */
import assert from "node:assert/strict";
import { startCli } from "../helpers/cli_process.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { exists, tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

Deno.test({
  name: "wake and kill files deleted under running workers: an enqueue still starts at once, " +
    "a kill still lands at once",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const ok = async (args: string[]) => {
      const r = await runCli(args, { db });
      assert.equal(r.code, 0, `queuectl ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    await ok(["config", "set", "poll_interval", "60"]);
    await ok(["config", "set", "lease", "300"]);
    await using workers = startCli(["worker", "start", "--count", "2"], { db });
    // Both workers up and idle, watching.
    await waitFor(
      async () => (await runCliJson<unknown[]>(["worker", "list"], { db })).length >= 2,
      {
        timeoutMs: 30_000,
        what: "two workers",
      },
    );
    await ok(["enqueue", "--id", "warm", "--", "true"]);
    await waitFor(
      async () =>
        (await runCliJson<{ state: string }>(["show", "warm"], { db })).state ===
          "completed",
      { what: "a first job, through the first wake file" },
    );

    // A long-lived process (a worker, a supervisor, the dashboard) may hold the files open: the
    // kernel then says "deleted" only once the last holder closes them. The test holds them.
    const held = ["-wake", "-kill"].map((suffix) => Deno.openSync(db + suffix, { read: true }));
    for (const suffix of ["-wake", "-kill"]) await Deno.remove(db + suffix);

    const began = dir.file("began");
    await ok(["enqueue", "--id", "long", "--", "sh", "-c", `: > '${began}'; sleep 300`]);
    await waitFor(() => exists(began), { what: "the job started through the new wake file" });
    await ok(["kill", "long"]);
    const killed = await waitFor(async () => {
      const job = await runCliJson<{ state: string; error: string | null }>(["show", "long"], {
        db,
      });
      return job.state === "dead" ? job : null;
    }, { what: "the kill delivered through the new kill file" });
    assert.match(killed.error ?? "", /killed by SIGTERM via queuectl kill/);
    workers.kill("SIGTERM");
    assert.equal((await workers.status).code, 0, workers.stdout() + workers.stderr());
    for (const file of held) file.close();
  },
});
