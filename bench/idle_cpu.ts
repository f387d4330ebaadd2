/**
 * What idle workers cost beside jobs they cannot claim (docs/architecture.md "Wake-ups"): CPU
 * seconds per window of `worker start --count 2`'s workers, and on PostgreSQL of the server's
 * backends that serve them, while every due job waits in a queue that is closed:
 *
 * - paused: N due jobs in a paused queue, nothing else;
 * - full: a queue limited to 1 running job, that job running (`sleep 600`), N more due.
 *
 * An idle worker whose wait ended on those jobs claimed every 10 ms (the idle gap) for as long as
 * the queue stayed closed. Each shape runs for this checkout and, with --base, for another one, in
 * alternating order; each run has a fresh database (SQLite file, or a PostgreSQL schema whose
 * connections carry an application_name of their own, so that the server's backends are told
 * apart from any other client's).
 *
 *   deno run -A bench/idle_cpu.ts [--base=DIR] [--backend=sqlite|postgres|both] [--n=2000]
 *     [--rounds=2] [--window=10]
 *
 * Readings: /proc/<pid>/stat utime + stime of each worker process (found by its command line,
 * which names the run's database) and each backend (pg_stat_activity), at the window's start and
 * end; a process present at both counts. -A: Deno lets only --allow-all read /proc.
 */
import postgres from "postgres";
import { benchBackends, benchCheckouts, fmt, loadAverage, median, PERMISSIONS } from "./util.ts";

const arg = (name: string, def: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const n = Number(arg("n", "2000"));
const rounds = Number(arg("rounds", "2"));
const windowS = Number(arg("window", "10"));
const base = arg("base", "");
const backendArg = arg("backend", "both");
const PG_URL = Deno.env.get("QUEUECTL_TEST_PG_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
const TICK_S = 0.01; // CLK_TCK 100 on Linux

type Shape = "paused" | "full";
type Backend = "sqlite" | "postgres";

const dir = await Deno.makeTempDir({ prefix: "queuectl-bench-idle-" });
const jobsFile = `${dir}/jobs.jsonl`;
let serial = 0;

/** utime + stime of a process in ticks, or null when it is gone. */
function ticks(pid: number): number | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]); // fields 14 and 15 of stat(5)
  } catch {
    return null;
  }
}

function snapshot(pids: number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const pid of pids) {
    const t = ticks(pid);
    if (t !== null) m.set(pid, t);
  }
  return m;
}

function spent(a: Map<number, number>, b: Map<number, number>): number {
  let sum = 0;
  for (const [pid, t] of a) if (b.has(pid)) sum += b.get(pid)! - t;
  return sum * TICK_S;
}

/** Worker processes whose command line holds `marker` (the run's database). */
function workersOf(marker: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0");
      if (cmd.includes("run") && cmd.includes("worker") && cmd.some((a) => a.includes(marker))) {
        if (cmd[cmd.indexOf("worker") + 1] === "run") pids.push(Number(e.name));
      }
    } catch {
      // gone
    }
  }
  return pids;
}

async function cli(main: string, db: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, main, ...args],
    env: { QUEUECTL_DB: db },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

async function waitUntil(what: string, f: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** [workers' CPU s, server's CPU s] over one window. */
async function once(checkout: string, backend: Backend, shape: Shape): Promise<[number, number]> {
  const main = `${checkout}/src/main.ts`;
  const tag = `idlebench_${Date.now()}_${serial++}`;
  const db = backend === "sqlite"
    ? `${dir}/${tag}.db`
    : `${PG_URL}${PG_URL.includes("?") ? "&" : "?"}schema=${tag}&application_name=${tag}`;
  const queue = shape === "paused" ? "held" : "lim";
  if (shape === "paused") await cli(main, db, ["queue", "pause", queue]);
  else {
    await cli(main, db, ["queue", "limit", queue, "1"]);
    await cli(main, db, ["enqueue", JSON.stringify({ id: "long", command: "sleep 600", queue })]);
  }
  await Deno.writeTextFile(
    jobsFile,
    Array.from({ length: n }, (_, i) => JSON.stringify({ id: `j${i}`, command: "true", queue }))
      .join("\n") + "\n",
  );
  await cli(main, db, ["enqueue", "--file", jobsFile]);
  const supervisor = new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, main, "worker", "start", "--count", "2"],
    env: { QUEUECTL_DB: db },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const sql = backend === "postgres" ? postgres(PG_URL, { max: 1, onnotice: () => {} }) : null;
  try {
    await waitUntil("two workers", () => Promise.resolve(workersOf(tag).length === 2));
    if (shape === "full") {
      await waitUntil("the long job to run", async () => {
        const job = JSON.parse(await cli(main, db, ["show", "long", "--json"]));
        return job.state === "processing";
      });
    }
    // Past start-up (connections, migrations checked, first claims).
    await new Promise((r) => setTimeout(r, 2000));
    const backends = async () =>
      sql
        ? (await sql`SELECT pid FROM pg_stat_activity WHERE application_name = ${tag}`).map((r) =>
          Number(r.pid)
        )
        : [];
    const workers = workersOf(tag);
    const server = await backends();
    const w0 = snapshot(workers);
    const s0 = snapshot(server);
    await new Promise((r) => setTimeout(r, windowS * 1000));
    return [spent(w0, snapshot(workers)), spent(s0, snapshot(server))];
  } finally {
    // The long job is finished before the workers stop: kill it first (`queuectl kill`).
    if (shape === "full") await cli(main, db, ["kill", "--signal", "KILL", "long"]).catch(() => "");
    supervisor.kill("SIGTERM");
    await supervisor.status;
    if (sql) {
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${tag}" CASCADE`);
      await sql.end();
    }
  }
}

const checkouts = benchCheckouts(base);
const backends: Backend[] = benchBackends(backendArg);
const loadBefore = await loadAverage();
const rows: string[] = [];
for (const backend of backends) {
  for (const shape of ["paused", "full"] as Shape[]) {
    const results = new Map<string, [number, number][]>(checkouts.map(([l]) => [l, []]));
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? checkouts : [...checkouts].reverse();
      for (const [label, path] of order) results.get(label)!.push(await once(path, backend, shape));
    }
    for (const [label] of checkouts) {
      const xs = results.get(label)!;
      const w = xs.map((x) => x[0]);
      const s = xs.map((x) => x[1]);
      const range = (v: number[]) => `${fmt(Math.min(...v), 2)}-${fmt(Math.max(...v), 2)}`;
      rows.push(
        `| ${backend} | ${shape} | ${label} | ${fmt(median(w), 2)} (${range(w)}) | ${
          backend === "postgres" ? `${fmt(median(s), 2)} (${range(s)})` : "-"
        } |`,
      );
    }
  }
}
const loadAfter = await loadAverage();
console.log(
  `### Idle workers beside closed queues\n\n` +
    `Measured ${new Date().toISOString().slice(0, 16)} UTC with \`bench/idle_cpu.ts${
      Deno.args.length ? " " + Deno.args.join(" ") : ""
    }\`, load average ${loadBefore} before, ${loadAfter} after. CPU seconds per ${windowS} s ` +
    `of \`worker start --count 2\`, ${n.toLocaleString("en-US")} due jobs in the closed queue, ` +
    `medians of ${rounds} rounds (range).\n\n` +
    `| backend | queue | checkout | workers' CPU s | server's CPU s |\n|---|---|---|---:|---:|\n` +
    rows.join("\n"),
);
await Deno.remove(dir, { recursive: true }).catch(() => {});
