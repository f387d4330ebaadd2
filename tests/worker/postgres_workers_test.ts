/**
 * Workers on PostgreSQL through the real CLI and real subprocesses: exactly-once without crashes,
 * SIGKILL recovery (a worker, a whole host), graceful stop, `worker stop` reaching a host it cannot
 * signal, and connection loss (connections killed, the database away for a while, away for too
 * long).
 *
 * Server: env QUEUECTL_TEST_PG_URL, default postgres://postgres@127.0.0.1:5432/test. Every test
 * works in its own fresh schema (`?schema=`), dropped afterwards. When the server is unreachable
 * the tests fail if CI is set, and are skipped (saying why) otherwise. The database is taken away
 * from the workers with a TCP proxy in the test process, never by stopping the server.
 */
import assert from "node:assert/strict";
import { Runner } from "../../src/worker/runner.ts";
import { openPostgresStore } from "../../src/store/postgres/mod.ts";
import { type CliProcess, isRunning, startCli } from "../helpers/cli_process.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { startTcpProxy } from "../helpers/tcp_proxy.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";
import {
  admin,
  PG_URL,
  postgresAvailability,
  targetOf,
  viaPort,
  withParams,
} from "../helpers/postgres.ts";

const { ignore } = await postgresAvailability("postgres workers");

interface Ctx {
  schema: string;
  /** queuectl's URL for this test's schema. */
  db: string;
  dir: { file(name: string): string };
  sql: ReturnType<typeof admin>;
}

function pgWorkerTest(name: string, fn: (t: Ctx) => Promise<void>): void {
  Deno.test({
    name: `postgres workers: ${name}`,
    ignore,
    fn: async () => {
      const schema = `qw_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
      await using dir = await tempDir();
      const sql = admin();
      try {
        await fn({ schema, db: withParams(PG_URL, { schema }), dir, sql });
      } finally {
        await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await sql.end();
      }
    },
  });
}

interface JobJson {
  id: string;
  state: string;
  attempts: number;
  exit_code: number | null;
}

interface WorkerJson {
  id: string;
  pid: number;
  host: string;
  current_job: string | null;
  alive: boolean;
}

async function ok(args: string[], db: string): Promise<string> {
  const r = await runCli(args, { db });
  assert.equal(r.code, 0, `queuectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

const workers = (db: string) => runCliJson<WorkerJson[]>(["worker", "list"], { db });
const counts = async (db: string) =>
  (await runCliJson<{ counts: Record<string, number> }>(["status"], { db })).counts;

/** The job as stored (read directly: polling through the CLI would start a process per look). */
async function jobRow(t: Ctx, id: string): Promise<JobJson | undefined> {
  const [row] = await t.sql.unsafe(
    `SELECT id, state, attempts, exit_code FROM "${t.schema}".jobs WHERE id = $1`,
    [id],
  );
  return row as unknown as JobJson | undefined;
}

async function stateCounts(t: Ctx): Promise<Record<string, number>> {
  const rows = await t.sql.unsafe(
    `SELECT state, count(*)::int AS n FROM "${t.schema}".jobs GROUP BY state`,
  );
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

/** The worker holding `jobId`'s lease (as `worker list` finds it). */
async function holders(t: Ctx, jobId: string): Promise<{ id: string; pid: number }[]> {
  const rows = await t.sql.unsafe(
    `SELECT w.id, w.pid FROM "${t.schema}".workers w JOIN "${t.schema}".jobs j
      ON j.lease_owner = w.id WHERE j.id = $1 AND j.state = 'processing'`,
    [jobId],
  );
  return rows.map((r) => ({ id: r.id as string, pid: r.pid as number }));
}

async function stopAndWait(p: CliProcess): Promise<Deno.CommandStatus> {
  p.kill("SIGTERM");
  return await p.status;
}

function output(p: CliProcess): string {
  return `--- stdout:\n${p.stdout()}\n--- stderr:\n${p.stderr()}`;
}

pgWorkerTest(
  "two supervisors (2 workers each), 1,000 jobs appending their id: every id exactly once",
  async (t) => {
    const { db, dir } = t;
    const out = dir.file("ids.txt");
    const n = 1000;
    const jobs = Array.from(
      { length: n },
      (_, i) => JSON.stringify({ id: `j${i}`, command: `echo "$QUEUECTL_JOB_ID" >> '${out}'` }),
    ).join("\n");
    await Deno.writeTextFile(dir.file("jobs.jsonl"), jobs);
    await ok(["enqueue", "--file", dir.file("jobs.jsonl")], db);

    // As on two machines: two independent supervisors on one queue.
    const [a, b] = await Promise.all([
      runCli(["worker", "start", "--count", "2", "--until-empty"], { db }),
      runCli(["worker", "start", "--count", "2", "--until-empty"], { db }),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const ids = (await Deno.readTextFile(out)).trim().split("\n");
    assert.equal(ids.length, n, "no job ran twice");
    assert.equal(new Set(ids).size, n, "every job ran");
    const done = (s: string) =>
      [...s.matchAll(/^\[worker [0-9a-f]+\.\d\] completed j\d+ /gm)].length;
    assert.equal(done(a.stdout) + done(b.stdout), n, "each completion logged once");
    assert.ok(done(a.stdout) > 0 && done(b.stdout) > 0, "both supervisors' workers took jobs");
    const c = await counts(db);
    assert.deepEqual([c.completed, c.pending, c.processing, c.failed, c.dead], [n, 0, 0, 0, 0]);
    assert.deepEqual(await workers(db), [], "every worker unregistered");
  },
);

/** A job that hangs on its first run (leaving a marker) and writes `run <attempt>` on the next. */
function hangsOnce(dir: Ctx["dir"]): { command: string; out: string } {
  const marker = dir.file("marker");
  const out = dir.file("out");
  return {
    command:
      `if [ -e '${marker}' ]; then echo "run $QUEUECTL_ATTEMPT" >> '${out}'; else touch '${marker}'; sleep 30; fi`,
    out,
  };
}

pgWorkerTest(
  "SIGKILL of a worker mid-job: restarted, the job is rescued after its lease and completes",
  async (t) => {
    const { db, dir } = t;
    await ok(["config", "set", "lease", "2"], db);
    await ok(["config", "set", "backoff_base", "1"], db);
    const { command, out } = hangsOnce(dir);
    await ok(["enqueue", JSON.stringify({ id: "victim", command })], db);

    await using sup = startCli(["worker", "start", "--count", "1"], { db });
    await sup.waitForOutput(/\] started victim/);
    const [holder] = await waitFor(async () => {
      const ws = await holders(t, "victim");
      return ws.length ? ws : null;
    }, { what: "the worker holding the job" });
    Deno.kill(holder.pid, "SIGKILL");

    await sup.waitForOutput(
      /worker [0-9a-f]+\.1 \(pid \d+\) was killed by SIGKILL unexpectedly; restarting/,
    );
    await sup.waitForOutput(/rescued victim from lost worker/, 20_000);
    await waitFor(async () => (await jobRow(t, "victim"))!.state === "completed", {
      timeoutMs: 20_000,
      what: "the rescued job to complete",
    });
    assert.equal((await jobRow(t, "victim"))!.attempts, 2, "the lost run counted as one attempt");
    assert.equal(await Deno.readTextFile(out), "run 2\n");
    assert.equal((await stateCounts(t)).processing, undefined, "nothing stays processing");
    assert.equal((await stopAndWait(sup)).code, 0, output(sup));
  },
);

pgWorkerTest(
  "a host dies (supervisor and worker SIGKILLed): a worker on another host rescues its job",
  async (t) => {
    const { db, dir } = t;
    await ok(["config", "set", "lease", "2"], db);
    await ok(["config", "set", "backoff_base", "1"], db);
    const { command, out } = hangsOnce(dir);
    await ok(["enqueue", JSON.stringify({ id: "victim", command })], db);

    const hostA = startCli(["worker", "start", "--count", "1"], { db });
    await hostA.waitForOutput(/\] started victim/);
    const [holder] = await waitFor(async () => {
      const ws = await holders(t, "victim");
      return ws.length ? ws : null;
    }, { what: "the worker holding the job" });
    // The machine goes down: every process at once, nobody unregisters or releases anything.
    Deno.kill(holder.pid, "SIGKILL");
    hostA.kill("SIGKILL");
    await hostA.status;
    assert.equal((await jobRow(t, "victim"))!.state, "processing");

    const hostB = await runCli(["worker", "start", "--count", "1", "--until-empty"], { db });
    assert.equal(hostB.code, 0, hostB.stderr);
    assert.match(hostB.stdout, /rescued victim from lost worker \S+: retry 1\/3 in /);
    const job = (await jobRow(t, "victim"))!;
    assert.equal(job.state, "completed");
    assert.equal(job.attempts, 2);
    assert.equal(await Deno.readTextFile(out), "run 2\n");
    assert.equal((await stateCounts(t)).processing, undefined, "nothing stays processing");
    // The dead host's worker is listed as not alive until its record is pruned.
    const listed = await workers(db);
    assert.deepEqual(listed.map((w) => [w.pid, w.alive]), [[holder.pid, false]]);
  },
);

pgWorkerTest(
  "SIGTERM during two long jobs: both complete once, everyone exits 0",
  async (t) => {
    const { db, dir } = t;
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
    assert.equal(status.code, 0, output(sup));
    assert.equal((await jobRow(t, "a"))!.state, "completed");
    assert.equal((await jobRow(t, "b"))!.state, "completed");
    assert.deepEqual((await Deno.readTextFile(out)).trim().split("\n").sort(), ["a", "b"]);
    assert.doesNotMatch(sup.stdout(), /exited with code|killed by/);
    assert.deepEqual(await workers(db), []);
  },
);

pgWorkerTest(
  "worker stop reaches a host it cannot signal through the database; worker list shows both hosts",
  async (t) => {
    const { db, schema, sql } = t;
    const local = Deno.hostname();
    await using hostA = startCli(["worker", "start", "--count", "1"], { db });
    await using hostB = startCli(["worker", "start", "--count", "1"], { db });
    const records = () =>
      sql.unsafe(`SELECT id, pid, supervisor_id FROM "${schema}".workers`).catch(() => []);
    await waitFor(async () => (await records()).length === 4, {
      what: "two supervisors, two workers",
    });
    // Pretend host B is another machine: `worker stop` here can neither see nor signal its pids.
    const supB = (await records()).find((r) => r.pid === hostB.pid)!;
    await sql.unsafe(
      `UPDATE "${schema}".workers SET host = 'host-b.internal' WHERE id = $1 OR supervisor_id = $1`,
      [supB.id],
    );
    assert.deepEqual(
      (await workers(db)).map((w) => w.host).sort(),
      [local, "host-b.internal"].sort(),
    );

    const stop = await runCli(["worker", "stop", "--timeout", "20s"], { db });
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /^stopped 2 workers$/m);
    assert.equal((await hostA.status).code, 0, output(hostA));
    assert.equal((await hostB.status).code, 0, output(hostB));
    // Host B learnt it from the stop request on its heartbeat, not from a signal.
    assert.match(hostB.stdout(), /^\[supervisor [0-9a-f]+\] stopping \(stop requested\)/m);
    assert.doesNotMatch(hostB.stdout(), /SIGTERM/);
    assert.equal((await records()).length, 0, "every record removed");
  },
);

pgWorkerTest(
  "worker connections killed mid-job (pg_terminate_backend): the outcome is still recorded",
  async (t) => {
    const { schema, dir, sql } = t;
    const tag = `queuectl_${schema}`;
    const db = withParams(PG_URL, { schema, application_name: tag });
    const out = dir.file("out");
    await ok(
      ["enqueue", JSON.stringify({ id: "j", command: `sleep 1; echo ran >> '${out}'` })],
      db,
    );
    await using sup = startCli(["worker", "start", "--count", "1"], { db });
    await sup.waitForOutput(/\] started j/);
    const killed = await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE application_name = ${tag}`;
    assert.ok(killed.length >= 2, "the supervisor's and the worker's connections");
    await sup.waitForOutput(/\] completed j /);
    const job = (await jobRow(t, "j"))!;
    assert.deepEqual([job.state, job.attempts, job.exit_code], ["completed", 1, 0]);
    assert.equal(await Deno.readTextFile(out), "ran\n");
    assert.equal((await stopAndWait(sup)).code, 0, output(sup));
  },
);

pgWorkerTest(
  "the database away while jobs finish: workers keep the outcomes and write them when it is back",
  async (t) => {
    const { schema, db, dir } = t;
    await using proxy = startTcpProxy(targetOf(PG_URL));
    const viaProxy = withParams(viaPort(proxy.port), { schema });
    const out = dir.file("out");
    await ok(
      ["enqueue", JSON.stringify({ id: "good", command: `sleep 1; echo good >> '${out}'` })],
      db,
    );
    await ok([
      "enqueue",
      JSON.stringify({
        id: "bad",
        command: `sleep 1; echo bad >> '${out}'; exit 3`,
        max_retries: 0,
      }),
    ], db);
    await using sup = startCli(["worker", "start", "--count", "2"], { db: viaProxy });
    await sup.waitForOutput(/started good[\s\S]*started bad|started bad[\s\S]*started good/);

    await proxy.cut();
    await waitFor(async () => (await Deno.readTextFile(out)).trim().split("\n").length === 2, {
      what: "both runs to finish while the database is away",
    });
    await sup.waitForOutput(
      /cannot record the result of (good|bad)[\s\S]*cannot record the result of (good|bad)/,
    );
    assert.match(
      sup.stdout(),
      /Cannot reach PostgreSQL at postgres:\/\/[^ ]*127\.0\.0\.1:\d+\/test/,
    );
    for (const id of ["good", "bad"]) assert.equal((await jobRow(t, id))!.state, "processing");

    proxy.restore();
    await waitFor(async () => (await jobRow(t, "good"))!.state === "completed", {
      what: "the success to be recorded",
    });
    await waitFor(async () => (await jobRow(t, "bad"))!.state === "dead", {
      what: "the failure to be recorded",
    });
    assert.equal((await jobRow(t, "bad"))!.exit_code, 3, "the failure is kept as it happened");
    assert.equal((await jobRow(t, "good"))!.attempts, 1);
    assert.deepEqual((await Deno.readTextFile(out)).trim().split("\n").sort(), ["bad", "good"]);
    await sup.waitForOutput(/database reachable again/);
    assert.equal((await stopAndWait(sup)).code, 0, output(sup));
  },
);

pgWorkerTest(
  "the database away past the limit: the worker exits 5 saying so; the job runs again later",
  async (t) => {
    const { schema, db, dir } = t;
    await ok(["config", "set", "lease", "2"], db);
    const out = dir.file("out");
    await ok(
      ["enqueue", JSON.stringify({ id: "j", command: `sleep 1.5; echo ran >> '${out}'` })],
      db,
    );
    await using proxy = startTcpProxy(targetOf(PG_URL));
    // A password in the URL (trust authentication ignores it) must never show in messages.
    const password = "pw-Never-Printed";
    const store = await openPostgresStore(withParams(viaPort(proxy.port, password), { schema }));
    const lines: string[] = [];
    const runner = new Runner({ store, log: (l) => lines.push(l), storeRetryLimitMs: 1500 });
    try {
      const run = runner.run();
      await waitFor(() => lines.some((l) => /\] started j: /.test(l)), {
        what: "the job to start",
      });
      await proxy.cut();
      assert.equal(await run, 5, lines.join("\n"));
      assert.equal(await Deno.readTextFile(out), "ran\n", "the job ran once");
      const fatal = lines.find((l) => /\] fatal: /.test(l));
      assert.match(
        fatal ?? lines.join("\n"),
        /^\[worker 1\] fatal: Could not record the result of j for 1\.\d+s: Cannot reach PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:\d+\/test\?schema=\w+: .+ \(the job will run again once its lease expires\)$/,
      );
      assert.ok(lines.every((l) => !l.includes(password)), "no password in the log");
    } finally {
      await store.close();
    }
    // Not marked done: it is still the lost worker's, and another worker runs it again.
    assert.equal((await jobRow(t, "j"))!.state, "processing");
    const again = await runCli(["worker", "start", "--until-empty"], { db });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /rescued j from lost worker/);
    const job = (await jobRow(t, "j"))!;
    assert.deepEqual([job.state, job.attempts], ["completed", 2]);
    assert.equal(await Deno.readTextFile(out), "ran\nran\n", "at least once: it ran again");
    assert.ok(isRunning(Deno.pid));
  },
);
