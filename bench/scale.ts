/**
 * A million jobs (issue 15.5, 15.6), measured side by side in one run:
 * 1. bulk enqueue: `queuectl enqueue --file` of N JSON Lines jobs (ids generated) vs a bare
 *    node:sqlite insert of the same rows (ids from the same generator) into queuectl's schema, one
 *    transaction each; wall time and peak RSS (`/usr/bin/time -f %M`), interleaved rounds.
 *
 * 2. reads at N jobs on SQLite and PostgreSQL: every GET of the dashboard API (called in process
 *    through its handler, as the server does), searches (rare, frequent, none), a deep page (by
 *    cursor: paging is keyset only) beside the first, and `queuectl list --search` through the CLI.
 *
 * Run alone: `deno task bench --only=scale`.
 */
import { fmt, loadAverage, MAIN, median, PERMISSIONS, ROOT } from "./util.ts";

const deno = Deno.execPath();
const TIME = "/usr/bin/time";

async function hasGnuTime(): Promise<boolean> {
  try {
    return (await Deno.stat(TIME)).isFile;
  } catch {
    return false;
  }
}

/**
 * Runs a command to completion under /usr/bin/time (when present): wall ms and peak RSS in MiB
 * (NaN without /usr/bin/time). Throws on a non-zero exit.
 */
async function timeRss(
  args: string[],
  env: Record<string, string>,
  gnuTime: boolean,
): Promise<{ ms: number; rssMiB: number; cpuMs: number }> {
  const report = await Deno.makeTempFile();
  try {
    const [cmd, argv] = gnuTime
      ? [TIME, ["-f", "%M %U %S", "-o", report, deno, ...args]]
      : [deno, args];
    const start = performance.now();
    const out = await new Deno.Command(cmd, { args: argv, env, stdout: "null", stderr: "piped" })
      .output();
    const ms = performance.now() - start;
    if (!out.success) {
      throw new Error(`deno ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    const [kb, user, sys] = gnuTime
      ? (await Deno.readTextFile(report)).trim().split("\n").at(-1)!.split(" ").map(Number)
      : [NaN, NaN, NaN];
    return { ms, rssMiB: kb / 1024, cpuMs: (user + sys) * 1000 };
  } finally {
    await Deno.remove(report).catch(() => {});
  }
}

/**
 * The bare insert: the file read whole, ids from queuectl's generator, 64 rows per prepared INSERT
 * (as queuectl's store does: a statement per row costs more than the row itself), one transaction.
 * The same rows: each job also records the directory it was enqueued from (cwd), as queuectl's do.
 */
const BARE_INSERT = `
import { DatabaseSync } from "node:sqlite";
import { generateJobId } from "${ROOT}src/core/job.ts";
const [db, file, fill] = Deno.args;
const d = new DatabaseSync(db);
d.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
// "after": the search index filled after the rows in one statement, as queuectl's bulk enqueue
// does (migration 14), instead of by its trigger row by row.
const after = fill === "after";
const text = await Deno.readTextFile(file);
const now = Date.now();
const cwd = Deno.cwd();
const ROW = "(?, ?, 'default', 'pending', 0, 0, 3, NULL, ?, ?, ?, ?)";
const COLS = "INSERT INTO jobs (id, command, queue, state, priority, attempts, max_retries, timeout, run_at, created_at, updated_at, cwd) VALUES ";
const batch = d.prepare(COLS + new Array(64).fill(ROW).join(", "));
const one = d.prepare(COLS + ROW);
const values = [];
d.exec("BEGIN");
if (after) d.exec("INSERT INTO jobs_search_deferred (after) VALUES (0)");
let start = 0;
for (;;) {
  const nl = text.indexOf("\\n", start);
  if (nl < 0) break;
  const r = JSON.parse(text.slice(start, nl));
  values.push(generateJobId(now), r.command, now, now, now, cwd);
  if (values.length === 64 * 6) {
    batch.run(...values);
    values.length = 0;
  }
  start = nl + 1;
}
for (let i = 0; i < values.length; i += 6) one.run(...values.slice(i, i + 6));
if (after) {
  d.exec("INSERT INTO jobs_search (rowid, id, command) SELECT rowid, id, command FROM jobs");
  d.exec("DELETE FROM jobs_search_deferred");
}
d.exec("COMMIT");
d.close();
`;

export async function bulkEnqueue(dir: string, n: number, rounds: number): Promise<string> {
  const gnuTime = await hasGnuTime();
  const file = `${dir}/jobs.jsonl`;
  {
    const f = await Deno.open(file, { write: true, create: true, truncate: true });
    const enc = new TextEncoder();
    for (let i = 0; i < n; i += 10_000) {
      let chunk = "";
      for (let j = i; j < Math.min(n, i + 10_000); j++) {
        chunk += JSON.stringify({ command: `echo job ${j}` }) + "\n";
      }
      await f.write(enc.encode(chunk));
    }
    f.close();
  }
  const bare = `${dir}/bare_insert.ts`;
  await Deno.writeTextFile(bare, BARE_INSERT);
  type Run = { ms: number; rssMiB: number; cpuMs: number };
  const ours: Run[] = [];
  const base: Run[] = [];
  const baseAfter: Run[] = [];
  const { openSqliteStore } = await import("../src/store/sqlite/mod.ts");
  const { DatabaseSync } = await import("node:sqlite");
  const load0 = await loadAverage();
  for (let r = 0; r < rounds; r++) {
    const db1 = `${dir}/bulk-${r}.db`;
    ours.push(
      await timeRss(["run", ...PERMISSIONS, MAIN, "enqueue", "--file", file], {
        QUEUECTL_DB: db1,
      }, gnuTime),
    );
    const db2 = `${dir}/bare-${r}.db`;
    await (await openSqliteStore(db2)).close();
    base.push(
      await timeRss(["run", "--allow-read", "--allow-write", bare, db2, file], {}, gnuTime),
    );
    const db3 = `${dir}/bare-after-${r}.db`;
    await (await openSqliteStore(db3)).close();
    baseAfter.push(
      await timeRss(
        ["run", "--allow-read", "--allow-write", bare, db3, file, "after"],
        {},
        gnuTime,
      ),
    );
    for (const db of [db1, db2, db3]) {
      const check = new DatabaseSync(db, { readOnly: true });
      const count = (check.prepare("SELECT count(*) AS n FROM jobs").get() as { n: number }).n;
      check.close();
      if (count !== n) throw new Error(`${db}: expected ${n} jobs, found ${count}`);
      for (const suffix of ["", "-wal", "-shm", "-wake", "-lock"]) {
        await Deno.remove(db + suffix).catch(() => {});
      }
    }
  }
  const load1 = await loadAverage();
  const ratios = ours.map((o, i) => o.ms / base[i].ms);
  const ratiosAfter = ours.map((o, i) => o.ms / baseAfter[i].ms);
  const range = (xs: number[], d = 0) => `${fmt(Math.min(...xs), d)}-${fmt(Math.max(...xs), d)}`;
  const cpuRatios = ours.map((o, i) => o.cpuMs / base[i].cpuMs);
  const cpuRatiosAfter = ours.map((o, i) => o.cpuMs / baseAfter[i].cpuMs);
  const row = (name: string, xs: Run[]) =>
    `| ${name} | ${fmt(median(xs.map((x) => x.ms)) / 1000, 1)} (${
      range(xs.map((x) => x.ms / 1000), 1)
    }) | ${fmt(median(xs.map((x) => x.cpuMs)) / 1000, 1)} (${
      range(xs.map((x) => x.cpuMs / 1000), 1)
    }) | ${
      gnuTime
        ? `${fmt(median(xs.map((x) => x.rssMiB)), 0)} (${range(xs.map((x) => x.rssMiB))})`
        : "-"
    } |`;
  return [
    `### Bulk enqueue of ${n.toLocaleString("en")} jobs: memory and time vs a bare insert`,
    "",
    `JSON Lines \`{"command":"echo job N"}\`, ids generated (time-ordered). ${rounds} interleaved ` +
    "rounds, each a fresh process and database, medians (range). The bare insert reads the file " +
    "whole, makes ids with queuectl's generator and inserts the same rows (command, times, the " +
    "caller's directory) 64 per prepared statement " +
    "in one transaction into a database that already has queuectl's schema (same indexes). " +
    `Load average ${load0} at the start, ${load1} at the end.`,
    "",
    "| run | wall s | CPU s (user + sys) | peak RSS MiB |",
    "|---|---|---|---|",
    row("`queuectl enqueue --file` (streamed)", ours),
    row("bare node:sqlite insert (search index by its trigger, row by row)", base),
    row("bare node:sqlite insert, search index filled after the rows", baseAfter),
    "",
    `Ratio queuectl / bare insert (per round, then median): **${fmt(median(ratios), 2)}** (${
      range(ratios, 2)
    }); against the bare insert that fills the search index after its rows as queuectl does: ${
      fmt(median(ratiosAfter), 2)
    } (${range(ratiosAfter, 2)}). The same ratios in CPU time (less sensitive to other load on ` +
    `the machine): ${fmt(median(cpuRatios), 2)} (${range(cpuRatios, 2)}) and ${
      fmt(median(cpuRatiosAfter), 2)
    } (${range(cpuRatiosAfter, 2)}). Targets: ratio <= 1.2, queuectl's RSS <= 150 MiB.`,
    "",
  ].join("\n");
}

const PG_URL = Deno.env.get("QUEUECTL_BENCH_PG_URL") ?? Deno.env.get("QUEUECTL_TEST_PG_URL") ??
  "postgres://postgres@127.0.0.1:5432/test";

/**
 * The seeded mix: state by i % 20, queue mail for i % 3 == 0, a rare "needle" every 100,000, and
 * one failed job in 100,000 in queue "alerts": a small queue whose name sorts first, as a
 * state's counter of one queue must not stand for the state's size (SQLite's state-filtered
 * search read it so before 2026-12-01 and walked every failed job).
 */
function seedRow(i: number, start: number) {
  const r = i % 20;
  const state = r < 13 ? "completed" : r < 17 ? "pending" : r < 19 ? "failed" : "dead";
  const t = start + i * 10;
  return {
    id: `job-${String(i).padStart(7, "0")}`,
    command: i % 100_000 === 42 ? `backup --needle ${i}` : `echo job ${i}`,
    queue: i % 100_000 === 17 ? "alerts" : i % 3 === 0 ? "mail" : "default",
    state,
    attempts: state === "pending" ? 0 : 1,
    run_at: state === "failed" ? t + 3_600_000 : t,
    t,
    finished_at: state === "completed" ? t : null,
  };
}

/**
 * Where the 1M-job databases live between runs: with QUEUECTL_BENCH_SCALE_KEEP=DIR the seeded
 * SQLite file (DIR/large-N.db) and PostgreSQL schema (bench_scale_keep_N) are reused when they hold
 * N jobs, and left in place (building them is most of a run; delete them by hand when done).
 */
const KEEP = Deno.env.get("QUEUECTL_BENCH_SCALE_KEEP");

export async function seedSqlite(path: string, n: number): Promise<void> {
  const { DatabaseSync } = await import("node:sqlite");
  if (KEEP) {
    try {
      const d = new DatabaseSync(path, { readOnly: true });
      const have = (d.prepare("SELECT sum(n) AS n FROM job_counts").get() as { n: number }).n;
      d.close();
      if (have === n) return;
    } catch { /* not there yet */ }
    for (const suffix of ["", "-wal", "-shm", "-wake", "-lock"]) {
      await Deno.remove(path + suffix).catch(() => {});
    }
  }
  const { openSqliteStore } = await import("../src/store/sqlite/mod.ts");
  await (await openSqliteStore(path)).close();
  const d = new DatabaseSync(path);
  d.exec("PRAGMA synchronous = OFF");
  // Indexes and the search trigger are dropped for the load and made again after it (what a
  // bulk load does; the rows and indexes end up the same as inserted one by one).
  const saved = d.prepare(
    "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'jobs' AND ((type = 'trigger' " +
      "AND name IN ('jobs_search_insert', 'jobs_disorder_insert')) OR (type = 'index' AND sql " +
      "IS NOT NULL))",
  ).all() as { type: string; name: string; sql: string }[];
  for (const o of saved) d.exec(`DROP ${o.type.toUpperCase()} ${o.name}`);
  const COLS = "INSERT INTO jobs (id, command, queue, state, priority, attempts, max_retries, " +
    "timeout, run_at, created_at, updated_at, finished_at) VALUES ";
  const ROW = "(?, ?, ?, ?, 0, ?, 3, NULL, ?, ?, ?, ?)";
  const batch = d.prepare(COLS + new Array(100).fill(ROW).join(", "));
  const one = d.prepare(COLS + ROW);
  const start = Date.now() - n * 10;
  d.exec("BEGIN");
  const values: (string | number | null)[] = [];
  for (let i = 0; i < n; i++) {
    const j = seedRow(i, start);
    values.push(j.id, j.command, j.queue, j.state, j.attempts, j.run_at, j.t, j.t, j.finished_at);
    if (values.length === 900) {
      batch.run(...values);
      values.length = 0;
    }
  }
  for (let i = 0; i < values.length; i += 9) one.run(...values.slice(i, i + 9));
  d.exec("COMMIT");
  for (const o of saved) d.exec(o.sql);
  d.exec("INSERT INTO jobs_search (jobs_search) VALUES ('rebuild')");
  // As migration 14 finds them (none here: created_at grows with the rowid).
  d.exec(
    "INSERT INTO jobs_disorder (r) SELECT r FROM (SELECT rowid AS r, created_at, " +
      "max(created_at) OVER (ORDER BY rowid ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) " +
      "AS before FROM jobs) WHERE created_at < before",
  );
  // Raw inserts bypass the store: bring its per-queue, per-state counters up to date.
  d.exec(
    "DELETE FROM job_counts; INSERT INTO job_counts (queue, state, n) " +
      "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state",
  );
  d.exec("ANALYZE");
  d.close();
}

export async function seedPostgres(url: string, n: number): Promise<void> {
  const postgres = (await import("postgres")).default;
  const schema = new URL(url).searchParams.get("schema")!;
  if (KEEP) {
    const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
    try {
      const [row] = await sql.unsafe(
        `SELECT sum(n)::bigint AS n FROM "${schema}".job_counts`,
      ).catch(() => [{ n: null }]);
      if (Number(row?.n) === n) return;
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    } finally {
      await sql.end();
    }
  }
  const { openPostgresStore } = await import("../src/store/postgres/mod.ts");
  await (await openPostgresStore(url)).close();
  const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`SET search_path = "${schema}"`);
    // As for SQLite: the indexes are made again after the load.
    const saved = await sql.unsafe(
      `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'jobs'
        AND indexname <> 'jobs_pkey'`,
      [schema],
    ) as unknown as { indexname: string; indexdef: string }[];
    for (const i of saved) await sql.unsafe(`DROP INDEX "${i.indexname}"`);
    const start = Date.now() - n * 10;
    for (let i = 0; i < n; i += 50_000) {
      const rows = Array.from({ length: Math.min(50_000, n - i) }, (_, k) => {
        const j = seedRow(i + k, start);
        return [j.id, j.command, j.queue, j.state, j.attempts, j.run_at, j.t, j.finished_at];
      });
      await sql.unsafe(
        `INSERT INTO jobs (id, command, queue, state, priority, attempts, max_retries, run_at,
          created_at, updated_at, finished_at)
        SELECT r->>0, r->>1, r->>2, r->>3, 0, (r->>4)::int, 3, (r->>5)::bigint, (r->>6)::bigint,
          (r->>6)::bigint, (r->>7)::bigint FROM jsonb_array_elements($1::jsonb) AS r`,
        [rows as unknown as string],
      );
    }
    for (const i of saved) await sql.unsafe(i.indexdef);
    await sql.unsafe("VACUUM ANALYZE jobs");
  } finally {
    await sql.end();
  }
}

async function timed(fn: () => Promise<unknown>, rounds: number): Promise<number[]> {
  await fn(); // warm
  const xs: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await fn();
    xs.push(performance.now() - t0);
  }
  return xs;
}

/** Reads at `n` jobs on one backend: each dashboard GET in process, and the CLI's list --search. */
async function readsAt(
  backend: "sqlite" | "postgres",
  db: string,
  n: number,
  rounds: number,
): Promise<{ name: string; ms: number[]; target: number }[]> {
  const { openStore } = await import("../src/store/mod.ts");
  const { handleApi } = await import("../src/dashboard/api.ts");
  const { prometheusMetrics } = await import("../src/app/metrics.ts");
  const store = await openStore(db);
  // "Now" is just after the newest seeded job, as if the jobs had just run: the chart's last 10
  // minutes then hold ~39,000 completions and the last hour's failed jobs wait for their retry.
  const newest = (await store.listJobs({ limit: 1 }))[0].created_at + 1000;
  let now = newest;
  const ctx = { store, clock: { now: () => now } };
  const deep = (await store.listJobs({ limit: 1, offset: Math.floor(n * 0.9) }))[0].id;
  const some = (await store.listJobs({ limit: 1, offset: Math.floor(n / 2) }))[0].id;
  /** The same store under a new identity (what the dashboard's caches are keyed on). */
  const fresh = () =>
    new Proxy(store, {
      get: (target, key) => {
        const v = Reflect.get(target, key);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  const get = (path: string, handle = store) => async () => {
    const url = new URL(`http://127.0.0.1${path}`);
    const res = await handleApi({ ...ctx, store: handle }, new Request(url), url);
    if (res.status !== 200) {
      throw new Error(`${backend} ${path}: ${res.status} ${await res.text()}`);
    }
    await res.arrayBuffer();
  };
  const rows: { name: string; ms: number[]; target: number }[] = [];
  const api = async (path: string, target = 20) =>
    rows.push({ name: `GET ${path}`, ms: await timed(get(path), rounds), target });
  try {
    // The dashboard reads the stats once a second (its event stream): the clock moves 1 s per
    // call. The first read of a process counts the whole chart window: a new handle on the store
    // each time, so nothing counted before is reused.
    rows.push({
      name: "GET /api/stats (each second, as the dashboard does)",
      ms: await timed(() => (now += 1000, get("/api/stats")()), rounds),
      target: 20,
    });
    now = newest;
    rows.push({
      name: "GET /api/stats (first of a process)",
      ms: await timed(() => get("/api/stats", fresh())(), rounds),
      target: 20,
    });
    await api("/api/jobs");
    for (const state of ["pending", "processing", "completed", "failed", "dead"]) {
      await api(`/api/jobs?state=${state}`);
    }
    await api("/api/jobs?queue=mail");
    await api(`/api/jobs/${some}`);
    await api("/api/dlq");
    await api("/api/dlq?search=needle", 50);
    await api("/api/workers");
    await api("/api/schedules");
    await api("/api/queues");
    rows.push({
      name: "/metrics (Prometheus text, in process)",
      ms: await timed(() => prometheusMetrics(ctx), rounds),
      target: 20,
    });
    await api("/api/jobs?search=needle", 50);
    await api("/api/jobs?search=echo%20job", 50);
    await api("/api/jobs?search=job%20123", 50);
    await api("/api/jobs?search=job%2019", 50);
    await api("/api/jobs?search=job%201", 50);
    await api("/api/jobs?search=no-such-text", 50);
    await api("/api/jobs?search=e%20", 50);
    await api("/api/jobs?state=failed&search=needle", 50);
    await api(`/api/jobs?after=${deep}`);
  } finally {
    await store.close();
  }
  // The CLI, beside an empty Deno program (start-up) in the same rounds.
  const empty = await Deno.makeTempFile({ suffix: ".ts" });
  const env = { QUEUECTL_DB: db, NO_COLOR: "1" };
  const cliList = (text = "needle") => () =>
    new Deno.Command(deno, {
      args: ["run", ...PERMISSIONS, MAIN, "list", "--search", text, "--limit", "50"],
      env,
      stdout: "null",
    }).output();
  const bare = () => new Deno.Command(deno, { args: ["run", empty], stdout: "null" }).output();
  rows.push({
    name: "`queuectl list --search needle` (CLI, wall)",
    ms: await timed(cliList(), rounds),
    target: NaN,
  });
  rows.push({
    name: "`queuectl list --search 'job 1'` (CLI, wall)",
    ms: await timed(cliList("job 1"), rounds),
    target: NaN,
  });
  rows.push({
    name: "`queuectl list --search 'e '` (CLI, wall; incomplete after 10,000 jobs)",
    ms: await timed(cliList("e "), rounds),
    target: NaN,
  });
  rows.push({
    name: "`deno run empty.ts` (start-up, same rounds)",
    ms: await timed(bare, rounds),
    target: NaN,
  });
  await Deno.remove(empty);
  return rows;
}

export async function reads(
  dir: string,
  n: number,
  rounds: number,
  backends: readonly string[] = ["sqlite", "postgres"],
): Promise<string> {
  const sqlitePath = `${KEEP ?? dir}/large-${n}.db`;
  let sqlite: { name: string; ms: number[]; target: number }[] | null = null;
  if (backends.includes("sqlite")) {
    console.error(`scale: seeding ${n} jobs (SQLite)...`);
    await seedSqlite(sqlitePath, n);
    sqlite = await readsAt("sqlite", sqlitePath, n, rounds);
  }
  let pg: { name: string; ms: number[]; target: number }[] | null = null;
  let pgNote = "";
  const schema = KEEP ? `bench_scale_keep_${n}` : `bench_scale_${Date.now().toString(36)}`;
  const url = `${PG_URL}${PG_URL.includes("?") ? "&" : "?"}schema=${schema}`;
  if (backends.includes("postgres")) {
    try {
      console.error(`scale: seeding ${n} jobs (PostgreSQL)...`);
      await seedPostgres(url, n);
      pg = await readsAt("postgres", url, n, rounds);
    } catch (err) {
      pgNote = `PostgreSQL skipped: ${err instanceof Error ? err.message.split("\n")[0] : err}`;
    } finally {
      const postgres = (await import("postgres")).default;
      const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
      if (!KEEP) await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
      await sql.end();
    }
  }
  const cell = (r: { ms: number[]; target: number } | undefined) => {
    if (!r) return "-";
    const m = median(r.ms);
    const bold = !Number.isNaN(r.target);
    return `${bold ? "**" : ""}${fmt(m)}${bold ? "**" : ""} (${fmt(Math.min(...r.ms))}-${
      fmt(Math.max(...r.ms))
    })${bold && m > r.target ? " over" : ""}`;
  };
  return [
    `### Reads at ${n.toLocaleString("en")} jobs: dashboard API, search, paging`,
    "",
    `Each call ${rounds} times after one warm-up, median (range) in ms. The API calls go ` +
    "in process through the dashboard's handler (what the server runs for a request, without " +
    "HTTP). Jobs: 65% completed, 20% pending, 10% failed, 5% dead; a third in queue `mail`, one in 100,000 (failed) in queue `alerts`; " +
    `commands \`echo job N\`, and \`backup --needle N\` for ${Math.ceil(n / 100_000)} of them. ` +
    "`echo job` matches nearly every job, `job 123` 1,111 at 1M, `needle` a few; `job 19` " +
    "(11,111 at 1M) and `job 1` (111,111) match none of the newest 2,000 jobs: on PostgreSQL " +
    "the worst case (every match read, then sorted), on SQLite, whose index gives matches in " +
    "list order, no worse than a recent text; `e ` (2 characters, 10 matches, none recent) is " +
    "too short for a trigram index: it tests the newest 10,000 jobs of the page and answers " +
    "'incomplete' with the cursor of the next 10,000 (docs/architecture.md, \"Short searches\"). " +
    "The deep page is at " +
    `90% (${
      Math.floor(n * 0.9).toLocaleString("en")
    } jobs in), by cursor (\`after\`: the API pages by keyset only). ` +
    `Load average at the end: ${await loadAverage()}. Targets: API calls <= 20 ms, searches <= 50 ms ` +
    "(bold figures have a target; 'over' marks a miss). " + pgNote,
    "",
    "| call | SQLite | PostgreSQL |",
    "|---|---|---|",
    ...(sqlite ?? pg ?? []).map((r, i) =>
      `| ${r.name} | ${cell(sqlite?.[i])} | ${cell(pg?.[i])} |`
    ),
    "",
  ].join("\n");
}

export async function benchScale(opts: { quick?: boolean } = {}): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-bench-scale-" });
  try {
    const sections = [
      "## A million jobs",
      "",
      await bulkEnqueue(dir, opts.quick ? 100_000 : 1_000_000, opts.quick ? 1 : 3),
      await reads(dir, opts.quick ? 100_000 : 1_000_000, opts.quick ? 3 : 7),
    ];
    return sections.join("\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Alone: `deno run ... bench/scale.ts [--quick] [--part=bulk|reads] [--n=N] [--rounds=R]
 * [--backend=sqlite|postgres]` (set QUEUECTL_BENCH_SCALE_KEEP=DIR to reuse the seeded data).
 */
if (import.meta.main) {
  const arg = (name: string) =>
    Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const quick = Deno.args.includes("--quick");
  const part = arg("part");
  if (part === undefined) console.log(await benchScale({ quick }));
  else {
    const dir = await Deno.makeTempDir({ prefix: "queuectl-bench-scale-" });
    try {
      const n = Number(arg("n") ?? (quick ? 100_000 : 1_000_000));
      const rounds = Number(arg("rounds") ?? (part === "bulk" ? 3 : 7));
      console.log(
        part === "bulk"
          ? await bulkEnqueue(dir, n, rounds)
          : await reads(dir, n, rounds, arg("backend")?.split(",")),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
}
