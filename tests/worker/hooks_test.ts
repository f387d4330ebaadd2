/**
 * Completion hooks (issue 16.4) with a real worker: hook_completed, hook_dead and hook_drained run
 * after the outcome is committed with the QUEUECTL_* variables and without queuectl's credentials;
 * a failing or hanging hook is logged (and terminated after hook_timeout) and changes nothing.
 */
import assert from "node:assert/strict";
import { MAX_RUNNING_HOOKS } from "../../src/worker/hooks.ts";
import { startCli } from "../helpers/cli_process.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";
import { admin, PG_URL, postgresAvailability } from "../helpers/postgres.ts";

const { ignore: noPg } = await postgresAvailability("hooks");

Deno.test("hooks: completed, dead and drained run with the job's variables; failures change nothing", async () => {
  await using dir = await tempDir();
  await completedDeadDrained(dir.file("q.db"), dir);
});

Deno.test({
  name:
    "hooks on PostgreSQL: completed, dead and drained; the database URL is not in their environment",
  ignore: noPg,
  fn: async () => {
    const schema = `qh_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
    await using dir = await tempDir();
    const sql = admin();
    try {
      await completedDeadDrained(
        `${PG_URL}${PG_URL.includes("?") ? "&" : "?"}schema=${schema}`,
        dir,
      );
    } finally {
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await sql.end();
    }
  },
});

async function completedDeadDrained(db: string, dir: { file(name: string): string }) {
  const log = dir.file("hooks.log");
  const ok = async (args: string[]) => {
    const r = await runCli(args, { db });
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  };
  const line = (what: string) =>
    `echo "${what} $QUEUECTL_EVENT id=$QUEUECTL_JOB_ID q=$QUEUECTL_QUEUE state=$QUEUECTL_STATE ` +
    `exit=$QUEUECTL_EXIT_CODE attempts=$QUEUECTL_ATTEMPTS ms=$QUEUECTL_DURATION_MS ` +
    `cmd=$QUEUECTL_COMMAND db=\${QUEUECTL_DB:-hidden}" >> '${log}'`;
  await ok(["config", "set", "hook_completed", line("hook")]);
  await ok(["config", "set", "hook_dead", `${line("hook")}; echo boom >&2; exit 3`]);
  await ok(["config", "set", "hook_drained", `echo "drained $QUEUECTL_QUEUE" >> '${log}'`]);
  await ok(["enqueue", '{"id":"good","command":"echo hi","queue":"a"}']);
  await ok(["enqueue", '{"id":"bad","command":"exit 7","queue":"b","max_retries":0}']);

  const r = await runCli(["worker", "start", "--count", "1", "--until-empty"], { db });
  assert.equal(r.code, 6, r.stderr); // a job went to the DLQ during the run
  const output = r.stdout + r.stderr;
  assert.match(output, /hook_dead for bad failed: exit code 3: boom \(the job's outcome stands\)/);

  const lines = (await Deno.readTextFile(log)).trim().split("\n").sort();
  assert.ok(
    lines.includes(
      "hook completed id=good q=a state=completed exit=0 attempts=1 " +
        `ms=${
          lines.find((l) => l.includes("id=good"))?.match(/ms=(\d+)/)?.[1]
        } cmd=echo hi db=hidden`,
    ),
    lines.join("\n"),
  );
  assert.ok(
    lines.some((l) =>
      /^hook dead id=bad q=b state=dead exit=7 attempts=1 ms=\d+ cmd=exit 7 db=hidden$/.test(l)
    ),
    lines.join("\n"),
  );
  assert.ok(lines.includes("drained a"), lines.join("\n"));
  assert.ok(lines.includes("drained b"), lines.join("\n"));
  assert.equal(lines.length, 4, lines.join("\n"));
  const states = await runCliJson<{ id: string; state: string }[]>(["list"], { db });
  assert.deepEqual(states.map((j) => [j.id, j.state]).sort(), [
    ["bad", "dead"],
    ["good", "completed"],
  ]);
}

Deno.test("hooks: a hook past hook_timeout is terminated and logged; the job stays completed", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const ok = async (args: string[]) => {
    const r = await runCli(args, { db });
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  };
  await ok(["config", "set", "hook_completed", "sleep 30"]);
  await ok(["config", "set", "hook_timeout", "300ms"]);
  await ok(["enqueue", '{"id":"j","command":"true"}']);
  const started = performance.now();
  const r = await runCli(["worker", "start", "--count", "1", "--until-empty"], { db });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /hook_completed for j failed: timed out after 300ms/);
  assert.ok(performance.now() - started < 20_000, "the worker did not wait for the sleep");
  const job = await runCliJson<{ state: string }>(["show", "j"], { db });
  assert.equal(job.state, "completed");
  const bad = await runCli(["config", "set", "hook_timeout", "0"], { db });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Cannot set 'hook_timeout'/);
});

/**
 * `n` jobs `true` (ids j0...) in `db`, and a hook_completed that marks its start (`+ id`) in the
 * returned log file, then waits until `open()` is called and marks its end (`- id`). A gate, not a
 * sleep: on a machine where each job takes longer to spawn, hooks of a fixed length ended before
 * 16 were running, and the limit was never reached.
 */
async function fastJobsSlowHooks(
  db: string,
  dir: { file(name: string): string },
  n: number,
): Promise<{ log: string; ids: string[]; open: () => Promise<void> }> {
  const log = dir.file("hooks.log");
  const gate = dir.file("hooks.gate");
  // The wait is bounded (60 s): a test that fails before it opens the gate leaves no hook polling
  // a removed directory for ever.
  const hook = `echo "+ $QUEUECTL_JOB_ID" >> '${log}'; i=0; ` +
    `while [ ! -e '${gate}' ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i + 1)); done; ` +
    `echo "- $QUEUECTL_JOB_ID" >> '${log}'`;
  const set = await runCli(["config", "set", "hook_completed", hook], { db });
  assert.equal(set.code, 0, set.stderr);
  const ids = Array.from({ length: n }, (_, i) => `j${i}`);
  const jobs = ids.map((id) => JSON.stringify({ id, command: "true" })).join("\n") + "\n";
  await Deno.writeTextFile(dir.file("jobs.jsonl"), jobs);
  const enq = await runCli(["enqueue", "--file", dir.file("jobs.jsonl")], { db });
  assert.equal(enq.code, 0, enq.stderr);
  return { log, ids: ids.sort(), open: () => Deno.writeTextFile(gate, "") };
}

Deno.test("hooks: a worker runs at most 16 at once; the next job waits for one to end, none is lost", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const { log, ids, open } = await fastJobsSlowHooks(db, dir, 50);
  await using worker = startCli(["worker", "start", "--count", "1", "--until-empty"], { db });
  await worker.waitForOutput(/16 hooks running, the most a worker runs at once/, 30_000);
  // 16 hooks wait at the gate, and the next job for one of them to end.
  await waitFor(async () => (await Deno.readTextFile(log)).trim().split("\n").length === 16);
  await open();
  assert.equal((await worker.status).code, 0, worker.stderr());
  const lines = (await Deno.readTextFile(log)).trim().split("\n");
  let running = 0;
  let most = 0;
  for (const line of lines) {
    running += line.startsWith("+") ? 1 : -1;
    most = Math.max(most, running);
  }
  // Before, every job's hook started at once: 50 here.
  assert.ok(most <= 16, `${most} hooks ran at once`);
  const started = lines.filter((l) => l.startsWith("+")).map((l) => l.slice(2)).sort();
  const ended = lines.filter((l) => l.startsWith("-")).map((l) => l.slice(2)).sort();
  assert.deepEqual(started, ids, "each job's hook ran once");
  assert.deepEqual(ended, ids);
  const status = await runCliJson<{ counts: { completed: number } }>(["status"], { db });
  assert.equal(status.counts.completed, 50);
});

Deno.test("hooks: a worker stopped while its hooks hold its next job back claims nothing more and runs every hook it owes", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const { log, open } = await fastJobsSlowHooks(db, dir, 40);
  await using worker = startCli(["worker", "start", "--count", "1"], { db });
  await worker.waitForOutput(/16 hooks running, the most a worker runs at once/, 30_000);
  worker.kill("SIGTERM");
  // The gate opens once the worker has the stop (the supervisor relays it): opened before, a hook
  // could end and free a slot for a claim while the stop was still on its way.
  await worker.waitForOutput(/\[worker \S+\] stopping \(asked by the supervisor\)/, 30_000);
  await open();
  assert.equal((await worker.status).code, 0, worker.stderr());
  const status = await runCliJson<{ counts: Record<string, number> }>(["status"], { db });
  const { completed, pending, processing } = status.counts;
  // When it said so, 16 hooks ran and the last outcome's waited: no job was claimed after that.
  assert.ok(completed <= MAX_RUNNING_HOOKS + 1, `${completed} jobs completed`);
  assert.equal(completed + pending, 40, "no job lost or left running");
  assert.equal(processing, 0);
  // Every completed job's hook ran to its end before the worker exited, the one that waited too.
  const lines = (await Deno.readTextFile(log)).trim().split("\n");
  assert.equal(lines.filter((l) => l.startsWith("+")).length, completed);
  assert.equal(lines.filter((l) => l.startsWith("-")).length, completed);
});
