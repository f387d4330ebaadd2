/**
 * Contention: 8 worker processes, two processes enqueueing through the CLI entry point (asking for
 * 200 jobs/s together), and a process running `status` in a loop, all on one SQLite database. No
 * `database is locked` (or any other error) reaches a user on any output, every enqueue succeeds,
 * and every job runs exactly once. The rates reached are figures, not assertions: on a busy 2-core
 * machine each CLI call (open, migration check, insert, close) competes with eight workers for the
 * CPU, and a rate floor failed there once (38.8 enqueues/s against 50) with nothing wrong.
 */
import assert from "node:assert/strict";
import { startCli } from "../helpers/cli_process.ts";
import { PERMISSIONS, runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";
import { integrityCheck, query, report, size, UNIX } from "./profile.ts";

const SECONDS = size(4, 30);
const ENQUEUE_RATE = 200;
const STATUS_RATE = 50;
const WORKERS = 8;
const LOOP = new URL("./cli_loop.ts", import.meta.url).href;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;
/** What must never reach a user: lock errors and internal errors, in any wording. */
const FORBIDDEN =
  /database is locked|database table is locked|stayed locked|SQLITE_BUSY|internal error|fatal:/i;

interface LoopSummary {
  calls: number;
  failures: Record<string, number>;
  seconds: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

function startLoop(args: string[]) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...PERMISSIONS, "--config", CONFIG, LOOP, ...args],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

Deno.test({
  name:
    `contention: ${WORKERS} workers + ${ENQUEUE_RATE} enqueues/s + status loop for ${SECONDS} s`,
  ignore: !UNIX,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const out = dir.file("ids.txt");
    const log = dir.file("workers.log");
    const init = await runCli(["status"], { db });
    assert.equal(init.code, 0, init.stderr);

    await using sup = startCli(["worker", "start", "--count", String(WORKERS), "--log", log], {
      db,
    });
    await waitFor(
      () =>
        query<{ n: number }>(
          db,
          "SELECT count(*) AS n FROM workers WHERE supervisor_id IS NOT NULL",
        )[0]
          .n === WORKERS,
      { timeoutMs: 30_000, what: `${WORKERS} workers registered` },
    );

    // Two enqueuer processes at half the rate each: one process's synchronous calls queue
    // behind each other while it waits for the write lock.
    const enqueuers = ["a", "b"].map((prefix) =>
      startLoop([
        "enqueue",
        db,
        String(ENQUEUE_RATE / 2),
        String(SECONDS),
        prefix,
        out,
        dir.file(`enqueue-${prefix}.json`),
      ])
    );
    const statusLoop = startLoop([
      "status",
      db,
      String(STATUS_RATE),
      String(SECONDS),
      dir.file("status.json"),
    ]);
    const outputs = await Promise.all([...enqueuers, statusLoop].map((c) => c.output()));
    const decoder = new TextDecoder();
    for (const o of outputs) {
      const stderr = decoder.decode(o.stderr);
      assert.doesNotMatch(stderr, FORBIDDEN);
      assert.equal(stderr, "", "nothing on any loop's stderr");
      assert.equal(o.code, 0);
    }
    const [a, b]: LoopSummary[] = await Promise.all(
      ["a", "b"].map(async (p) =>
        JSON.parse(await Deno.readTextFile(dir.file(`enqueue-${p}.json`)))
      ),
    );
    const status: LoopSummary = JSON.parse(await Deno.readTextFile(dir.file("status.json")));
    assert.deepEqual(a.failures, {}, "every enqueue succeeded");
    assert.deepEqual(b.failures, {}, "every enqueue succeeded");
    assert.deepEqual(status.failures, {}, "every status succeeded");
    const enqueued = a.calls + b.calls;
    const rate = enqueued / Math.max(a.seconds, b.seconds);
    // The load ran (each loop made its calls while the workers ran); how fast is a figure.
    assert.ok(a.calls > 0 && b.calls > 0 && status.calls > 0, JSON.stringify([a, b, status]));

    // The workers drain what is left, then stop on SIGTERM.
    await waitFor(
      () =>
        query<{ n: number }>(db, "SELECT count(*) AS n FROM jobs WHERE state = 'completed'")[0]
          .n ===
          enqueued,
      { timeoutMs: size(60_000, 180_000), intervalMs: 200, what: "every enqueued job to complete" },
    );
    sup.kill("SIGTERM");
    const supStatus = await sup.status;
    const supOut = sup.stdout() + sup.stderr();
    const logText = await Deno.readTextFile(log);
    assert.equal(supStatus.code, 0, supOut);
    assert.doesNotMatch(supOut, FORBIDDEN);
    assert.doesNotMatch(logText, FORBIDDEN);
    assert.doesNotMatch(logText, /retrying|cannot |heartbeat failed/, "no store retries needed");

    const counts = new Map<string, number>();
    for (const line of (await Deno.readTextFile(out)).split("\n")) {
      if (line) counts.set(line, (counts.get(line) ?? 0) + 1);
    }
    const ids = [
      ...Array.from({ length: a.calls }, (_, i) => `a${i}`),
      ...Array.from({ length: b.calls }, (_, i) => `b${i}`),
    ];
    const lost = ids.filter((id) => !counts.has(id));
    const duplicated = ids.filter((id) => (counts.get(id) ?? 0) > 1);
    assert.deepEqual(lost, [], "no lost job");
    assert.deepEqual(duplicated, [], "no duplicated job");
    assert.equal(counts.size, enqueued);
    const states = query<{ state: string; n: number }>(
      db,
      "SELECT state, count(*) AS n FROM jobs GROUP BY state",
    );
    assert.deepEqual(states, [{ state: "completed", n: enqueued }]);
    assert.equal(integrityCheck(db), "ok");
    const completedBy = new Set(
      [...logText.matchAll(/\[worker (\S+)\] completed /g)].map((m) => m[1]),
    );
    report("contention", {
      seconds: SECONDS,
      workers: WORKERS,
      workers_that_completed_jobs: completedBy.size,
      enqueued,
      enqueue_rate_asked_per_s: ENQUEUE_RATE,
      enqueue_rate_per_s: Math.round(rate),
      status_rate_asked_per_s: STATUS_RATE,
      status_rate_per_s: Math.round(status.calls / status.seconds),
      enqueue_latency_ms: {
        p50: Math.max(a.p50_ms, b.p50_ms),
        p99: Math.max(a.p99_ms, b.p99_ms),
        max: Math.max(a.max_ms, b.max_ms),
      },
      status_calls: status.calls,
      status_latency_ms: { p50: status.p50_ms, p99: status.p99_ms, max: status.max_ms },
      user_visible_errors: 0,
      lost: 0,
      duplicates: 0,
      integrity: "ok",
    });
  },
});
