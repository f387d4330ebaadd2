/**
 * Issue 12, faults 1 and 2: PostgreSQL goes away for longer than the lease and comes back (the
 * test's own cluster, stopped with `pg_ctl -m fast` or `-m immediate` and started again on the
 * same port and data directory).
 *
 * - **Fault 2, an outage longer than the lease while jobs run.** Four workers each hold a job
 *   (`sleep 2`, then the run's line) for a second when the server stops (their claims are on
 *   disk by then, even with asynchronous commit); the jobs end during the outage
 *   (2.7 leases) and their workers hold the results. What must hold: a run that ended is recorded
 *   as it ended: every job `completed`, none `dead` for "worker lost" (`max_retries` 0 makes a
 *   wrong rescue show as a DLQ entry), no duplicate without a death (with `-m immediate` the
 *   server's crash is a death: a job whose run was written in the last second before it, with
 *   asynchronous commit, may run again), no contradicting log lines.
 * - **Fault 1, a claim written with a stale clock.** Idle workers wake for jobs due at the moment
 *   the server is down (`run_at` inside the outage, `poll_interval` long so they wake for exactly
 *   that), keep retrying their claim through the outage (2.5 leases), and get it when the server
 *   returns. What must hold: the lease a claim writes starts at the successful claim (the
 *   server's clock), so nobody rescues these jobs at once: every job completed, no duplicate, no
 *   DLQ entry.
 */
import { startHost } from "../../helpers/faults/host.ts";
import { startPgCluster, type StopMode } from "../../helpers/faults/pg_cluster.ts";
import { configure, enqueueAll, jobRecords, recordRun } from "../../helpers/faults/queue.ts";
import { faultNeeds } from "../../helpers/faults/requirements.ts";
import { tempDir } from "../../helpers/temp.ts";
import { waitFor } from "../../helpers/wait_for.ts";
import type { Death, LogLine } from "../ledger.ts";
import { size } from "../profile.ts";
import { expect, secs, tally, verdict, within } from "./kit.ts";

const needs = await faultNeeds("faults 1-2 (PostgreSQL outage)", ["linux", "pg-cluster"]);

const WORKERS = 4;

/** With `-m immediate`, jobs that had a line in the last second before the crash. */
function crashDeath(logs: readonly LogLine[], crashAt: number | null): Death[] {
  if (crashAt === null) return [];
  const jobs = new Set<string>();
  for (const l of logs) {
    if (l.at < crashAt - 1000 || l.at > crashAt) continue;
    const m = /\] (?:started|completed|failed) (\S+?)(?::| \()/.exec(l.text) ??
      /\] (\S+) moved to DLQ/.exec(l.text);
    if (m) jobs.add(m[1]);
  }
  return [{
    what: "server crash (-m immediate; asynchronous commits lost)",
    jobs,
    excusesOutcome: false,
  }];
}

for (const mode of ["fast", "immediate"] as StopMode[]) {
  Deno.test({
    name: `fault 2: PostgreSQL stopped (-m ${mode}) for 2.7 leases while jobs run: results kept`,
    ignore: needs.ignore,
    fn: async () => {
      const LEASE_S = size(2, 3);
      const OUTAGE_MS = Math.round(2.7 * LEASE_S * 1000);
      const JOBS = size(12, 40);
      await using pg = await startPgCluster();
      await using dir = await tempDir();
      const db = pg.url();
      const runs = dir.file("runs.txt");
      await configure(db, { lease: LEASE_S, max_retries: 0, poll_interval: 1 });
      const ids = await enqueueAll(
        db,
        Array.from({ length: JOBS }, (_, i) => ({
          id: `o${i}`,
          command: `sleep 2; ${recordRun(runs)}`,
        })),
        dir.file("jobs.jsonl"),
      );
      await using host = startHost({
        name: "host",
        db,
        count: WORKERS,
        logFile: dir.file("workers.log"),
      });
      // Every worker in the middle of a job.
      const held = await waitFor(async () => {
        const processing = (await jobRecords(db)).filter((j) => j.state === "processing");
        return processing.length === WORKERS ? processing.map((j) => j.id) : null;
      }, { timeoutMs: 30_000, intervalMs: 50, what: `${WORKERS} jobs processing` });

      // One more second: the claims are flushed to disk (asynchronous commit is flushed within
      // 3 × wal_writer_delay = 0.6 s), so a crash cannot undo them; the jobs still run.
      await within(1000, () => false, 100);
      const stoppedAt = Date.now();
      await pg.stop(mode);
      await within(OUTAGE_MS - (Date.now() - stoppedAt), () => false, 200);
      await pg.start();
      const backAt = Date.now();

      const finished = () =>
        jobRecords(db).then((all) =>
          all.filter((j) => j.state === "completed" || j.state === "dead").length === JOBS
        );
      const allDone = await within(size(60_000, 120_000), finished, 300);
      const doneAt = Date.now();
      await host.stop();
      const firstOutcome = host.lines().find((l) =>
        l.at >= backAt && /\] (completed|failed|rescued) |moved to DLQ/.test(l.text)
      );
      const outcome = await tally({
        db,
        ids,
        runsFile: runs,
        hosts: [host],
        deaths: mode === "immediate" ? crashDeath(host.lines(), stoppedAt) : [],
      });
      const dropped = host.lines().filter((l) => /result dropped/.test(l.text)).length;
      const rescued = host.lines().filter((l) => / rescued /.test(l.text)).length;
      const failures: string[] = [];
      expect(failures, allDone, "every job finished after the server came back");
      const heldDead = outcome.records.filter((r) =>
        held.includes(r.id) && r.state !== "completed"
      );
      expect(
        failures,
        heldDead.length === 0,
        `the jobs in hand at the outage completed: ${
          heldDead.map((r) => `${r.id} ${r.state} (${r.error})`).join("; ")
        }`,
      );
      verdict(`fault 2: PostgreSQL outage (-m ${mode}) longer than the lease`, outcome, {
        workers: WORKERS,
        lease_s: LEASE_S,
        outage_s: secs(backAt - stoppedAt),
        jobs_in_hand_at_outage: held.length,
        jobs_in_hand_not_completed: heldDead.length,
        results_dropped_logged: dropped,
        rescues_logged: rescued,
        first_outcome_after_return_s: secs(firstOutcome ? firstOutcome.at - backAt : null),
        all_done_after_return_s: allDone ? secs(doneAt - backAt) : null,
      }, failures);
    },
  });
}

Deno.test({
  name: "fault 1: a claim retried through an outage writes a fresh lease (no instant rescue)",
  ignore: needs.ignore,
  fn: async () => {
    const LEASE_S = size(2, 5);
    const OUTAGE_MS = Math.round(2.5 * LEASE_S * 1000);
    await using pg = await startPgCluster();
    await using dir = await tempDir();
    const db = pg.url();
    const runs = dir.file("runs.txt");
    // A long poll: idle workers wake for the next run_at, nothing else.
    await configure(db, { lease: LEASE_S, max_retries: 0, poll_interval: 60 });
    await using host = startHost({
      name: "host",
      db,
      count: WORKERS,
      logFile: dir.file("workers.log"),
    });
    await waitFor(
      () => host.lines().filter((l) => /\[supervisor \S+\] starting/.test(l.text)).length === 1,
      { timeoutMs: 30_000, what: "the supervisor to start" },
    );
    // Jobs due one second into the outage, more than there are workers; each runs 0.5 s.
    const outageStartsIn = 3000;
    const dueAt = Date.now() + outageStartsIn + 1000;
    const JOBS = 2 * WORKERS;
    const ids = await enqueueAll(
      db,
      Array.from({ length: JOBS }, (_, i) => ({
        id: `c${i}`,
        command: `sleep 0.5; ${recordRun(runs)}`,
        run_at: new Date(dueAt).toISOString(),
      })),
      dir.file("jobs.jsonl"),
    );
    // Let every idle worker read the next run time, then stop the server before it is due.
    await within(dueAt - 1000 - Date.now(), () => false, 100);
    const stoppedAt = Date.now();
    await pg.stop("fast");
    await within(stoppedAt + OUTAGE_MS - Date.now(), () => false, 200);
    await pg.start();
    const backAt = Date.now();
    const finished = () =>
      jobRecords(db).then((all) =>
        all.filter((j) => j.state === "completed" || j.state === "dead").length === JOBS
      );
    const allDone = await within(size(60_000, 120_000), finished, 300);
    const doneAt = Date.now();
    await host.stop();
    const lines = host.lines();
    const claimRetries = lines.filter((l) => /cannot claim a job/.test(l.text)).length;
    const outcome = await tally({ db, ids, runsFile: runs, hosts: [host] });
    const rescued = lines.filter((l) => / rescued /.test(l.text)).length;
    const failures: string[] = [];
    expect(failures, allDone, "every job finished after the server came back");
    expect(failures, rescued === 0, `nothing rescued (no worker died): ${rescued} rescues`);
    verdict("fault 1: claim retried through an outage", outcome, {
      workers: WORKERS,
      lease_s: LEASE_S,
      outage_s: secs(backAt - stoppedAt),
      due_after_stop_s: secs(dueAt - stoppedAt),
      workers_retrying_a_claim: claimRetries,
      rescues_logged: rescued,
      results_dropped_logged: lines.filter((l) => /result dropped/.test(l.text)).length,
      all_done_after_return_s: allDone ? secs(doneAt - backAt) : null,
    }, failures);
  },
});
