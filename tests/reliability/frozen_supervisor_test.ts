/**
 * Issue 12 (frozen processes): a supervisor frozen with SIGSTOP for four leases, on SQLite with two
 * hosts' worth of supervisors. Its workers do not depend on it and go on; a worker of the other
 * supervisor SIGKILLed meanwhile (a real death) still has its job rescued within two leases + 2 s
 * (whoever does the rescuing, it must not be waiting for the frozen process); after SIGCONT the
 * frozen supervisor carries on without restarting anyone, and the only job that ran twice is the
 * killed worker's.
 */
import assert from "node:assert/strict";
import { startHost } from "../helpers/faults/host.ts";
import { alive, freeze, signal, stopped, thaw } from "../helpers/faults/procs.ts";
import {
  configure,
  enqueueAll,
  jobRecords,
  recordRun,
  workerRows,
} from "../helpers/faults/queue.ts";
import { faultNeeds } from "../helpers/faults/requirements.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";
import { size } from "./profile.ts";
import { expect, secs, tally, verdict, within } from "./faults/kit.ts";

const needs = await faultNeeds("frozen supervisor", ["linux"]);

const LEASE_S = 2;
const FREEZE_MS = 4 * LEASE_S * 1000;

Deno.test({
  name: "frozen supervisor: its workers go on, a death elsewhere is still rescued, no restarts",
  ignore: needs.ignore,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const runs = dir.file("runs.txt");
    const JOBS = size(300, 1200);
    await configure(db, { lease: LEASE_S, max_retries: 2, backoff_base: 1, poll_interval: 1 });
    const ids = await enqueueAll(
      db,
      Array.from({ length: JOBS }, (_, i) => ({
        id: `f${i}`,
        command: `sleep 0.1; ${recordRun(runs)}`,
      })),
      dir.file("jobs.jsonl"),
    );
    await using a = startHost({ name: "A", db, count: 2, logFile: dir.file("a.log") });
    await using b = startHost({ name: "B", db, count: 2, logFile: dir.file("b.log") });
    const completedBy = (h: typeof a, from: number, to: number) =>
      h.lines().filter((l) => l.at >= from && l.at < to && / completed /.test(l.text)).length;
    await waitFor(() => completedBy(a, 0, Infinity) >= 5 && completedBy(b, 0, Infinity) >= 5, {
      timeoutMs: 30_000,
      what: "both hosts to complete jobs",
    });

    assert.ok(freeze(a.pid));
    await waitFor(() => stopped(a.pid), { what: "A's supervisor to stop" });
    const frozenAt = Date.now();
    let killed: { pid: number; job: string } | null = null;
    let killedAt = 0;
    try {
      // A worker of B in the middle of a job: SIGKILL it (a real death). What it held is read
      // after its death (it can write nothing since); a kill between two jobs is tried again.
      for (let tries = 0; killed === null && tries < 10; tries++) {
        const pids = b.workers().map((w) => w.pid);
        const row = (await workerRows(db)).find((r) => pids.includes(r.pid) && r.current_job);
        if (!row) continue;
        signal(row.pid, "SIGKILL");
        await waitFor(() => !alive(row.pid), { what: "the killed worker to die" });
        const held = (await jobRecords(db)).find((j) =>
          j.state === "processing" && j.lease_owner === row.id
        );
        if (held) {
          killed = { pid: row.pid, job: held.id };
          killedAt = Date.now();
        }
      }
      assert.ok(killed, "killed a worker of B while it held a job");
      await within(FREEZE_MS - (Date.now() - frozenAt), () => false, 250);
    } finally {
      thaw(a.pid);
    }
    const thawedAt = Date.now();
    const aWorkedWhileFrozen = completedBy(a, frozenAt, thawedAt);
    const finished = async () =>
      (await jobRecords(db)).filter((j) => j.state === "completed" || j.state === "dead")
        .length === JOBS;
    const allDone = await within(size(60_000, 180_000), finished, 300);
    const aStopped = await a.stop();
    const bStopped = await b.stop();
    const rescue = [...a.lines(), ...b.lines()].find((l) =>
      l.at >= killedAt && l.text.includes(`rescued ${killed!.job} `)
    );
    const aRestarts = a.lines().filter((l) => /unexpectedly/.test(l.text)).length;
    const outcome = await tally({
      db,
      ids,
      runsFile: runs,
      hosts: [a, b],
      deaths: [{ what: `B's worker ${killed!.pid} SIGKILLed by the test`, jobs: [killed!.job] }],
    });
    const failures: string[] = [];
    expect(failures, allDone, "every job finished");
    expect(failures, aStopped && bStopped, "both supervisors stopped on SIGTERM");
    expect(failures, aWorkedWhileFrozen > 0, "A's workers completed jobs while A was frozen");
    expect(
      failures,
      rescue !== undefined && rescue.at - killedAt <= 2 * LEASE_S * 1000 + 2000,
      `the killed worker's job ${killed!.job} rescued within two leases + 2 s (after ${
        secs(rescue ? rescue.at - killedAt : null)
      } s)`,
    );
    expect(failures, aRestarts === 0, `A restarted no worker (${aRestarts})`);
    verdict("frozen supervisor", outcome, {
      lease_s: LEASE_S,
      freeze_s: secs(thawedAt - frozenAt),
      a_completed_while_frozen: aWorkedWhileFrozen,
      killed_job_rescued_after_s: secs(rescue ? rescue.at - killedAt : null),
      a_restarts: aRestarts,
      a_re_registered: a.lines().some((l) => /registering again/.test(l.text)),
    }, failures);
  },
});
