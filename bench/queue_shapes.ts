/**
 * Queue shapes that made one call pay for what another queue holds (issue 15.5): this checkout's
 * store beside another checkout's (`--base DIR`, e.g. `git worktree add /tmp/base <commit>`), the
 * same database, interleaved rounds, in process. The database: `--n` due jobs in queue "bulk",
 * 10 jobs in queue "rare" due an hour later, none in queue "quiet".
 *
 * - a worker of an empty queue: `claimJobs` and `nextRunAt` with queues ["quiet"];
 * - a worker of a queue whose jobs are all due later: the same with ["rare"];
 * - an idle claim of any queue while "bulk" is paused (nothing else due): what each poll and
 *   each wake-up of every idle worker pays;
 * - `/metrics`' per-queue read (`queueMetrics`), whose oldest due job of "rare" is looked for.
 *
 * Usage: deno run -A bench/queue_shapes.ts [--base DIR] [--n 200000] [--rounds 5]
 *   [--backend sqlite|postgres|both]
 * PostgreSQL: QUEUECTL_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test), a fresh
 * schema, analysed after the seed (as autovacuum would), dropped after. Prints a Markdown table:
 * ms per call, median of the rounds (each round's figure the median of 5 calls) and range.
 */
import type { Store } from "../src/store/store.ts";
import { loadAverage } from "./util.ts";

const arg = (name: string) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
};
const baseDir = arg("--base");
const n = Number(arg("--n") ?? 200_000);
const rounds = Number(arg("--rounds") ?? 5);
const backendArg = arg("--backend") ?? "both";
const PG_URL = Deno.env.get("QUEUECTL_TEST_PG_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
const HERE = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

type Opener = (target: string) => Promise<Store>;

async function openerOf(root: string, backend: "sqlite" | "postgres"): Promise<Opener> {
  if (backend === "sqlite") {
    const mod = await import(`${root}/src/store/sqlite/mod.ts`);
    return (path) => mod.openSqliteStore(path);
  }
  const mod = await import(`${root}/src/store/postgres/mod.ts`);
  return (schema) => mod.openPostgresStore(PG_URL, { schema });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Median ms of 5 calls of `fn`, after one. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const ts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await fn();
    ts.push(performance.now() - t);
  }
  return median(ts);
}

const SHAPES = [
  "claimJobs, a worker of an empty queue",
  "nextRunAt, a worker of an empty queue",
  "claimJobs, a worker of a queue of 10 jobs due later",
  "nextRunAt, a worker of a queue of 10 jobs due later",
  "claimJobs of any queue, idle, the backlog's queue paused",
  "queueMetrics (/metrics)",
] as const;

async function measure(store: Store): Promise<number[]> {
  const now = Date.now();
  const claim = (queues: string[] | null) => () =>
    store.claimJobs({ workerId: "bench", queues, now, leaseMs: 60_000, limit: 1 });
  const out = [
    await timed(claim(["quiet"])),
    await timed(() => store.nextRunAt({ queues: ["quiet"] })),
    await timed(claim(["rare"])),
    await timed(() => store.nextRunAt({ queues: ["rare"] })),
  ];
  await store.setQueueControl({ name: "bulk", paused: true, now });
  out.push(await timed(claim(null)));
  await store.setQueueControl({ name: "bulk", paused: false, now });
  out.push(await timed(() => store.queueMetrics({ now })));
  return out;
}

async function seed(open: Opener, target: string): Promise<void> {
  const store = await open(target);
  try {
    const now = Date.now();
    const job = (id: string, queue: string, runAt: number) => ({
      id,
      command: "true",
      queue,
      priority: 0,
      max_retries: 3,
      timeout: null,
      run_at: runAt,
    });
    for (let b = 0; b * 10_000 < n; b++) {
      const size = Math.min(10_000, n - b * 10_000);
      await store.insertJobs({
        jobs: Array.from({ length: size }, (_, i) => job(`bulk-${b}-${i}`, "bulk", now - 60_000)),
        now: now - 60_000,
      });
    }
    await store.insertJobs({
      jobs: Array.from({ length: 10 }, (_, i) => job(`rare-${i}`, "rare", now + 3_600_000)),
      now,
    });
  } finally {
    await store.close();
  }
}

async function run(backend: "sqlite" | "postgres"): Promise<string> {
  const roots = baseDir ? [["base", baseDir], ["this", HERE]] : [["this", HERE]];
  const openers = await Promise.all(roots.map(([, root]) => openerOf(root, backend)));
  const dir = await Deno.makeTempDir({ prefix: "queuectl-bench-shapes-" });
  const target = backend === "sqlite" ? `${dir}/q.db` : `bench_shapes_${Date.now().toString(36)}`;
  const { default: postgres } = backend === "postgres"
    ? await import("postgres")
    : { default: null };
  try {
    await seed(openers[openers.length - 1], target);
    if (postgres) {
      const sql = postgres(PG_URL, { onnotice: () => {} });
      await sql.unsafe(`ANALYZE "${target}".jobs`);
      await sql.end();
    }
    const results = roots.map(() => SHAPES.map(() => [] as number[]));
    for (let r = 0; r < rounds; r++) {
      for (const [i, open] of openers.entries()) {
        const store = await open(target);
        try {
          (await measure(store)).forEach((ms, s) => results[i][s].push(ms));
        } finally {
          await store.close();
        }
      }
    }
    const cell = (xs: number[]) =>
      `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)})`;
    return [
      `${backend}: ${n.toLocaleString("en")} jobs due in "bulk", ${rounds} interleaved rounds; ` +
      `ms per call; load average ${await loadAverage()}.`,
      "",
      `| call | ${roots.map(([name]) => name).join(" | ")} |`,
      `|---|${roots.map(() => "---").join("|")}|`,
      ...SHAPES.map((shape, s) =>
        `| ${shape} | ${results.map((res) => cell(res[s])).join(" | ")} |`
      ),
      "",
    ].join("\n");
  } finally {
    if (postgres) {
      const sql = postgres(PG_URL, { onnotice: () => {} });
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${target}" CASCADE`);
      await sql.end();
    }
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const backends = backendArg === "both" ? ["sqlite", "postgres"] as const : [
    backendArg as "sqlite" | "postgres",
  ];
  for (const backend of backends) console.log(await run(backend));
}
