/**
 * Flow control (issue 16): is the claim as fast with no dependencies and no queue controls as
 * before them? One in-process worker loop (claim one job, complete it, as `settleAndClaim` does)
 * over N no-op jobs, side by side in one run, interleaved rounds:
 *
 * - before: the store of a checkout of the commit before issue 16 (`--baseline DIR`, e.g.
 *   `git worktree add /tmp/queuectl-before c5269ab`), loaded with import();
 * - now, no dependencies: this checkout's store, the same jobs;
 * - now, a chain: every job runs after the one before it (each claim follows the completion that
 *   freed it);
 * - now, a limited queue: a limit (1000) on another queue, which has no job (SQLite: the queues'
 *   room counted in the claim's transaction; PostgreSQL: the one-statement claim, which takes no
 *   job while one of a limited queue is at the head of the claim order; it took the
 *   flow-controlled transaction for every claim before 2026-12-01);
 * - now, the jobs' own queue limited (1000): each settle also frees a slot of a limited queue,
 *   which wakes idle workers unless the same transaction's claim fills it again (SQLite).
 *
 * With `--baseline-all` (a baseline that has flow control), every variant also runs on the
 * baseline's store, each beside its own: rows "before, <variant>".
 *
 * Usage: deno run -A bench/flow.ts [--baseline DIR [--baseline-all]] [--variants none,chain,limited,own]
 *   [--jobs N] [--rounds R] [--backend sqlite|postgres|both]
 * Prints a Markdown table (medians and ranges of µs per job, ratio to before) and the load average.
 * PostgreSQL: QUEUECTL_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test), one fresh
 * schema per run, dropped after.
 */
import postgres from "postgres";
import type { Store } from "../src/store/store.ts";
import { openStore } from "../src/store/mod.ts";
import { complete } from "../src/core/transitions.ts";
import type { Job, JobToInsert } from "../src/core/job.ts";
import { fmt, loadAverage, median } from "./util.ts";

const arg = (name: string) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
};
const baselineDir = arg("--baseline");
const rounds = Number(arg("--rounds") ?? 3);
const backendArg = arg("--backend") ?? "both";
const PG_URL = Deno.env.get("QUEUECTL_TEST_PG_URL") ?? "postgres://postgres@127.0.0.1:5432/test";

type Open = (url: string) => Promise<Store>;
type Variant = "before" | "none" | "chain" | "limited" | "own";

const LABELS: Record<Variant, string> = {
  before: "before issue 16 (baseline checkout), no dependencies",
  none: "now, no dependencies, no queue controls",
  chain: "now, a chain (each job after the one before)",
  limited: "now, no dependencies, a limit on another queue (none of its jobs due)",
  own: "now, no dependencies, a limit on the jobs' own queue (each settle frees a slot)",
};

function jobsFor(variant: Variant, n: number): JobToInsert[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `j${String(i).padStart(7, "0")}`,
    command: "true",
    queue: "default",
    priority: 0,
    max_retries: 0,
    timeout: null,
    run_at: 0,
    ...(variant === "chain" && i > 0
      ? { depends_on: JSON.stringify([`j${String(i - 1).padStart(7, "0")}`]) }
      : {}),
  }));
}

let serial = 0;
const dir = await Deno.makeTempDir({ prefix: "queuectl-bench-flow-" });

function target(backend: "sqlite" | "postgres"): { url: string; drop: () => Promise<void> } {
  if (backend === "sqlite") {
    const path = `${dir}/b${serial++}.db`;
    return {
      url: path,
      drop: async () => {
        for (const s of ["", "-wal", "-shm", "-wake", "-kill", "-lock"]) {
          await Deno.remove(path + s).catch(() => {});
        }
      },
    };
  }
  const schema = `bench_flow_${Date.now()}_${serial++}`;
  return {
    url: `${PG_URL}${PG_URL.includes("?") ? "&" : "?"}schema=${schema}`,
    drop: async () => {
      const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
      try {
        await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await sql.end();
      }
    },
  };
}

/** µs per job of the claim+complete loop over `n` jobs. */
async function once(
  open: Open,
  backend: "sqlite" | "postgres",
  variant: Variant,
  n: number,
): Promise<number> {
  const t = target(backend);
  const store = await open(t.url);
  try {
    const jobs = jobsFor(variant, n);
    await store.insertJobs({ jobs, now: 1 });
    if (variant === "limited" || variant === "own") {
      const name = variant === "own" ? "default" : "other";
      await store.setQueueControl({ name, maxRunning: 1000, now: 1 });
    }
    const claim = { workerId: "bench", queues: null, leaseMs: 60_000, limit: 1 };
    let done = 0;
    const start = performance.now();
    let [job]: Job[] = await store.claimJobs({ ...claim, now: Date.now() });
    while (job) {
      const now = Date.now();
      const change = complete(job, { now, workerId: "bench", exit_code: 0 });
      const r = await store.settleAndClaim({
        change,
        output: { stdout: "", stderr: "" },
        claim: { ...claim, now },
      });
      if (!r.applied) throw new Error(`settle of ${job.id} refused`);
      done++;
      [job] = r.claimed;
    }
    const us = (performance.now() - start) * 1000 / n;
    if (done !== n) throw new Error(`${variant}: ${done} of ${n} jobs done`);
    return us;
  } finally {
    await store.close();
    await t.drop();
  }
}

const before: Open | null = baselineDir
  ? (await import(`file://${Deno.realPathSync(baselineDir)}/src/store/mod.ts`)).openStore
  : null;

const baselineAll = Deno.args.includes("--baseline-all");
const backends: ("sqlite" | "postgres")[] = backendArg === "both"
  ? ["sqlite", "postgres"]
  : [backendArg as "sqlite" | "postgres"];
/** A row: which store, which jobs and controls. */
type Row = { label: string; open: Open; variant: Variant };
const nowVariants: Variant[] = (arg("--variants")?.split(",") ??
  ["none", "chain", "limited", "own"]) as Variant[];
const rows: Row[] = before && baselineAll
  ? nowVariants.flatMap((v) => [
    { label: LABELS[v].replace(/^now, /, "before, "), open: before, variant: v },
    { label: LABELS[v], open: openStore, variant: v },
  ])
  : [
    ...(before ? [{ label: LABELS.before, open: before, variant: "before" as Variant }] : []),
    ...nowVariants.map((v) => ({ label: LABELS[v], open: openStore, variant: v })),
  ];
const loadBefore = await loadAverage();
const lines: string[] = [];
for (const backend of backends) {
  const n = Number(arg("--jobs") ?? (backend === "sqlite" ? 3000 : 600));
  const times = new Map<Row, number[]>(rows.map((r) => [r, []]));
  // A warm-up of each, then interleaved rounds so that machine noise hits all alike.
  for (const row of rows) await once(row.open, backend, row.variant, 200);
  // Every other round in reverse order: a run right after another reads a few % slower (an A/A
  // run of one checkout against itself showed 4% in fixed order).
  for (let r = 0; r < rounds; r++) {
    for (const row of r % 2 ? [...rows].reverse() : rows) {
      times.get(row)!.push(await once(row.open, backend, row.variant, n));
    }
  }
  const base = median(times.get(rows[0])!);
  lines.push(
    "",
    `${backend}: ${n.toLocaleString("en-US")} jobs claimed and completed one at a time ` +
      `(settleAndClaim), ${rounds} interleaved rounds.`,
    "",
    "| claim path | µs per job, median | range | ratio |",
    "|---|---:|---:|---:|",
    ...rows.map((row) => {
      const xs = times.get(row)!;
      return `| ${row.label} | ${fmt(median(xs))} | ${fmt(Math.min(...xs))}-${
        fmt(Math.max(...xs))
      } | ${fmt(median(xs) / base, 2)} |`;
    }),
  );
}
const loadAfter = await loadAverage();
console.log(
  `### Flow control: the claim with and without dependencies and queue limits (issue 16)\n\n` +
    `Measured ${new Date().toISOString().slice(0, 16)} UTC with \`bench/flow.ts${
      Deno.args.length ? " " + Deno.args.join(" ") : ""
    }\`, load average ${loadBefore} before, ${loadAfter} after.` + lines.join("\n"),
);
await Deno.remove(dir, { recursive: true }).catch(() => {});
