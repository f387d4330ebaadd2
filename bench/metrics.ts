/**
 * Issue 17: what a `/metrics` scrape costs the database (the job gauges are one pass over the
 * jobs; the run totals a small table), and what one retention batch (500 old completed jobs with
 * their runs, one transaction) holds the database for, at 100,000 jobs on SQLite and PostgreSQL.
 * `deno task bench --only=metrics`; alone: `deno run -A bench/metrics.ts [--quick]`.
 */
import { openStore } from "../src/store/mod.ts";
import type { Store } from "../src/store/store.ts";
import { complete } from "../src/core/transitions.ts";
import { RETENTION_BATCH } from "../src/worker/maintenance.ts";
import { fmt, loadAverage, median } from "./util.ts";
import { DatabaseSync } from "node:sqlite";

const PG_URL = Deno.env.get("QUEUECTL_TEST_PG_URL") ?? "postgres://postgres@127.0.0.1:5432/test";

async function measure(kind: string, store: Store, n: number): Promise<string[]> {
  // Half pending in 5 queues, half completed a day ago (each with its run), as retention meets.
  const half = Math.floor(n / 2);
  const jobs = Array.from({ length: n }, (_, i) => ({
    id: `j${String(i).padStart(7, "0")}`,
    command: "true",
    queue: `q${i % 5}`,
    priority: 0,
    max_retries: 0,
    run_at: i < half ? 0 : Date.now(),
  }));
  await store.insertJobs({ jobs, now: 0 });
  for (let done = 0; done < half;) {
    const claimed = await store.claimJobs({
      workerId: "w",
      queues: null,
      now: 1,
      leaseMs: 60_000,
      limit: 500,
    });
    for (const j of claimed) {
      await store.applyChange({ change: complete(j, { now: 2, workerId: "w", exit_code: 0 }) });
    }
    done += claimed.length;
  }
  const scrape: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t = performance.now();
    await store.queueMetrics({ now: Date.now() });
    await store.runTotals();
    scrape.push(performance.now() - t);
  }
  const batches: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t = performance.now();
    const ids = await store.deleteJobs({
      states: ["completed"],
      updatedBefore: 1000,
      limit: RETENTION_BATCH,
    });
    batches.push(performance.now() - t);
    if (ids.length !== RETENTION_BATCH) throw new Error(`batch deleted ${ids.length}`);
  }
  const range = (xs: number[]) => `${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}`;
  return [
    `| ${kind} | ${n.toLocaleString("en")} | ${fmt(median(scrape))} (${range(scrape)}) | ${
      fmt(median(batches))
    } (${range(batches)}) |`,
  ];
}

/** Jobs per second of a claim + settle loop (one process, no command run) on a fresh database. */
async function settleRate(url: string, jobs: number): Promise<number> {
  const store = await openStore(url);
  try {
    await store.insertJobs({
      jobs: Array.from({ length: jobs }, (_, i) => ({
        id: `j${i}`,
        command: "true",
        queue: "q",
        priority: 0,
        max_retries: 0,
        run_at: 0,
      })),
      now: 0,
    });
    const claim = { workerId: "w", queues: null, now: 1, leaseMs: 60_000, limit: 1 };
    const t = performance.now();
    let held = await store.claimJobs(claim);
    while (held.length > 0) {
      const change = complete(held[0], { now: 2, workerId: "w", exit_code: 0 });
      held = (await store.settleAndClaim({ change, output: { stdout: "x", stderr: "" }, claim }))
        .claimed;
    }
    return jobs / ((performance.now() - t) / 1000);
  } finally {
    await store.close();
  }
}

/**
 * What the run_totals triggers cost a worker: the claim + settle loop on a database with them
 * and on one whose triggers were dropped, interleaved, 5 rounds each.
 */
export async function triggerCost(jobs: number): Promise<string[]> {
  const rates: Record<string, number[]> = {};
  const add = (k: string, v: number) => (rates[k] ??= []).push(v);
  const dir = await Deno.makeTempDir({ prefix: "queuectl-bench-trig-" });
  const { default: postgres } = await import("postgres");
  const sep = PG_URL.includes("?") ? "&" : "?";
  try {
    for (let round = 0; round < 5; round++) {
      for (const triggers of [true, false]) {
        const path = `${dir}/r${round}-${triggers}.db`;
        await (await openStore(path)).close();
        if (!triggers) {
          const db = new DatabaseSync(path);
          db.exec("DROP TRIGGER job_runs_totals_insert; DROP TRIGGER job_runs_totals_update;");
          db.close();
        }
        add(`SQLite ${triggers}`, await settleRate(path, jobs));
        const schema = `qbt_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
        const url = `${PG_URL}${sep}schema=${schema}`;
        await (await openStore(url)).close();
        const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
        try {
          if (!triggers) {
            // Migration 16 split it in two (a run inserted finished, and a run that ends).
            await sql.unsafe(
              `DROP TRIGGER job_runs_totals_insert ON "${schema}".job_runs; ` +
                `DROP TRIGGER job_runs_totals_update ON "${schema}".job_runs`,
            );
          }
          add(`PostgreSQL ${triggers}`, await settleRate(url, jobs));
        } finally {
          await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => sql.end());
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const cell = (xs: number[]) =>
    `${fmt(median(xs), 0)} (${fmt(Math.min(...xs), 0)}-${fmt(Math.max(...xs), 0)})`;
  return ["SQLite", "PostgreSQL"].map((b) => {
    const on = rates[`${b} true`];
    const off = rates[`${b} false`];
    return `| ${b} | ${cell(on)} | ${cell(off)} | ${fmt(median(on) / median(off), 2)} |`;
  });
}

export async function benchMetrics(opts: { quick: boolean }): Promise<string> {
  const n = opts.quick ? 10_000 : 100_000;
  const rows: string[] = [];
  const dir = await Deno.makeTempDir({ prefix: "queuectl-bench-metrics-" });
  try {
    const sqlite = await openStore(`${dir}/m.db`);
    try {
      rows.push(...await measure("SQLite", sqlite, n));
    } finally {
      await sqlite.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const schema = `qbm_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const sep = PG_URL.includes("?") ? "&" : "?";
  try {
    const pg = await openStore(`${PG_URL}${sep}schema=${schema}`);
    try {
      rows.push(...await measure("PostgreSQL", pg, n));
    } finally {
      await pg.close();
      const { default: postgres } = await import("postgres");
      const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => sql.end());
    }
  } catch (err) {
    rows.push(`| PostgreSQL | not measured: ${(err as Error).message.split("\n")[0]} | | |`);
  }
  const settleJobs = opts.quick ? 500 : 2000;
  const trig = await triggerCost(settleJobs).catch((err) => [
    `| not measured: ${(err as Error).message.split("\n")[0]} | | | |`,
  ]);
  return [
    "### `/metrics` scrape and retention batch cost (issue 17)",
    "",
    `Load average ${await loadAverage()}. Half the jobs pending in 5 queues, half completed with a`,
    "run. Scrape: `queueMetrics` + `runTotals` (what `/metrics` reads besides the small workers and",
    `config tables), 7 rounds. Retention batch: one \`deleteJobs\` of ${RETENTION_BATCH} old`,
    "completed jobs with their runs (one transaction: what workers may wait behind), 7 batches. Times in",
    "ms: median (range).",
    "",
    "| backend | jobs | scrape | retention batch |",
    "| ------- | ---- | ------ | --------------- |",
    ...rows,
    "",
    `Claim + settle loop of ${settleJobs} jobs in one process (\`settleAndClaim\`, no command run),`,
    "with the run_totals triggers and with them dropped, interleaved, 5 rounds; jobs/s median",
    "(range):",
    "",
    "| backend | with triggers | without | ratio |",
    "| ------- | ------------- | ------- | ----- |",
    ...trig,
    "",
  ].join("\n");
}

if (import.meta.main) console.log(await benchMetrics({ quick: Deno.args.includes("--quick") }));
