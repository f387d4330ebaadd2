/**
 * `queuectl kill` (issue 14.7) through the real CLI and a real worker, on SQLite and PostgreSQL:
 * the running job's process group gets the signal, the run is recorded as killed (DLQ, or the
 * retry policy with --retry), `cancel` of a running job points to `kill`, `retry` re-runs a
 * completed job, bad input changes nothing. The worker's heartbeat is made rare (lease 300 s:
 * one every 100 s), so a kill seen within the test's deadline came through the kill hint
 * (`<db>-kill` file watch / NOTIFY queuectl_kill), not the heartbeat.
 */
import assert from "node:assert/strict";
import { startCli } from "../helpers/cli_process.ts";
import { admin, PG_URL, postgresAvailability } from "../helpers/postgres.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

interface JobJson {
  state: string;
  attempts: number;
  error: string | null;
  kill_signal: string | null;
  stdout: string;
}

/** Traps `sig`, says so and exits 7; creates `ready` once trapping, then waits on a long sleep. */
const trapping = (sig: string, ready: string) =>
  `trap 'echo got ${sig}; exit 7' ${sig}; echo ready; : > '${ready}'; sleep 300 & wait`;

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

async function scenario(db: string): Promise<void> {
  await using dir = await tempDir();
  const ok = async (args: string[]) => {
    const r = await runCli(args, { db });
    assert.equal(r.code, 0, `queuectl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const show = (id: string) => runCliJson<JobJson>(["show", id], { db });
  await ok(["config", "set", "lease", "300"]);
  await ok(["config", "set", "backoff_base", "1000"]);
  await ok(["enqueue", "--id", "term", "--", "sh", "-c", trapping("TERM", dir.file("term"))]);
  await ok([
    "enqueue",
    "--id",
    "int",
    "--max-retries",
    "1",
    "--",
    "sh",
    "-c",
    trapping("INT", dir.file("int")),
  ]);
  await ok(["enqueue", "--id", "quick", "--priority", "-1", "--", "echo", "hi"]);
  await using worker = startCli(["worker", "start", "--count", "2"], { db });
  try {
    // (A running job's output is stored when the run ends: the jobs say they trap with a file.)
    await waitFor(() => exists(dir.file("term")), { timeoutMs: 30_000, what: "term running" });
    await waitFor(() => exists(dir.file("int")), { timeoutMs: 30_000, what: "int running" });

    // Bad input changes nothing.
    const bad = await runCli(["kill", "term", "--signal", "NOPE"], { db });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /^error: Invalid signal "NOPE": expected one of SIGTERM, /);
    assert.equal(bad.stderr.trim().split("\n").length, 1);
    assert.equal((await show("term")).kill_signal, null);
    const missing = await runCli(["kill", "nosuchjob"], { db });
    assert.equal(missing.code, 3, missing.stderr);

    // cancel refuses a running job and says what to do.
    const cancel = await runCli(["cancel", "term"], { db });
    assert.equal(cancel.code, 4);
    assert.match(cancel.stderr, /it is processing .*use `queuectl kill term`/);

    const killed = await runCli(["kill", "term"], { db });
    assert.equal(killed.code, 0, killed.stderr);
    assert.match(
      killed.stdout,
      /^asked w\d-[0-9a-f]+ to kill term with SIGTERM; it will not be retried$/m,
    );
    const term = await waitFor(async () => {
      const j = await show("term");
      return j.state === "dead" ? j : null;
    }, { timeoutMs: 20_000, what: "term killed" });
    assert.equal(term.error, "killed by SIGTERM via queuectl kill");
    assert.equal(term.stdout, "ready\ngot TERM\n", "the shell got SIGTERM");
    assert.equal(term.kill_signal, null, "cleared by the settle");
    assert.equal(term.attempts, 1);

    const viaInt = await runCli(["kill", "int", "--signal", "int", "--retry", "--json"], { db });
    assert.equal(viaInt.code, 0, viaInt.stderr);
    assert.equal(JSON.parse(viaInt.stdout).signal, "SIGINT");
    const int = await waitFor(async () => {
      const j = await show("int");
      return j.state === "failed" ? j : null;
    }, { timeoutMs: 20_000, what: "int killed" });
    // The background `sleep` of a non-interactive shell ignores SIGINT (POSIX), so it is still alive
    // after the grace period and gets SIGKILL: the error says so.
    assert.equal(int.error, "killed by SIGINT via queuectl kill (SIGKILL after 5s grace)");
    assert.match(int.stdout, /got INT/);

    // Not running: refused, pointing to cancel.
    const notRunning = await runCli(["kill", "int"], { db });
    assert.equal(notRunning.code, 4);
    assert.match(notRunning.stderr, /it is failed, not running .*use `queuectl cancel`/);

    // retry re-runs a completed job, with a fresh budget.
    await waitFor(async () => (await show("quick")).state === "completed", { what: "quick done" });
    await ok(["retry", "quick"]);
    await waitFor(async () => {
      const j = await show("quick");
      return j.state === "completed" && j.attempts === 1;
    }, { timeoutMs: 20_000, what: "quick ran again" });
    assert.match(worker.stdout(), /started quick[\s\S]*started quick/, "it ran twice");
    assert.match(worker.stdout(), /killing term with SIGTERM \(queuectl kill\)/);
  } catch (err) {
    // Its jobs sleep for minutes: stop them, or the worker outlives the test by a lease.
    await runCli(["worker", "stop", "--force", "--timeout", "10"], { db });
    throw err;
  }
  worker.kill("SIGTERM");
  assert.equal((await worker.status).code, 0, worker.stderr());
}

Deno.test("sqlite: kill signals a running job's process group at once and records the run as killed", async () => {
  await using dir = await tempDir();
  await scenario(dir.file("q.db"));
});

const { ignore } = await postgresAvailability("kill CLI");

Deno.test({
  name:
    "postgres: kill signals a running job's process group at once and records the run as killed",
  ignore,
  async fn() {
    const schema = `qk_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
    try {
      await scenario(`${PG_URL}${PG_URL.includes("?") ? "&" : "?"}schema=${schema}`);
    } finally {
      const sql = admin();
      try {
        await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await sql.end();
      }
    }
  },
});
