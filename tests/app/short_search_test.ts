/**
 * Searches too short for the substring index are bounded (docs/architecture.md, "Short searches"):
 * the app tests a fixed number of jobs per page and says when it left jobs untested, on both
 * backends; the CLI says so on stderr, the dashboard's API in `incomplete`.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../../src/core/clock.ts";
import { listJobsPage, listJobsSearched } from "../../src/app/queue.ts";
import { appFor } from "../../src/cli/mod.ts";
import { openPostgresStore } from "../../src/store/postgres/mod.ts";
import { openSqliteStore } from "../../src/store/sqlite/mod.ts";
import { SHORT_SEARCH_SCAN, type Store } from "../../src/store/store.ts";
import { call, harness } from "../dashboard/harness.ts";
import { newJob } from "../store/conformance.ts";
import { admin, PG_URL, postgresAvailability } from "../helpers/postgres.ts";
import { runInProcess } from "../helpers/in_process.ts";

const T0 = Date.UTC(2026, 0, 1);
const { ignore: noPostgres } = await postgresAvailability("short search");

/** 100 jobs, one per ms: `s-000` oldest; commands "run N", and "zq N" for N in 3, 47, 95. */
async function seed(store: Store): Promise<string[]> {
  for (let i = 0; i < 100; i++) {
    await store.insertJobs({
      jobs: [newJob(`s-${String(i).padStart(3, "0")}`, {
        command: [3, 47, 95].includes(i) ? `zq ${i}` : `run ${i}`,
        queue: i % 2 ? "odd" : "even",
      })],
      now: T0 + i,
    });
  }
  return Array.from({ length: 100 }, (_, i) => `s-${String(99 - i).padStart(3, "0")}`);
}

async function checks(store: Store): Promise<void> {
  const ctx = { store, clock: new ManualClock(T0 + 1000) };
  const newest = await seed(store);
  // A page that fills within the jobs tested: exact, complete.
  let r = await listJobsSearched(ctx, { search: "zq", limit: 1 }, 10);
  assert.deepEqual(r.jobs.map((j) => j.id), ["s-095"]);
  assert.equal(r.incomplete, null);
  // Stops after 10 jobs (s-099..s-090) with the page not full: says where.
  r = await listJobsSearched(ctx, { search: "zq", limit: 5 }, 10);
  assert.deepEqual(r.jobs.map((j) => j.id), ["s-095"]);
  assert.deepEqual(r.incomplete, { scanned: 10, through: "s-090" });
  // Nothing found among the jobs tested: still incomplete, never a silent "no jobs".
  r = await listJobsSearched(ctx, { search: "zq", limit: 5, after: "s-090" }, 10);
  assert.deepEqual(r, { jobs: [], incomplete: { scanned: 10, through: "s-080" } });
  // Following the cursors finds every match, each once, and ends complete.
  const found: string[] = [];
  let after: string | undefined;
  for (let calls = 0; calls < 20; calls++) {
    r = await listJobsSearched(ctx, { search: "Zq", limit: 2, after }, 7);
    found.push(...r.jobs.map((j) => j.id));
    if (r.incomplete) after = r.incomplete.through;
    else if (r.jobs.length === 2) after = r.jobs[1].id;
    else break;
  }
  assert.equal(r.incomplete, null);
  assert.deepEqual(found, ["s-095", "s-047", "s-003"]);
  // With a filter: the bound counts the filter's jobs (odd: s-099, s-097, ..., the 10th s-081).
  r = await listJobsSearched(ctx, { search: "zq", queue: "odd", limit: 5 }, 10);
  assert.deepEqual(r.jobs.map((j) => j.id), ["s-095"]);
  assert.deepEqual(r.incomplete, { scanned: 10, through: "s-081" });
  // Exactly as many jobs left as the bound (s-009..s-000): every one tested, complete.
  r = await listJobsSearched(ctx, { search: "zq", limit: 5, after: "s-010" }, 10);
  assert.deepEqual(r.jobs.map((j) => j.id), ["s-003"]);
  assert.equal(r.incomplete, null);
  // Fewer jobs left than the bound: every one tested, complete.
  r = await listJobsSearched(ctx, { search: "zq", limit: 5, after: newest[60] }, 50);
  assert.deepEqual(r.jobs.map((j) => j.id), ["s-003"]);
  assert.equal(r.incomplete, null);
  // 3+ characters: the index, never bounded.
  r = await listJobsSearched(ctx, { search: "zq ", limit: 5 }, 10);
  assert.deepEqual(r.jobs.map((j) => j.id), ["s-095", "s-047", "s-003"]);
  assert.equal(r.incomplete, null);
  // The dashboard's page: next continues after the last job tested; the total counts the newest
  // jobs tested only, so it is "at least".
  const page = await listJobsPage(ctx, { search: "zq", limit: 5 }, 10);
  assert.deepEqual(page.jobs.map((j) => j.id), ["s-095"]);
  assert.equal(page.next, "s-090");
  assert.deepEqual(page.incomplete, { scanned: 10, through: "s-090" });
  assert.deepEqual([page.total, page.total_capped], [1, true]);
  const all = await listJobsPage(ctx, { search: "zq", limit: 5 }, 1000);
  assert.deepEqual(all.jobs.map((j) => j.id), ["s-095", "s-047", "s-003"]);
  assert.deepEqual([all.next, all.incomplete, all.total, all.total_capped], [null, null, 3, false]);
  // A full page whose next page holds untested jobs: next is the last job tested.
  const full = await listJobsPage(ctx, { search: "ru", limit: 3 }, 4);
  assert.deepEqual(full.jobs.map((j) => j.id), ["s-099", "s-098", "s-097"]);
  assert.equal(full.next, "s-097");
  assert.deepEqual([full.total, full.total_capped], [4, true]);
  // A later page: the total still counts the newest jobs of the filter (s-099..s-090: 1 match).
  const later = await listJobsPage(ctx, { search: "zq", limit: 5, after: "s-090" }, 10);
  assert.deepEqual([later.jobs, later.total, later.total_capped], [[], 1, true]);
  assert.equal(later.next, "s-080");
}

Deno.test("short search: bounded, says where it stopped, pages find every match (SQLite)", async () => {
  const dir = await Deno.makeTempDir();
  const store = await openSqliteStore(`${dir}/q.db`);
  try {
    await checks(store);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "short search: bounded, says where it stopped, pages find every match (PostgreSQL)",
  ignore: noPostgres,
  fn: async () => {
    const schema = `qt_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
    const store = await openPostgresStore(PG_URL, { schema, leaseClock: "caller" });
    try {
      await checks(store);
    } finally {
      await store.close();
      const sql = admin();
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => sql.end());
    }
  },
});

Deno.test("short search past the bound: list says so on stderr, the API in incomplete", async () => {
  await using h = await harness();
  const n = SHORT_SEARCH_SCAN + 5;
  const jobs = Array.from(
    { length: n },
    (_, i) =>
      newJob(`b-${String(i).padStart(6, "0")}`, { command: i === 2 ? "zq old" : `run ${i}` }),
  );
  await h.store.insertJobs({ jobs, now: h.clock.now() });
  const through = `b-${String(n - SHORT_SEARCH_SCAN).padStart(6, "0")}`;
  const cli = (...args: string[]) =>
    runInProcess(appFor(args), args, { QUEUECTL_DB: h.dbPath, NO_COLOR: "1" });

  let out = await cli("list", "--search", "zq");
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, "");
  assert.match(out.stderr, /search incomplete: .*at most 10,000 jobs.*found 0/s);
  assert.match(out.stderr, new RegExp(`Continue with --after ${through}`));
  assert.doesNotMatch(out.stderr, /no jobs/);
  out = await cli("list", "--search", "zq", "--json");
  assert.deepEqual(JSON.parse(out.stdout), []);
  assert.match(out.stderr, /search incomplete/);
  out = await cli("list", "--search", "zq", "--after", through);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /b-000002 .*zq old/);
  assert.equal(out.stderr, "");

  const api = await call(h, "/api/jobs?search=zq&limit=50");
  assert.equal(api.status, 200);
  assert.deepEqual(api.body.jobs, []);
  assert.deepEqual(api.body.incomplete, { scanned: SHORT_SEARCH_SCAN, through });
  assert.equal(api.body.next, through);
  assert.equal(api.body.total_capped, true);
  const older = await call(h, `/api/jobs?search=zq&limit=50&after=${through}`);
  assert.deepEqual(older.body.jobs.map((j: { id: string }) => j.id), ["b-000002"]);
  assert.equal(older.body.incomplete, null);
  assert.equal(older.body.next, null);
});
