/**
 * Workers through the real CLI and real subprocesses: `worker start` (foreground, --until-empty,
 * --detach), `worker stop`, `worker list`, crashes and signals. Conditions are polled with
 * deadlines, never slept for.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { type CliProcess, isRunning, startCli } from "../helpers/cli_process.ts";
import { cliArgv, runCli, runCliJson } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

interface JobJson {
  id: string;
  state: string;
  attempts: number;
  exit_code: number | null;
  error: string | null;
}

interface WorkerJson {
  id: string;
  pid: number;
  host: string;
  queues: string[] | null;
  started_at: string;
  heartbeat_at: string;
  current_job: string | null;
}

async function ok(args: string[], db: string): Promise<string> {
  const r = await runCli(args, { db });
  assert.equal(r.code, 0, `queuectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

const show = (id: string, db: string) => runCliJson<JobJson>(["show", id], { db });
const workers = (db: string) => runCliJson<WorkerJson[]>(["worker", "list"], { db });

/** Log lines `<iso> [worker N] text` → {at, text}. */
function parseLog(text: string): { at: number; text: string }[] {
  return text.split("\n").filter((l) => l.trim()).map((l) => {
    const space = l.indexOf(" ");
    return { at: Date.parse(l.slice(0, space)), text: l.slice(space + 1) };
  });
}

async function stopAndWait(p: CliProcess): Promise<Deno.CommandStatus> {
  p.kill("SIGTERM");
  return await p.status;
}

Deno.test("worker start streams one line per event and --until-empty exits 0 when all succeed", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  await ok(["enqueue", '{"id":"job1","command":"echo Hello"}'], db);
  const r = await runCli(["worker", "start", "--until-empty"], { db });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\[worker [0-9a-f]+\.1\] started job1: echo Hello$/m);
  assert.match(r.stdout, /^\[worker [0-9a-f]+\.1\] completed job1 \(\d+\.\d\ds\)$/m);
  assert.equal((await show("job1", db)).state, "completed");
  assert.deepEqual(await workers(db), [], "workers unregister when they exit");
});

Deno.test("worker start whose stdout nobody reads runs every job and exits; then the lines come", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  // About 150 bytes of log lines a job: far more than a pipe holds (64 KiB).
  const lines = Array.from({ length: 1500 }, () => '{"command":"true"}').join("\n");
  await Deno.writeTextFile(dir.file("jobs.jsonl"), lines + "\n");
  await ok(["enqueue", "--file", dir.file("jobs.jsonl")], db);
  const child = new Deno.Command(Deno.execPath(), {
    args: cliArgv(["worker", "start", "--count", "2", "--until-empty"]),
    env: { NO_COLOR: "1", INIT_CWD: "", QUEUECTL_DB: db },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    // Nothing reads the pipe yet: with a write that waits for the reader, the workers stopped
    // once it was full, 400-500 jobs in, until it was read.
    await waitFor(async () =>
      (await runCliJson<{ counts: { completed: number } }>(
        ["status"],
        { db },
      )).counts.completed === 1500, { timeoutMs: 60_000, what: "every job completed" });
    const text = await new Response(child.stdout).text();
    assert.equal((await child.status).code, 0);
    // Lines were queued, not lost, while the pipe was full (1 MiB may wait).
    assert.equal(text.match(/\] completed /g)?.length, 1500);
    assert.match(text, /stopping \(the queue is empty\)/);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // exited
    }
    await child.stdout.cancel().catch(() => {});
    await child.status;
  }
});

Deno.test("seed scenario: backoff_base ^ n delays observed, DLQ after 1 + max_retries runs, per-job max_retries, dlq restore", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const log = dir.file("workers.log");
  await ok(["config", "set", "backoff_base", "1.5"], db);
  await ok(["config", "set", "max_retries", "2"], db);
  await ok(["enqueue", '{"id":"ok1","command":"echo Hello"}'], db);
  await ok(["enqueue", '{"id":"bad","command":"idontexist123"}'], db);
  await ok(["enqueue", '{"id":"once","command":"exit 1","max_retries":0}'], db);

  const r = await runCli(["worker", "start", "--count", "2", "--until-empty", "--log", log], {
    db,
  });
  assert.equal(r.code, 6, `exit 6 when a job reached the DLQ: ${r.stderr}`);
  const lines = parseLog(await Deno.readTextFile(log));

  assert.equal((await show("ok1", db)).state, "completed");
  const bad = await show("bad", db);
  assert.equal(bad.state, "dead");
  assert.equal(bad.attempts, 3, "1 + max_retries (config) runs");
  assert.equal(bad.exit_code, 127);
  const once = await show("once", db);
  assert.equal(once.state, "dead");
  assert.equal(once.attempts, 1, "per-job max_retries 0 overrides config max_retries 2");

  const starts = lines.filter((l) => /\] started bad\b/.test(l.text));
  const fails = lines.filter((l) => /\] failed bad \(exit 127\), retry \d\/2 in/.test(l.text));
  assert.equal(starts.length, 3, lines.map((l) => l.text).join("\n"));
  assert.equal(fails.length, 2);
  assert.ok(lines.some((l) => /\] bad moved to DLQ \(exit 127, 3 attempts\)$/.test(l.text)));
  // Retry n starts backoff_base ^ n seconds after failure n (observed from the log timestamps).
  for (const [n, expected] of [[1, 1500], [2, 2250]]) {
    const waited = starts[n].at - fails[n - 1].at;
    assert.ok(
      waited >= expected - 50 && waited <= expected + 750,
      `retry ${n} started ${waited} ms after the failure, expected ~${expected} ms`,
    );
  }

  await ok(["dlq", "restore", "bad"], db);
  const restored = await show("bad", db);
  assert.equal(restored.state, "pending");
  assert.equal(restored.attempts, 0, "a fresh retry budget");
});

Deno.test("4 workers, 2,000 jobs appending their id to one file: every id exactly once", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const out = dir.file("ids.txt");
  const n = 2000;
  const jobs = Array.from(
    { length: n },
    (_, i) => JSON.stringify({ id: `j${i}`, command: `echo "$QUEUECTL_JOB_ID" >> '${out}'` }),
  ).join("\n");
  await Deno.writeTextFile(dir.file("jobs.jsonl"), jobs);
  await ok(["enqueue", "--file", dir.file("jobs.jsonl")], db);

  const r = await runCli(["worker", "start", "--count", "4", "--until-empty"], { db });
  assert.equal(r.code, 0, r.stderr);
  const ids = (await Deno.readTextFile(out)).trim().split("\n");
  assert.equal(ids.length, n, "no job ran twice");
  assert.equal(new Set(ids).size, n, "every job ran");
  const status = await runCliJson<{ counts: Record<string, number> }>(["status"], { db });
  assert.equal(status.counts.completed, n);
  const perWorker = new Map<string, number>();
  for (const m of r.stdout.matchAll(/^\[worker [0-9a-f]+\.(\d)\] completed /gm)) {
    perWorker.set(m[1], (perWorker.get(m[1]) ?? 0) + 1);
  }
  assert.equal([...perWorker.values()].reduce((a, b) => a + b, 0), n);
  assert.equal(perWorker.size, 4, "all four workers took jobs");
});

Deno.test("SIGKILL of a worker mid-job: the supervisor restarts it and the job completes later", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const marker = dir.file("marker");
  const out = dir.file("out");
  await ok(["config", "set", "lease", "2"], db);
  await ok(["config", "set", "backoff_base", "1"], db);
  // First run: leave a marker and hang; the second run finishes.
  const command =
    `if [ -e '${marker}' ]; then echo "run $QUEUECTL_ATTEMPT" >> '${out}'; else touch '${marker}'; sleep 5; fi`;
  await ok(["enqueue", JSON.stringify({ id: "victim", command })], db);

  await using sup = startCli(["worker", "start", "--count", "1"], { db });
  await sup.waitForOutput(/\] started victim/);
  const [holder] = await waitFor(async () => {
    const ws = (await workers(db)).filter((w) => w.current_job === "victim");
    return ws.length ? ws : null;
  }, { what: "the worker holding the job" });
  Deno.kill(holder.pid, "SIGKILL");

  await sup.waitForOutput(
    /worker [0-9a-f]+\.1 \(pid \d+\) was killed by SIGKILL unexpectedly; restarting/,
  );
  await sup.waitForOutput(/rescued victim from lost worker/, 20_000);
  await waitFor(async () => (await show("victim", db)).state === "completed", {
    timeoutMs: 20_000,
    what: "the rescued job to complete",
  });
  const job = await show("victim", db);
  assert.equal(job.attempts, 2, "the lost run counted as one attempt");
  assert.equal(await Deno.readTextFile(out), "run 2\n");
  assert.equal((await stopAndWait(sup)).code, 0);
});

Deno.test("two supervisors on one database: one runs the maintenance; it resigns on stop, the other takes over", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  await ok(["status"], db);
  const row = <T>(sql: string, ...params: (string | number)[]): T | undefined => {
    const sqlite = new DatabaseSync(db, { readOnly: true });
    try {
      return sqlite.prepare(sql).get(...params) as T | undefined;
    } finally {
      sqlite.close();
    }
  };
  /** The holder of the maintenance lease (SQLite: the leaders table). */
  const leader = () =>
    row<{ holder: string }>("SELECT holder FROM leaders WHERE name = 'maintenance'")?.holder;
  const supervisorId = (pid: number) =>
    waitFor(
      () =>
        row<{ id: string }>("SELECT id FROM workers WHERE pid = ? AND supervisor_id IS NULL", pid)
          ?.id,
      { what: `supervisor ${pid} to register` },
    );
  // Lease 30 s: candidates try every 10 s, a lease left to expire would take 30.
  await using a = startCli(["worker", "start"], { db });
  const idA = await supervisorId(a.pid);
  await using b = startCli(["worker", "start"], { db });
  const idB = await supervisorId(b.pid);
  await waitFor(() => leader() === idA, { what: "the first supervisor to lead" });
  await b.waitForOutput(/\[supervisor [0-9a-f]+\] starting 1 worker/);

  const stoppedAt = performance.now();
  assert.equal((await stopAndWait(a)).code, 0, a.stdout());
  assert.notEqual(leader(), idA, "the stopping leader resigned");
  await b.waitForOutput(/^\[maintenance\] took over the maintenance duties$/m, 20_000);
  assert.equal(leader(), idB);
  const tookMs = performance.now() - stoppedAt;
  assert.ok(tookMs < 15_000, `taken over after ${Math.round(tookMs)} ms, not at the next try`);
  assert.doesNotMatch(a.stdout(), /\[maintenance\] took over/);
  assert.equal((await stopAndWait(b)).code, 0, b.stdout());
});

Deno.test("SIGKILL of the supervisor: its workers do not run on (busy one releases its job after the lease)", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  await ok(["config", "set", "lease", "2"], db);
  await ok(["enqueue", '{"id":"long","command":"sleep 60"}'], db);
  await using sup = startCli(["worker", "start", "--count", "2"], { db });
  await sup.waitForOutput(/\] started long/);
  const pids = await waitFor(async () => {
    const ws = await workers(db);
    return ws.length === 2 ? ws.map((w) => w.pid) : null;
  }, { what: "two workers registered" });
  sup.kill("SIGKILL");
  await waitFor(() => pids.every((pid) => !isRunning(pid)), {
    timeoutMs: 15_000,
    what: "orphaned workers to exit",
  });
  const job = await show("long", db);
  assert.equal(
    job.state,
    "pending",
    `terminated and released, not left processing\n${sup.stdout()}\n${sup.stderr()}`,
  );
  assert.equal(job.attempts, 0, "without consuming a retry");
  assert.match(sup.stdout(), /supervisor is gone/);
});

Deno.test("SIGTERM during two long jobs: both complete once, everyone exits 0", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const out = dir.file("out");
  for (const id of ["a", "b"]) {
    await ok([
      "enqueue",
      JSON.stringify({ id, command: `sleep 1; echo "$QUEUECTL_JOB_ID" >> '${out}'` }),
    ], db);
  }
  await using sup = startCli(["worker", "start", "--count", "2"], { db });
  await sup.waitForOutput(/started a[\s\S]*started b|started b[\s\S]*started a/);
  const status = await stopAndWait(sup);
  assert.equal(status.code, 0, sup.stdout() + sup.stderr());
  assert.equal((await show("a", db)).state, "completed");
  assert.equal((await show("b", db)).state, "completed");
  assert.deepEqual((await Deno.readTextFile(out)).trim().split("\n").sort(), ["a", "b"]);
  assert.doesNotMatch(sup.stdout(), /exited with code|killed by/);
  assert.deepEqual(await workers(db), []);
});

Deno.test({
  name: "Ctrl-C (SIGINT to the whole process group) is one graceful stop: the job finishes",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const running = dir.file("running");
    await ok(["enqueue", JSON.stringify({ id: "a", command: `touch '${running}'; sleep 1` })], db);
    // setsid: the supervisor leads its own process group, like a shell's foreground job.
    await using sup = startCli(["worker", "start", "--count", "2"], { db, via: ["setsid"] });
    // Wait until the job's shell runs (in its own session by then), not just until it is spawned.
    await waitFor(() => Deno.stat(running).then(() => true, () => false), { what: "job start" });
    Deno.kill(-sup.pid, "SIGINT");
    const status = await sup.status;
    assert.equal(status.code, 0, sup.stdout() + sup.stderr());
    const job = await show("a", db);
    assert.equal(job.state, "completed", sup.stdout());
    assert.doesNotMatch(sup.stdout(), /stopping now|released/);
  },
});

Deno.test({
  name: "a job's kill 0 (SIGTERM to its process group) does not stop its worker",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    // Workers spawn jobs in their own process group (session mode): `kill 0` reaches the worker.
    await using dir = await tempDir();
    const db = dir.file("q.db");
    await ok(["enqueue", `{"id":"k","command":"trap '' TERM; kill 0; echo survived"}`], db);
    await ok(["enqueue", '{"id":"after","command":"echo after"}'], db);
    const r = await runCli(["worker", "start", "--count", "1", "--until-empty"], { db });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await show("k", db)).state, "completed");
    assert.equal((await show("after", db)).state, "completed", r.stdout);
    assert.doesNotMatch(r.stdout, /\[worker [0-9a-f]+\.1\] stopping \(SIGTERM/);
    assert.match(r.stdout, /\[worker [0-9a-f]+\.1\] completed after/);
  },
});

Deno.test({
  name: "a supervised worker runs its jobs in its own session, without a session of their own",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    // The supervisor starts its workers in sessions of their own, which each worker sees in
    // /proc/self/stat: jobs are spawned plainly (session mode), so a job's session and group are
    // its worker's pid.
    await using dir = await tempDir();
    const db = dir.file("q.db");
    await ok(["enqueue", '{"id":"s","command":"echo $PPID $(ps -o sid=,pgid= -p $$)"}'], db);
    const r = await runCli(["worker", "start", "--count", "1", "--until-empty"], { db });
    assert.equal(r.code, 0, r.stderr);
    const out = (await runCli(["logs", "s"], { db })).stdout.trim().split(/\s+/).map(Number);
    assert.equal(out.length, 3, String(out));
    const [worker, sid, pgid] = out;
    assert.ok(worker > 0);
    assert.deepEqual([sid, pgid], [worker, worker]);
  },
});

Deno.test("worker start --detach returns at once; worker list shows the workers; worker stop stops them", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const r = await runCli(["worker", "start", "--detach", "--count", "2"], { db });
  assert.equal(r.code, 0, r.stderr);
  const supPid = Number(r.stdout.match(/supervisor pid (\d+)/)?.[1]);
  assert.ok(
    isRunning(supPid),
    `${r.stdout}\n${await Deno.readTextFile(dir.file("q.db-worker.log")).catch(String)}`,
  );
  try {
    assert.match(r.stdout, new RegExp(`log: ${dir.file("q.db-worker.log")}`));
    const list = await workers(db);
    assert.equal(list.length, 2);
    for (const w of list) {
      assert.ok(isRunning(w.pid));
      assert.equal(w.current_job, null);
      assert.equal(w.queues, null);
      assert.equal(new Date(w.heartbeat_at).toISOString(), w.heartbeat_at);
      assert.equal(typeof w.host, "string");
    }
    await ok(["enqueue", '{"id":"bg","command":"echo from the background"}'], db);
    await waitFor(async () => (await show("bg", db)).state === "completed", {
      what: "the detached workers to run the job",
    });
    assert.match(await Deno.readTextFile(dir.file("q.db-worker.log")), /\] completed bg/);

    const stop = await runCli(["worker", "stop"], { db });
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /stopped 2 workers/);
    assert.ok(!isRunning(supPid) && list.every((w) => !isRunning(w.pid)), "all processes gone");
    assert.deepEqual(await workers(db), []);
    assert.match((await runCli(["worker", "stop"], { db })).stdout, /no workers running/);
  } finally {
    if (isRunning(supPid)) Deno.kill(supPid, "SIGKILL");
  }
});

Deno.test("worker logs: two supervisors' workers read apart; a detached stop mentions no Ctrl-C", async (t) => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const log = dir.file("shared.log");

  await t.step("two supervisors on one database and one log file", async () => {
    await ok(["enqueue", '{"id":"ja","queue":"a","command":"true"}'], db);
    await ok(["enqueue", '{"id":"jb","queue":"b","command":"true"}'], db);
    const runs = await Promise.all(
      ["a", "b"].map((q) =>
        runCli(["worker", "start", "--until-empty", "--queue", q, "--log", log], { db })
      ),
    );
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const lines = parseLog(await Deno.readTextFile(log)).map((l) => l.text);
    const supervisors = lines.flatMap((l) => /^\[supervisor (\S+)\] starting/.exec(l)?.[1] ?? []);
    assert.equal(new Set(supervisors).size, 2, lines.join("\n"));
    const started = (id: string) =>
      lines.flatMap((l) => new RegExp(`^\\[worker (\\S+)\\] started ${id}:`).exec(l)?.[1] ?? []);
    const [la, lb] = [started("ja"), started("jb")];
    assert.equal(la.length, 1);
    assert.equal(lb.length, 1);
    assert.notEqual(la[0], lb[0], "each supervisor's worker 1 has its own name");
    for (const label of [la[0], lb[0]]) {
      const [sup, n] = label.split(".");
      assert.ok(supervisors.includes(sup), `${label}: named after its supervisor`);
      assert.equal(n, "1");
    }
  });

  await t.step("a detached supervisor stopped by `worker stop`", async () => {
    const detachedLog = dir.file("detached.log");
    const r = await runCli(["worker", "start", "--detach", "--log", detachedLog], { db });
    assert.equal(r.code, 0, r.stderr);
    const supPid = Number(r.stdout.match(/supervisor pid (\d+)/)?.[1]);
    try {
      await waitFor(async () => (await workers(db)).length === 1, { what: "the worker to run" });
      const stop = await runCli(["worker", "stop"], { db });
      assert.equal(stop.code, 0, stop.stderr);
      const text = await Deno.readTextFile(detachedLog);
      assert.doesNotMatch(text, /Ctrl-C/);
      assert.match(
        text,
        /stopping \((SIGTERM received; `queuectl worker stop --force` terminates running jobs|stop requested)\): 1 worker finishing its job$/m,
      );
    } finally {
      if (isRunning(supPid)) Deno.kill(supPid, "SIGKILL");
    }
  });
});

Deno.test("--until-empty says what scheduled jobs it waits for; --horizon stops at jobs due later", async (t) => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  await ok(["enqueue", '{"id":"now","command":"true"}'], db);
  await ok(["enqueue", '{"id":"later","command":"true","delay":"5m"}'], db);
  const due = Date.parse(
    (await runCliJson<{ run_at: string }>(["show", "later"], { db })).run_at,
  );

  await t.step("status and list show the scheduled job with its run time", async () => {
    const status = await ok(["status"], db);
    assert.match(
      status,
      new RegExp(
        `^scheduled: 1 \\(.*the next at ${new Date(due).toISOString()}, in 4m\\d+s\\)$`,
        "m",
      ),
    );
    const list = await ok(["list"], db);
    assert.match(list, /^later +pending \(scheduled, runs in 4m\d+s\) /m);
    assert.match(list, /^now +pending +default/m);
    const json = await runCliJson<{ next_scheduled_at: string }>(["status"], { db });
    assert.equal(json.next_scheduled_at, new Date(due).toISOString());
  });

  await t.step(
    "without --horizon it runs what is due, then says it waits, and until when",
    async () => {
      await using sup = startCli(["worker", "start", "--until-empty"], { db });
      await sup.waitForOutput(
        new RegExp(
          `--until-empty: waiting for 1 scheduled job .*the next is due at ${
            new Date(due).toISOString().replace(/\./g, "\\.")
          } \\(in 4m\\d+s\\)`,
        ),
      );
      // The worker's line reaches stdout through the supervisor, maybe after the supervisor's own.
      await sup.waitForOutput(/\] completed now /);
      assert.equal((await stopAndWait(sup)).code, 0);
    },
  );

  await t.step("--horizon 10s exits at once, leaving the later job", async () => {
    const r = await runCli(["worker", "start", "--until-empty", "--horizon", "10s"], { db });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /stopping \(nothing is due within --horizon 10s: 1 job scheduled from \S+ left in the queue\)/,
    );
    assert.equal((await show("later", db)).state, "pending");
  });

  await t.step("--horizon needs --until-empty and a duration", async () => {
    for (const args of [["--horizon", "10s"], ["--until-empty", "--horizon", "soon"]]) {
      const r = await runCli(["worker", "start", ...args], { db });
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trimEnd().split("\n").length, 1);
      assert.match(r.stderr, /^error: .*--horizon/);
    }
  });
});

Deno.test("worker stop --force terminates a running job and returns it to pending, keeping its output", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  await ok(["enqueue", '{"id":"long","command":"echo before; echo oops >&2; sleep 60"}'], db);
  const r = await runCli(["worker", "start", "--detach"], { db });
  assert.equal(r.code, 0, r.stderr);
  const supPid = Number(r.stdout.match(/supervisor pid (\d+)/)?.[1]);
  try {
    await waitFor(async () => (await show("long", db)).state === "processing", {
      what: "the job to start",
    });
    // Live output: what it printed reaches the store while it runs.
    await waitFor(async () => (await runCli(["logs", "long"], { db })).stdout === "before\n", {
      what: "the running job's output in logs",
    });
    const started = performance.now();
    const stop = await runCli(["worker", "stop", "--force"], { db });
    assert.equal(stop.code, 0, stop.stderr);
    assert.ok(performance.now() - started < 15_000, "did not wait for the 60 s job");
    const job = await show("long", db);
    assert.equal(job.state, "pending");
    assert.equal(job.attempts, 0);
    assert.ok(!isRunning(supPid));
    assert.match(
      await Deno.readTextFile(dir.file("q.db-worker.log")),
      /released long back to pending/,
    );
    // The interrupted run is kept with its output.
    const logs = await runCli(["logs", "long"], { db });
    assert.deepEqual([logs.stdout, logs.stderr], ["before\n", "oops\n"]);
    const runs =
      (await show("long", db) as unknown as { runs: { outcome: string; stdout: string }[] }).runs;
    assert.deepEqual(runs.map((r) => [r.outcome, r.stdout]), [["interrupted", "before\n"]]);
  } finally {
    if (isRunning(supPid)) Deno.kill(supPid, "SIGKILL");
  }
});

Deno.test("worker start rejects bad flags with one error line and exit 2", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  for (const args of [["--count", "0"], ["--count", "x"], ["--queue", "bad queue!"]]) {
    const r = await runCli(["worker", "start", ...args], { db });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, /^error: .+\n$/);
  }
});
