/**
 * One run history (core/runs.ts, through app/queue.ts getJobDetail) for both surfaces:
 * `queuectl show` (text and --json) lists the runs the dashboard's API sends, and `logs --attempt`
 * prints each run's output.
 */
import assert from "node:assert/strict";
import { appFor } from "../../src/cli/mod.ts";
import { retryJob } from "../../src/app/queue.ts";
import { call, harness } from "../dashboard/harness.ts";
import { add, completeJob, failJob } from "../dashboard/seed.ts";
import { runInProcess } from "../helpers/in_process.ts";

interface RunJson {
  run: number;
  attempt: number;
  outcome: string;
  exit_code: number | null;
  error: string | null;
  retry_delay_ms: number | null;
  stdout: string;
  stderr: string;
}

Deno.test("show, show --json, logs --attempt and the dashboard give the same runs", async () => {
  await using h = await harness();
  const { store, clock } = h;
  const env = { QUEUECTL_DB: h.dbPath };
  const cli = (...args: string[]) => runInProcess(appFor(args), args, env);
  const id = await add(store, clock, { id: "flaky", command: "false", max_retries: 3 });
  await failJob(store, clock, id, { exit_code: 3, error: "exit code 3", stderr: "boom 1\n" });
  clock.advance(3_600_000);
  await failJob(store, clock, id, { exit_code: 4, error: "exit code 4", stdout: "two\n" });
  await retryJob({ store, clock }, id);
  await completeJob(store, clock, id);

  const api = await call(h, `/api/jobs/${id}`);
  assert.equal(api.status, 200);
  const runs = api.body.runs as RunJson[];
  assert.deepEqual(
    runs.map((r) => [r.run, r.attempt, r.outcome, r.exit_code, r.error, r.retry_delay_ms]),
    [
      [1, 1, "failed", 3, "exit code 3", 2000],
      [2, 2, "failed", 4, "exit code 4", 4000],
      [3, 3, "completed", 0, null, null],
    ],
  );
  assert.equal(api.body.next_retry_at, null, "completed: no retry to come");
  assert.equal(runs[0].stderr, "boom 1\n");

  const json = await cli("show", id, "--json");
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout).runs, runs);

  const text = await cli("show", id);
  assert.match(text.stdout, /\nrun\s+attempt\s+outcome\s+started\s+took\s+exit\s+worker\s+error\n/);
  assert.match(
    text.stdout,
    /\n1\s+1\s+failed\s+\S+\s+\S+\s+3\s+\S+\s+exit code 3 \(retry in 2s\)\n/,
  );
  assert.match(text.stdout, /\n3\s+3\s+completed\s+/);
  assert.doesNotMatch(text.stdout, /next retry/);

  const first = await cli("logs", id, "--attempt", "1");
  assert.deepEqual([first.code, first.stdout, first.stderr], [0, "", "boom 1\n"]);
  const second = await cli("logs", id, "--attempt", "2", "--json");
  assert.deepEqual(JSON.parse(second.stdout), { stdout: "two\n", stderr: "" });
  const none = await cli("logs", id, "--attempt", "7");
  assert.equal(none.code, 3);
  assert.match(none.stderr, /^error: Job "flaky" has no run with attempt 7/);
  const bad = await cli("logs", id, "--attempt", "0");
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--attempt/);

  // A failed job waiting for its retry: when it runs next, on both surfaces.
  const waiting = await add(store, clock, { id: "waiting", command: "false", max_retries: 2 });
  await failJob(store, clock, waiting, {});
  const w = await call(h, `/api/jobs/${waiting}`);
  assert.equal(w.body.next_retry_at, w.body.run_at);
  assert.match((await cli("show", waiting)).stdout, /next retry\s+\S+ \(/);
  const fresh = await add(store, clock, { id: "fresh", command: "true" });
  assert.deepEqual((await call(h, `/api/jobs/${fresh}`)).body.runs, []);
  assert.match((await cli("show", fresh)).stdout, /\nruns\s+none yet\n/);
});
