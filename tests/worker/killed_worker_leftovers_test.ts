/**
 * A worker SIGKILLed (the OOM killer, `kill -9`) while its job runs: the job's processes must not
 * run on unsupervised beside the run that the job's rescue starts. The supervisor terminates what
 * is left in the dead worker's session (SIGTERM, then SIGKILL after the grace period) before the
 * lease expires (docs/architecture.md, "A worker killed under its job").
 *
 * The job writes `start N` when attempt N begins, `term N` when its shell gets SIGTERM, and
 * `end N` when it ends by itself, so the file shows whether attempt 1 was still running when
 * attempt 2 started. Before the fix, attempt 1 ran on for its whole 30 s: `start 1`, `start 2`.
 */
import assert from "node:assert/strict";
import { startCli } from "../helpers/cli_process.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

const UNIX = Deno.build.os !== "windows";

Deno.test({
  name: "a worker killed under its job: the job's processes are terminated before its rerun",
  ignore: !UNIX,
}, async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const runs = dir.file("runs");
  const pids = dir.file("pids");
  for (const [k, v] of [["lease", "2"], ["backoff_base", "1"]]) {
    const r = await runCli(["config", "set", k, v], { db });
    assert.equal(r.code, 0, r.stderr);
  }
  // The shell and its background sleep both record their pids, so the test can look for them
  // and, on a failure, end them.
  const script = `echo "start $QUEUECTL_ATTEMPT" >> ${runs}; echo $$ >> ${pids}; ` +
    `trap 'echo "term $QUEUECTL_ATTEMPT" >> ${runs}; exit 143' TERM; ` +
    `if [ "$QUEUECTL_ATTEMPT" = 1 ]; then sleep 30 & echo $! >> ${pids}; wait; fi; ` +
    `echo "end $QUEUECTL_ATTEMPT" >> ${runs}`;
  const enq = await runCli(["enqueue", "--id", "long", "--", "sh", "-c", script], { db });
  assert.equal(enq.code, 0, enq.stderr);
  const lines = () => {
    try {
      return Deno.readTextFileSync(runs).trim().split("\n");
    } catch {
      return [];
    }
  };
  try {
    await using sup = startCli(["worker", "start", "--count", "1"], { db });
    await waitFor(() => lines().includes("start 1"), { what: "attempt 1 to start" });
    const workers = await runCliJson<{ pid: number; current_job: string | null }[]>(
      ["worker", "list"],
      { db },
    );
    const worker = workers.find((w) => w.current_job === "long");
    assert.ok(worker, `the worker running the job, in ${JSON.stringify(workers)}`);
    Deno.kill(worker.pid, "SIGKILL");

    await waitFor(() => lines().includes("end 2"), { timeoutMs: 20_000, what: "attempt 2 to end" });
    assert.deepEqual(
      lines(),
      ["start 1", "term 1", "start 2", "end 2"],
      "attempt 1 was terminated (SIGTERM) before attempt 2 started, and never ran to its end",
    );
    await sup.waitForOutput(/left 3 processes running: terminated \(its job is rescued/);
    const job = await runCliJson<{ state: string; attempts: number }>(["show", "long"], { db });
    assert.deepEqual([job.state, job.attempts], ["completed", 2]);
    sup.kill("SIGTERM");
    assert.equal((await sup.status).code, 0, sup.stderr());
  } finally {
    // On a failure, what attempt 1 left must not outlive the test.
    for (const pid of Deno.readTextFileSync(pids).trim().split("\n").map(Number)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // gone, as it should be
      }
    }
  }
});
