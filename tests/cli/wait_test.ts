/** `queuectl wait` and `enqueue --wait` through the real CLI: exit codes, summary, JSON. */
import assert from "node:assert/strict";
import { ExitCodes } from "../../src/core/errors.ts";
import { cliArgv, runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

/** Starts `queuectl args` without waiting for it; resolves to its exit code and output. */
function spawnCli(args: string[], db: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: cliArgv(args),
    env: { NO_COLOR: "1", QUEUECTL_DB: db },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return child.output().then((o) => ({
    code: o.code,
    stdout: new TextDecoder().decode(o.stdout),
    stderr: new TextDecoder().decode(o.stderr),
  }));
}

Deno.test("wait: exit 0 completed, 6 dead, 124 timed out; enqueue --wait", async (t) => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  for (
    const job of ['{"id":"ok","command":"true"}', '{"id":"bad","command":"exit 3","max_retries":0}']
  ) {
    assert.equal((await runCli(["enqueue", job], { db })).code, 0);
  }

  await t.step("jobs not finished in time: 124 and the unfinished ids", async () => {
    const r = await runCli(["wait", "ok", "bad", "--timeout", "10ms"], { db });
    assert.equal(r.code, ExitCodes.waitTimeout, r.stderr);
    assert.match(
      r.stdout,
      /^timed out after .*: 2 of 2 jobs unfinished \(ok, bad\); 0 completed\n$/,
    );
  });

  await t.step("a waiting wait returns once a worker finished the jobs", async () => {
    const waiting = spawnCli(["wait", "ok", "bad"], db);
    const worker = await runCli(["worker", "start", "--until-empty"], { db });
    assert.equal(worker.code, ExitCodes.jobsDead, worker.stderr);
    const r = await waiting;
    assert.equal(r.code, ExitCodes.jobsDead, r.stderr);
    assert.match(r.stdout, /^2 jobs finished in .*: 1 completed, 1 dead \(bad\)\n$/);
  });

  await t.step("finished jobs: at once, with --json", async () => {
    const ok = await runCli(["wait", "ok", "--json"], { db });
    assert.equal(ok.code, 0, ok.stderr);
    const json = JSON.parse(ok.stdout);
    assert.deepEqual(
      [json.total, json.completed, json.dead, json.timed_out, json.exit_code],
      [1, 1, 0, false, 0],
    );
    const bad = await runCli(["wait", "ok", "bad", "--json"], { db });
    assert.equal(bad.code, ExitCodes.jobsDead);
    assert.deepEqual(JSON.parse(bad.stdout).dead_ids, ["bad"]);
    const none = await runCli(["wait", "--all"], { db });
    assert.equal(none.code, 0);
    assert.match(none.stdout, /nothing to wait for/);
  });

  await t.step("enqueue --wait: prints the id, then exits with the job's outcome", async () => {
    const waiting = spawnCli(
      ["enqueue", "--wait", "--id", "w1", "--max-retries", "0", "--", "exit", "4"],
      db,
    );
    await waitFor(async () => (await runCli(["show", "w1"], { db })).code === 0, {
      what: "the job to be enqueued",
    });
    await runCli(["worker", "start", "--until-empty"], { db });
    const r = await waiting;
    assert.equal(r.code, ExitCodes.jobsDead, r.stderr);
    assert.match(r.stdout, /^w1\n1 job finished in .*: 0 completed, 1 dead \(w1\)\n$/);

    const timeout = await runCli(
      ["enqueue", "--wait", "--wait-timeout", "10ms", "--id", "w2", "--", "true"],
      { db },
    );
    assert.equal(timeout.code, ExitCodes.waitTimeout, timeout.stderr);
    const done = spawnCli(["enqueue", "--wait", "--json", "--id", "w3", "--", "true"], db);
    await waitFor(async () => (await runCli(["show", "w3"], { db })).code === 0);
    await runCli(["worker", "start", "--until-empty"], { db });
    const r3 = await done;
    assert.equal(r3.code, 0, r3.stderr);
    assert.equal(JSON.parse(r3.stdout).completed, 1);
  });
});
