/**
 * A job runs in the directory it was enqueued from (issue 14.2), through the real CLI and a real
 * worker started elsewhere: every enqueue form, --cwd / "cwd", INIT_CWD, a missing directory.
 */
import assert from "node:assert/strict";
import { hostname } from "../../src/worker/host.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";

interface JobJson {
  state: string;
  cwd: string | null;
  error: string | null;
  stdout: string;
}

Deno.test("jobs run where they were enqueued unless cwd says otherwise; a missing directory fails the run naming it and the host", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const proj = dir.file("proj");
  const other = dir.file("other place");
  await Deno.mkdir(`${proj}/sub`, { recursive: true });
  await Deno.mkdir(other);
  await Deno.writeTextFile(`${proj}/jobs.jsonl`, '{"id":"file","command":"pwd"}\n');
  // INIT_CWD "" = not under deno task (the test runner's own INIT_CWD must not leak in).
  const from = (cwd: string, initCwd = "") => ({ db, cwd, env: { INIT_CWD: initCwd } });
  const enqueue = async (args: string[], opts: ReturnType<typeof from>) => {
    const r = await runCli(["enqueue", ...args], opts);
    assert.equal(r.code, 0, r.stderr);
  };

  await enqueue(["--id", "words", "--", "pwd"], from(proj));
  await enqueue(['{"id":"json","command":"pwd"}'], from(proj));
  await enqueue(["--file", "jobs.jsonl"], from(proj));
  await enqueue(["--id", "flag", "--cwd", "sub", "--", "pwd"], from(proj));
  await enqueue(['{"id":"jsoncwd","command":"pwd","cwd":"../other place"}'], from(proj));
  await enqueue(["--id", "init", "--", "pwd"], from(proj, other));
  const missing = `${proj}/gone`;
  await enqueue(
    ["--id", "missing", "--max-retries", "0", "--cwd", missing, "--", "pwd"],
    from(proj),
  );

  // The worker runs from yet another directory.
  const w = await runCli(["worker", "start", "--until-empty"], { db, cwd: dir.path });
  assert.equal(w.code, 6, "the job whose directory is missing reached the DLQ");

  const expected: Record<string, string> = {
    words: proj,
    json: proj,
    file: proj,
    flag: `${proj}/sub`,
    jsoncwd: other,
    init: other,
  };
  for (const [id, cwd] of Object.entries(expected)) {
    const job = await runCliJson<JobJson>(["show", id], { db });
    assert.equal(job.cwd, cwd, id);
    assert.equal(job.state, "completed", id);
    assert.equal(job.stdout, `${cwd}\n`, id);
  }
  const gone = await runCliJson<JobJson>(["show", "missing"], { db });
  assert.equal(gone.state, "dead");
  assert.equal(
    gone.error,
    `could not start: working directory ${
      JSON.stringify(missing)
    } does not exist on host ${hostname()}`,
  );

  const text = await runCli(["show", "flag"], { db });
  assert.match(text.stdout, new RegExp(`^directory +${proj}/sub$`, "m"));
});

Deno.test("enqueue refuses a bad --cwd with one line and enqueues nothing", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  for (
    const [args, pattern] of [
      [["--cwd", "", "--", "pwd"], /Invalid cwd/],
      [['{"command":"pwd","cwd":7}'], /Invalid cwd/],
      [['{"command":"pwd","cwd":"/a\\u0000b"}'], /NUL/],
      [["--cwd", "/x", '{"command":"pwd"}'], /--cwd applies only to the form/],
    ] as const
  ) {
    const r = await runCli(["enqueue", ...args], { db });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
  assert.deepEqual(await runCliJson(["list"], { db }), []);
});
