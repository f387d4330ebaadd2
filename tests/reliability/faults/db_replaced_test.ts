/**
 * Issue 12, fault 6: the SQLite database file deleted or replaced under running workers.
 *
 * 1. **Deleted**: `rm q.db q.db-wal q.db-shm` while two workers run jobs, then a user enqueues
 *    three jobs (the CLI creates a new, empty database at the path).
 * 2. **Replaced**: `mv restored.db q.db` (another database, as when a backup is restored) while
 *    workers run; the old `-wal`/`-shm` stay beside it. After the workers had time to notice, a
 *    user enqueues three jobs into the file at the path.
 *
 * What must hold: the workers notice (file identity) within a lease + 2 s and stop, with one
 * clear error naming the database, instead of working on a file nobody else sees: every process
 * of `worker start` gone, no job started after that; every acknowledged enqueue is in the file at
 * the path afterwards (none vanished), pending, and the file is sound.
 */
import { startHost } from "../../helpers/faults/host.ts";
import { configure, enqueueAll, jobRecords, recordRun } from "../../helpers/faults/queue.ts";
import { faultNeeds } from "../../helpers/faults/requirements.ts";
import { runCli } from "../../helpers/run_cli.ts";
import { tempDir } from "../../helpers/temp.ts";
import { waitFor } from "../../helpers/wait_for.ts";
import { LOG } from "../ledger.ts";
import { integrityCheck } from "../profile.ts";
import { expect, secs, verdict, within } from "./kit.ts";

const needs = await faultNeeds("fault 6 (database deleted or replaced)", ["linux"]);

const LEASE_S = 2;
const NOTICE_MS = LEASE_S * 1000 + 2000;

for (const how of ["deleted", "replaced"] as const) {
  Deno.test({
    name: `fault 6: workers notice their database ${how} under them and stop with a clear error`,
    ignore: needs.ignore,
    fn: async () => {
      await using dir = await tempDir();
      const db = dir.file("q.db");
      const runs = dir.file("runs.txt");
      await configure(db, { lease: LEASE_S, max_retries: 0, poll_interval: 1 });
      await enqueueAll(
        db,
        Array.from({ length: 60 }, (_, i) => ({
          id: `old${i}`,
          command: `sleep 0.3; ${recordRun(runs)}`,
        })),
        dir.file("jobs.jsonl"),
      );
      let restoredIds: string[] = [];
      if (how === "replaced") {
        const restored = dir.file("restored.db");
        restoredIds = await enqueueAll(restored, [
          { id: "restored-1", command: recordRun(runs) },
          { id: "restored-2", command: recordRun(runs) },
        ], dir.file("restored.jsonl"));
      }
      await using host = startHost({
        name: "host",
        db,
        count: 2,
        logFile: dir.file("workers.log"),
      });
      await waitFor(() => host.lines().filter((l) => / completed /.test(l.text)).length >= 4, {
        timeoutMs: 30_000,
        what: "workers to complete jobs",
      });

      if (how === "deleted") {
        for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(db + suffix).catch(() => {});
      } else {
        await Deno.rename(dir.file("restored.db"), db);
      }
      const faultAt = Date.now();
      /** A user's enqueue of three jobs into the file at the path; the ids it acknowledged. */
      let enqueueError: string | null = null;
      const enqueueNew = async () => {
        const specs = Array.from({ length: 3 }, (_, i) => ({
          id: `new${i}`,
          command: recordRun(runs),
        }));
        await Deno.writeTextFile(
          dir.file("new.jsonl"),
          specs.map((j) => JSON.stringify(j)).join("\n"),
        );
        const r = await runCli(["enqueue", "--file", dir.file("new.jsonl"), "--json"], { db });
        if (r.code !== 0) {
          enqueueError = `exit ${r.code}: ${r.stderr.trim()}`;
          return [];
        }
        return JSON.parse(r.stdout) as string[];
      };
      // Deleted: the user starts over at once. Replaced: after the workers had time to notice.
      let newIds = how === "deleted" ? await enqueueNew() : [];
      const gone = await within(NOTICE_MS - (Date.now() - faultAt), () => host.gone(), 200);
      const goneAt = gone ? Date.now() : null;
      if (how === "replaced") newIds = await enqueueNew();
      const aliveAfterNotice = host.processes().length;
      const startedLate = host.lines().filter((l) =>
        l.at >= faultAt + NOTICE_MS && LOG.started.test(l.text)
      );
      // Stop what still runs (gracefully: their connections close as a user's Ctrl-C would).
      const stopped = gone || await host.stop(20_000);
      const exit = gone || stopped ? (await host.proc.status).code : null;
      const lines = host.lines().filter((l) => l.at >= faultAt);
      const clear = lines.find((l) =>
        l.text.includes(db) &&
        /deleted|replaced|moved|no longer|another file|identity/i.test(l.text)
      );
      let readError: string | null = null;
      const records = await jobRecords(db).catch((err) => {
        readError = String(err.message ?? err).split("\n")[0];
        return [];
      });
      const byId = new Map(records.map((r) => [r.id, r]));
      const acknowledged = [...newIds, ...restoredIds];
      const vanished = acknowledged.filter((id) => !byId.has(id));
      const notPending = acknowledged.filter((id) =>
        byId.has(id) && byId.get(id)!.state !== "pending"
      );
      let integrity: string;
      try {
        integrity = integrityCheck(db);
      } catch (err) {
        integrity = (err as Error).message;
      }
      const failures: string[] = [];
      expect(
        failures,
        gone,
        `every process of worker start gone within ${
          secs(NOTICE_MS)
        } s (${aliveAfterNotice} still running)`,
      );
      expect(failures, clear !== undefined, `a clear error naming ${db} and what happened`);
      expect(failures, exit !== 0, `worker start exited non-zero (exited ${exit})`);
      expect(
        failures,
        startedLate.length === 0,
        `no job started on the old file once the workers should have noticed (${startedLate.length})`,
      );
      expect(failures, enqueueError === null, `the user's enqueue succeeded (${enqueueError})`);
      expect(failures, readError === null, `the file at the path reads (${readError})`);
      expect(failures, vanished.length === 0, `acknowledged jobs vanished: ${vanished}`);
      expect(
        failures,
        notPending.length === 0,
        `the new file's jobs wait for a worker of the new file: ${notPending}`,
      );
      expect(failures, integrity === "ok", `integrity_check: ${integrity}`);
      verdict(`fault 6: database ${how} under running workers`, null, {
        notice_limit_s: secs(NOTICE_MS),
        workers_gone_after_s: secs(goneAt === null ? null : goneAt - faultAt),
        processes_alive_after_limit: aliveAfterNotice,
        jobs_started_on_the_old_file_after_limit: startedLate.length,
        exit_code: exit,
        clear_error: clear?.text ?? null,
        enqueue_error: enqueueError,
        read_error: readError,
        acknowledged_after_fault: newIds.length,
        restored_jobs: restoredIds.length,
        vanished: vanished.length,
        not_pending: notPending.length,
        jobs_at_path: records.length,
        integrity,
      }, failures);
    },
  });
}
