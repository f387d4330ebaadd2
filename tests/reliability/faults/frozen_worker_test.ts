/**
 * Issue 12, fault 3: frozen workers on SQLite (SIGSTOP/SIGCONT, one host).
 *
 * 1. **Frozen while holding `<db>-lock`.** Four workers run short jobs; the test SIGSTOPs a
 *    worker at a moment it holds the lock file's flock (and not SQLite's own write lock, so the
 *    others could write), seen in /proc/locks, for three leases, then SIGCONTs it. What must hold:
 *    no worker blocks its event loop on the lock, so the others stay alive (their heartbeats keep
 *    `worker list` showing them alive) and go on completing jobs once their lock wait timed out
 *    (within about a lease); after the thaw nobody rescues a live worker's job: no duplicate
 *    (nothing died), no wrong outcome (`max_retries` 0: a rescued job would go to the DLQ).
 * 2. **Frozen while running a job.** A worker is SIGSTOPped mid-job (not holding the lock) for
 *    three leases, then thawed: its process never died, so its job must not be rescued: it runs
 *    once and ends completed.
 */
import { startHost } from "../../helpers/faults/host.ts";
import {
  fileLocks,
  flockWaiters,
  freeze,
  freezeFlockHolder,
  holdsFlock,
  holdsSqliteWriteLock,
  stopped,
  thaw,
} from "../../helpers/faults/procs.ts";
import {
  configure,
  enqueueAll,
  jobRecords,
  recordRun,
  workerRows,
} from "../../helpers/faults/queue.ts";
import { faultNeeds } from "../../helpers/faults/requirements.ts";
import { tempDir } from "../../helpers/temp.ts";
import { waitFor } from "../../helpers/wait_for.ts";
import { size } from "../profile.ts";
import { expect, secs, tally, verdict, within } from "./kit.ts";

const needs = await faultNeeds("fault 3 (frozen worker)", ["linux"]);

const LEASE_S = size(2, 5);
const FREEZE_MS = 3 * LEASE_S * 1000;
const WORKERS = 4;

const finished = (counts: Record<string, number>) => (counts.completed ?? 0) + (counts.dead ?? 0);

async function countStates(db: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const j of await jobRecords(db)) counts[j.state] = (counts[j.state] ?? 0) + 1;
  return counts;
}

Deno.test({
  name: "fault 3: a worker frozen while holding <db>-lock stops no one, and rescues nothing after",
  ignore: needs.ignore,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const lockFile = `${db}-lock`;
    const runs = dir.file("runs.txt");
    const JOBS = size(800, 2000);
    await configure(db, { lease: LEASE_S, max_retries: 0, poll_interval: 1 });
    const started = performance.now();
    const ids = await enqueueAll(
      db,
      Array.from({ length: JOBS }, (_, i) => ({
        id: `j${i}`,
        command: `sleep 0.02; ${recordRun(runs)}`,
      })),
      dir.file("jobs.jsonl"),
    );
    await using host = startHost({
      name: "host",
      db,
      count: WORKERS,
      logFile: dir.file("workers.log"),
    });
    const completedLines = () => host.lines().filter((l) => / completed /.test(l.text));
    await waitFor(() => completedLines().length >= 40, {
      timeoutMs: 30_000,
      what: "workers to complete jobs",
    });

    // Freeze a worker at a moment it holds the flock but not SQLite's write lock.
    let attempts = 0;
    let frozen: number | null = null;
    // Catching a holder is the harness's step, not the promise: on a loaded machine (load average
    // 20 on 2 cores) 30 s was not always enough, so a minute.
    const catchDeadline = performance.now() + 60_000;
    while (frozen === null && performance.now() < catchDeadline) {
      const workers = host.workers().map((w) => w.pid);
      if (workers.length === 0) break;
      attempts++;
      const pid = await freezeFlockHolder(lockFile, workers, catchDeadline - performance.now());
      if (pid === null) break;
      const locks = fileLocks();
      if (holdsFlock(pid, lockFile, locks) && !holdsSqliteWriteLock(pid, db, locks)) frozen = pid;
      else thaw(pid);
    }
    const failures: string[] = [];
    if (frozen === null) {
      verdict("fault 3: worker frozen holding <db>-lock", null, { attempts }, [
        `caught no worker holding the lock file in ${attempts} attempts`,
      ]);
      return;
    }
    const frozenAt = Date.now();
    const others = host.workers().map((w) => w.pid).filter((pid) => pid !== frozen);
    let waitersDuringFreeze = 0;
    let aliveOthersLate: number | null = null;
    try {
      await within(FREEZE_MS, () => {
        waitersDuringFreeze = Math.max(waitersDuringFreeze, flockWaiters(lockFile));
        return false;
      }, 500);
      // Late in the freeze: are the other workers' heartbeats still being written? (A record
      // pruned as stale counts as not alive.)
      const rows = await workerRows(db);
      aliveOthersLate = rows.filter((r) => others.includes(r.pid) && r.alive).length;
    } finally {
      thaw(frozen);
    }
    const thawedAt = Date.now();
    // Work after the thaw, whatever the others got through while it lasted: on a fast machine the
    // three other workers emptied the queue during the freeze, and "completed again after the
    // thaw" then had nothing to complete.
    ids.push(
      ...await enqueueAll(
        db,
        Array.from({ length: 40 }, (_, i) => ({
          id: `t${i}`,
          command: `sleep 0.02; ${recordRun(runs)}`,
        })),
        dir.file("after-thaw.jsonl"),
      ),
    );
    const completedIn = (from: number, to: number) =>
      completedLines().filter((l) => l.at >= from && l.at < to).length;
    const duringFirstLease = completedIn(frozenAt, frozenAt + LEASE_S * 1000);
    const duringRest = completedIn(frozenAt + LEASE_S * 1000, thawedAt);

    // Two leases after the thaw (a wrong rescue comes at the first heartbeats), then a graceful
    // stop: the jobs in hand finish; what is still pending is runnable, not lost.
    await within(2 * LEASE_S * 1000, () => false, 250);
    const firstAfterThaw = completedLines().find((l) => l.at >= thawedAt)?.at ?? null;
    const stopped = await host.stop();
    const outcome = await tally({ db, ids, runsFile: runs, hosts: [host] });
    const rescues = host.lines().filter((l) => / rescued /.test(l.text)).length;
    expect(failures, stopped, "the workers stopped on SIGTERM after the thaw");
    expect(
      failures,
      firstAfterThaw !== null,
      "jobs completed again after the thaw",
    );
    expect(
      failures,
      duringRest > 0,
      `the other workers completed jobs while one was frozen holding the lock (after the first lease: ${duringRest})`,
    );
    expect(
      failures,
      aliveOthersLate === others.length,
      `the other workers stayed alive (heartbeats) during the freeze: ${aliveOthersLate}/${others.length}`,
    );
    expect(failures, rescues === 0, `no job rescued (no worker died): ${rescues} rescues`);
    verdict("fault 3: worker frozen holding <db>-lock", outcome, {
      workers: WORKERS,
      lease_s: LEASE_S,
      freeze_s: FREEZE_MS / 1000,
      attempts_to_catch_the_lock: attempts,
      lock_waiters_during_freeze: waitersDuringFreeze,
      other_workers_alive_late_in_freeze: `${aliveOthersLate}/${others.length}`,
      completed_in_first_lease_of_freeze: duringFirstLease,
      completed_in_rest_of_freeze: duringRest,
      rescues_logged: rescues,
      recovery_s: secs(firstAfterThaw === null ? null : firstAfterThaw - thawedAt),
      total_s: secs(performance.now() - started),
    }, failures);
  },
});

Deno.test({
  name: "fault 3: a worker frozen mid-job for three leases is not rescued; its job runs once",
  ignore: needs.ignore,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const lockFile = `${db}-lock`;
    const runs = dir.file("runs.txt");
    const JOBS = size(40, 200);
    await configure(db, { lease: LEASE_S, max_retries: 0, poll_interval: 1 });
    const ids = await enqueueAll(
      db,
      Array.from({ length: JOBS }, (_, i) => ({
        id: `m${i}`,
        command: `sleep 0.5; ${recordRun(runs)}`,
      })),
      dir.file("jobs.jsonl"),
    );
    await using host = startHost({
      name: "host",
      db,
      count: WORKERS,
      logFile: dir.file("workers.log"),
    });
    // A worker in the middle of a job, not holding the lock.
    const target = await waitFor(async () => {
      const rows = (await workerRows(db)).filter((r) => r.current_job !== null);
      for (const r of rows) {
        if (!freeze(r.pid)) continue;
        await waitFor(() => stopped(r.pid), { timeoutMs: 2000, what: "SIGSTOP" });
        const job = (await jobRecords(db)).find((j) => j.id === r.current_job);
        if (
          !holdsFlock(r.pid, lockFile) && job?.state === "processing" && job.lease_owner === r.id
        ) {
          return { pid: r.pid, job: job.id };
        }
        thaw(r.pid);
      }
      return null;
    }, { timeoutMs: 60_000, what: "a worker mid-job to freeze" });
    const frozenAt = Date.now();
    try {
      await within(FREEZE_MS, () => false, 500);
    } finally {
      thaw(target.pid);
    }
    const thawedAt = Date.now();
    const allDone = await within(
      size(60_000, 180_000),
      async () => finished(await countStates(db)) === JOBS,
      500,
    );
    await host.stop();
    const outcome = await tally({ db, ids, runsFile: runs, hosts: [host] });
    const frozenJob = outcome.records.find((r) => r.id === target.job);
    const rescues = host.lines().filter((l) => / rescued /.test(l.text));
    const failures: string[] = [];
    expect(failures, allDone, "every job finished after the thaw");
    expect(
      failures,
      frozenJob?.state === "completed",
      `the frozen worker's job ${target.job} completed (is ${frozenJob?.state}: ${frozenJob?.error})`,
    );
    expect(failures, rescues.length === 0, `nothing rescued: ${rescues.map((l) => l.text)}`);
    verdict("fault 3: worker frozen mid-job", outcome, {
      workers: WORKERS,
      lease_s: LEASE_S,
      freeze_s: secs(thawedAt - frozenAt),
      frozen_job: target.job,
      frozen_job_state: frozenJob?.state,
      frozen_job_error: frozenJob?.error ?? null,
      rescues_logged: rescues.length,
    }, failures);
  },
});
