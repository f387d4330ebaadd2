/**
 * `logs ID --follow` through the real CLI: the output of a running job streams while it runs
 * (the job waits on a file the test creates only once the first line was seen), and the command
 * ends with the job's outcome as exit code. SQLite here; PostgreSQL (another process's settles
 * and output through LISTEN) in tests/app/follow_test.ts.
 */
import assert from "node:assert/strict";
import { ExitCodes } from "../../src/core/errors.ts";
import { cliArgv, runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

/**
 * `worker start --until-empty` and `logs ID --follow` on `db`; the follower's output is gathered
 * into `out` as it comes (`reading` resolves at its end).
 */
function workerAndFollower(db: string, id: string) {
  const env = { NO_COLOR: "1", QUEUECTL_DB: db };
  const worker = new Deno.Command(Deno.execPath(), {
    args: cliArgv(["worker", "start", "--until-empty"]),
    env,
    stdout: "null",
    stderr: "null",
  }).spawn();
  const follow = new Deno.Command(Deno.execPath(), {
    args: cliArgv(["logs", id, "--follow"]),
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = { stdout: "", stderr: "" };
  const gather = async (stream: ReadableStream<Uint8Array>, into: "stdout" | "stderr") => {
    const decoder = new TextDecoder();
    for await (const c of stream) out[into] += decoder.decode(c, { stream: true });
  };
  const reading = Promise.all([gather(follow.stdout, "stdout"), gather(follow.stderr, "stderr")]);
  return { worker, follow, out, reading };
}

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
  const { worker, follow, out, reading } = workerAndFollower(db, "j");
  try {
    // Seen while the job still waits for the gate: live, not after the run.
    await waitFor(() => out.stdout === "one\n" && out.stderr === "warn\n", {
      timeoutMs: 30_000,
      what: `the first line while the job runs (stdout ${JSON.stringify(out.stdout)})`,
    });
    const state = JSON.parse((await runCli(["show", "j", "--json"], { db })).stdout).state;
    assert.equal(state, "processing");
    await Deno.writeTextFile(gate, "");
    const status = await follow.status;
    await reading;
    assert.equal(status.code, ExitCodes.jobsDead, out.stderr);
    assert.equal(out.stdout, "one\ntwo\n");
    assert.equal(out.stderr, "warn\n");
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
  const { worker, follow, out, reading } = workerAndFollower(db, "j");
  try {
    await waitFor(() => out.stdout === "first\n", {
      timeoutMs: 30_000,
      what: "the first line",
    });
    await Deno.writeTextFile(gate, "");
    const status = await follow.status;
    await reading;
    assert.equal(status.code, ExitCodes.ok);
    assert.equal(out.stdout, "first\n" + "z".repeat(995) + "\nend\n");
    assert.equal(
      out.stderr,
      "queuectl: j's stdout may be missing a part here: it printed more between two reads than " +
        "the database keeps of a running job (output_limit)\n",
    );
  } finally {
    await Deno.writeTextFile(gate, "").catch(() => {});
    await worker.status;
  }
});
