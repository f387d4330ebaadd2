/**
 * Workers on PostgreSQL through the real CLI: the seed flow, LISTEN/NOTIFY wake-up, and a lost
 * connection in the middle of a job. Each test works in a fresh schema, dropped afterwards.
 *
 * Server: env QUEUECTL_TEST_PG_URL, default postgres://postgres@127.0.0.1:5432/test. When it is
 * unreachable the tests fail if CI is set, and are skipped (saying why) otherwise.
 */
import assert from "node:assert/strict";
import { startCli } from "../helpers/cli_process.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";
import { admin, PG_URL, postgresAvailability } from "../helpers/postgres.ts";

const { ignore } = await postgresAvailability("postgres worker CLI");

/** A fresh schema (and a unique application_name to find the workers' connections). */
function freshDb(): { url: string; app: string } & AsyncDisposable {
  const tag = crypto.randomUUID().replaceAll("-", "").slice(0, 16);
  const schema = `qw_${tag}`;
  const app = `qtest_${tag}`;
  const sep = PG_URL.includes("?") ? "&" : "?";
  return {
    url: `${PG_URL}${sep}schema=${schema}&application_name=${app}`,
    app,
    [Symbol.asyncDispose]: async () => {
      const sql = admin();
      try {
        await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await sql.end();
      }
    },
  };
}

async function ok(args: string[], db: string): Promise<string> {
  const r = await runCli(args, { db });
  assert.equal(r.code, 0, `queuectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

const state = async (
  id: string,
  db: string,
) => (await runCliJson<{ state: string; attempts: number }>(["show", id], { db }));

Deno.test({
  name: "postgres: worker start --until-empty runs the jobs and exits 6 when one reached the DLQ",
  ignore,
  fn: async () => {
    await using db = freshDb();
    await ok(["enqueue", '{"id":"ok1","command":"echo Hello"}'], db.url);
    await ok(["enqueue", '{"id":"bad","command":"exit 3","max_retries":0}'], db.url);
    const r = await runCli(["worker", "start", "--count", "2", "--until-empty"], { db: db.url });
    assert.equal(r.code, 6, r.stdout + r.stderr);
    assert.match(r.stdout, /\] completed ok1 /);
    assert.match(r.stdout, /\] bad moved to DLQ \(exit 3, 1 attempt\)/);
    assert.equal((await state("ok1", db.url)).state, "completed");
  },
});

Deno.test({
  name: "postgres: LISTEN/NOTIFY wakes an idle worker long before its poll",
  ignore,
  fn: async () => {
    await using db = freshDb();
    await ok(["config", "set", "poll_interval", "60"], db.url);
    await ok(["enqueue", '{"id":"first","command":"true"}'], db.url);
    await using sup = startCli(["worker", "start"], { db: db.url });
    await sup.waitForOutput(/\] completed first/);
    // The worker is now waiting (for up to 60 s) for work.
    await ok(["enqueue", '{"id":"second","command":"true"}'], db.url);
    await sup.waitForOutput(/\] completed second/, 10_000);
    sup.kill("SIGTERM");
    assert.equal((await sup.status).code, 0);
  },
});

Deno.test({
  name: "postgres: a connection lost during a job; the result is recorded after reconnecting",
  ignore,
  fn: async () => {
    await using db = freshDb();
    await using dir = await tempDir();
    const started = dir.file("started");
    const out = dir.file("out");
    await ok([
      "enqueue",
      JSON.stringify({
        id: "j",
        command: `touch '${started}'; sleep 1; echo "$QUEUECTL_JOB_ID" >> '${out}'`,
      }),
    ], db.url);
    await using sup = startCli(["worker", "start"], { db: db.url });
    await waitFor(() => Deno.stat(started).then(() => true, () => false), { what: "job start" });
    const sql = admin();
    try {
      const killed = await sql`
        SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ${db.app}`;
      assert.ok(killed.length > 0, "the worker's connections were found and terminated");
    } finally {
      await sql.end();
    }
    await waitFor(async () => (await state("j", db.url)).state === "completed", {
      timeoutMs: 20_000,
      what: `the job to complete; output so far:\n${sup.stdout()}`,
    });
    assert.equal((await state("j", db.url)).attempts, 1, "ran once, not rescued and re-run");
    assert.equal(await Deno.readTextFile(out), "j\n");
    sup.kill("SIGTERM");
    assert.equal((await sup.status).code, 0, sup.stdout() + sup.stderr());
    assert.doesNotMatch(sup.stdout(), /unexpectedly/);
  },
});

Deno.test({
  name: "postgres: a database turned read-only under running workers (a failover's old " +
    "primary): they retry on new sessions, and every job runs once when it is writable again",
  ignore,
  fn: async () => {
    // A database of its own: default_transaction_read_only is set per database.
    const name = `qro_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    const url = PG_URL.replace(/\/[^/?]*(\?.*)?$/, `/${name}`);
    const sql = admin();
    await sql.unsafe(`CREATE DATABASE "${name}"`);
    try {
      await using dir = await tempDir();
      const out = dir.file("out");
      const jobs = Array.from({ length: 12 }, (_, i) =>
        JSON.stringify({
          id: `r${i}`,
          command: `sleep 0.3; echo "$QUEUECTL_JOB_ID" >> '${out}'`,
        })).join("\n");
      Deno.writeTextFileSync(dir.file("jobs.jsonl"), jobs + "\n");
      await ok(["enqueue", "--file", dir.file("jobs.jsonl")], url);
      await using sup = startCli(["worker", "start", "--count", "2"], { db: url });
      await sup.waitForOutput(/\] completed r\d+/);
      // Every session from now on is read-only, the workers' included once they reconnect.
      await sql.unsafe(`ALTER DATABASE "${name}" SET default_transaction_read_only = on`);
      await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = ${name} AND pid <> pg_backend_pid()`;
      // The supervisor's session (opened after the terminate) is read-only: its heartbeat fails.
      await sup.waitForOutput(
        /\[supervisor \w+\] heartbeat failed: .*cannot execute \w+ in a read-only transaction/,
      );
      // Both workers met it too (their sessions since the switch are read-only).
      await sup.waitForOutput(/\[worker \w+\.1\] .*cannot execute \w+ in a read-only transaction/);
      await sup.waitForOutput(/\[worker \w+\.2\] .*cannot execute \w+ in a read-only transaction/);
      // Writable for new sessions only: those opened meanwhile stay read-only until replaced.
      await sql.unsafe(`ALTER DATABASE "${name}" SET default_transaction_read_only = off`);
      await waitFor(async () => {
        const s = await runCliJson<{ counts: { completed: number } }>(["status"], { db: url });
        return s.counts.completed === 12;
      }, { timeoutMs: 30_000, what: `12 completed jobs; output so far:\n${sup.stdout()}` });
      const runs = (await Deno.readTextFile(out)).trim().split("\n").sort();
      assert.deepEqual(runs, Array.from({ length: 12 }, (_, i) => `r${i}`).sort());
      sup.kill("SIGTERM");
      assert.equal((await sup.status).code, 0, sup.stdout() + sup.stderr());
      assert.doesNotMatch(sup.stdout(), /fatal|gave up/);
    } finally {
      await sql.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await sql.end();
    }
  },
});
