/**
 * Issue 12, fault 8: log lines contradict the outcome ("lost the lease on X … its result will be
 * dropped" followed by "completed X"). A heartbeat that renews the lease of the job in hand can
 * run while that job's result is being recorded; if the result lands first, the renewal finds no
 * lease and the worker announces a drop that does not happen. Every fault test checks its logs
 * against the records; this test makes the race frequent on its own: PostgreSQL (the test's own
 * cluster; a settle is a network round trip), the shortest lease (1 s: a heartbeat every 333 ms),
 * four workers running jobs that do nothing but record their run.
 *
 * What must hold: no log line contradicts another or the recorded outcome, and (nothing died)
 * every job completed exactly once.
 */
import { startHost } from "../../helpers/faults/host.ts";
import { startPgCluster } from "../../helpers/faults/pg_cluster.ts";
import { configure, enqueueAll, jobRecords, recordRun } from "../../helpers/faults/queue.ts";
import { faultNeeds } from "../../helpers/faults/requirements.ts";
import { tempDir } from "../../helpers/temp.ts";
import { size } from "../profile.ts";
import { expect, secs, tally, verdict, within } from "./kit.ts";

const needs = await faultNeeds("fault 8 (contradicting log lines)", ["linux", "pg-cluster"]);

Deno.test({
  name: "fault 8: log lines never contradict the recorded outcome (heartbeat racing a settle)",
  ignore: needs.ignore,
  fn: async () => {
    const JOBS = size(400, 3000);
    await using pg = await startPgCluster();
    await using dir = await tempDir();
    const db = pg.url();
    const runs = dir.file("runs.txt");
    await configure(db, { lease: 1, max_retries: 0, poll_interval: 1 });
    const ids = await enqueueAll(
      db,
      Array.from({ length: JOBS }, (_, i) => ({ id: `r${i}`, command: recordRun(runs) })),
      dir.file("jobs.jsonl"),
    );
    const started = performance.now();
    await using host = startHost({
      name: "host",
      db,
      count: 4,
      logFile: dir.file("workers.log"),
      untilEmpty: true,
    });
    const done = await within(
      size(120_000, 400_000),
      async () =>
        (await jobRecords(db)).filter((j) => j.state === "completed" || j.state === "dead")
          .length === JOBS,
      500,
    );
    const elapsed = performance.now() - started;
    await host.stop();
    const outcome = await tally({ db, ids, runsFile: runs, hosts: [host] });
    const lostLease = host.lines().filter((l) => /lost the lease/.test(l.text)).length;
    const failures: string[] = [];
    expect(failures, done, "every job finished");
    verdict("fault 8: log lines against outcomes", outcome, {
      workers: 4,
      lease_s: 1,
      lost_lease_lines: lostLease,
      seconds: secs(elapsed),
    }, failures);
  },
});
