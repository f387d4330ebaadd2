/**
 * queuectl's own CPU per job (issue 15.1), by process: the supervisor and its workers, NOT their
 * children (the jobs' shells, `ps` sweeps). Process creation on a loaded machine can be so slow
 * that end-to-end throughput ratios only measure the spawn; the CPU the queue's own processes
 * spend per job does not depend on it.
 *
 *   deno run -A bench/worker_cpu.ts [--n=2000] [--rounds=5] [--count=2] [--cmd=true]
 *     [--base=/work/main]
 *
 * Each round runs `worker start --count C --until-empty` on a copy of a prepared queue of N jobs
 * and on an empty one (the cost of starting and stopping), for this checkout and, with --base, for
 * another one, in alternating order. While it runs, /proc/<pid>/stat of the supervisor and of each
 * worker is read every few ms (utime + stime: the process's own threads only; cutime + cstime: its
 * reaped children); a process's last reading before it exits counts. The whole tree's CPU comes
 * from the shell's `times` around the supervisor (exact). Per job = (run with N jobs - run with
 * none) / N, so start-up is not spread over the jobs. -A: Deno lets only --allow-all read /proc.
 */
import { fmt, loadAverage, MAIN, median, PERMISSIONS, runTimed, untilEmptyArgs } from "./util.ts";

const arg = (name: string, def: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const n = Number(arg("n", "2000"));
const rounds = Number(arg("rounds", "5"));
const count = Number(arg("count", "2"));
const cmd = arg("cmd", "true");
const base = arg("base", "");
const POLL_MS = 3;
const TICK_MS = 10; // CLK_TCK 100 on Linux

interface ProcCpu {
  own: number;
  children: number;
}

function readStat(pid: number): ProcCpu | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // f[0] is field 3 (state): utime 14, stime 15, cutime 16, cstime 17.
    return {
      own: (Number(f[11]) + Number(f[12])) * TICK_MS,
      children: (Number(f[13]) + Number(f[14])) * TICK_MS,
    };
  } catch {
    return null;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/)
      .filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

interface Sample {
  wallMs: number;
  /** Whole tree (supervisor, workers, jobs), from `times`. */
  treeMs: number;
  supervisorMs: number;
  workersMs: number;
  /** Jobs and everything else the workers waited for (ps sweeps). */
  workerChildrenMs: number;
}

async function runOnce(main: string, db: string): Promise<Sample> {
  const started = performance.now();
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      '"$@" >/dev/null 2>&1 || exit; times',
      "sh",
      Deno.execPath(),
      ...untilEmptyArgs(main, count),
    ],
    env: { QUEUECTL_DB: db, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let supervisor = 0;
  const last = new Map<number, ProcCpu>();
  let done = false;
  const output = child.output().finally(() => (done = true));
  while (!done) {
    if (supervisor === 0) supervisor = childrenOf(child.pid)[0] ?? 0;
    if (supervisor !== 0) {
      const s = readStat(supervisor);
      if (s) last.set(supervisor, s);
      for (const w of childrenOf(supervisor)) {
        const ws = readStat(w);
        if (ws) last.set(w, ws);
      }
    }
    await new Promise((go) => setTimeout(go, POLL_MS));
  }
  const out = await output;
  if (!out.success) throw new Error(`worker start failed (${main})`);
  const text = new TextDecoder().decode(out.stdout);
  const m = text.trim().split("\n").at(-1)!.match(/(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/)!;
  const [, um, us, sm, ss] = m.map(Number);
  const workers = [...last.entries()].filter(([pid]) => pid !== supervisor).map(([, c]) => c);
  return {
    wallMs: performance.now() - started,
    treeMs: (um * 60 + us + sm * 60 + ss) * 1000,
    supervisorMs: last.get(supervisor)?.own ?? NaN,
    workersMs: workers.reduce((a, c) => a + c.own, 0),
    workerChildrenMs: workers.reduce((a, c) => a + c.children, 0),
  };
}

const dir = await Deno.makeTempDir({ prefix: "queuectl-worker-cpu-" });
try {
  const full = `${dir}/full.db`;
  const empty = `${dir}/empty.db`;
  await Deno.writeTextFile(
    `${dir}/jobs.jsonl`,
    JSON.stringify({ command: cmd }).concat("\n").repeat(n),
  );
  const cli = (db: string, args: string[]) =>
    runTimed(Deno.execPath(), ["run", ...PERMISSIONS, MAIN, ...args], { env: { QUEUECTL_DB: db } });
  await cli(full, ["enqueue", "--file", `${dir}/jobs.jsonl`]);
  await cli(empty, ["status"]);
  const variants = [{ name: "this", main: MAIN }];
  if (base) variants.push({ name: "base", main: `${base.replace(/\/$/, "")}/src/main.ts` });
  const per = new Map<string, { full: Sample; empty: Sample }[]>(variants.map((v) => [v.name, []]));
  const loads = [await loadAverage()];
  const run = async (main: string, template: string, r: number) => {
    const db = `${dir}/run-${r}.db`;
    await Deno.copyFile(template, db);
    try {
      return await runOnce(main, db);
    } finally {
      for (const suffix of ["", "-wal", "-shm", "-wake", "-kill", "-lock"]) {
        await Deno.remove(db + suffix).catch(() => {});
      }
    }
  };
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) {
      const f = await run(v.main, full, r);
      const e = await run(v.main, empty, r);
      per.get(v.name)!.push({ full: f, empty: e });
    }
    loads.push(await loadAverage());
    console.error(`round ${r + 1}/${rounds} done, load ${loads.at(-1)}`);
  }
  console.log(
    `n=${n} cmd=${JSON.stringify(cmd)} count=${count} rounds=${rounds}; load average ${
      loads.join(" ")
    }`,
  );
  console.log(
    "per job, µs: (CPU with N jobs - CPU with none) / N; median [min-max] of the rounds",
  );
  const cell = (xs: number[]) =>
    `${fmt(median(xs), 0)} [${fmt(Math.min(...xs), 0)}-${fmt(Math.max(...xs), 0)}]`;
  const cols: [string, (s: Sample) => number][] = [
    ["supervisor own", (s) => s.supervisorMs],
    ["workers own", (s) => s.workersMs],
    ["queuectl own", (s) => s.supervisorMs + s.workersMs],
    ["workers' children", (s) => s.workerChildrenMs],
    ["whole tree", (s) => s.treeMs],
  ];
  for (const v of variants) {
    const rs = per.get(v.name)!;
    console.log(`${v.name} (${v.main}):`);
    for (const [label, get] of cols) {
      const perJob = rs.map((x) => (get(x.full) - get(x.empty)) * 1000 / n);
      const startup = rs.map((x) => get(x.empty));
      console.log(
        `  ${label.padEnd(18)} ${cell(perJob).padEnd(22)} µs/job   (no jobs: ${
          fmt(median(startup), 0)
        } ms)`,
      );
    }
    console.log(`  wall (N jobs)      ${cell(rs.map((x) => x.full.wallMs))} ms`);
  }
  if (variants.length === 2) {
    const own = (name: string) =>
      per.get(name)!.map((x) =>
        (x.full.supervisorMs + x.full.workersMs - x.empty.supervisorMs - x.empty.workersMs) *
        1000 / n
      );
    const a = own("this");
    const b = own("base");
    const ratios = a.map((x, i) => x / b[i]);
    console.log(
      `queuectl own CPU/job this/base per round: median ${fmt(median(ratios), 3)} [${
        ratios.map((x) => fmt(x, 2)).join(" ")
      }]`,
    );
  }
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
