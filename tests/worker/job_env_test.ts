/**
 * A job's environment (issue 14.3) through the real CLI and real workers: the worker's environment,
 * the job's own `--env` / "env" on top, queuectl's variables last (job id, attempt, queue, worker
 * slot); bad --env / "env" input refused with one line, nothing enqueued.
 */
import assert from "node:assert/strict";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";

interface JobJson {
  state: string;
  env: Record<string, string> | null;
  stdout: string;
}

const PRINT = `printf '%s|' "$A" "$FROM_CALLER" "$B" "$OVER" "$INHERITED" "$QUEUECTL_JOB_ID" ` +
  `"$QUEUECTL_ATTEMPT" "$QUEUECTL_QUEUE"`;

Deno.test("a job gets the worker's environment, its own env on top, then queuectl's variables", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const enq = async (args: string[], env: Record<string, string> = {}) => {
    const r = await runCli(["enqueue", ...args], { db, env });
    assert.equal(r.code, 0, r.stderr);
  };
  await enq(
    [
      "--id",
      "flags",
      "--queue",
      "q1",
      "--env",
      "A=1",
      "--env",
      "FROM_CALLER",
      "--env",
      "B=x y=z 'é'",
      "--env",
      "OVER=job",
      "--",
      "sh",
      "-c",
      PRINT,
    ],
    { FROM_CALLER: "caller's value" },
  );
  await enq([JSON.stringify({ id: "json", command: PRINT, env: { A: "", OVER: "json" } })]);
  await enq([JSON.stringify({ id: "none", command: PRINT })]);
  const w = await runCli([
    "worker",
    "start",
    "--until-empty",
    "--queue",
    "q1",
    "--queue",
    "default",
  ], {
    db,
    env: { INHERITED: "from the worker", OVER: "worker" },
  });
  assert.equal(w.code, 0, w.stderr + w.stdout);

  const show = (id: string) => runCliJson<JobJson>(["show", id], { db });
  const flags = await show("flags");
  assert.deepEqual(flags.env, {
    A: "1",
    FROM_CALLER: "caller's value",
    B: "x y=z 'é'",
    OVER: "job",
  });
  assert.equal(flags.stdout, "1|caller's value|x y=z 'é'|job|from the worker|flags|1|q1|");
  const json = await show("json");
  assert.deepEqual(json.env, { A: "", OVER: "json" });
  assert.equal(json.stdout, "|||json|from the worker|json|1|default|");
  const none = await show("none");
  assert.equal(none.env, null);
  assert.equal(none.stdout, "|||worker|from the worker|none|1|default|");
  const text = await runCli(["show", "flags"], { db });
  assert.match(
    text.stdout,
    /^environment +A=1 FROM_CALLER='caller'\\''s value' B='x y=z '\\''é'\\''' OVER=job$/m,
  );
});

Deno.test("QUEUECTL_WORKER_SLOT is the worker's slot in its supervisor, 0..count-1", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) {
    const r = await runCli(
      ["enqueue", "--id", `s${i}`, "--", "sh", "-c", 'printf %s "$QUEUECTL_WORKER_SLOT"'],
      { db },
    );
    assert.equal(r.code, 0, r.stderr);
    ids.push(`s${i}`);
  }
  const w = await runCli(["worker", "start", "--count", "3", "--until-empty"], { db });
  assert.equal(w.code, 0, w.stderr);
  for (const id of ids) {
    // Which worker ran it is in the log: `[worker <supervisor>.N] started <id>`; its slot is N - 1.
    const m = w.stdout.match(new RegExp(`^\\[worker [0-9a-f]+\\.(\\d)\\] started ${id}:`, "m"));
    assert.ok(m, `no start line for ${id} in\n${w.stdout}`);
    const job = await runCliJson<JobJson>(["show", id], { db });
    assert.equal(job.stdout, String(Number(m[1]) - 1), id);
  }
});

Deno.test("enqueue refuses bad --env and env with one line and enqueues nothing", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const cases: [string[], RegExp, string?][] = [
    [["--env", "NOT_SET_ANYWHERE_42", "--", "true"], /--env NOT_SET_ANYWHERE_42: no such variable/],
    [["--env", "1A=x", "--", "true"], /Invalid --env: variable name "1A"/],
    [["--env", "=x", "--", "true"], /Invalid --env: variable name ""/],
    [["--env", "A-B=x", "--", "true"], /Invalid --env: variable name "A-B"/],
    [["--env", "QUEUECTL_JOB_ID=x", "--", "true"], /QUEUECTL_JOB_ID is set by queuectl/],
    [["--env", "A=1", '{"command":"true"}'], /--env applies only to the form/],
    [['{"command":"true","env":"A=1"}'], /Invalid env: expected an object/],
    [['{"command":"true","env":["A"]}'], /Invalid env: expected an object/],
    [['{"command":"true","env":{"A":1}}'], /Invalid env: A must be a string/],
    [['{"command":"true","env":{"A":null}}'], /Invalid env: A must be a string/],
    [['{"command":"true","env":{"A":"x\\u0000y"}}'], /Invalid env: A contains a NUL/],
    [['{"command":"true","env":{"QUEUECTL_WORKER_SLOT":"3"}}'], /QUEUECTL_WORKER_SLOT is set by/],
    [
      ["--file", "-"],
      /Invalid env: more than 131072 bytes/,
      JSON.stringify({ command: "true", env: { A: "x".repeat(140_000) } }),
    ],
  ];
  for (const [args, pattern, stdin] of cases) {
    const r = await runCli(["enqueue", ...args], { db, stdin });
    assert.equal(r.code, 2, `${args.join(" ").slice(0, 60)}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
  assert.deepEqual(await runCliJson(["list"], { db }), []);
});
