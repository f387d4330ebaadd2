/**
 * Search at a million jobs (issue 15.5), before and after a change, side by side: the searches of
 * bench/scale.ts's reads part through the dashboard's API handler (in process), interleaved call
 * by call between a baseline checkout's code and this checkout's, on the same seeded data.
 *
 * - SQLite: two copies of the seeded database, one per code (a migration of this checkout may
 *   not open under the baseline's code): `--sqlite-before FILE --sqlite-now FILE`.
 * - PostgreSQL: one schema, when both codes share its migrations: `--pg-schema NAME`.
 *
 * Seed with `QUEUECTL_BENCH_SCALE_KEEP=DIR deno run -A bench/scale.ts --part=reads --rounds=1` on
 * the baseline, copy DIR/large-1000000.db before this checkout opens it.
 *
 * Usage: deno run -A bench/search_before.ts --baseline DIR [--sqlite-before F --sqlite-now F]
 *   [--pg-schema S] [--rounds R] [--only PATH] [--now-only]
 * `--only PATH`: that call only; `--now-only`: this checkout's code alone (the baseline's calls are
 * skipped, e.g. to time a call without the baseline's work just before it in the same process).
 */
import { fmt, loadAverage, median } from "./util.ts";

const arg = (name: string) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
};
const baseline = arg("--baseline");
if (!baseline) throw new Error("--baseline DIR (a checkout of the code before) is required");
const rounds = Number(arg("--rounds") ?? 7);
const PG_URL = Deno.env.get("QUEUECTL_TEST_PG_URL") ?? "postgres://postgres@127.0.0.1:5432/test";

const SEARCHES = [
  "/api/jobs?search=needle",
  "/api/jobs?search=echo%20job",
  "/api/jobs?search=job%20123",
  "/api/jobs?search=job%2019",
  "/api/jobs?search=job%201",
  "/api/jobs?search=no-such-text",
  "/api/jobs?state=failed&search=needle",
  "/api/jobs?state=dead&search=job%201",
  "/api/dlq?search=needle",
  // Last: before branch perf-search it read every job, which filled that connection's page cache
  // (SQLite) and sped up its later calls, not this checkout's.
  "/api/jobs?search=e%20",
];

type Handle = { get: (path: string) => Promise<void>; close: () => Promise<void> };

async function open(root: string, db: string): Promise<Handle> {
  const { openStore } = await import(`${root}/src/store/mod.ts`);
  const { handleApi } = await import(`${root}/src/dashboard/api.ts`);
  const store = await openStore(db);
  const now = (await store.listJobs({ limit: 1 }))[0].created_at + 1000;
  return {
    get: async (path: string) => {
      const url = new URL(`http://127.0.0.1${path}`);
      const res = await handleApi({ store, clock: { now: () => now } }, new Request(url), url);
      if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    },
    close: () => store.close(),
  };
}

const only = arg("--only");
const nowOnly = Deno.args.includes("--now-only");

async function compare(label: string, before: Handle, now: Handle): Promise<string[]> {
  const lines = [
    `| ${label} call | before | now | now / before |`,
    "|---|---|---|---|",
  ];
  for (const path of only ? [only] : SEARCHES) {
    if (!nowOnly) await before.get(path);
    await now.get(path);
    const xs: number[] = [];
    const ys: number[] = [];
    for (let r = 0; r < rounds; r++) {
      let t0 = performance.now();
      if (!nowOnly) await before.get(path);
      xs.push(nowOnly ? NaN : performance.now() - t0);
      t0 = performance.now();
      await now.get(path);
      ys.push(performance.now() - t0);
    }
    const cell = (v: number[]) =>
      `${fmt(median(v))} (${fmt(Math.min(...v))}-${fmt(Math.max(...v))})`;
    lines.push(
      `| GET ${path} | ${cell(xs)} | **${cell(ys)}** | ${fmt(median(ys) / median(xs), 2)} |`,
    );
  }
  return lines;
}

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const out: string[] = [`Load average at the start: ${await loadAverage()}.`, ""];
const sqliteBefore = arg("--sqlite-before");
const sqliteNow = arg("--sqlite-now");
if (sqliteBefore && sqliteNow) {
  const b = await open(baseline, sqliteBefore);
  const n = await open(root, sqliteNow);
  try {
    out.push(...await compare("SQLite", b, n), "");
  } finally {
    await b.close();
    await n.close();
  }
}
const schema = arg("--pg-schema");
if (schema) {
  const url = `${PG_URL}${PG_URL.includes("?") ? "&" : "?"}schema=${schema}`;
  const b = await open(baseline, url);
  const n = await open(root, url);
  try {
    out.push(...await compare("PostgreSQL", b, n), "");
  } finally {
    await b.close();
    await n.close();
  }
}
out.push(`Load average at the end: ${await loadAverage()}. ${rounds} interleaved rounds, ms.`);
console.log(out.join("\n"));
