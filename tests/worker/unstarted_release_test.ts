/**
 * A worker SIGKILLed while it holds a job it never started (claimed, not yet spawned): its
 * supervisor gives the job back at once, the attempt not counted; a job it did start is left to
 * the lease rescue, counted (docs/architecture.md, "Claimed, not started"). On SQLite and on
 * PostgreSQL (a fresh schema; when the server is unreachable the PostgreSQL test fails if CI is
 * set, and is skipped, saying why, otherwise).
 *
 * The claim-without-spawn is made deterministic: the worker serves queue `a` only, and the test
 * claims a job of queue `b` in the worker's name through the store, exactly as the worker's own
 * claim would have written it, then kills the worker before it could know of it. Every read goes
 * through the store, so both backends run the same test.
 */
import assert from "node:assert/strict";
import type { Store } from "../../src/store/store.ts";
import { openStore } from "../../src/store/mod.ts";
import { startCli } from "../helpers/cli_process.ts";
import { runCli } from "../helpers/run_cli.ts";
import { exists, tempDir } from "../helpers/temp.ts";
import { argvOf } from "../helpers/faults/procs.ts";
import { waitFor } from "../helpers/wait_for.ts";
import {
  admin,
  PG_URL,
  postgresAvailability,
  targetOf,
  viaPort,
  withParams,
} from "../helpers/postgres.ts";
import { startTcpProxy } from "../helpers/tcp_proxy.ts";

const UNIX = Deno.build.os !== "windows";
const { ignore: noPostgres } = await postgresAvailability("unstarted release on postgres");

async function scenario(db: string, logDir: { file(name: string): string }): Promise<void> {
  const log = logDir.file("w.log");
  for (const [k, v] of [["lease", "60"], ["max_retries", "0"]]) {
    const r = await runCli(["config", "set", k, v], { db });
    assert.equal(r.code, 0, r.stderr);
  }
  await using sup = startCli(["worker", "start", "--count", "1", "--queue", "a", "--log", log], {
    db,
  });
  const store: Store = await openStore(db);
  try {
    /** The record of a worker other than `not` (a dead worker's record stays until pruned). */
    const worker = (not = "") =>
      waitFor(
        async () =>
          (await store.listWorkers()).find((w) => w.supervisor_id !== null && w.id !== not),
        {
          what: "a worker record",
        },
      );
    const job = async (id: string) => {
      const j = await store.getJob({ id });
      return j && { state: j.state, attempts: j.attempts, lease_owner: j.lease_owner };
    };
    const logText = () => Deno.readTextFileSync(log);

    const first = await worker();
    const cmdline = argvOf(first.pid);
    const marker = cmdline[cmdline.indexOf("--start-marker") + 1];
    assert.ok(marker, "the worker is given a start marker");
    const markerDir = marker.replace(/\/[^/]*$/, "");
    assert.equal(Deno.statSync(markerDir).mode! & 0o777, 0o700, "a private directory");

    const enq = await runCli(
      ["enqueue", JSON.stringify({ id: "x", command: "true", queue: "b" })],
      { db },
    );
    assert.equal(enq.code, 0, enq.stderr);
    const claimed = await store.claimJobs({
      workerId: first.id,
      queues: ["b"],
      now: Date.now(),
      leaseMs: 60_000,
      limit: 1,
    });
    assert.deepEqual(claimed.map((j) => [j.id, j.attempts]), [["x", 1]]);
    Deno.kill(first.pid, "SIGKILL");
    // Long before the 60 s lease: the supervisor saw its worker die.
    await waitFor(async () => (await job("x"))?.state === "pending", { what: "x back to pending" });
    assert.deepEqual(await job("x"), { state: "pending", attempts: 0, lease_owner: null });
    assert.deepEqual(await store.listRuns({ jobId: "x", outputChars: 0 }), [], "no run recorded");
    await waitFor(
      () =>
        logText().match(
          new RegExp(
            `\\] released x: worker \\S+ \\(${first.id}\\) claimed it and died before starting it; ` +
              "back to pending, the attempt not counted\\n",
          ),
        ),
      { what: "the release line" },
    );

    // A job the restarted worker started: the marker names it, so it is not released.
    const second = await worker(first.id);
    const began = logDir.file("y-began");
    const enq2 = await runCli(
      ["enqueue", JSON.stringify({ id: "y", command: `: > '${began}'; sleep 60`, queue: "a" })],
      { db },
    );
    assert.equal(enq2.code, 0, enq2.stderr);
    // The job's own first act, not the worker's "started" line: that line comes before the spawn,
    // and a kill between the two is a claim never started (released, as above).
    await waitFor(() => exists(began), { what: "y's first act" });
    // The worker leads its session and process group; its job runs in both: kill them all.
    Deno.kill(-second.pid, "SIGKILL");
    await waitFor(() => logText().includes(`(pid ${second.pid}) was killed`), {
      what: "the supervisor to see the death",
    });
    // A graceful stop waits for the supervisor's look at the dead worker's jobs.
    sup.kill("SIGTERM");
    assert.equal((await sup.status).code, 0, sup.stdout() + sup.stderr());
    assert.deepEqual(await job("y"), { state: "processing", attempts: 1, lease_owner: second.id });
    assert.equal(logText().match(/\] released y:/), null, "a started job is not released");
    assert.throws(() => Deno.statSync(markerDir), Deno.errors.NotFound, "markers removed at exit");
  } finally {
    await store.close();
  }
}

const NAME =
  "worker killed between claim and spawn: the job goes back uncounted; a started one stays";

Deno.test({
  name: `sqlite: ${NAME}`,
  ignore: !UNIX,
  fn: async () => {
    await using dir = await tempDir();
    await scenario(dir.file("q.db"), dir);
  },
});

/** A PostgreSQL test in a fresh schema (dropped afterwards): `fn` gets its URL and a temp dir. */
function pgTest(
  name: string,
  fn: (db: string, schema: string, dir: { file(name: string): string }) => Promise<void>,
): void {
  Deno.test({
    name: `postgres: ${name}`,
    ignore: !UNIX || noPostgres,
    fn: async () => {
      const schema = `qu_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
      await using dir = await tempDir();
      const sql = admin();
      try {
        await fn(withParams(PG_URL, { schema }), schema, dir);
      } finally {
        await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await sql.end();
      }
    },
  });
}

pgTest(NAME, (db, _schema, dir) => scenario(db, dir));

pgTest(
  "the database away when the supervisor looks: the claim is left to the lease rescue, which " +
    "counts it",
  async (db, schema, dir) => {
    for (const [k, v] of [["lease", "3"], ["max_retries", "0"]]) {
      const r = await runCli(["config", "set", k, v], { db });
      assert.equal(r.code, 0, r.stderr);
    }
    // The supervisor and its workers reach the server through a proxy the test can cut.
    await using proxy = startTcpProxy(targetOf(PG_URL));
    const log = dir.file("w.log");
    await using sup = startCli(
      ["worker", "start", "--count", "1", "--queue", "a", "--log", log],
      { db: withParams(viaPort(proxy.port), { schema }) },
    );
    const store = await openStore(db);
    try {
      const worker = await waitFor(
        async () => (await store.listWorkers()).find((w) => w.supervisor_id !== null),
        {
          what: "a worker record",
        },
      );
      const enq = await runCli(
        ["enqueue", JSON.stringify({ id: "x", command: "true", queue: "b" })],
        { db },
      );
      assert.equal(enq.code, 0, enq.stderr);
      const [x] = await store.claimJobs({
        workerId: worker.id,
        queues: ["b"],
        now: Date.now(),
        leaseMs: 3000,
        limit: 1,
      });
      assert.equal(x?.id, "x");
      await proxy.cut();
      Deno.kill(worker.pid, "SIGKILL");
      await waitFor(
        () =>
          /\] could not look for jobs worker \S+ claimed and never started \(.+\); they are rescued when their lease expires\n/
            .test(Deno.readTextFileSync(log)),
        { what: "the supervisor to say it could not look" },
      );
      const held = await store.getJob({ id: "x" });
      assert.deepEqual(
        [held?.state, held?.attempts, held?.lease_owner],
        ["processing", 1, worker.id],
        "not released without a look",
      );
      proxy.restore();
      // Counted, as any job of a dead worker: with max_retries 0, straight to the DLQ.
      await waitFor(async () => (await store.getJob({ id: "x" }))?.state === "dead", {
        timeoutMs: 30_000,
        what: "x rescued by its lease",
      });
      const runs = await store.listRuns({ jobId: "x", outputChars: 0 });
      assert.equal(runs.length, 1);
      assert.match(runs[0].error ?? "", new RegExp(`^worker lost: ${worker.id} `));
      assert.equal(Deno.readTextFileSync(log).match(/\] released x:/), null);
    } finally {
      await store.close();
    }
    sup.kill("SIGTERM");
    await sup.status;
  },
);
