/**
 * `wait`, `enqueue --wait` and `logs --follow` through a PostgreSQL restart (the test's own
 * cluster, `pg_ctl stop -m fast`, started again on the same port): they used to fail at the first
 * refused connection (exit 5) while the job they waited for ran on and completed. What must hold:
 * each says once on stderr that the database is unreachable and once that it is back, and ends as
 * the job does (exit 0, the job's output followed to its end); an outage longer than
 * `outage_limit` still ends the wait with the database's error (exit 5), not a hang.
 */
import assert from "node:assert/strict";
import { type PgCluster, startPgCluster } from "../../helpers/faults/pg_cluster.ts";
import { configure } from "../../helpers/faults/queue.ts";
import { faultNeeds } from "../../helpers/faults/requirements.ts";
import { startCli } from "../../helpers/cli_process.ts";
import { runCli } from "../../helpers/run_cli.ts";
import { tempDir } from "../../helpers/temp.ts";
import { waitFor } from "../../helpers/wait_for.ts";

/** Waits until `n` watchers (waits, follows) are recorded in the database. */
async function watchers(pg: PgCluster, n: number): Promise<void> {
  const sql = pg.admin();
  try {
    await waitFor(async () => {
      const [{ count }] = await sql<
        { count: number }[]
      >`SELECT count(*)::int AS count FROM watchers`;
      return count >= n;
    }, { what: `${n} watchers recorded` });
  } finally {
    await sql.end();
  }
}

const needs = await faultNeeds("waits through a PostgreSQL restart", ["linux", "pg-cluster"]);

Deno.test({
  name:
    "wait, enqueue --wait and logs --follow ride out a PostgreSQL restart and end as the job does",
  ignore: needs.ignore,
  fn: async () => {
    await using pg = await startPgCluster();
    await using dir = await tempDir();
    const db = pg.url();
    const started = dir.file("started");
    const release = dir.file("release");
    await configure(db, { poll_interval: 1 });
    // The job runs until the test lets it end (after the outage), printing before and after.
    const command = `echo before; touch '${started}'; ` +
      `while [ ! -e '${release}' ]; do sleep 0.1; done; echo after`;
    const r = await runCli(["enqueue", "--id", "w1", "--", "sh", "-c", command], { db });
    assert.equal(r.code, 0, r.stderr);
    await using worker = startCli(["worker", "start"], { db });
    try {
      await waitFor(() => Deno.stat(started).then(() => true, () => false), { what: "job start" });
      await using waiting = startCli(["wait", "w1"], { db });
      await using following = startCli(["logs", "--follow", "w1"], { db });
      await using enqueued = startCli(["enqueue", "--wait", "--", "true"], { db });
      await following.waitForOutput(/before/);
      // Each is in its loop once it has recorded its watcher (before its first look).
      await watchers(pg, 3);

      await pg.stop("fast");
      for (const p of [waiting, following, enqueued]) {
        await waitFor(() => /still waiting \(for up to outage_limit 1m\)/.test(p.stderr()), {
          what: `the outage noticed; stderr so far: ${p.stderr()}`,
        });
      }
      await pg.start();
      await Deno.writeTextFile(release, "");

      // Each ends once the job has (bounded: a process that printed its outcome and stayed alive
      // is what the driver's reconnect timer once caused; see the last test).
      const ends: (Deno.CommandStatus | null)[] = [null, null, null];
      [waiting, following, enqueued].forEach((p, i) => p.status.then((st) => ends[i] = st));
      const ended = await waitFor(
        () => ends.every((e) => e !== null) ? ends as Deno.CommandStatus[] : null,
        {
          timeoutMs: 30_000,
          what: "wait, logs --follow and enqueue --wait to exit",
        },
      );
      const [w, f, e] = ended;
      assert.equal(w.code, 0, waiting.stdout() + waiting.stderr());
      assert.match(waiting.stdout(), /^1 job finished in .*: 1 completed\n$/);
      assert.equal(f.code, 0, following.stdout() + following.stderr());
      assert.equal(following.stdout(), "before\nafter\n");
      assert.equal(e.code, 0, enqueued.stdout() + enqueued.stderr());
      assert.match(enqueued.stdout(), /1 job finished in .*: 1 completed\n$/);
      for (const p of [waiting, following, enqueued]) {
        const lines = p.stderr().trim().split("\n");
        assert.equal(lines.length, 2, p.stderr());
        assert.match(lines[0], /^queuectl: Cannot reach PostgreSQL at .*; still waiting/);
        assert.equal(lines[1], "queuectl: database reachable again");
      }
      worker.kill("SIGTERM");
      assert.equal((await worker.status).code, 0, worker.stdout() + worker.stderr());
    } finally {
      // Whatever failed: the job may end and the server is up, so nothing is left running.
      await Deno.writeTextFile(release, "");
      if (!pg.running()) await pg.start();
    }
  },
});

Deno.test({
  name: "a wait through an outage longer than outage_limit ends with the database's error",
  ignore: needs.ignore,
  fn: async () => {
    await using pg = await startPgCluster();
    const db = pg.url();
    await configure(db, { outage_limit: 2 });
    const r = await runCli(["enqueue", "--id", "w2", "--", "true"], { db });
    assert.equal(r.code, 0, r.stderr);
    await using waiting = startCli(["wait", "w2"], { db });
    // No worker: the job stays pending; the wait is in its loop once its watcher is recorded.
    await watchers(pg, 1);
    await pg.stop("fast");
    const status = await waiting.status;
    assert.equal(status.code, 5, waiting.stdout() + waiting.stderr());
    const lines = waiting.stderr().trim().split("\n");
    assert.match(lines[0], /still waiting \(for up to outage_limit 2s\)/);
    assert.match(lines.at(-1)!, /^error: Cannot reach PostgreSQL at /);
  },
});

Deno.test({
  name: "a pool ended while it waits to reconnect stays ended when the server returns (the " +
    "process exits)",
  ignore: needs.ignore,
  fn: async () => {
    // The driver's reconnect timer fired after end() and connected again once the server was
    // back: the LISTEN connection lived on and the process never exited (a `wait` that had
    // printed its outcome hung). src/store/postgres/driver/README.md.
    await using pg = await startPgCluster();
    await using dir = await tempDir();
    const script = dir.file("pool.ts");
    await Deno.writeTextFile(
      script,
      `import { connectPool } from ${
        JSON.stringify(new URL("../../../src/store/postgres/connect.ts", import.meta.url).href)
      };
const sql = connectPool(${JSON.stringify(pg.url())}, undefined, 1);
await sql.listen("qx", () => {});
console.log("listening");
for await (const _ of Deno.stdin.readable) break;
await sql.end({ timeout: 0 });
console.log("ended");
`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", script],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    let out = "";
    const reading = (async () => {
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) out += chunk;
    })();
    let exited = false;
    const status = child.status.then((s) => (exited = true, s));
    try {
      await waitFor(() => out.includes("listening"), { what: "the pool listening" });
      await pg.stop("fast");
      // An outage long enough for the reconnect backoff to grow (0.1 s doubling, at most 2 s).
      await new Promise((r) => setTimeout(r, 3000));
      await pg.start();
      // Ended while a reconnect is scheduled (the server was down until just now).
      const input = child.stdin.getWriter();
      await input.write(new TextEncoder().encode("end\n"));
      await input.close();
      await waitFor(() => exited, { timeoutMs: 10_000, what: `the process to exit (${out})` });
      assert.equal((await status).code, 0);
      assert.match(out, /ended/);
    } finally {
      if (!exited) child.kill("SIGKILL");
      await status;
      await reading;
    }
  },
});
