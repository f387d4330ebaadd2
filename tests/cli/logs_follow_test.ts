/**
 * `logs ID --follow` through the real CLI: the output of a running job streams while it runs
 * (the job waits on a file the test creates only once the first line was seen), and the command
 * ends with the job's outcome as exit code. SQLite here; PostgreSQL (another process's settles
 * and output through LISTEN) in tests/app/follow_test.ts.
 */
import assert from "node:assert/strict";
import { ExitCodes } from "../../src/core/errors.ts";
import { startCli } from "../helpers/cli_process.ts";
import { runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

Deno.test("logs --follow streams a running job's output and exits with its outcome", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const gate = dir.file("gate");
  const command = `echo one; echo warn >&2; while [ ! -f '${gate}' ]; do sleep 0.05; done; ` +
    `echo two; exit 3`;
  const enq = await runCli(
    ["enqueue", JSON.stringify({ id: "j", command, max_retries: 0 })],
    { db },
  );
  assert.equal(enq.code, 0, enq.stderr);
  const worker = startCli(["worker", "start", "--until-empty"], { db });
  await using follow = startCli(["logs", "j", "--follow"], { db });
  try {
    // Seen while the job still waits for the gate: live, not after the run.
    await waitFor(() => follow.stdout() === "one\n" && follow.stderr() === "warn\n", {
      timeoutMs: 30_000,
      what: `the first line while the job runs (stdout ${JSON.stringify(follow.stdout())})`,
    });
    const state = JSON.parse((await runCli(["show", "j", "--json"], { db })).stdout).state;
    assert.equal(state, "processing");
    await Deno.writeTextFile(gate, "");
    const status = await follow.status;
    assert.equal(status.code, ExitCodes.jobsDead, follow.stderr());
    assert.equal(follow.stdout(), "one\ntwo\n");
    assert.equal(follow.stderr(), "warn\n");
  } finally {
    await Deno.writeTextFile(gate, "").catch(() => {});
    await worker.status;
  }
  const done = await runCli(["logs", "j", "--follow"], { db });
  assert.deepEqual([done.code, done.stdout], [ExitCodes.jobsDead, "one\ntwo\n"]);
  const bad = await runCli(["logs", "j", "--follow", "--attempt", "1"], { db });
  assert.equal(bad.code, ExitCodes.invalidInput);
  const missing = await runCli(["logs", "nope", "--follow"], { db });
  assert.equal(missing.code, ExitCodes.notFound);
});

Deno.test("logs --follow says on stderr where output may be missing (more than output_limit at once)", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const gate = dir.file("gate");
  assert.equal((await runCli(["config", "set", "output_limit", "1000"], { db })).code, 0);
  // 5,000 bytes after the gate, then the end: the run keeps only the last 1,000.
  const command = `echo first; while [ ! -f '${gate}' ]; do sleep 0.05; done; ` +
    `head -c 5000 /dev/zero | tr '\\0' z; echo; echo end`;
  const enq = await runCli(["enqueue", JSON.stringify({ id: "j", command })], { db });
  assert.equal(enq.code, 0, enq.stderr);
  const worker = startCli(["worker", "start", "--until-empty"], { db });
  await using follow = startCli(["logs", "j", "--follow"], { db });
  try {
    await waitFor(() => follow.stdout() === "first\n", {
      timeoutMs: 30_000,
      what: "the first line",
    });
    await Deno.writeTextFile(gate, "");
    const status = await follow.status;
    assert.equal(status.code, ExitCodes.ok);
    assert.equal(follow.stdout(), "first\n" + "z".repeat(995) + "\nend\n");
    assert.equal(
      follow.stderr(),
      "queuectl: j's stdout may be missing a part here: it printed more between two reads than " +
        "the database keeps of a running job (output_limit)\n",
    );
  } finally {
    await Deno.writeTextFile(gate, "").catch(() => {});
    await worker.status;
  }
});
