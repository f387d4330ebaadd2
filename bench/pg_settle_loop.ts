/**
 * The store's share of a worker's job on PostgreSQL vs SQLite, without spawning anything: N
 * loops in one process (one store each, as N workers), each claiming one job and then calling
 * settleAndClaim (complete + claim the next) until the queue is empty, on a fresh schema / file
 * of `--jobs` no-op jobs. Checkouts side by side (`--root=label=path,...`, each a tree whose
 * src/ is imported), PostgreSQL and SQLite in a rotated order per round; the ratio PostgreSQL /
 * SQLite (jobs/s) is taken within each round. CPU per job, less sensitive to the machine's load
 * than wall time: this process's own (user + system, /proc/self/stat) and, for PostgreSQL, that of
 * the server backends serving this process's connections (found by their client ports in
 * pg_stat_activity; /proc/<pid>/stat, so the server must run on this machine).
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

/** CPU time (user + system) of a process in ms, from /proc/<pid>/stat (clock ticks of 10 ms). */
async function cpuMs(pid: number | "self"): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** The local TCP ports of this process's sockets (/proc/self/fd inodes matched in /proc/net). */
async function ownPorts(): Promise<number[]> {
  const inodes = new Set<string>();
  for await (const e of Deno.readDir("/proc/self/fd")) {
    const link = await Deno.readLink(`/proc/self/fd/${e.name}`).catch(() => "");
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m) inodes.add(m[1]);
  }
  const ports: number[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await Deno.readTextFile(file).catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && inodes.has(f[9])) ports.push(parseInt(f[1].split(":")[1], 16));
    }
  }
  return ports;
}

/** The pids of the server backends whose clients are this process's sockets. */
async function ownBackends(): Promise<number[]> {
  const ports = await ownPorts();
  const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ pid: number }[]>`
      SELECT pid FROM pg_stat_activity WHERE client_port = ANY(${ports}::int[])
        AND pid <> pg_backend_pid()`;
    return rows.map((r) => r.pid);
  } finally {
    await sql.end();
  }
}

interface Run {
  ms: number;
  /** CPU per job in ms: this process, and the server backends (PostgreSQL only). */
  clientCpu: number;
  serverCpu: number;
}

let serial = 0;
async function once(t: Tree, backend: "postgres" | "sqlite", dir: string): Promise<Run> {
  const name = `settle_loop_${Date.now().toString(36)}_${serial++}`;
  const url = backend === "sqlite" ? `${dir}/${name}.db` : `${PG_URL}?schema=${name}`;
  const stores: Store[] = [];
  try {
    for (let i = 0; i < LOOPS; i++) stores.push(await t.open(url));
    const now = Date.now();
    await stores[0].insertJobs({ jobs: noopJobs(JOBS, "j"), now });
    // Every connection the loops use is open once each store has run a statement.
    const backends = backend === "postgres" ? await ownBackends() : [];
    const serverBefore = await Promise.all(backends.map(cpuMs));
    const clientBefore = await cpuMs("self");
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
    const clientCpu = (await cpuMs("self")) - clientBefore;
    const serverAfter = await Promise.all(backends.map(cpuMs));
    const serverCpu = serverAfter.reduce((a, x, i) => a + x - serverBefore[i], 0);
    if (done !== JOBS) throw new Error(`${backend}: ${done} of ${JOBS} settled`);
    // Connections opened during the loop would be missed: say so rather than under-count.
    if (backend === "postgres") {
      const now = await ownBackends();
      if (now.some((pid) => !backends.includes(pid))) {
        throw new Error("a connection opened during the loop; server CPU would be short");
      }
    }
    return { ms, clientCpu: clientCpu / JOBS, serverCpu: serverCpu / JOBS };
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
  const cpu = new Map<string, number[]>();
  const add = (m: Map<string, number[]>, k: string, x: number) =>
    m.set(k, [...(m.get(k) ?? []), x]);
  for (let r = 0; r < ROUNDS; r++) {
    const got = new Map<string, number>();
    for (let i = 0; i < runs.length; i++) {
      const { label, t, backend } = runs[(i + r) % runs.length];
      const run = await once(t, backend, dir);
      const perS = JOBS / (run.ms / 1000);
      got.set(`${label} ${backend}`, perS);
      add(rate, `${label} ${backend}`, perS);
      add(cpu, `${label} ${backend} client`, run.clientCpu);
      if (backend === "postgres") add(cpu, `${label} ${backend} server`, run.serverCpu);
    }
    for (const [label] of trees) {
      const x = got.get(`${label} postgres`)! / got.get(`${label} sqlite`)!;
      add(ratio, label, x);
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
  console.log(
    "\nCPU per job in ms, median (min-max): this process (the store's client side) and the " +
      "PostgreSQL server backends serving it.\n",
  );
  console.log("| checkout | PostgreSQL server | PostgreSQL client | SQLite (in process) |");
  console.log("|---|---|---|---|");
  for (const [label] of trees) {
    console.log(
      `| ${label} | ${range(cpu.get(`${label} postgres server`)!, 3)} | ${
        range(cpu.get(`${label} postgres client`)!, 3)
      } | ${range(cpu.get(`${label} sqlite client`)!, 3)} |`,
    );
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
