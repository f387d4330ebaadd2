/** The store conformance suite on SQLite, plus SQLite-only behaviour. */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { JOB_FIELDS, type JobToInsert } from "../../src/core/job.ts";
import type { Store } from "../../src/store/store.ts";
import { walksQueues } from "../../src/store/sql.ts";
import { openSqliteStore } from "../../src/store/sqlite/mod.ts";
import { MIGRATIONS } from "../../src/store/sqlite/migrations.ts";
import { HOT_CHECKPOINT_COMMITS, HOT_WAL_RESET_PAGES } from "../../src/store/sqlite/connection.ts";
import {
  CLAIM_BY_QUEUES_SQL,
  claimSelectSql,
  nextRunAtSql,
  nextRunByQueuesSql,
  SCHEDULED_COUNT_SQL,
} from "../../src/store/sqlite/sqlite_store.ts";
import { complete } from "../../src/core/transitions.ts";
import {
  claimIds,
  mailClaimedUncounted,
  newJob,
  pausedBacklog,
  storeConformance,
} from "./conformance.ts";
import { flowConformance } from "./flow_conformance.ts";
import { scheduleConformance } from "./schedule_conformance.ts";

const dir = await Deno.makeTempDir({ prefix: "queuectl-sqlite-conformance-" });
let n = 0;
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch {
    // already gone
  }
});

storeConformance("sqlite", () => openSqliteStore(`${dir}/store-${++n}.db`), {
  reopen: (store) => openSqliteStore(store.location),
});
flowConformance("sqlite", () => openSqliteStore(`${dir}/store-${++n}.db`), {
  reopen: (store) => openSqliteStore(store.location),
});

scheduleConformance("sqlite", () => openSqliteStore(`${dir}/store-${++n}.db`), {
  reopen: (store) => openSqliteStore(store.location),
});

Deno.test("sqlite: WAL mode, file mode 0600, migrations recorded", async () => {
  const path = `${dir}/pragma.db`;
  const store = await openSqliteStore(path);
  await store.close();
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const get = (sql: string) => Object.values(db.prepare(sql).get()!)[0];
    assert.equal(get("PRAGMA journal_mode"), "wal");
    assert.equal(get("PRAGMA user_version"), MIGRATIONS.length);
    assert.equal(get("SELECT count(*) FROM schema_migrations"), MIGRATIONS.length);
  } finally {
    db.close();
  }
  if (Deno.build.os !== "windows") assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
});

Deno.test("sqlite: the planner uses the indexes for status, list and claim", async () => {
  const path = `${dir}/plan.db`;
  (await openSqliteStore(path)).close();
  const db = new DatabaseSync(path);
  try {
    const plan = (sql: string) =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map((r) => r.detail)
        .join("; ");
    assert.match(
      plan("SELECT state, count(*) FROM jobs GROUP BY state"),
      /COVERING INDEX jobs_state_created/,
    );
    assert.match(
      plan("SELECT * FROM jobs WHERE state = 'pending' ORDER BY created_at DESC LIMIT 50"),
      /INDEX jobs_state_created/,
    );
    assert.doesNotMatch(
      plan("SELECT * FROM jobs WHERE state = 'pending' ORDER BY created_at DESC LIMIT 50"),
      /TEMP B-TREE/,
    );
    assert.match(
      plan(
        "SELECT id FROM jobs INDEXED BY jobs_claim WHERE state IN ('pending', 'failed') AND blocked_by = 0 AND run_at <= 5 ORDER BY priority DESC, run_at ASC, created_at ASC LIMIT 1",
      ),
      /^(SCAN|SEARCH) jobs USING INDEX jobs_claim$/,
    );
    // The store's own claim statements (built from core's claim rule): the order comes from the
    // index, never from sorting the due jobs.
    // Also with paused or full queues left out (closed: a JSON array of names).
    for (
      const [queues, closed] of [[0, false], [1, false], [3, false], [0, true], [2, true]] as const
    ) {
      const sql = claimSelectSql(queues, closed);
      const params = [
        1,
        ...Array.from({ length: queues }, (_, i) => `q${i}`),
        ...(closed ? ['["q0"]'] : []),
        1,
      ];
      const detail = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as {
        detail: string;
      }[]).map((r) => r.detail).join("; ");
      assert.match(detail, /^(SCAN|SEARCH) jobs USING INDEX jobs_claim/, sql);
      assert.doesNotMatch(detail, /TEMP B-TREE/, sql);
    }
    // A claim of a few small queues (walksQueues): their own jobs, whose due ones are sorted.
    assert.match(
      (db.prepare(`EXPLAIN QUERY PLAN ${CLAIM_BY_QUEUES_SQL}`).all(1, '["q0","q1"]', 1) as {
        detail: string;
      }[]).map((r) => r.detail).join("; "),
      /^SEARCH jobs USING INDEX jobs_queue_created \(queue=\?\)/,
    );
  } finally {
    db.close();
  }
});

Deno.test("sqlite: the next-due lookup and the scheduled count never walk waiting jobs", async () => {
  // 10,000 jobs waiting for one job scheduled after all of them: they are due first, but an idle
  // worker's next-run lookup and the scheduled count must not step through them (migration 13).
  const T0 = Date.UTC(2026, 0, 1);
  const path = `${dir}/next-due.db`;
  const store = await openSqliteStore(path);
  try {
    await store.insertJobs({ jobs: [newJob("root", { run_at: T0 + 1e6 })], now: T0 });
    await store.insertJobs({
      jobs: Array.from(
        { length: 10_000 },
        (_, i) => newJob(`w${i}`, { run_at: T0 + 1 + i, depends_on: '["root"]' }),
      ),
      now: T0,
    });
    assert.equal(await store.nextRunAt({ queues: null, after: T0 }), T0 + 1e6);
    assert.equal(await store.nextRunAt({ queues: ["default"] }), T0 + 1e6);
    const stats = await store.stats({ now: T0 });
    assert.deepEqual([stats.scheduled, stats.blocked], [1, 10_000]);
  } finally {
    await store.close();
  }
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const plan = (sql: string, params: (string | number)[]) =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[])
        .map((r) => r.detail).join("; ");
    // The store's own statements search that index (INDEXED BY: a statement whose condition no
    // longer implies the index's would not even prepare)...
    for (const [queues, after] of [[0, true], [0, false], [1, true], [2, false]] as const) {
      const params = [...["default", "other"].slice(0, queues), ...(after ? [T0] : [])];
      assert.match(
        plan(nextRunAtSql(queues, after), params),
        /^(SEARCH|SCAN) jobs USING (COVERING )?INDEX jobs_waiting\b/,
      );
      // Paused queues left out (a JSON array before `after`): the same index.
      const closedParams = [...params.slice(0, queues), '["paused"]', ...params.slice(queues)];
      assert.match(
        plan(nextRunAtSql(queues, after, true), closedParams),
        /^(SEARCH|SCAN) jobs USING (COVERING )?INDEX jobs_waiting\b/,
      );
      // The queues' own jobs (walksQueues): their index.
      assert.match(
        plan(nextRunByQueuesSql(after), ['["default"]', ...(after ? [T0] : [])]),
        /^SEARCH jobs USING INDEX jobs_queue_created \(queue=\?\)/,
      );
    }
    assert.match(
      plan(SCHEDULED_COUNT_SQL, [T0]),
      /^SEARCH jobs USING (COVERING )?INDEX jobs_waiting \(run_at>\?\)$/,
    );
    // ...which holds the one claimable job, none of the waiting ones.
    const entries = db.prepare(
      "SELECT sum(ncell) AS n FROM dbstat WHERE name = 'jobs_waiting' AND pagetype = 'leaf'",
    ).get() as { n: number };
    assert.equal(entries.n, 1);
  } finally {
    db.close();
  }
});

Deno.test("sqlite: the jobs table has exactly the columns of core's job field list", async () => {
  const path = `${dir}/columns.db`;
  await (await openSqliteStore(path)).close();
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const columns = db.prepare("PRAGMA table_info(jobs)").all() as {
      name: string;
      type: string;
      notnull: number;
      pk: number;
    }[];
    const sqlType = { text: "TEXT", integer: "INTEGER", real: "REAL", time: "INTEGER" } as const;
    assert.deepEqual(
      // The primary key (id) is never null: the store always gives one.
      Object.fromEntries(
        columns.map((c) => [c.name, `${c.type}${c.notnull || c.pk ? " NOT NULL" : ""}`]),
      ),
      Object.fromEntries(
        Object.entries(JOB_FIELDS).map(([name, f]) => [
          name,
          `${sqlType[f.type]}${"nullable" in f ? "" : " NOT NULL"}`,
        ]),
      ),
    );
  } finally {
    db.close();
  }
});

Deno.test("sqlite: the per-state counters always equal a full count", async () => {
  const { fail, moveToDlq, restore } = await import("../../src/core/transitions.ts");
  const path = `${dir}/counts.db`;
  const store = await openSqliteStore(path);
  const policy = { backoff_base: 2, backoff_max: 10 };
  const fullCount = () => {
    const db = new DatabaseSync(path, { readOnly: true });
    try {
      const rows = db.prepare("SELECT state, count(*) AS n FROM jobs GROUP BY state").all() as {
        state: string;
        n: number;
      }[];
      return Object.fromEntries(rows.map((r) => [r.state, r.n]));
    } finally {
      db.close();
    }
  };
  const assertCounts = async () => {
    const { counts } = await store.stats({ now: Date.now() });
    const full = fullCount();
    for (const [state, n] of Object.entries(counts)) assert.equal(n, full[state] ?? 0, state);
  };
  try {
    let now = 1_000_000;
    let seq = 0;
    for (let round = 0; round < 30; round++) {
      await store.insertJobs({
        jobs: Array.from({ length: 5 }, () => ({
          id: `j${seq++}`,
          command: "x",
          queue: "default",
          priority: round % 3,
          max_retries: 1,
          timeout: null,
          run_at: now,
        })),
        now,
      });
      now += 10_000;
      const claimed = await store.claimJobs({
        workerId: "w",
        queues: null,
        now,
        leaseMs: 5,
        limit: 4,
      });
      for (const [i, job] of claimed.entries()) {
        const r = { now, workerId: "w", exit_code: i % 2 };
        await store.applyChange({ change: i % 2 ? fail(job, r, policy) : complete(job, r) });
      }
      // A settle and the claims of the same transaction (their counter changes are summed).
      const [held] = await store.claimJobs({
        workerId: "w",
        queues: null,
        now,
        leaseMs: 5,
        limit: 1,
      });
      if (held) {
        const r = { now, workerId: "w", exit_code: round % 2 };
        const { claimed: more } = await store.settleAndClaim({
          change: round % 2 ? fail(held, r, policy) : complete(held, r),
          claim: { workerId: "w", queues: null, now, leaseMs: 5, limit: 2 },
        });
        await assertCounts();
        if (more[0]) await store.applyChange({ change: complete(more[0], r) });
      }
      const failed = await store.listJobs({ state: "failed", limit: 2 });
      if (failed[0]) await store.applyChange({ change: moveToDlq(failed[0], now) });
      const dead = await store.listJobs({ state: "dead", limit: 1 });
      if (dead[0] && round % 2) await store.applyChange({ change: restore(dead[0], now) });
      if (round % 5 === 0) await store.deleteJobs({ states: ["completed", "dead"] });
      await assertCounts();
    }
  } finally {
    await store.close();
  }
});

// --- the lock file of workers' claims and settles ---------------------------------------------

const insertPending = (ids: string[], now: number) => ({
  jobs: ids.map((id) => ({
    id,
    command: "true",
    queue: "default",
    priority: 0,
    max_retries: 0,
    timeout: null,
    run_at: now,
  })),
  now,
});

const claimOne = (now: number) => ({
  workerId: "w",
  queues: null,
  now,
  leaseMs: 60_000,
  limit: 1,
});

/**
 * Another process that takes a lock (`script` gets the database path as PATH), prints "locked",
 * holds it for a while, then prints "released <epoch ms>" just before letting go.
 */
async function lockHolder(script: string, path: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", `const PATH = ${JSON.stringify(path)};\n${script}`],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const nextLine = async (): Promise<string> => {
    for (;;) {
      const nl = buffer.indexOf("\n");
      if (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        return line;
      }
      const { value, done } = await lines.read();
      if (done) throw new Error("the lock holder exited early");
      buffer += value;
    }
  };
  assert.equal(await nextLine(), "locked");
  return {
    /** When the holder let go of the lock (it has, once the caller's write went through). */
    async releasedAt(): Promise<number> {
      const [word, at] = (await nextLine()).split(" ");
      assert.equal(word, "released");
      return Number(at);
    },
    async [Symbol.asyncDispose]() {
      await lines.cancel().catch(() => {});
      await child.status;
    },
  };
}

const HOLD = "await new Promise((r) => setTimeout(r, 300));\n" +
  'console.log("released " + Date.now());\n';

Deno.test("sqlite: claims and settles take a lock file beside the database (mode 0600)", async () => {
  const path = `${dir}/lockfile.db`;
  const store = await openSqliteStore(path);
  try {
    await store.stats({ now: Date.now() });
    await assert.rejects(
      Deno.stat(`${path}-lock`),
      Deno.errors.NotFound,
      "readers do not create it",
    );
    const now = Date.now();
    await store.insertJobs(insertPending(["a", "b"], now));
    const [a] = await store.claimJobs(claimOne(now));
    const lock = await Deno.stat(`${path}-lock`);
    assert.ok(lock.isFile);
    if (Deno.build.os !== "windows") assert.equal(lock.mode! & 0o777, 0o600);
    const { applied, claimed } = await store.settleAndClaim({
      change: complete(a, { now, workerId: "w", exit_code: 0 }),
      claim: claimOne(now),
    });
    assert.equal(applied, true);
    assert.deepEqual(claimed.map((j) => j.id), ["b"]);
  } finally {
    await store.close();
  }
});

for (const yields of [true, false]) {
  Deno.test(
    `sqlite: two busy workers keep the WAL bounded with their own checkpoints (${
      yields ? "" : "never "
    }yielding to timers)`,
    async () => {
      // Workers' connections keep SQLite's automatic checkpoint only as a backstop (4000 pages)
      // and checkpoint themselves, outside the lock file when they can (connection.ts
      // #afterHotCommit): the WAL stays well below the backstop.
      const path = `${dir}/checkpoints-${yields}.db`;
      const stores = [await openSqliteStore(path), await openSqliteStore(path)];
      const walPages = () => {
        try {
          return Deno.statSync(`${path}-wal`).size / (4096 + 24);
        } catch {
          return 0;
        }
      };
      try {
        const jobs = 60 * HOT_CHECKPOINT_COMMITS;
        const now = Date.now();
        await stores[0].insertJobs(
          insertPending(Array.from({ length: jobs }, (_, i) => `j${i}`), now),
        );
        const held = await Promise.all(stores.map(async (s, i) => {
          return (await s.claimJobs({ ...claimOne(now), workerId: `w${i}` }))[0];
        }));
        let largest = 0;
        for (let done = 0; held.some((j) => j !== undefined); done++) {
          const i = done % 2;
          const job = held[i];
          if (job === undefined) continue;
          const { applied, claimed } = await stores[i].settleAndClaim({
            change: complete(job, { now, workerId: `w${i}`, exit_code: 0 }),
            claim: { ...claimOne(now), workerId: `w${i}` },
          });
          assert.equal(applied, true);
          held[i] = claimed[0];
          // A worker yields while its job runs: the passive checkpoint gets its turn there.
          if (yields && done % 10 === 0) await new Promise((r) => setTimeout(r, 0));
          largest = Math.max(largest, walPages());
        }
        const counts = await stores[0].stats({ now });
        assert.equal(counts.counts.completed, jobs);
        // ~12 pages per settle and claim: without checkpoints the WAL would reach ~12 x jobs.
        assert.ok(largest > 0);
        assert.ok(largest <= 2 * HOT_WAL_RESET_PAGES, `the WAL reached ${largest} pages`);
      } finally {
        for (const s of stores) await s.close();
      }
    },
  );
}

Deno.test("sqlite: a claim waits while another process holds the lock file", async () => {
  const path = `${dir}/lockwait.db`;
  const store = await openSqliteStore(path);
  try {
    const now = Date.now();
    await store.insertJobs(insertPending(["a"], now));
    await using holder = await lockHolder(
      "const f = Deno.openSync(`${PATH}-lock`, { read: true, write: true, create: true });\n" +
        'f.lockSync(true);\nconsole.log("locked");\n' + HOLD + "f.unlockSync();\n",
      path,
    );
    const claimed = await store.claimJobs(claimOne(now));
    const returnedAt = Date.now();
    assert.deepEqual(claimed.map((j) => j.id), ["a"]);
    assert.ok(
      await holder.releasedAt() <= returnedAt,
      "the claim ran before the lock was released",
    );
  } finally {
    await store.close();
  }
});

Deno.test("sqlite: after its claims, a worker's connection still waits for SQLite's write lock", async () => {
  const path = `${dir}/busy.db`;
  const store = await openSqliteStore(path);
  const holdDatabase = 'import { DatabaseSync } from "node:sqlite";\n' +
    'const db = new DatabaseSync(PATH);\ndb.exec("BEGIN IMMEDIATE");\nconsole.log("locked");\n' +
    HOLD + 'db.exec("COMMIT");\n';
  try {
    const now = Date.now();
    await store.insertJobs(insertPending(["a", "b"], now));
    const [a] = await store.claimJobs(claimOne(now));
    {
      // Any other write (here a config change) waits for the lock as before the claim.
      await using holder = await lockHolder(holdDatabase, path);
      await store.setConfig({ key: "max_retries", value: "5" });
      assert.ok(await holder.releasedAt() <= Date.now());
    }
    {
      // A settle that finds the database locked by a writer without the lock file waits too.
      await using holder = await lockHolder(holdDatabase, path);
      const { applied, claimed } = await store.settleAndClaim({
        change: complete(a, { now, workerId: "w", exit_code: 0 }),
        claim: claimOne(now),
      });
      assert.ok(await holder.releasedAt() <= Date.now());
      assert.equal(applied, true);
      assert.deepEqual(claimed.map((j) => j.id), ["b"]);
    }
    assert.equal((await store.getConfig()).max_retries, "5");
  } finally {
    await store.close();
  }
});

Deno.test("sqlite: without a usable lock file (or in memory), claims and settles still work", async () => {
  const path = `${dir}/nolock.db`;
  await Deno.mkdir(`${path}-lock`); // a directory where the lock file would go
  for (const store of [await openSqliteStore(path), await openSqliteStore(":memory:")]) {
    try {
      const now = Date.now();
      await store.insertJobs(insertPending(["a", "b"], now));
      const [a] = await store.claimJobs(claimOne(now));
      const { applied, claimed } = await store.settleAndClaim({
        change: complete(a, { now, workerId: "w", exit_code: 0 }),
        claim: claimOne(now),
      });
      assert.equal(applied, true);
      assert.deepEqual(claimed.map((j) => j.id), ["b"]);
      assert.equal((await store.stats({ now })).counts.completed, 1);
    } finally {
      await store.close();
    }
  }
});

Deno.test("sqlite: migration 12 seeds the run totals from the runs already recorded", async () => {
  const path = `${dir}/seed-totals.db`;
  const db = new DatabaseSync(path);
  try {
    for (let v = 1; v <= 11; v++) db.exec(MIGRATIONS[v - 1]);
    db.exec("PRAGMA user_version = 11");
    db.exec(
      "INSERT INTO job_runs (job_id, attempt, duration_ms, outcome) VALUES " +
        "('a', 1, 40, 'failed'), ('a', 2, 2500, 'completed'), ('b', 1, NULL, 'dead'), " +
        "('c', 1, 10, 'running')",
    );
  } finally {
    db.close();
  }
  const store = await openSqliteStore(path);
  try {
    assert.deepEqual([...(await store.runTotals())].sort(), [
      ["duration_le:0.1", 1],
      ["duration_le:5", 1],
      ["duration_sum_ms", 2540],
      ["outcome:completed", 1],
      ["outcome:dead", 1],
      ["outcome:failed", 1],
    ]);
  } finally {
    await store.close();
  }
});

Deno.test("sqlite: migration 15 seeds the counters per queue and state from the jobs there", async () => {
  const path = `${dir}/seed-queue-counts.db`;
  const db = new DatabaseSync(path);
  try {
    for (const [i, sql] of MIGRATIONS.slice(0, 14).entries()) {
      db.exec(sql);
      db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)").run(i + 1);
    }
    db.exec("PRAGMA user_version = 14");
    const insert = db.prepare(
      "INSERT INTO jobs (id, command, queue, state, priority, attempts, max_retries, run_at, " +
        "created_at, updated_at) VALUES (?, 'true', ?, ?, 0, 0, 3, 0, ?, 0)",
    );
    for (let i = 1; i <= 30; i++) {
      insert.run(
        `j${i}`,
        i % 5 === 0 ? "mail" : "default",
        i % 3 === 0 ? "completed" : "pending",
        i,
      );
    }
  } finally {
    db.close();
  }
  const store = await openSqliteStore(path);
  try {
    assert.deepEqual(
      (await store.listQueues()).map((q) => [q.name, q.counts.pending, q.counts.completed]),
      [["default", 16, 8], ["mail", 4, 2]],
    );
    assert.equal((await store.stats({ now: 0 })).counts.pending, 20);
    assert.equal(await store.countJobs({ state: "completed", queue: "mail" }), 2);
  } finally {
    await store.close();
  }
});

async function* bulkBatches() {
  yield Array.from({ length: 100 }, (_, i) => newJob(`bulk-${i}`, { command: `zz bulk ${i}` }));
}

Deno.test("sqlite: migration 14 finds the jobs already out of rowid order; a bulk enqueue leaves the search index complete", async () => {
  const path = `${dir}/disorder.db`;
  // A database at migration 13 with jobs whose created_at goes back twice.
  const old = new DatabaseSync(path);
  old.exec("PRAGMA journal_mode = WAL");
  old.exec("BEGIN");
  for (const [i, sql] of MIGRATIONS.slice(0, 13).entries()) {
    old.exec(sql);
    old.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)").run(i + 1);
  }
  old.exec(`PRAGMA user_version = 13`);
  const insert = old.prepare(
    "INSERT INTO jobs (id, command, queue, state, priority, attempts, max_retries, run_at, " +
      "created_at, updated_at) VALUES (?, ?, 'default', 'pending', 0, 0, 3, 0, ?, 0)",
  );
  for (
    const [id, t] of [["a", 10], ["b", 30], ["c", 20], ["d", 40], ["e", 5], ["f", 40]] as const
  ) {
    insert.run(id, `echo ${id}`, t);
  }
  old.exec("UPDATE job_counts SET n = 6 WHERE state = 'pending'");
  old.exec("COMMIT");
  old.close();
  const store = await openSqliteStore(path);
  try {
    const ids = async (search: string) =>
      (await store.listJobs({ search, limit: 10 })).map((j) => j.id);
    assert.deepEqual(await ids("echo"), ["f", "d", "b", "c", "a", "e"]);
    assert.equal(await store.insertJobStream({ batches: bulkBatches(), now: 50 }), 100);
    await store.insertJobs({ jobs: [newJob("late", { command: "zz late" })], now: 60 });
    assert.deepEqual((await ids("zz ")).slice(0, 3), ["late", "bulk-99", "bulk-98"]);
    assert.equal(await store.countJobs({ search: "zz bulk" }), 100);
  } finally {
    await store.close();
  }
  const db = new DatabaseSync(path);
  try {
    const all = (sql: string) => db.prepare(sql).all().map((r) => Object.values(r)[0]);
    assert.deepEqual(
      all("SELECT j.id FROM jobs_disorder d JOIN jobs j ON j.rowid = d.r ORDER BY d.r"),
      ["c", "e"],
    );
    assert.deepEqual(all("SELECT count(*) FROM jobs_search_deferred"), [0]);
    // The index holds every job: its integrity check against the jobs table passes.
    db.exec("INSERT INTO jobs_search (jobs_search, rank) VALUES ('integrity-check', 1)");
  } finally {
    db.close();
  }
});

Deno.test("sqlite: a claim of a few queues reads their jobs when a walk in claim order would pass more", () => {
  // A quiet queue (nothing waiting) beside a backlog: its 3 jobs, not the 200,000.
  assert.equal(walksQueues({ total: 3, waiting: 0, allWaiting: 200_000 }), true);
  // 10 jobs due later among 300,000 waiting: the walk would pass 30,000 or more.
  assert.equal(walksQueues({ total: 10, waiting: 10, allWaiting: 300_000 }), true);
  // The backlog's own queue: its first job comes within a few steps of the claim order.
  assert.equal(walksQueues({ total: 200_000, waiting: 200_000, allWaiting: 300_000 }), false);
  // A queue with a long history and a few waiting jobs among few others: the walk.
  assert.equal(walksQueues({ total: 50_000, waiting: 5, allWaiting: 100 }), false);
  assert.equal(walksQueues({ total: 0, waiting: 0, allWaiting: 0 }), false);
});

Deno.test("sqlite: counters gone wrong cost a claim time, never a job", async () => {
  // The walk of a claim is chosen from the counters (walksQueues); which queues it reads is not.
  const T0 = Date.UTC(2026, 0, 1);
  const path = `${dir}/wrong-counters.db`;
  const store = await openSqliteStore(path);
  try {
    await pausedBacklog(store, T0);
    const corrupt = (sql: string) => {
      const db = new DatabaseSync(path);
      try {
        db.exec(sql);
      } finally {
        db.close();
      }
    };
    // "mail" has no counter row at all: by the counters it is empty, smaller than the paused
    // backlog ahead, so the claims read the open queues found in the index (and "mail" there).
    corrupt("DELETE FROM job_counts WHERE queue = 'mail'");
    const claim = (queues: string[] | null) => claimIds(store, queues, T0);
    await mailClaimedUncounted(store, T0);
    assert.equal(await store.nextRunAt({ queues: ["mail"] }), null);
    // "bulk" counted as empty too, and open again: the walk finds its jobs all the same.
    corrupt("UPDATE job_counts SET n = 0 WHERE queue = 'bulk'");
    await store.setQueueControl({ name: "bulk", paused: false, now: T0 });
    assert.equal(await store.nextRunAt({ queues: ["bulk"] }), T0);
    assert.deepEqual(await claim(null), ["bulk-0"]);
    assert.deepEqual(await claim(["bulk"]), ["bulk-1"]);
  } finally {
    await store.close();
  }
});

Deno.test("sqlite: a settle frees a limited queue's slot with a wake-up, unless its own claim fills it again", async () => {
  const path = `${dir}/slot-wake.db`;
  const store = await openSqliteStore(path);
  try {
    const wake = store.wakeFile!;
    await store.insertJobs({
      jobs: ["a", "b", "c"].map((id) => newJob(id, { queue: "lim", run_at: 0 })),
      now: 0,
    });
    await store.setQueueControl({ name: "lim", maxRunning: 1, now: 1 });
    // Reads whether a wake-up was written since the last call: the store writes 0x2a at offset 0.
    const woke = () => {
      const byte = Deno.readFileSync(wake)[0];
      Deno.writeFileSync(wake, new Uint8Array([0]));
      return byte === 0x2a;
    };
    const claim = { workerId: "w", queues: null, now: 2, leaseMs: 60_000, limit: 1 };
    const [a] = await store.claimJobs(claim);
    woke();
    const settle = async (job: typeof a, limit: number) =>
      await store.settleAndClaim({
        change: complete(job, { now: 3, workerId: "w", exit_code: 0 }),
        claim: { ...claim, limit },
      });
    // b takes the slot a freed in the same transaction: lim is as full as it was, no hint.
    const one = await settle(a, 1);
    assert.deepEqual(one.claimed.map((j) => j.id), ["b"]);
    assert.equal(woke(), false, "the slot was filled again by the settle's own claim");
    // Nothing claimed with it: the slot is free, idle workers must hear of it.
    const two = await settle(one.claimed[0], 0);
    assert.deepEqual(two.claimed, []);
    assert.equal(woke(), true, "the freed slot woke the workers");
  } finally {
    await store.close();
  }
});

/**
 * Inserts `jobs` (after `setUp`), claims the two due ones, then completes both with two
 * applyChange calls in flight at once; true when a wake-up byte was written meanwhile.
 */
async function twoSettlesAtOnce(
  name: string,
  jobs: JobToInsert[],
  setUp: (store: Store) => Promise<unknown> = () => Promise.resolve(),
): Promise<boolean> {
  const store = await openSqliteStore(`${dir}/${name}.db`);
  try {
    const wake = store.wakeFile!;
    await store.insertJobs({ jobs, now: 0 });
    await setUp(store);
    const claimed = await store.claimJobs({
      workerId: "w",
      queues: null,
      now: 2,
      leaseMs: 60_000,
      limit: 2,
    });
    assert.equal(claimed.length, 2);
    Deno.writeFileSync(wake, new Uint8Array([0]));
    // Both in flight together: one write's start must not clear what the other found.
    const done = claimed.map((j) =>
      store.applyChange({ change: complete(j, { now: 3, workerId: "w", exit_code: 0 }) })
    );
    assert.deepEqual(await Promise.all(done), [true, true]);
    return Deno.readFileSync(wake)[0] === 0x2a;
  } finally {
    await store.close();
  }
}

Deno.test("sqlite: two settles at once on one store: the one that frees a limited queue's slot still wakes the workers", async () => {
  const woke = await twoSettlesAtOnce(
    "slot-wake-race",
    [newJob("lim-1", { queue: "lim", run_at: 0 }), newJob("free-1", { run_at: 0 })],
    (store) => store.setQueueControl({ name: "lim", maxRunning: 1, now: 1 }),
  );
  assert.equal(woke, true, "the freed slot woke the workers");
});

Deno.test("sqlite: two settles at once on one store: the one that frees a dependent still wakes the workers", async () => {
  const woke = await twoSettlesAtOnce("dep-wake-race", [
    newJob("a", { run_at: 0 }),
    newJob("other", { run_at: 0 }),
    newJob("b", { run_at: 0, depends_on: JSON.stringify(["a"]) }),
  ]);
  assert.equal(woke, true, "b, freed by a, woke the workers");
});
