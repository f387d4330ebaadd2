/**
 * Supervisor kill: SIGKILL `worker start` while its workers run long jobs and churn through
 * short ones. No orphan worker (nor its job's processes) runs on for longer than the lease, no job
 * is left `processing`, and a new `worker start --until-empty` finishes the queue with every job
 * run exactly once.
 */
import assert from "node:assert/strict";
import { isRunning, startCli } from "../helpers/cli_process.ts";
import { runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";
import { integrityCheck, query, report, shq, size, UNIX } from "./profile.ts";

const ROUNDS = size(1, 3);
const WORKERS = 3;
const LONG_JOBS = 2;
const SHORT_JOBS = 300;
const LEASE_S = 2;
/** Time allowed beyond the lease to terminate the job's process group, release it and exit. */
const EXIT_SLACK_MS = 1500;

Deno.test({
  name: "supervisor kill: no orphan outlives the lease; a new worker start finishes the queue",
  ignore: !UNIX,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const out = dir.file("ids.txt");
    const r = await runCli(["config", "set", "lease", String(LEASE_S)], { db });
    assert.equal(r.code, 0, r.stderr);

    const exitAfterKillMs: number[] = [];
    const allIds: string[] = [];
    let released = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      // Long jobs run first (priority): the first run leaves a marker and its shell pid, then
      // hangs; a rerun only appends the id. Short jobs append their id.
      const longIds = Array.from({ length: LONG_JOBS }, (_, i) => `r${round}-long${i}`);
      const shortIds = Array.from({ length: SHORT_JOBS }, (_, i) => `r${round}-s${i}`);
      const append = `printf '%s\\n' "$QUEUECTL_JOB_ID" >> ${shq(out)}`;
      const specs = [
        ...longIds.map((id) => ({
          id,
          priority: 10,
          command: `if [ -e ${shq(dir.file(id))}.marker ]; then ${append}; else ` +
            `touch ${shq(dir.file(id))}.marker; echo $$ > ${shq(dir.file(id))}.pid; sleep 60; fi`,
        })),
        ...shortIds.map((id) => ({ id, command: append })),
      ];
      allIds.push(...longIds, ...shortIds);
      await Deno.writeTextFile(
        dir.file("jobs.jsonl"),
        specs.map((s) => JSON.stringify(s)).join("\n"),
      );
      const enq = await runCli(["enqueue", "--file", dir.file("jobs.jsonl")], { db });
      assert.equal(enq.code, 0, enq.stderr);

      await using sup = startCli(["worker", "start", "--count", String(WORKERS)], { db });
      // Mid-run: both long jobs hang in their workers, short jobs are being completed.
      const jobPids = await waitFor(async () => {
        const pids = [];
        for (const id of longIds) {
          try {
            pids.push(Number((await Deno.readTextFile(`${dir.file(id)}.pid`)).trim()));
          } catch {
            return null;
          }
        }
        return pids.every((p) => p > 0) ? pids : null;
      }, { timeoutMs: 20_000, what: "the long jobs to start" });
      await waitFor(
        () =>
          query<{ n: number }>(
            db,
            "SELECT count(*) AS n FROM jobs WHERE id LIKE ? AND state = 'completed'",
            `r${round}-s%`,
          )[0].n >= 20,
        { timeoutMs: 20_000, what: "short jobs to complete" },
      );
      const workerPids = query<{ pid: number }>(
        db,
        "SELECT w.pid FROM workers w JOIN workers s ON w.supervisor_id = s.id WHERE s.pid = ?",
        sup.pid,
      ).map((w) => w.pid).filter(isRunning);
      assert.equal(workerPids.length, WORKERS);

      const killedAt = performance.now();
      sup.kill("SIGKILL");
      // Measure when each orphan is gone (a poll of the processes, with a deadline).
      const goneAt = new Map<number, number>();
      await waitFor(() => {
        for (const pid of [...workerPids, ...jobPids]) {
          if (!goneAt.has(pid) && !isRunning(pid)) goneAt.set(pid, performance.now() - killedAt);
        }
        return goneAt.size === workerPids.length + jobPids.length;
      }, {
        timeoutMs: LEASE_S * 1000 + 15_000,
        intervalMs: 10,
        what: "the orphaned workers and their jobs to exit",
      });
      await sup.status;
      const slowest = Math.max(...[...goneAt.values()]);
      exitAfterKillMs.push(Math.round(slowest));
      assert.ok(
        slowest <= LEASE_S * 1000 + EXIT_SLACK_MS,
        `an orphan ran on ${Math.round(slowest)} ms after the supervisor died (lease ${LEASE_S} s)`,
      );
      assert.match(sup.stdout(), /the supervisor is gone/);
      const states = query<{ id: string; state: string; attempts: number }>(
        db,
        "SELECT id, state, attempts FROM jobs WHERE state = 'processing' OR id LIKE ?",
        `r${round}-long%`,
      );
      for (const job of states) {
        assert.equal(job.state, "pending", `${job.id} released, not left processing`);
        assert.equal(job.attempts, 0, `${job.id}: the release did not consume a retry`);
      }
      released += states.length;

      // A new supervisor finishes the queue.
      const finish = await runCli(
        ["worker", "start", "--count", String(WORKERS), "--until-empty"],
        {
          db,
        },
      );
      assert.equal(finish.code, 0, finish.stderr);
    }

    const counts = new Map<string, number>();
    for (const line of (await Deno.readTextFile(out)).split("\n")) {
      if (line) counts.set(line, (counts.get(line) ?? 0) + 1);
    }
    assert.deepEqual(allIds.filter((id) => counts.get(id) !== 1), [], "every job ran exactly once");
    assert.equal(counts.size, allIds.length);
    const [{ n }] = query<{ n: number }>(
      db,
      "SELECT count(*) AS n FROM jobs WHERE state = 'completed'",
    );
    assert.equal(n, allIds.length);
    assert.equal(integrityCheck(db), "ok");
    report("supervisor kill", {
      rounds: ROUNDS,
      workers: WORKERS,
      jobs: allIds.length,
      lease_s: LEASE_S,
      orphans_gone_after_ms: exitAfterKillMs,
      released_jobs: released,
      lost: 0,
      duplicates: 0,
      integrity: "ok",
    });
  },
});
