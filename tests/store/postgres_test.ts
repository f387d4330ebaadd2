/**
 * The store conformance suite and PostgreSQL-only behaviour (migration lock, LISTEN/NOTIFY,
 * connection loss, password hygiene) against a real server.
 *
 * Server: env QUEUECTL_TEST_PG_URL, default postgres://postgres@127.0.0.1:5432/test. Every test
 * works in its own fresh schema, dropped afterwards, so runs never interfere. When the server is
 * unreachable the tests fail if CI is set (unless QUEUECTL_TEST_NO_PG says this runner has none),
 * and are skipped (saying why) otherwise.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { StorageError } from "../../src/core/errors.ts";
import { type Job, JOB_FIELDS } from "../../src/core/job.ts";
import { complete, fail, loseLease, retryNow } from "../../src/core/transitions.ts";
import { openPostgresStore } from "../../src/store/postgres/mod.ts";
import { MIGRATIONS } from "../../src/store/postgres/migrations.ts";
import { connectPool } from "../../src/store/postgres/connect.ts";
import { nextRunAtSql, SCHEDULED_COUNT_SQL } from "../../src/store/postgres/postgres_store.ts";
import type { Store } from "../../src/store/store.ts";
import {
  claimIds,
  mailClaimedUncounted,
  newJob,
  pausedBacklog,
  storeConformance,
} from "./conformance.ts";
import { flowConformance } from "./flow_conformance.ts";
import { scheduleConformance } from "./schedule_conformance.ts";
import { admin, PG_URL, postgresAvailability } from "../helpers/postgres.ts";

const T0 = Date.UTC(2026, 0, 1);
const { ignore } = await postgresAvailability("postgres");

function freshSchema(): string {
  return `qt_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
}

async function dropSchema(schema: string): Promise<void> {
  const sql = admin();
  try {
    await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await sql.end();
  }
}

/** The store, whose close() also drops its schema. */
function droppingOnClose(store: Store, schema: string): Store {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === "close") {
        return async () => {
          await target.close();
          await dropSchema(schema);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** The schema of each store openFresh returned. */
const schemas = new WeakMap<Store, string>();

/**
 * The conformance suite drives time by hand (a ManualClock from 2026-01-01), so its stores take
 * lease times from the caller; the server's lease clock, the default, is tested below.
 */
async function openFresh(): Promise<Store> {
  const schema = freshSchema();
  const store = droppingOnClose(
    await openPostgresStore(PG_URL, { schema, leaseClock: "caller" }),
    schema,
  );
  schemas.set(store, schema);
  return store;
}

storeConformance("postgres", openFresh, {
  ignore,
  reopen: (store) =>
    openPostgresStore(PG_URL, { schema: schemas.get(store), leaseClock: "caller" }),
});
flowConformance("postgres", openFresh, {
  ignore,
  reopen: (store) =>
    openPostgresStore(PG_URL, { schema: schemas.get(store), leaseClock: "caller" }),
});

scheduleConformance("postgres", openFresh, {
  ignore,
  reopen: (store) =>
    openPostgresStore(PG_URL, { schema: schemas.get(store), leaseClock: "caller" }),
});

/** Runs `fn` with a fresh schema name, dropping the schema afterwards. */
function pgTest(name: string, fn: (schema: string) => Promise<void>): void {
  Deno.test({
    name: `postgres: ${name}`,
    ignore,
    fn: async () => {
      const schema = freshSchema();
      try {
        await fn(schema);
      } finally {
        await dropSchema(schema);
      }
    },
  });
}

/** Retries a call that fails with a transient StorageError (at most 5 tries). */
async function retryTransient<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof StorageError && err.transient) || attempt >= 5) throw err;
    }
  }
}

/**
 * Creates `schema` at schema version `version` (migrations 1..version, recorded as queuectl's
 * migrate() records them) and returns a connection on it: a database written by an older queuectl.
 */
async function schemaAt(schema: string, version: number) {
  const sql = onSearchPath(schema);
  try {
    await sql.unsafe(`CREATE SCHEMA "${schema}"`);
    await sql.unsafe(
      "CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL)",
    );
    for (let v = 1; v <= version; v++) {
      await sql.unsafe(MIGRATIONS[v - 1]);
      await sql.unsafe(`INSERT INTO schema_migrations VALUES (${v}, 0)`);
    }
    return sql;
  } catch (err) {
    await sql.end(); // the callers' finally never sees a connection that failed here
    throw err;
  }
}

/** One connection whose search_path is `path` (a schema, or a list). */
function onSearchPath(path: string) {
  return postgres(PG_URL, {
    max: 1,
    onnotice: () => {},
    fetch_types: false,
    connection: { search_path: path },
  });
}

async function closeAll(stores: Store[]): Promise<void> {
  await Promise.all(stores.map((s) => s.close()));
}

pgTest("processes opening a new schema at once migrate it exactly once", async (schema) => {
  const stores = await Promise.all(
    Array.from({ length: 4 }, () => openPostgresStore(PG_URL, { schema, max: 2 })),
  );
  await closeAll(stores);
  const sql = admin();
  try {
    const rows = await sql.unsafe(`SELECT version FROM "${schema}".schema_migrations ORDER BY 1`);
    assert.deepEqual(
      rows.map((r) => r.version),
      MIGRATIONS.map((_, i) => i + 1),
    );
  } finally {
    await sql.end();
  }
  // Opening again is the fast path and keeps the data.
  const again = await openPostgresStore(PG_URL, { schema });
  await again.insertJobs({ jobs: [newJob("kept")], now: T0 });
  await again.close();
  const third = await openPostgresStore(PG_URL, { schema });
  assert.equal((await third.getJob({ id: "kept" }))?.id, "kept");
  await third.close();
});

pgTest("an id lookup never goes through the search index; search still can", async (schema) => {
  // 3,000 jobs after one job, inserted in one transaction (no statistics yet): the dependency
  // lookups of the insert and a lookup by id use the primary key, never the trigram index
  // (migration 14; before it, 10,000 such dependents took 41 s).
  const store = await openPostgresStore(PG_URL, { schema });
  try {
    await store.insertJobs({
      jobs: [
        newJob("root"),
        ...Array.from({ length: 3_000 }, (_, i) => newJob(`dep${i}`, { depends_on: '["root"]' })),
      ],
      now: T0,
    });
    assert.equal((await store.getJob({ id: "dep2999" }))?.blocked_by, 1);
  } finally {
    await store.close();
  }
  const sql = admin();
  try {
    const plan = async (text: string, params: string[], setup = "") =>
      await sql.begin(async (tx) => {
        await tx.unsafe(`SET LOCAL search_path = "${schema}"`);
        for (const statement of setup.split(";")) {
          if (statement.trim()) await tx.unsafe(statement);
        }
        const rows = await tx.unsafe(`EXPLAIN ${text}`, params);
        return rows.map((r) => r["QUERY PLAN"] as string).join("\n");
      });
    // One trigram index, on the stored search_text (migration 17), in place of the two of
    // migrations 9 and 14: an equality on id cannot use it, whatever the planner thinks of a
    // table without statistics.
    const indexes = await sql.unsafe(
      `SELECT indexname, indexdef FROM pg_indexes
        WHERE schemaname = $1 AND tablename = 'jobs' AND indexdef LIKE '%gin%'`,
      [schema],
    );
    assert.deepEqual(indexes.map((i) => i.indexname), ["jobs_search"]);
    assert.match(indexes[0].indexdef, /gin \(search_text \S*gin_trgm_ops\)/);
    const one = await plan("SELECT * FROM jobs WHERE id = $1", ["dep7"]);
    assert.match(one, /jobs_pkey/, one);
    // The store's search term (postgres_store.ts #searchTerm) uses the index, also in a prepared
    // statement's generic plan, where the lower-cased pattern is an InitPlan (computed once).
    const search = await plan(
      "SELECT id FROM jobs WHERE search_text LIKE (SELECT lower($1::text))",
      ["%DEP29%"],
      "SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_generic_plan",
    );
    assert.match(search, /jobs_search/, search);
    assert.match(search, /InitPlan/, search);
    const [found] = await sql.unsafe(
      `SELECT count(*)::int AS n FROM "${schema}".jobs
        WHERE search_text LIKE (SELECT lower($1::text))`,
      ["%DEP29%"],
    );
    assert.equal(found.n, 111); // dep29, dep290-dep299, dep2900-dep2999
  } finally {
    await sql.end();
  }
});

pgTest("search folds the case of non-ASCII letters in commands, as ILIKE did", async (schema) => {
  // search_text lowers the command by the database's collation (migration 17), as ILIKE lowers
  // both sides; SQLite's LIKE folds ASCII only, so this is PostgreSQL's own (on a UTF-8 database
  // whose collation knows these letters: C.UTF-8 or a language's).
  const store = await openPostgresStore(PG_URL, { schema });
  try {
    await store.insertJobs({
      jobs: [newJob("u1", { command: "ÉCHO Ünïcode" }), newJob("u2", { command: "echo plain" })],
      now: T0,
    });
    for (const search of ["écho ü", "ÉCHO Ü", "Écho ünï"]) {
      assert.deepEqual((await store.listJobs({ search, limit: 5 })).map((j) => j.id), ["u1"]);
      assert.equal(await store.countJobs({ search }), 1);
    }
    assert.deepEqual((await store.listJobs({ search: "ECHO", limit: 5 })).map((j) => j.id), [
      "u2",
    ]);
  } finally {
    await store.close();
  }
});

pgTest("the next-due lookup and the scheduled count never walk waiting jobs", async (schema) => {
  // 1,000 jobs waiting for one job scheduled after all of them: they are due first, but an idle
  // worker's next-run lookup and the scheduled count must not step through any (migration 13).
  const store = await openPostgresStore(PG_URL, { schema });
  try {
    await store.insertJobs({ jobs: [newJob("root", { run_at: T0 + 1e6 })], now: T0 });
    await store.insertJobs({
      jobs: Array.from(
        { length: 1_000 },
        (_, i) => newJob(`w${i}`, { run_at: T0 + 1 + i, depends_on: '["root"]' }),
      ),
      now: T0,
    });
    assert.equal(await store.nextRunAt({ queues: null, after: T0 }), T0 + 1e6);
    assert.equal(await store.nextRunAt({ queues: ["default"] }), T0 + 1e6);
    const stats = await store.stats({ now: T0 });
    assert.deepEqual([stats.scheduled, stats.blocked], [1, 1_000]);
  } finally {
    await store.close();
  }
  type PlanNode = Record<string, unknown> & { Plans?: PlanNode[] };
  const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)];
  const sql = admin();
  try {
    await sql.unsafe(`ANALYZE "${schema}".jobs`);
    // The store's own statements, run with EXPLAIN ANALYZE: they read jobs_run_at, and no scan
    // of jobs steps through (finds, then filters out) the waiting jobs.
    const statements: [string, (string | number)[]][] = [
      [nextRunAtSql(0, true), [T0]],
      [nextRunAtSql(0, false), []],
      [nextRunAtSql(1, true), ["default", T0]],
      [`${SCHEDULED_COUNT_SQL} $1`, [T0]],
    ];
    for (const [text, params] of statements) {
      const plan = await sql.begin(async (tx) => {
        await tx.unsafe(`SET LOCAL search_path = "${schema}"`);
        const [row] = await tx.unsafe(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, params);
        return nodes((row["QUERY PLAN"] as { Plan: PlanNode }[])[0].Plan);
      });
      assert.ok(plan.some((n) => n["Index Name"] === "jobs_run_at"), text);
      for (const n of plan.filter((n) => n["Relation Name"] === "jobs" || n["Index Name"])) {
        const visited = (n["Actual Rows"] as number) +
          ((n["Rows Removed by Filter"] as number) ?? 0) +
          ((n["Rows Removed by Index Recheck"] as number) ?? 0);
        assert.ok(visited <= 1, `${text}: ${n["Node Type"]} visited ${visited} rows`);
      }
    }
  } finally {
    await sql.end();
  }
});

pgTest("the jobs table has the columns of core's job field list", async (schema) => {
  await (await openPostgresStore(PG_URL, { schema })).close();
  const sql = admin();
  try {
    const columns = await sql<{ name: string; type: string; nullable: string }[]>`
      SELECT column_name AS name, data_type AS type, is_nullable AS nullable
      FROM information_schema.columns WHERE table_schema = ${schema} AND table_name = 'jobs'`;
    const pgType = {
      text: "text",
      integer: "integer",
      real: "double precision",
      time: "bigint",
    } as const;
    // Beyond the job fields: the insertion order (runs and their output live in job_runs), and
    // the lower-cased text that search tests (generated from id and command, migration 17).
    const extra = { seq: "bigint NOT NULL", search_text: "text" };
    assert.deepEqual(
      Object.fromEntries(
        columns.map((c) => [c.name, `${c.type}${c.nullable === "NO" ? " NOT NULL" : ""}`]),
      ),
      {
        ...Object.fromEntries(
          Object.entries(JOB_FIELDS).map(([name, f]) => [
            name,
            `${pgType[f.type]}${"nullable" in f ? "" : " NOT NULL"}`,
          ]),
        ),
        ...extra,
      },
    );
  } finally {
    await sql.end();
  }
});

pgTest("a database with a newer schema version is refused", async (schema) => {
  await (await openPostgresStore(PG_URL, { schema })).close();
  const sql = admin();
  try {
    await sql.unsafe(
      `INSERT INTO "${schema}".schema_migrations (version, applied_at) VALUES ($1, 0)`,
      [MIGRATIONS.length + 1],
    );
  } finally {
    await sql.end();
  }
  await assert.rejects(
    openPostgresStore(PG_URL, { schema }),
    (err: unknown) =>
      err instanceof StorageError &&
      err.message.includes(`schema version ${MIGRATIONS.length + 1}, newer than this queuectl`) &&
      /upgrade queuectl/.test(err.hint ?? "") && !err.transient,
  );
});

pgTest("the schema can come from ?schema= in the URL", async (schema) => {
  const url = `${PG_URL}${PG_URL.includes("?") ? "&" : "?"}schema=${schema}`;
  const store = await openPostgresStore(url);
  try {
    assert.ok(store.location.endsWith(`schema=${schema}`), store.location);
    await store.insertJobs({ jobs: [newJob("in-schema")], now: T0 });
  } finally {
    await store.close();
  }
  const sql = admin();
  try {
    const rows = await sql.unsafe(`SELECT id FROM "${schema}".jobs`);
    assert.deepEqual(rows.map((r) => r.id), ["in-schema"]);
  } finally {
    await sql.end();
  }
  await assert.rejects(openPostgresStore(`${PG_URL}?schema=Bad-Name`), /Invalid PostgreSQL schema/);
});

pgTest("the password never shows in location or errors", async (schema) => {
  const password = "s3cr3t-Pa55";
  const withPassword = PG_URL.replace(/^(postgres(?:ql)?:\/\/)([^:@/]*)(?::[^@/]*)?@/, (
    _,
    scheme,
    user,
  ) => `${scheme}${user}:${password}@`);
  assert.ok(withPassword.includes(password), "test URL has a password");
  // Trust authentication ignores the password, so this connects.
  const store = await openPostgresStore(withPassword, { schema });
  try {
    assert.ok(!store.location.includes(password), store.location);
    assert.match(store.location, /^postgres(ql)?:\/\/[^:@/]*@/);
  } finally {
    await store.close();
  }
  // Nothing listens on port 1: connection refused.
  const unreachable = `postgres://queue:${password}@127.0.0.1:1/test`;
  const err = await openPostgresStore(unreachable).then(
    () => assert.fail("opened a store on a closed port"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof StorageError, String(err));
  assert.equal(err.transient, true);
  assert.ok(err.message.includes("postgres://queue@127.0.0.1:1/test"), err.message);
  for (const text of [err.message, err.hint ?? "", err.stack ?? ""]) {
    assert.ok(!text.includes(password), text);
  }
});

pgTest("a connection lost mid-statement is a transient StorageError, then works again", async (
  schema,
) => {
  const appName = `qt_app_${schema.slice(3, 15)}`;
  const store = await openPostgresStore(`${PG_URL}?application_name=${appName}`, { schema });
  const sql = admin();
  const locker = admin();
  try {
    await store.insertJobs({ jobs: [newJob("a")], now: T0 });
    const [job] = await store.claimJobs({
      workerId: "w1",
      queues: null,
      now: T0,
      leaseMs: 30_000,
      limit: 1,
    });
    const change = complete(job, { now: T0 + 10, workerId: "w1", exit_code: 0 });
    // Hold the row so the store's settle blocks, then kill the store's connection under it.
    let release!: () => void;
    const released = new Promise<void>((r) => release = r);
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => locked = r);
    const holding = locker.begin(async (tx) => {
      await tx.unsafe(`SELECT 1 FROM "${schema}".jobs WHERE id = 'a' FOR UPDATE`);
      locked();
      await released;
    });
    await isLocked;
    try {
      const settling = store.applyChange({ change }).then(() => null, (e: unknown) => e);
      const deadline = Date.now() + 10_000;
      for (;;) {
        const [{ n }] = await sql`SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE application_name = ${appName} AND wait_event_type = 'Lock'`;
        if (n > 0) break;
        assert.ok(Date.now() < deadline, "the settle never blocked on the row lock");
        await new Promise((r) => setTimeout(r, 20));
      }
      await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name = ${appName}`;
      const err = await settling;
      assert.ok(err instanceof StorageError, `expected a StorageError, got ${err}`);
      assert.equal(err.transient, true, err.message);
    } finally {
      release();
      await holding;
    }
    // Nothing was written; retried as a worker does (transient errors again), the write succeeds.
    assert.equal((await retryTransient(() => store.getJob({ id: "a" })))?.state, "processing");
    assert.equal(await retryTransient(() => store.applyChange({ change })), true);
    assert.equal((await store.getJob({ id: "a" }))?.state, "completed");
  } finally {
    await store.close();
    await sql.end();
    await locker.end();
  }
});

// --- settleAndClaim: its one statement, and what happens when that fails ------------------------
// (docs/architecture.md "Settle and claim")

/**
 * Installs in `schema` a fault that only settleAndClaim's one statement meets: a BEFORE UPDATE
 * trigger on jobs raises (SQLSTATE P0001, not transient) when one transaction both settles a job
 * (processing -> another state) and claims one (-> processing). applyChange and claimJobs run
 * in transactions of their own and pass. Before raising, the trigger takes a value from the
 * sequence fault_hits, which the rollback does not give back: its count (faultHits) is the number
 * of statements the fault failed.
 */
async function injectSettleAndClaimFault(schema: string): Promise<void> {
  const sql = admin();
  try {
    await sql.unsafe(`
      CREATE SEQUENCE "${schema}".fault_hits;
      CREATE FUNCTION "${schema}".fault_settle_and_claim() RETURNS trigger LANGUAGE plpgsql AS $fn$
      DECLARE
        kind text := CASE
          WHEN OLD.state = 'processing' AND NEW.state <> 'processing' THEN 'settle'
          WHEN OLD.state <> 'processing' AND NEW.state = 'processing' THEN 'claim' END;
        seen text := coalesce(current_setting('queuectl_test.seen', true), '');
      BEGIN
        IF kind IS NULL THEN RETURN NEW; END IF;
        IF seen <> '' AND seen <> kind THEN
          PERFORM nextval('"${schema}".fault_hits');
          RAISE EXCEPTION 'injected fault: a settle and a claim in one transaction';
        END IF;
        PERFORM set_config('queuectl_test.seen', kind, true);
        RETURN NEW;
      END
      $fn$;
      CREATE TRIGGER fault_settle_and_claim BEFORE UPDATE OF state ON "${schema}".jobs
        FOR EACH ROW EXECUTE FUNCTION "${schema}".fault_settle_and_claim();`);
  } finally {
    await sql.end();
  }
}

/** How many statements the fault of injectSettleAndClaimFault failed. */
async function faultHits(schema: string): Promise<number> {
  const sql = admin();
  try {
    const [{ n }] = await sql.unsafe(
      `SELECT CASE WHEN is_called THEN last_value ELSE 0 END::int AS n FROM "${schema}".fault_hits`,
    );
    return n;
  } finally {
    await sql.end();
  }
}

/**
 * Every job as [id, state, attempts, lease_owner] and every run as [job, attempt, outcome,
 * worker, stdout], read by the admin connection; and checks that the trigger-kept counters
 * (job_counts per queue and state, run_totals per outcome) agree with a scan of the rows.
 */
async function storedRows(
  schema: string,
): Promise<{ jobs: unknown[][]; runs: unknown[][] }> {
  const sql = admin();
  try {
    const jobs = await sql.unsafe(
      `SELECT id, state, attempts, lease_owner FROM "${schema}".jobs ORDER BY id`,
    );
    const runs = await sql.unsafe(`SELECT job_id, attempt, outcome, worker, stdout
      FROM "${schema}".job_runs ORDER BY job_id, id`);
    const pairs = (rows: postgres.RowList<postgres.Row[]>) => rows.map((r) => [r.k1, r.k2, r.n]);
    assert.deepEqual(
      pairs(
        await sql.unsafe(`SELECT queue AS k1, state AS k2, sum(n)::int AS n
          FROM "${schema}".job_counts GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2`),
      ),
      pairs(
        await sql.unsafe(`SELECT queue AS k1, state AS k2, count(*)::int AS n
          FROM "${schema}".jobs GROUP BY 1, 2 ORDER BY 1, 2`),
      ),
      "job_counts agrees with the jobs",
    );
    assert.deepEqual(
      pairs(
        await sql.unsafe(`SELECT name AS k1, '' AS k2, sum(n)::int AS n FROM "${schema}".run_totals
          WHERE starts_with(name, 'outcome:') GROUP BY 1 HAVING sum(n) <> 0 ORDER BY 1`),
      ),
      pairs(
        await sql.unsafe(`SELECT 'outcome:' || outcome AS k1, '' AS k2, count(*)::int AS n
          FROM "${schema}".job_runs WHERE outcome <> 'running' GROUP BY 1 ORDER BY 1`),
      ),
      "run_totals agrees with the runs",
    );
    return {
      jobs: jobs.map((r) => [r.id, r.state, r.attempts, r.lease_owner]),
      runs: runs.map((r) => [r.job_id, r.attempt, r.outcome, r.worker, r.stdout]),
    };
  } finally {
    await sql.end();
  }
}

/** Jobs a, b, c (claimed in that order); a claimed by w1, with a live run; returns a. */
async function settleAndClaimSetup(store: Store): Promise<Job> {
  for (const id of ["a", "b", "c"]) await store.insertJobs({ jobs: [newJob(id)], now: T0 });
  const [a] = await store.claimJobs({
    workerId: "w1",
    queues: null,
    now: T0,
    leaseMs: 30_000,
    limit: 1,
  });
  assert.equal(a?.id, "a");
  // Live output, as a running job's: the settle closes this run.
  assert.ok(
    await store.appendRunOutput({
      jobId: "a",
      attempt: a.attempts,
      worker: "w1",
      host: "h1",
      startedAt: a.started_at!,
      stdout: "so far",
      stderr: "",
      limit: 1000,
      now: T0 + 5,
    }),
  );
  return a;
}

for (const outcome of ["completed", "failed"] as const) {
  pgTest(
    `settleAndClaim: its one statement failing (not transient), settle and claim are done apart, each once (${outcome})`,
    async (schema) => {
      const store = await openPostgresStore(PG_URL, { schema });
      try {
        const a = await settleAndClaimSetup(store);
        await injectSettleAndClaimFault(schema);
        const r = { now: T0 + 10, workerId: "w1", exit_code: outcome === "completed" ? 0 : 1 };
        // A failure with retries left waits 2 s (backoff): not due again at T0 + 10.
        const change = outcome === "completed"
          ? complete(a, r)
          : fail(a, r, { backoff_base: 2, backoff_max: 10 });
        const output = { stdout: "all of it", stderr: "" };
        const claim = { workerId: "w1", queues: null, now: T0 + 10, leaseMs: 30_000, limit: 1 };
        const result = await store.settleAndClaim({ change, output, claim });
        assert.equal(await faultHits(schema), 1, "the one statement ran, and failed once");
        assert.equal(result.applied, true);
        assert.deepEqual(result.claimed.map((j) => [j.id, j.state, j.lease_owner]), [
          ["b", "processing", "w1"],
        ]);
        const settled = {
          jobs: [["a", outcome, 1, null], ["b", "processing", 1, "w1"], ["c", "pending", 0, null]],
          runs: [["a", 1, outcome, "w1", "all of it"]],
        };
        assert.deepEqual(await storedRows(schema), settled);
        // Applied once: the same settle again is refused (its lease is gone) and writes nothing.
        assert.equal(await store.applyChange({ change, output }), false);
        assert.deepEqual(await storedRows(schema), settled);
        // Only c is left to claim, once; nothing was lost or taken twice.
        const rest = { ...claim, workerId: "w2", limit: 5 };
        assert.deepEqual((await store.claimJobs(rest)).map((j) => j.id), ["c"]);
        assert.deepEqual(await store.claimJobs(rest), []);
        assert.equal(await faultHits(schema), 1, "the two statements never met the fault");
      } finally {
        await store.close();
      }
    },
  );
}

pgTest(
  "settleAndClaim: a connection lost in its one statement is rethrown as transient, and the settle retried alone applies once",
  async (schema) => {
    const appName = `qt_sac_${schema.slice(3, 15)}`;
    const store = await openPostgresStore(`${PG_URL}?application_name=${appName}`, { schema });
    const sql = admin();
    const locker = admin();
    try {
      const a = await settleAndClaimSetup(store);
      const change = complete(a, { now: T0 + 10, workerId: "w1", exit_code: 0 });
      const output = { stdout: "all of it", stderr: "" };
      const claim = { workerId: "w1", queues: null, now: T0 + 10, leaseMs: 30_000, limit: 1 };
      const before = await storedRows(schema);
      const waiting = [["b", "pending", 0, null], ["c", "pending", 0, null]];
      assert.deepEqual(before, {
        jobs: [["a", "processing", 1, "w1"], ...waiting],
        runs: [["a", 1, "running", "w1", "so far"]],
      });
      // Hold the queues table, which the one statement reads (the claim's flow-control test) and
      // applyChange does not, so that statement blocks there; then kill the store's connections.
      let release!: () => void;
      const released = new Promise<void>((r) => release = r);
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => locked = r);
      const holding = locker.begin(async (tx) => {
        await tx.unsafe(`LOCK TABLE "${schema}".queues IN ACCESS EXCLUSIVE MODE`);
        locked();
        await released;
      });
      await isLocked;
      try {
        const settling = store.settleAndClaim({ change, output, claim }).then(
          () => null,
          (e: unknown) => e,
        );
        const deadline = Date.now() + 10_000;
        for (;;) {
          const [{ n }] = await sql`SELECT count(*)::int AS n FROM pg_locks l
            JOIN pg_stat_activity a USING (pid)
            WHERE a.application_name = ${appName} AND NOT l.granted
              AND l.relation = ${`"${schema}".queues`}::regclass`;
          if (n > 0) break;
          assert.ok(Date.now() < deadline, "the one statement never waited for the queues table");
          await new Promise((r) => setTimeout(r, 20));
        }
        await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE application_name = ${appName}`;
        // Let go before waiting for the answer: a store that went on to the two statements
        // would write now (and be caught below) instead of waiting for the lock forever.
        release();
        await holding;
        const err = await settling;
        assert.ok(err instanceof StorageError, `expected a StorageError, got ${err}`);
        assert.equal(err.transient, true, err.message);
      } finally {
        release();
        await holding;
      }
      // The store rethrew without trying the two statements: nothing written, b not claimed.
      assert.deepEqual(await storedRows(schema), before);
      // The worker retries the settle alone (worker/runner.ts): it applies, and only once.
      assert.equal(await retryTransient(() => store.applyChange({ change, output })), true);
      assert.equal(await store.applyChange({ change, output }), false);
      assert.deepEqual(await storedRows(schema), {
        jobs: [["a", "completed", 1, null], ...waiting],
        runs: [["a", 1, "completed", "w1", "all of it"]],
      });
      // b and c are still there to claim, each once.
      const rest = { ...claim, workerId: "w2", limit: 5 };
      assert.deepEqual((await store.claimJobs(rest)).map((j) => j.id), ["b", "c"]);
      assert.deepEqual(await store.claimJobs(rest), []);
    } finally {
      await store.close();
      await sql.end();
      await locker.end();
    }
  },
);

pgTest("waitForJobs wakes on NOTIFY from another connection, for its schema only", async (
  schema,
) => {
  const other = freshSchema();
  const producer = await openPostgresStore(PG_URL, { schema });
  const waiter = await openPostgresStore(PG_URL, { schema });
  const stranger = await openPostgresStore(PG_URL, { schema: other });
  try {
    // The first call starts listening.
    await waiter.waitForJobs!({ timeoutMs: 0 });
    const wakeBy = async (action: () => Promise<unknown>) => {
      const controller = new AbortController();
      const guard = setTimeout(() => controller.abort(), 10_000);
      const waiting = waiter.waitForJobs!({ timeoutMs: 60_000, signal: controller.signal });
      await action();
      assert.equal(await waiting, true, "the wait reports the hint");
      clearTimeout(guard);
      assert.ok(!controller.signal.aborted, "woken by NOTIFY, not by the 10 s guard");
    };
    await wakeBy(() => producer.insertJobs({ jobs: [newJob("a", { max_retries: 0 })], now: T0 }));
    // A job made runnable again (dead → pending) wakes the waiter too.
    const [job] = await producer.claimJobs({
      workerId: "w",
      queues: null,
      now: T0,
      leaseMs: 1000,
      limit: 1,
    });
    await producer.applyChange({
      change: {
        id: job.id,
        from: "processing",
        to: "dead",
        leaseOwner: "w",
        set: { lease_owner: null, lease_expires_at: null, finished_at: T0 },
        updated_at: T0,
      },
    });
    const dead = (await producer.getJob({ id: "a" }))!;
    await wakeBy(() => producer.applyChange({ change: retryNow(dead, T0 + 1) }));
    // Jobs in another schema do not wake it: this wait runs to its timeout.
    await stranger.insertJobs({ jobs: [newJob("elsewhere")], now: T0 });
    const start = performance.now();
    assert.equal(await waiter.waitForJobs!({ timeoutMs: 300 }), false, "no hint for this schema");
    assert.ok(performance.now() - start >= 250, "woken by another schema's NOTIFY");
  } finally {
    await closeAll([producer, waiter, stranger]);
    await dropSchema(other);
  }
});

pgTest("workers on separate connection pools never claim the same job", async (schema) => {
  const stores = await Promise.all(
    Array.from({ length: 4 }, () => openPostgresStore(PG_URL, { schema, max: 2 })),
  );
  try {
    const jobs = Array.from({ length: 300 }, (_, i) => newJob(`j${i}`, { priority: i % 5 }));
    await stores[0].insertJobs({ jobs, now: T0 });
    const claimer = async (store: Store, w: string): Promise<string[]> => {
      const got: string[] = [];
      for (;;) {
        const batch = await store.claimJobs({
          workerId: w,
          queues: null,
          now: T0,
          leaseMs: 30_000,
          limit: 2,
        });
        if (batch.length === 0) return got;
        got.push(...batch.map((j) => j.id));
      }
    };
    const results = await Promise.all(
      stores.flatMap((s, i) => [claimer(s, `w${i}a`), claimer(s, `w${i}b`)]),
    );
    const all = results.flat();
    assert.equal(all.length, 300);
    assert.equal(new Set(all).size, 300);
  } finally {
    await closeAll(stores);
  }
});

pgTest("leases come from the server's clock: a stale or skewed now cannot expire one", async (
  schema,
) => {
  const store = await openPostgresStore(PG_URL, { schema });
  const sql = admin();
  const serverNow = async () =>
    Number(
      (await sql`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS t`)[0].t,
    );
  try {
    await store.insertJobs({ jobs: [newJob("a"), newJob("b")], now: T0 });
    // A claim whose `now` was computed long before (a worker that waited out an outage): the lease
    // starts when the row is written, on the server's clock.
    const before = await serverNow();
    const [a] = await store.claimJobs({
      workerId: "w1",
      queues: null,
      now: T0,
      leaseMs: 30_000,
      limit: 1,
    });
    const after = await serverNow();
    assert.equal(a.id, "a");
    assert.ok(
      a.lease_expires_at! >= before + 30_000 && a.lease_expires_at! <= after + 30_000,
      `lease ${a.lease_expires_at} within [${before + 30_000}, ${after + 30_000}]`,
    );
    // A rescuer whose clock runs a year ahead finds nothing expired and cannot take it over.
    const ahead = (await serverNow()) + 365 * 86_400_000;
    assert.deepEqual(await store.findExpiredLeases({ now: ahead, limit: 10 }), []);
    const policy = { backoff_base: 2, backoff_max: 3600 };
    assert.equal(await store.applyChange({ change: loseLease(a, ahead, policy) }), false);
    // A renewal with a stale now extends from the server's clock too.
    assert.equal(await store.renewLeases({ workerId: "w1", now: T0, leaseMs: 60_000 }), 1);
    const renewed = (await store.getJob({ id: "a" }))!;
    assert.ok(renewed.lease_expires_at! >= after + 60_000, "renewed from the server's clock");
    // A lease that ran out on the server's clock is found and rescued, whatever `now` says.
    assert.equal(await store.renewLeases({ workerId: "w1", now: ahead, leaseMs: 0 }), 1);
    const expired = await store.findExpiredLeases({ now: T0, limit: 10 });
    assert.deepEqual(expired.map((j) => j.id), ["a"]);
    // ...unless the server started less than the restart grace ago (owners still reconnecting).
    const up = Number(
      (await sql`SELECT (extract(epoch FROM clock_timestamp() - pg_postmaster_start_time())
        * 1000)::bigint AS ms`)[0].ms,
    );
    const restartGraceMs = up + 3_600_000;
    assert.deepEqual(await store.findExpiredLeases({ now: T0, limit: 10, restartGraceMs }), []);
    assert.equal(
      (await store.findExpiredLeases({ now: T0, limit: 10, restartGraceMs: 1 })).length,
      1,
    );
    assert.equal(await store.applyChange({ change: loseLease(expired[0], T0, policy) }), true);
    assert.equal((await store.getJob({ id: "a" }))!.state, "failed");
  } finally {
    await sql.end();
    await store.close();
  }
});

pgTest("NUL characters in output are stored as U+FFFD", async (schema) => {
  const store = await openPostgresStore(PG_URL, { schema });
  try {
    await store.insertJobs({ jobs: [newJob("a")], now: T0 });
    const [job] = await store.claimJobs({
      workerId: "w",
      queues: null,
      now: T0,
      leaseMs: 1000,
      limit: 1,
    });
    assert.ok(
      await store.applyChange({
        change: complete(job, { now: T0, workerId: "w", exit_code: 0 }),
        output: { stdout: "a\0b", stderr: "\0" },
      }),
    );
    assert.deepEqual(await store.getJobOutput({ id: "a" }), {
      stdout: "a\uFFFDb",
      stderr: "\uFFFD",
    });
  } finally {
    await store.close();
  }
});

/** Per-state counts by a full scan, to check the trigger-kept counters against. */
async function scannedCounts(schema: string): Promise<Record<string, number>> {
  const sql = admin();
  try {
    const rows = await sql.unsafe(
      `SELECT state, count(*)::int AS n FROM "${schema}".jobs GROUP BY state`,
    );
    const counts: Record<string, number> = {
      pending: 0,
      processing: 0,
      completed: 0,
      failed: 0,
      dead: 0,
    };
    for (const r of rows) counts[r.state] = r.n;
    return counts;
  } finally {
    await sql.end();
  }
}

pgTest("status counts stay exact under concurrent claims, settles and deletes", async (schema) => {
  const stores = await Promise.all(
    Array.from({ length: 3 }, () => openPostgresStore(PG_URL, { schema, max: 3 })),
  );
  try {
    const jobs = Array.from({ length: 240 }, (_, i) => newJob(`j${i}`, { max_retries: i % 2 }));
    await stores[0].insertJobs({ jobs, now: T0 });
    const policy = { backoff_base: 2, backoff_max: 10 };
    const worker = async (store: Store, w: string) => {
      for (;;) {
        const batch = await store.claimJobs({
          workerId: w,
          queues: null,
          now: T0,
          leaseMs: 30_000,
          limit: 3,
        });
        if (batch.length === 0) return;
        await Promise.all(batch.map((job, i) => {
          const r = { now: T0 + 1, workerId: w, exit_code: i === 0 ? 0 : 1 };
          return store.applyChange({
            change: i === 0 ? complete(job, r) : fail(job, r, policy),
          });
        }));
      }
    };
    await Promise.all(
      stores.flatMap((s, i) => [worker(s, `w${i}a`), worker(s, `w${i}b`)]),
    );
    await Promise.all([
      stores[1].deleteJobs({ states: ["completed"], ids: ["j0", "j1", "j2", "j3"] }),
      stores[2].deleteJobs({ states: ["dead"] }),
      stores[0].insertJobs({ jobs: [newJob("late-1"), newJob("late-2")], now: T0 + 5 }),
    ]);
    const stats = await stores[0].stats({ now: T0 + 10 });
    const scanned = await scannedCounts(schema);
    assert.deepEqual(stats.counts, scanned);
    assert.equal(stats.counts.processing, 0);
    assert.ok(stats.counts.completed > 0 && stats.counts.failed > 0, JSON.stringify(scanned));
    assert.equal(stats.counts.dead, 0);
    for (const state of ["pending", "completed", "failed"] as const) {
      assert.equal(await stores[0].countJobs({ state }), scanned[state], state);
    }
    assert.equal(
      await stores[0].countJobs({}),
      Object.values(scanned).reduce((a, b) => a + b, 0),
    );
  } finally {
    await closeAll(stores);
  }
});

pgTest("migrating a version-1 schema with jobs seeds the per-state counts", async (schema) => {
  const sql = onSearchPath(schema);
  try {
    await sql.unsafe(`CREATE SCHEMA "${schema}"`);
    await sql.unsafe(
      "CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL)",
    );
    await sql.unsafe(MIGRATIONS[0]);
    await sql.unsafe("INSERT INTO schema_migrations VALUES (1, 0)");
    await sql.unsafe(`INSERT INTO jobs (id, command, queue, state, priority, max_retries, run_at,
        created_at, updated_at)
      SELECT 'v1-' || i, 'true', CASE WHEN i % 5 = 0 THEN 'mail' ELSE 'default' END,
        CASE WHEN i % 3 = 0 THEN 'completed' ELSE 'pending' END,
        0, 3, 0, i, i FROM generate_series(1, 30) i`);
  } finally {
    await sql.end();
  }
  const store = await openPostgresStore(PG_URL, { schema });
  try {
    const stats = await store.stats({ now: T0 });
    assert.deepEqual(stats.counts, await scannedCounts(schema));
    assert.deepEqual(stats.counts, {
      pending: 20,
      processing: 0,
      completed: 10,
      failed: 0,
      dead: 0,
    });
    // Migration 15 seeds the counters per queue from the jobs already there.
    assert.deepEqual(
      (await store.listQueues()).map((q) => [q.name, q.counts.pending, q.counts.completed]),
      [["default", 16, 8], ["mail", 4, 2]],
    );
    await store.insertJobs({ jobs: [newJob("after")], now: T0 });
    assert.equal(await store.countJobs({ state: "pending" }), 21);
    assert.equal(await store.countJobs({ state: "pending", queue: "mail" }), 4);
  } finally {
    await store.close();
  }
});

pgTest("waitForJobs keeps waking after its LISTEN connection is killed", async (schema) => {
  const appName = `qt_app_${schema.slice(3, 15)}`;
  const waiter = await openPostgresStore(`${PG_URL}?application_name=${appName}`, { schema });
  const producer = await openPostgresStore(PG_URL, { schema });
  const sql = admin();
  try {
    await waiter.waitForJobs!({ timeoutMs: 0 });
    const listeners = () =>
      sql`SELECT pid FROM pg_stat_activity
        WHERE application_name = ${appName} AND query ILIKE 'listen%'`;
    assert.equal((await listeners()).length, 1, "one LISTEN connection");
    const wake = async (action: () => Promise<unknown>) => {
      const controller = new AbortController();
      const guard = setTimeout(() => controller.abort(), 10_000);
      const waiting = waiter.waitForJobs!({ timeoutMs: 60_000, signal: controller.signal });
      await action();
      await waiting;
      clearTimeout(guard);
      assert.ok(!controller.signal.aborted, "woken before the 10 s guard");
    };
    // Killing the connection wakes the waiter once it listens again (hints may have been lost).
    await wake(() =>
      sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE application_name = ${appName} AND query ILIKE 'listen%'`
    );
    assert.equal((await listeners()).length, 1, "listening again");
    await wake(() => producer.insertJobs({ jobs: [newJob("after-kill")], now: T0 }));
  } finally {
    await closeAll([waiter, producer]);
    await sql.end();
  }
});

pgTest(
  "worker bookkeeping commits asynchronously; enqueue and user changes stay synchronous",
  async (schema) => {
    // One connection: a relaxed setting leaking into the session would show in the next write.
    // (Times by hand, as in the conformance suite: leases on the caller's clock.)
    const store = await openPostgresStore(PG_URL, { schema, max: 1, leaseClock: "caller" });
    const sql = admin();
    try {
      // Every write statement records the synchronous_commit its transaction will commit with.
      await sql.unsafe(`
      CREATE TABLE "${schema}".commit_log (seq serial, op text, sc text);
      CREATE FUNCTION "${schema}".log_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO "${schema}".commit_log (op, sc)
          VALUES (TG_OP || ' ' || TG_TABLE_NAME, current_setting('synchronous_commit'));
        RETURN NULL;
      END $$;
      CREATE TRIGGER log_jobs AFTER INSERT OR UPDATE ON "${schema}".jobs
        FOR EACH STATEMENT EXECUTE FUNCTION "${schema}".log_commit();
      CREATE TRIGGER log_workers AFTER INSERT OR UPDATE ON "${schema}".workers
        FOR EACH STATEMENT EXECUTE FUNCTION "${schema}".log_commit();`);
      const seen: string[] = [];
      let logged = 0;
      const step = async (name: string, fn: () => Promise<unknown>) => {
        await fn();
        const rows = await sql.unsafe(`SELECT sc FROM "${schema}".commit_log ORDER BY seq`);
        // (An upsert fires both the INSERT and the UPDATE statement triggers.)
        const settings = new Set(rows.slice(logged).map((r) => r.sc as string));
        logged = rows.length;
        seen.push(`${name}: ${[...settings].join(" and ") || "no write"}`);
      };
      const policy = { backoff_base: 2, backoff_max: 10 };
      const w = "w1";
      const claim = async (now: number) =>
        (await store.claimJobs({ workerId: w, queues: null, now, leaseMs: 1000, limit: 1 }))[0];
      const run = (now: number) => ({ now, workerId: w, exit_code: 1 });

      await step("enqueue", () => store.insertJobs({ jobs: [newJob("a"), newJob("b")], now: T0 }));
      await step("register", () =>
        store.registerWorker({
          worker: {
            id: w,
            pid: 1,
            host: "h",
            queues: null,
            started_at: T0,
            heartbeat_at: T0,
            current_job: null,
            stop_requested_at: null,
            supervisor_id: null,
          },
        }));
      let a = (await store.getJob({ id: "a" }))!;
      await step("claim", async () => (a = await claim(T0)));
      await step("heartbeat", () => store.heartbeatWorker({ id: w, now: T0 + 1, currentJob: "a" }));
      await step("renew", () => store.renewLeases({ workerId: w, now: T0 + 1, leaseMs: 1000 }));
      await step(
        "settle (complete)",
        () => store.applyChange({ change: complete(a, { ...run(T0 + 2), exit_code: 0 }) }),
      );
      await step("enqueue again", () => store.insertJobs({ jobs: [newJob("c")], now: T0 }));
      let b = (await store.getJob({ id: "b" }))!;
      await step("claim b", async () => (b = await claim(T0 + 3)));
      await step(
        "settle (fail, wakes)",
        () => store.applyChange({ change: fail(b, run(T0 + 4), { ...policy }) }),
      );
      const failed = (await store.getJob({ id: "b" }))!;
      await step("user retry", () => store.applyChange({ change: retryNow(failed, T0 + 5) }));
      let c = (await store.getJob({ id: "c" }))!;
      await step("claim again", async () => (c = await claim(T0 + 6)));
      await step("rescue", () => store.applyChange({ change: loseLease(c, T0 + 9000, policy) }));
      await step("stop request", () => store.requestStop({ now: T0 + 10 }));

      assert.deepEqual(seen, [
        "enqueue: on",
        "register: on",
        "claim: off",
        "heartbeat: off",
        "renew: off",
        "settle (complete): off",
        "enqueue again: on",
        "claim b: off",
        "settle (fail, wakes): off",
        "user retry: on",
        "claim again: off",
        "rescue: off",
        "stop request: on",
      ]);
      assert.equal((await store.getJob({ id: "a" }))?.state, "completed");
      assert.equal(c.id, "c", "c (run_at T0) before the retried b (run_at T0 + 5)");
      assert.equal((await store.getJob({ id: "b" }))?.state, "pending");
      assert.equal((await store.getJob({ id: "c" }))?.state, "failed");
    } finally {
      await store.close();
      await sql.end();
    }
  },
);

pgTest(
  "a leader whose session is terminated loses the lead at once and learns it",
  async (schema) => {
    const a = await openPostgresStore(PG_URL, { schema });
    const b = await openPostgresStore(PG_URL, { schema });
    const sql = admin();
    const lead = (store: Store, holder: string) =>
      store.tryLead({ name: "duty", holder, now: T0, leaseMs: 60_000 });
    try {
      assert.equal(await lead(a, "a"), true);
      assert.equal(await lead(b, "b"), false);
      // The backend holding the lock (an admin's pg_terminate_backend, a failover...).
      const holders = await sql`SELECT pid FROM pg_locks WHERE locktype = 'advisory'
      AND objsubid = 1 AND granted AND database = (SELECT oid FROM pg_database
        WHERE datname = current_database())
      AND ((classid::bigint << 32) | objid::bigint)
        = hashtextextended(${`queuectl:lead:${schema}:duty`}, 0)`;
      assert.equal(holders.length, 1, "one session holds the lock");
      await sql`SELECT pg_terminate_backend(${holders[0].pid})`;
      await waitForTrue(() => lead(b, "b"), "the lock to be free once the session ended");
      assert.equal(await lead(a, "a"), false, "a learns it lost the lead");
      assert.equal(await lead(b, "b"), true);
      await b.resign({ name: "duty", holder: "b" });
      assert.equal(await lead(a, "a"), true, "a leads again, in a new session");
    } finally {
      await sql.end();
      await closeAll([a, b]);
    }
  },
);

/** Polls `fn` every 20 ms for up to 10 s until it returns true. */
async function waitForTrue(fn: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!await fn()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

pgTest("triggers write their own schema's tables whatever the session's search_path", async (
  schema,
) => {
  // Migration 16 names the tables in the trigger functions instead of fixing their search_path:
  // a session on another schema (which has tables of the same names) or on none must still keep
  // this schema's counters, totals and dependencies, and leave the other schema's alone.
  const other = freshSchema();
  const store = await openPostgresStore(PG_URL, { schema });
  const otherStore = await openPostgresStore(PG_URL, { schema: other });
  try {
    await store.insertJobs({
      jobs: [
        newJob("root"),
        newJob("child", { depends_on: '["root"]' }),
        newJob("grandchild", { depends_on: '["child"]' }),
        newJob("gone"),
      ],
      now: T0,
    });
    for (const path of [`"${other}"`, "pg_catalog"]) {
      const sql = onSearchPath(path);
      try {
        const q = `"${schema}"`;
        const totals = [...(await store.runTotals())];
        await sql.unsafe(`INSERT INTO ${q}.job_runs (job_id, attempt, outcome, started_at)
          VALUES ('root', 1, 'running', 0)`);
        // A run that is still running counts nowhere; its end counts once.
        assert.deepEqual([...(await store.runTotals())], totals, path);
        await sql.unsafe(`UPDATE ${q}.job_runs SET outcome = 'failed', duration_ms = 20
          WHERE job_id = 'root' AND outcome = 'running'`);
        await sql.unsafe(
          `UPDATE ${q}.jobs SET state = 'dead', error = 'x', updated_at = 1 WHERE id = 'root'`,
        );
        assert.equal((await store.getJob({ id: "grandchild" }))?.state, "dead", path);
        // A restore brings the dependents back (the trigger's recursive walk up).
        await sql.unsafe(`UPDATE ${q}.jobs SET state = 'pending', error = NULL, updated_at = 2
          WHERE id = 'root'`);
        assert.equal((await store.getJob({ id: "grandchild" }))?.state, "pending", path);
        await sql.unsafe(
          `UPDATE ${q}.jobs SET state = 'completed', updated_at = 3 WHERE id = 'root'`,
        );
        assert.equal((await store.getJob({ id: "child" }))?.blocked_by, 0, path);
        await sql.unsafe(`DELETE FROM ${q}.jobs WHERE id = 'gone'`);
        await sql.unsafe(`INSERT INTO ${q}.jobs (id, command, queue, state, priority,
          max_retries, run_at, created_at, updated_at)
          VALUES ('gone', 'true', 'default', 'pending', 0, 3, 0, 0, 0)`);
        // Back for the next search_path.
        await sql.unsafe(
          `UPDATE ${q}.jobs SET state = 'pending', updated_at = 4 WHERE id = 'root'`,
        );
        await sql.unsafe(`DELETE FROM ${q}.job_runs`);
      } finally {
        await sql.end();
      }
      assert.deepEqual((await store.stats({ now: T0 })).counts, await scannedCounts(schema), path);
    }
    assert.deepEqual([...(await store.runTotals())].sort(), [
      ["duration_le:0.1", 2],
      ["duration_sum_ms", 40],
      ["outcome:failed", 2],
    ]);
    assert.deepEqual([...(await otherStore.runTotals())], []);
    assert.deepEqual(
      (await otherStore.stats({ now: T0 })).counts,
      { pending: 0, processing: 0, completed: 0, failed: 0, dead: 0 },
    );
  } finally {
    await Promise.all([store.close(), otherStore.close()]);
    await dropSchema(other);
  }
});

pgTest("migration 12 seeds the run totals from the runs already recorded", async (schema) => {
  const sql = await schemaAt(schema, 11);
  try {
    await sql.unsafe(`INSERT INTO jobs (id, command, queue, state, priority, max_retries, run_at,
        created_at, updated_at) VALUES ('a', 'true', 'default', 'completed', 0, 3, 0, 0, 0),
        ('b', 'true', 'default', 'dead', 0, 3, 0, 0, 0), ('c', 'true', 'default', 'processing',
        0, 3, 0, 0, 0)`);
    await sql.unsafe(`INSERT INTO job_runs (job_id, attempt, duration_ms, outcome) VALUES
      ('a', 1, 40, 'failed'), ('a', 2, 2500, 'completed'), ('b', 1, NULL, 'dead'),
      ('c', 1, 10, 'running')`);
  } finally {
    await sql.end();
  }
  const store = await openPostgresStore(PG_URL, { schema });
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

pgTest("migration 17 gives the jobs already there their search text", async (schema) => {
  // A database at version 16 with jobs (ids, commands in any case, a newline): after the
  // upgrade, search finds them through the one new index, and the two old indexes are gone.
  const sql = await schemaAt(schema, 16);
  try {
    await sql.unsafe(`INSERT INTO jobs (id, command, queue, state, priority, max_retries, run_at,
        created_at, updated_at) VALUES ('Old-A', 'echo FIRST', 'default', 'completed', 0, 3, 0, 1,
        1), ('old-b', E'printf two\\nLines', 'default', 'pending', 0, 3, 0, 2, 2)`);
  } finally {
    await sql.end();
  }
  const store = await openPostgresStore(PG_URL, { schema });
  try {
    const found = async (search: string) =>
      (await store.listJobs({ search, limit: 10 })).map((j) => j.id);
    assert.deepEqual(await found("old-"), ["old-b", "Old-A"]);
    assert.deepEqual(await found("first"), ["Old-A"]);
    assert.deepEqual(await found("TWO\nlines"), ["old-b"]);
    assert.deepEqual(await found("a\necho"), []);
    // A job written after the upgrade gets its text from the server too.
    await store.insertJobs({ jobs: [newJob("new-c", { command: "Echo NEW" })], now: T0 });
    assert.deepEqual(await found("echo new"), ["new-c"]);
  } finally {
    await store.close();
  }
  const check = admin();
  try {
    const names = await check.unsafe(
      `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE 'jobs_search%'`,
      [schema],
    );
    assert.deepEqual(names.map((n) => n.indexname), ["jobs_search"]);
    // The rewritten table was analyzed (the new column has statistics) and vacuumed (its pages
    // are all-visible again; the jobs written after the upgrade are on a page of their own).
    const [stats] = await check.unsafe(
      `SELECT count(*)::int AS n FROM pg_stats
        WHERE schemaname = $1 AND tablename = 'jobs' AND attname = 'search_text'`,
      [schema],
    );
    assert.equal(stats.n, 1);
    const [vm] = await check.unsafe(
      `SELECT relallvisible FROM pg_class WHERE oid = '"${schema}".jobs'::regclass`,
    );
    assert.ok(vm.relallvisible >= 1, JSON.stringify(vm));
  } finally {
    await check.end();
  }
});

Deno.test({
  name: "postgres: a search with many old matches finds them in order, any case",
  ignore,
  fn: async () => {
    const store = await openFresh();
    try {
      // 12,000 old matches in three cases, then 2,500 newer jobs that do not match: the newest
      // jobs tested first hold none, so every match is read from the index and sorted.
      const cases = ["echo Job", "ECHO JOB", "echo job"];
      const old = Array.from(
        { length: 12_000 },
        (_, i) => newJob(`m-${String(i).padStart(5, "0")}`, { command: `${cases[i % 3]} ${i}` }),
      );
      await store.insertJobs({ jobs: old, now: T0 });
      const newer = Array.from({ length: 2_500 }, (_, i) => newJob(`n-${i}`, { command: "true" }));
      await store.insertJobs({ jobs: newer, now: T0 + 1 });
      const sql = admin();
      try {
        await sql.unsafe(`ANALYZE "${schemas.get(store)}".jobs`);
      } finally {
        await sql.end();
      }
      const want = old.map((j) => j.id).reverse();
      for (const search of ["job 1", "JOB 1", "Echo jOb"]) {
        const s = search.toLowerCase();
        const expected = want.filter((id) =>
          old[Number(id.slice(2))].command.toLowerCase().includes(s)
        );
        const page = await store.listJobs({ search, limit: 50, offset: 7 });
        assert.deepEqual(page.map((j) => j.id), expected.slice(7, 57), search);
        const after = await store.listJobs({ search, limit: 5, after: expected[99] });
        assert.deepEqual(after.map((j) => j.id), expected.slice(100, 105), search);
      }
    } finally {
      await store.close();
    }
  },
});

pgTest("counters compacted while four sessions move jobs: no deadlock, every count right", async (
  schema,
) => {
  // Each session writes the counter shard of its backend; the compaction folds and deletes
  // rows while they do. A deadlock or a lost delta would fail a writer or the agreement check.
  const open = () => openPostgresStore(PG_URL, { schema, leaseClock: "caller" });
  const writers = await Promise.all(Array.from({ length: 4 }, open));
  const compactor = await open();
  try {
    let writing = true;
    let batches = 0;
    const compacting = (async () => {
      while (writing) {
        await compactor.compactCounts({ limit: 3 });
        batches++;
      }
    })();
    // Stopped and awaited whatever happens, so its last call never outlives the stores.
    const writes = Promise.all(writers.map(async (store, w) => {
      for (let i = 0; i < 60; i++) {
        // Each writer's own queues (a claim must find the job just inserted), used again and
        // again, moved by the other sessions.
        const queue = `q${w}-${i % 3}`;
        const id = `w${w}-${i}`;
        await store.insertJobs({ jobs: [newJob(id, { queue })], now: T0 });
        const [job] = await writers[(w + 1) % 4].claimJobs({
          workerId: `worker-${w}`,
          queues: [queue],
          now: T0,
          leaseMs: 30_000,
          limit: 1,
        });
        assert.ok(job, `${id}: a job to claim in ${queue}`);
        const done = complete(job, {
          now: T0,
          workerId: `worker-${w}`,
          exit_code: 0,
          duration_ms: 1,
        });
        assert.ok(await writers[(w + 2) % 4].applyChange({ change: done }));
        if (i % 3 === 0) {
          await writers[(w + 3) % 4].deleteJobs({ states: ["completed"], ids: [job.id] });
        }
      }
    }));
    try {
      await writes;
    } finally {
      writing = false;
      await compacting;
    }
    assert.ok(batches > 0);
    const sql = admin();
    try {
      // The counters agree with the jobs (runs are deleted with their jobs: no run totals here).
      const agree = async () =>
        assert.deepEqual(
          [
            ...await sql.unsafe(`SELECT queue, state, sum(n)::int AS n FROM "${schema}".job_counts
            GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2`),
          ],
          [
            ...await sql.unsafe(`SELECT queue, state, count(*)::int AS n FROM "${schema}".jobs
            GROUP BY 1, 2 ORDER BY 1, 2`),
          ],
        );
      await agree();
      while ((await compactor.compactCounts({ limit: 3 })).found > 0) { /* the rest */ }
      await agree();
      const [{ rows, groups }] = await sql.unsafe(`SELECT count(*)::int AS rows,
          count(DISTINCT (queue, state)) FILTER (WHERE n <> 0)::int AS groups
        FROM "${schema}".job_counts`);
      assert.equal(rows, groups, "one row per counter that is not zero");
    } finally {
      await sql.end();
    }
    assert.equal(await compactor.countJobs({}), 160);
  } finally {
    for (const store of [...writers, compactor]) await store.close();
  }
});

pgTest("counters gone wrong cost a flow-controlled claim time, never a job", async (schema) => {
  // The walk of a claim beside a paused backlog is chosen from the counters; which queues it
  // reads is not (the skip scan of jobs_queue_created, less the closed queues).
  const store = await openPostgresStore(PG_URL, { schema, leaseClock: "caller" });
  const sql = admin();
  try {
    await pausedBacklog(store, T0);
    // "mail" has no counter row at all: by the counters it is empty.
    await sql.unsafe(`DELETE FROM "${schema}".job_counts WHERE queue = 'mail'`);
    const claim = (queues: string[] | null) => claimIds(store, queues, T0);
    await mailClaimedUncounted(store, T0);
    assert.deepEqual(await claim(null), []);
    // A queue whose first job comes while the decision is held: found by the skip scan.
    await store.insertJobs({ jobs: [newJob("new-1", { queue: "new" })], now: T0 });
    assert.deepEqual(await claim(null), ["new-1"]);
    await store.setQueueControl({ name: "bulk", paused: false, now: T0 });
    assert.deepEqual(await claim(null), ["bulk-0"]);
  } finally {
    await sql.end();
    await store.close();
  }
});

pgTest(
  "a claim never waits for a limited queue's lock while none of that queue's jobs is at the head",
  async (
    schema,
  ) => {
    // The flow-controlled claim locks the limited queues' rows; a claim whose jobs at the head are of
    // queues without a limit takes them in one statement, without that lock (docs/architecture.md
    // "Flow control"). Here another session holds the lock of `gpu` (as a long controlled claim
    // would): the claim of a `default` job must not wait for it.
    const store = await openPostgresStore(PG_URL, { schema });
    const holder = admin();
    try {
      await store.insertJobs({ jobs: [newJob("d1", { queue: "default" })], now: T0 });
      await store.setQueueControl({ name: "gpu", maxRunning: 1, now: T0 });
      await holder.begin(async (tx) => {
        await tx.unsafe(`SELECT name FROM "${schema}".queues WHERE name = 'gpu' FOR UPDATE`);
        const claiming = store.claimJobs({
          workerId: "w",
          queues: null,
          now: T0,
          leaseMs: 60_000,
          limit: 1,
        });
        let guard: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<"waited">((resolve) => {
          guard = setTimeout(() => resolve("waited"), 10_000);
        });
        const claimed = await Promise.race([claiming, late]);
        clearTimeout(guard);
        assert.notEqual(claimed, "waited", "the claim waited for gpu's lock");
        assert.deepEqual((claimed as Job[]).map((j) => j.id), ["d1"]);
      });
    } finally {
      await holder.end();
      await store.close();
    }
  },
);

Deno.test({
  name: "postgres: a bounded pool's sessions carry its statement and lock timeouts, and the schema",
  ignore,
  fn: async () => {
    // Set after connecting (the driver's session_sql), not as startup parameters, which
    // PgBouncer refuses (tests/store/postgres_pooler_test.ts); every connection of the pool.
    const sql = connectPool(PG_URL, "qs_settings", 2, { statementTimeoutMs: 1234.4 });
    try {
      const read = () =>
        sql<{ st: string; lt: string; sp: string }[]>`SELECT
          current_setting('statement_timeout') AS st, current_setting('lock_timeout') AS lt,
          current_setting('search_path') AS sp, pg_sleep(0.05)`;
      const rows = await Promise.all([read(), read(), read()]);
      for (const [r] of rows) {
        assert.deepEqual(r, { st: "1234ms", lt: "1234ms", sp: "qs_settings", pg_sleep: "" });
      }
      const plain = connectPool(PG_URL, undefined, 1);
      try {
        const [r] = await plain<
          { st: string }[]
        >`SELECT current_setting('statement_timeout') AS st`;
        assert.equal(r.st, "0");
      } finally {
        await plain.end();
      }
    } finally {
      await sql.end();
    }
  },
});

Deno.test({
  name:
    "postgres: no connection left (a role's CONNECTION LIMIT) is a transient error that says so",
  ignore,
  fn: async () => {
    const role = `qlim_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    const sql = admin();
    // A password too: where the server asks for one (GitHub's), the limit is checked after it.
    await sql.unsafe(`CREATE ROLE "${role}" LOGIN PASSWORD 'pw' CONNECTION LIMIT 0`);
    try {
      const url = PG_URL.replace(/^(postgres(?:ql)?:\/\/)[^@/]*@/i, `$1${role}:pw@`);
      await assert.rejects(openPostgresStore(url), (err: unknown) => {
        assert.ok(err instanceof StorageError, String(err));
        assert.equal(err.transient, true);
        assert.match(err.message, /has no connection left: too many connections for role/);
        assert.match(err.hint ?? "", /max_connections .*CONNECTION LIMIT.*fewer workers/);
        return true;
      });
    } finally {
      await sql.unsafe(`DROP ROLE "${role}"`);
      await sql.end();
    }
  },
});
