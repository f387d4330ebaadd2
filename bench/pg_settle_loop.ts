/**
 * The store's share of a worker's job on PostgreSQL vs SQLite, without spawning anything: N
 * loops in one process (one store each, as N workers), each claiming one job and then calling
 * settleAndClaim (complete + claim the next) until the queue is empty, on a fresh schema / file
 * of `--jobs` no-op jobs. Checkouts side by side (`--root=label=path,...`, each a tree whose
 * src/ is imported), PostgreSQL and SQLite in a rotated order per round; the ratio PostgreSQL /
 * SQLite (jobs/s) is taken within each round.
 *
 * `deno run -A bench/pg_settle_loop.ts --root=before=/tmp/base,after=. [--loops=2]
 * [--jobs=2000] [--rounds=5]` (server: QUEUECTL_BENCH_PG_URL, else
 * postgres://postgres@127.0.0.1:5432/test).
 */
import postgres from "postgres";
import type { Job } from "../src/core/job.ts";
import type { Store } from "../src/store/store.ts";
import { noopJobs } from "./postgres.ts";
import { fmt, loadAverage, median } from "./util.ts";

const PG_URL = Deno.env.get("QUEUECTL_BENCH_PG_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
const arg = (name: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const roots = (arg("root") ?? "this=.").split(",").map((r) => {
  const at = r.indexOf("=");
  return [r.slice(0, at), new URL(r.slice(at + 1) + "/", `file://${Deno.cwd()}/`).href];
});
const LOOPS = Number(arg("loops") ?? 2);
const JOBS = Number(arg("jobs") ?? 2000);
const ROUNDS = Number(arg("rounds") ?? 5);

interface Tree {
  open(url: string): Promise<Store>;
  complete: (job: Job, r: { now: number; workerId: string; exit_code: number }) => unknown;
}

async function tree(root: string): Promise<Tree> {
  const pg = await import(`${root}src/store/postgres/mod.ts`);
  const lite = await import(`${root}src/store/sqlite/mod.ts`);
  const t = await import(`${root}src/core/transitions.ts`);
  return {
    open: (url) =>
      url.startsWith("postgres") ? pg.openPostgresStore(url) : lite.openSqliteStore(url),
    complete: t.complete,
  };
}

let serial = 0;
async function once(t: Tree, backend: "postgres" | "sqlite", dir: string): Promise<number> {
  const name = `settle_loop_${Date.now().toString(36)}_${serial++}`;
  const url = backend === "sqlite" ? `${dir}/${name}.db` : `${PG_URL}?schema=${name}`;
  const stores: Store[] = [];
  try {
    for (let i = 0; i < LOOPS; i++) stores.push(await t.open(url));
    const now = Date.now();
    await stores[0].insertJobs({ jobs: noopJobs(JOBS, "j"), now });
    const started = performance.now();
    let done = 0;
    await Promise.all(stores.map(async (store, i) => {
      const workerId = `w${i}`;
      const claim = () => ({ workerId, queues: null, now: Date.now(), leaseMs: 60_000, limit: 1 });
      let [job] = await store.claimJobs(claim());
      while (job) {
        const change = t.complete(job, { now: Date.now(), workerId, exit_code: 0 });
        const { applied, claimed } = await store.settleAndClaim({
          change: change as never,
          output: { stdout: "", stderr: "" },
          claim: claim(),
        });
        if (!applied) throw new Error(`${job.id} not settled`);
        done++;
        job = claimed[0];
      }
    }));
    const ms = performance.now() - started;
    if (done !== JOBS) throw new Error(`${backend}: ${done} of ${JOBS} settled`);
    return ms;
  } finally {
    for (const s of stores) await s.close();
    if (backend === "postgres") {
      const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
      await sql.end();
    }
  }
}

const dir = await Deno.makeTempDir({ prefix: "queuectl-settle-loop-" });
try {
  const trees = await Promise.all(
    roots.map(async ([label, root]) => [label, await tree(root)] as const),
  );
  const runs = trees.flatMap(([label, t]) =>
    (["postgres", "sqlite"] as const).map((backend) => ({ label, t, backend }))
  );
  const load = [await loadAverage()];
  const rate = new Map<string, number[]>();
  const ratio = new Map<string, number[]>();
  for (let r = 0; r < ROUNDS; r++) {
    const got = new Map<string, number>();
    for (let i = 0; i < runs.length; i++) {
      const { label, t, backend } = runs[(i + r) % runs.length];
      const perS = JOBS / ((await once(t, backend, dir)) / 1000);
      got.set(`${label} ${backend}`, perS);
      rate.set(`${label} ${backend}`, [...(rate.get(`${label} ${backend}`) ?? []), perS]);
    }
    for (const [label] of trees) {
      const x = got.get(`${label} postgres`)! / got.get(`${label} sqlite`)!;
      ratio.set(label, [...(ratio.get(label) ?? []), x]);
    }
  }
  load.push(await loadAverage());
  const range = (xs: number[], d: number) =>
    `${fmt(median(xs), d)} (${fmt(Math.min(...xs), d)}-${fmt(Math.max(...xs), d)})`;
  console.log(
    `${JOBS} jobs, ${LOOPS} loops, ${ROUNDS} rounds; jobs/s median (min-max). ` +
      `Load average (1 min) before and after: ${load.join(", ")}.\n`,
  );
  console.log("| checkout | PostgreSQL jobs/s | SQLite jobs/s | PostgreSQL / SQLite |");
  console.log("|---|---|---|---|");
  for (const [label] of trees) {
    console.log(
      `| ${label} | ${range(rate.get(`${label} postgres`)!, 0)} | ${
        range(rate.get(`${label} sqlite`)!, 0)
      } | **${range(ratio.get(label)!, 2)}** |`,
    );
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
