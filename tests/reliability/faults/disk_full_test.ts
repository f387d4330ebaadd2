/**
 * Issue 12, fault 5: the disk under an SQLite database fills up while workers run. The database
 * lives on a 4 MiB tmpfs of the test's own (16 MiB for the full size); once workers are busy, a
 * filler file takes every free byte (ENOSPC for everyone) for three leases, then it is deleted.
 * Jobs print 4 KiB each, so every settle has something to write. (The runs file and the workers' log are on another disk.)
 *
 * What must hold: a full disk is handled like an outage: no worker exits or is restarted (no
 * crash loop), at most one clear message per process naming the cause (and its fix), the outcome
 * of a job in hand is kept and written once space is back (no duplicate, no wrong outcome, nothing
 * lost), everything finishes soon after the space is freed, and the database is sound.
 */
import { startHost } from "../../helpers/faults/host.ts";
import { configure, enqueueAll, jobRecords, recordRun } from "../../helpers/faults/queue.ts";
import { faultNeeds } from "../../helpers/faults/requirements.ts";
import { mountTmpfs } from "../../helpers/faults/tmpfs.ts";
import { tempDir } from "../../helpers/temp.ts";
import { waitFor } from "../../helpers/wait_for.ts";
import { integrityCheck, size } from "../profile.ts";
import { expect, secs, tally, verdict, within } from "./kit.ts";

const needs = await faultNeeds("fault 5 (disk full)", ["linux", "tmpfs"]);

const LEASE_S = 2;
const WORKERS = 2;
const FULL_MS = 3 * LEASE_S * 1000;

function fileSize(path: string): number | null {
  try {
    return Deno.statSync(path).size;
  } catch {
    return null;
  }
}

Deno.test({
  name: "fault 5: a full disk under SQLite is ridden out like an outage, without a crash loop",
  ignore: needs.ignore,
  fn: async () => {
    await using dir = await tempDir();
    // Room for the jobs' own data (each stores 4 KiB of output): 800 jobs of the full size filled
    // a 4 MiB disk with data alone (a 3.7 MB database), whatever the fault.
    await using disk = await mountTmpfs(size(4, 16) * 1024 * 1024);
    const db = disk.file("q.db");
    const runs = dir.file("runs.txt");
    const JOBS = size(200, 800);
    await configure(db, { lease: LEASE_S, max_retries: 0, poll_interval: 1 });
    const ids = await enqueueAll(
      db,
      Array.from({ length: JOBS }, (_, i) => ({
        id: `d${i}`,
        command: `sleep 0.05; head -c 4096 /dev/zero | tr '\\0' x; ${recordRun(runs)}`,
      })),
      dir.file("jobs.jsonl"),
    );
    await using host = startHost({
      name: "host",
      db,
      count: WORKERS,
      logFile: dir.file("workers.log"),
    });
    const completed = () => host.lines().filter((l) => / completed /.test(l.text));
    await waitFor(() => completed().length >= 20, {
      timeoutMs: 30_000,
      what: "workers to complete jobs",
    });
    const filled = await disk.fill();
    const fullAt = Date.now();
    await within(FULL_MS, () => false, 250);
    await disk.free();
    const freedAt = Date.now();
    const availableAfterFree = await disk.availableBytes();
    const walAfterFree = fileSize(`${db}-wal`);
    const finished = async () =>
      (await jobRecords(db)).filter((j) => j.state === "completed" || j.state === "dead")
        .length === JOBS;
    // A deadline for the rest of the queue, not a speed limit: on a busy 2-core machine a job of
    // this test takes 0.2-0.3 s, and ~180 are left (the recovery time is its own figure).
    const allDone = await within(size(90_000, 300_000), finished, 300);
    const doneAt = Date.now();
    const stopped = await host.stop();
    const lines = host.lines();
    const exits = lines.filter((l) => /\[supervisor \S+\] worker \S+ .* unexpectedly/.test(l.text));
    const diskLines = lines.filter((l) => /full|no space|ENOSPC/i.test(l.text));
    const firstAfterFree = completed().find((l) => l.at >= freedAt);
    const outcome = await tally({ db, ids, runsFile: runs, hosts: [host] });
    const integrity = integrityCheck(db);
    const walAtEnd = fileSize(`${db}-wal`);
    const availableAtEnd = await disk.availableBytes();
    const failures: string[] = [];
    expect(failures, allDone, "every job finished after space was freed");
    expect(failures, stopped, "the workers stopped on SIGTERM");
    expect(
      failures,
      exits.length === 0,
      `no worker exited or was restarted (${exits.length}: ${exits[0]?.text})`,
    );
    expect(
      failures,
      diskLines.length >= 1 && diskLines.length <= WORKERS + 1,
      `one clear message per process about the full disk (${diskLines.length} lines)`,
    );
    expect(failures, integrity === "ok", `integrity_check: ${integrity}`);
    verdict("fault 5: disk full under SQLite", outcome, {
      workers: WORKERS,
      lease_s: LEASE_S,
      tmpfs_bytes: disk.sizeBytes,
      filler_bytes: filled,
      full_s: secs(freedAt - fullAt),
      worker_exits: exits.length,
      disk_full_lines: diskLines.length,
      first_disk_full_line: diskLines[0]?.text ?? null,
      completed_while_full: completed().filter((l) => l.at >= fullAt && l.at < freedAt).length,
      first_completion_after_free_s: secs(firstAfterFree ? firstAfterFree.at - freedAt : null),
      all_done_after_free_s: allDone ? secs(doneAt - freedAt) : null,
      available_bytes_after_free: availableAfterFree,
      wal_bytes_after_free: walAfterFree,
      available_bytes_at_end: availableAtEnd,
      wal_bytes_at_end: walAtEnd,
      db_bytes_at_end: fileSize(db),
      integrity,
    }, failures);
  },
});
