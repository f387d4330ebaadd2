/**
 * SQLite-only behaviour under faults (issue 12): the workers' lock file never holds up the event
 * loop and gives up on a frozen holder; a job is rescued only once its worker's process is gone
 * (pid plus start time, so a reused pid does not pass for the worker).
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { NewJob } from "../../src/core/job.ts";
import { StorageError } from "../../src/core/errors.ts";
import { storageError } from "../../src/store/sqlite/errors.ts";
import { openSqliteStore } from "../../src/store/sqlite/mod.ts";
import { HotLock } from "../../src/store/sqlite/hot_lock.ts";
import { processStarts } from "../../src/store/sqlite/processes.ts";
import type { WorkerRecord } from "../../src/store/store.ts";
import { FailureNotes } from "../../src/worker/failure_notes.ts";
import { hostname } from "../../src/worker/host.ts";
import { tempDir, tempStore } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

const linux = Deno.build.os === "linux";
const claim = { workerId: "w", queues: null, now: 0, leaseMs: 1000, limit: 1 };

function job(id: string): NewJob {
  return {
    id,
    command: "true",
    queue: "default",
    priority: 0,
    max_retries: 0,
    timeout: null,
    run_at: 0,
    cwd: null,
    env: null,
    depends_on: null,
    unique_key: null,
  };
}

function record(id: string, pid: number, heartbeatAt: number): WorkerRecord {
  return {
    id,
    pid,
    host: hostname(),
    queues: null,
    started_at: heartbeatAt,
    heartbeat_at: heartbeatAt,
    current_job: null,
    stop_requested_at: null,
    supervisor_id: null,
  };
}

Deno.test({
  name:
    "sqlite hot lock: a held lock is waited for without blocking the event loop, at most the wait",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const holder = Deno.openSync(`${db}-lock`, { read: true, write: true, create: true });
    const lock = HotLock.open(db);
    try {
      holder.lockSync(true); // another open file: flock(2) locks conflict within a process too
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 5);
      const started = performance.now();
      const got = await lock.acquire(200);
      const waited = performance.now() - started;
      clearInterval(ticker);
      assert.equal(got, false, "a frozen holder: go on without the lock");
      assert.ok(waited >= 190, `waited ${waited} ms`);
      assert.ok(ticks >= 5, `timers ran while waiting (${ticks} ticks)`);
      // While the abandoned wait is under way: no further waiting at all.
      const again = performance.now();
      assert.equal(await lock.acquire(200), false);
      assert.ok(performance.now() - again < 150, "no second wait on a frozen holder");
      holder.unlockSync();
      // The holder let go: the lock is taken again (the abandoned wait lets go of it at once).
      await waitFor(async () => {
        const ok = await lock.acquire(200);
        if (ok) lock.release();
        return ok;
      }, { timeoutMs: 5000, what: "the lock to be taken again" });
    } finally {
      lock.close();
      holder.close();
    }
  },
});

Deno.test({
  name: "sqlite rescue: a live worker's expired job is kept; a dead or reused pid's is rescued",
  ignore: !linux,
  fn: async () => {
    await using t = await tempStore();
    const sleeper = new Deno.Command("sleep", { args: ["60"], stdin: "null" }).spawn();
    try {
      const starts = await processStarts([sleeper.pid]);
      assert.ok(starts?.get(sleeper.pid), "the start time of a running process is read");
      await t.store.insertJobs({ jobs: [job("live"), job("reused")], now: 0 });
      for (const id of ["live", "reused"]) {
        await t.store.claimJobs({
          workerId: `w-${id}`,
          queues: null,
          now: 0,
          leaseMs: 1000,
          limit: 1,
        });
        await t.store.registerWorker({ worker: record(`w-${id}`, sleeper.pid, 0) });
      }
      // "reused": the record's process started at another time (its pid now names another).
      const db = new DatabaseSync(t.dbPath);
      db.prepare("UPDATE workers SET pid_started = '1' WHERE id = 'w-reused'").run();
      db.close();
      const expired = async () =>
        (await t.store.findExpiredLeases({ now: 60_000, limit: 10 })).map((j) => j.id);
      assert.deepEqual(await expired(), ["reused"]);
      // Stale records of live processes stay (the rescue rule reads them).
      assert.deepEqual(await t.store.pruneWorkers({ before: 30_000 }), ["w-reused"]);
      sleeper.kill("SIGKILL");
      await sleeper.status;
      assert.deepEqual(await expired(), ["live", "reused"]);
      assert.deepEqual(await t.store.pruneWorkers({ before: 30_000 }), ["w-live"]);
    } finally {
      try {
        sleeper.kill("SIGKILL");
      } catch {
        // already gone
      }
      await sleeper.status;
    }
  },
});

Deno.test("sqlite errors: a full disk, an I/O error and a read-only file are transient, with a fix", () => {
  for (
    const [driver, cause] of [
      ["database or disk is full", /is full/],
      ["disk I/O error", /I\/O error/],
      ["attempt to write a readonly database", /read-only/],
    ] as const
  ) {
    const err = storageError("/data/q.db", new Error(driver));
    assert.equal(err.transient, true, driver);
    assert.match(err.message, cause);
    assert.match(err.message, /\/data\/q\.db/);
    assert.ok(err.hint && err.hint.length > 10, `a hint for ${driver}`);
  }
  assert.equal(storageError("/q.db", new Error("file is not a database")).transient, undefined);
});

Deno.test("failure notes: the same error is reported once a minute per process, another at once", () => {
  const notes = new FailureNotes();
  const full = new Error("The disk that holds q.db is full");
  assert.equal(notes.fresh(full, 0), true);
  assert.equal(notes.fresh(new Error(full.message), 1000), false, "the same cause, another call");
  assert.equal(notes.fresh(new Error("I/O error on q.db"), 1000), true);
  assert.equal(notes.fresh(full, 61_000), true, "again after a minute");
});

for (const how of ["deleted", "replaced"] as const) {
  Deno.test({
    name:
      `sqlite: a store whose file was ${how} refuses every call (gone), and leaves no stale WAL`,
    ignore: Deno.build.os === "windows",
    fn: async () => {
      await using dir = await tempDir();
      const db = dir.file("q.db");
      const store = await openSqliteStore(db);
      try {
        await store.insertJobs({ jobs: [job("old")], now: 0 });
        if (how === "deleted") {
          for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(db + suffix);
        } else {
          const other = await openSqliteStore(dir.file("restored.db"));
          await other.insertJobs({ jobs: [job("restored")], now: 0 });
          await other.close();
          await Deno.rename(dir.file("restored.db"), db);
        }
        for (const call of [() => store.getJob({ id: "old" }), () => store.claimJobs(claim)]) {
          await assert.rejects(call, (err: unknown) => {
            assert.ok(err instanceof StorageError && err.gone === true, String(err));
            assert.match(err.message, new RegExp(`${how === "deleted" ? "deleted" : "replaced"}`));
            assert.ok(err.message.includes(db));
            return true;
          });
        }
        if (how === "replaced") {
          // The old file's -wal/-shm were removed: the restored file opens sound, with its job.
          const fresh = await openSqliteStore(db);
          try {
            assert.equal((await fresh.getJob({ id: "restored" }))?.id, "restored");
            assert.equal(await fresh.getJob({ id: "old" }), null);
          } finally {
            await fresh.close();
          }
        }
      } finally {
        await store.close();
      }
    },
  });
}

Deno.test({
  name: "sqlite: calls started together share one look at the file; the next call sees it replaced",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const other = await openSqliteStore(dir.file("restored.db"));
    await other.close();
    const store = await openSqliteStore(db);
    try {
      // One synchronous run (as `status` starts its reads): the file is looked at by the first
      // call; the replacement after it is seen from the next run of code on, not later.
      const first = store.getConfig();
      Deno.renameSync(dir.file("restored.db"), db);
      const second = store.getConfig();
      assert.deepEqual(await first, {});
      assert.deepEqual(await second, {});
      await assert.rejects(
        () => store.getConfig(),
        (err: unknown) => err instanceof StorageError && err.gone === true,
      );
    } finally {
      await store.close();
    }
  },
});
