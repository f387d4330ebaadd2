/**
 * A/B of a worker's own CPU per job, in one process (issue 15.1): the Runner (and SQLite store) of
 * this checkout and of another one (--base) take turns on one queue of no-op jobs, `--chunk` jobs
 * per turn, `--rounds` turns each, order alternating; CPU from /proc/self/stat around each turn
 * (the jobs' shells are children, not counted). Taking turns within seconds in one process
 * cancels most of the machine's noise (other programs, CPU frequency), which across separate runs
 * of `worker start` is larger than the differences measured here (bench/worker_cpu.ts).
 *
 *   setsid deno run -A bench/runner_cpu_ab.ts --base=/work/main [--chunk=200] [--rounds=8]
 *
 * setsid: a worker process leads its own session (the supervisor starts it so) and then spawns
 * jobs plainly (docs/architecture.md, "Worker processes"); without it the runners put each job in
 * a session of its own instead (`setsid` program), a different path. Log lines go to stdout (as a
 * worker's do): redirect it; results go to stderr.
 */
import { fmt, loadAverage, MAIN, median, PERMISSIONS, runTimed } from "./util.ts";

const arg = (name: string, def: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const base = arg("base", "");
const chunk = Number(arg("chunk", "200"));
const rounds = Number(arg("rounds", "8"));
if (!base) {
  console.error("usage: setsid deno run -A bench/runner_cpu_ab.ts --base=<checkout> [...]");
  Deno.exit(2);
}

function ownCpuMs(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

interface Variant {
  name: string;
  root: string;
  // deno-lint-ignore no-explicit-any
  mods?: { Runner: any; openSqliteStore: any; stdoutLines: any };
}

const variants: Variant[] = [
  { name: "this", root: new URL("..", import.meta.url).pathname },
  { name: "base", root: `${base.replace(/\/$/, "")}/` },
];
for (const v of variants) {
  v.mods = {
    ...(await import(`${v.root}src/worker/runner.ts`)),
    ...(await import(`${v.root}src/store/sqlite/mod.ts`)),
    ...(await import(`${v.root}src/worker/log_sink.ts`)),
  };
}

const dir = await Deno.makeTempDir({ prefix: "queuectl-runner-ab-" });
try {
  const db = `${dir}/q.db`;
  // Twice what the turns need: a turn settles a few more than `chunk` (it is told to stop at a
  // poll), and a turn that finds the queue empty would wait forever.
  const n = 2 * chunk * (rounds * 2 + 1);
  await Deno.writeTextFile(`${dir}/jobs.jsonl`, '{"command":"true"}\n'.repeat(n));
  await runTimed(Deno.execPath(), [
    "run",
    ...PERMISSIONS,
    MAIN,
    "enqueue",
    "--file",
    `${dir}/jobs.jsonl`,
  ], { env: { QUEUECTL_DB: db } });
  const per = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const loads = [await loadAverage()];
  const turn = async (v: Variant) => {
    const { Runner, openSqliteStore, stdoutLines } = v.mods!;
    const store = await openSqliteStore(db);
    const runner = new Runner({ store, index: 1, supervisorId: "s-ab", log: stdoutLines() });
    const c0 = ownCpuMs();
    const done = runner.run();
    while (runner.jobsDone < chunk) await new Promise((r) => setTimeout(r, 50));
    runner.requestStop("graceful", "turn over");
    await done;
    const c1 = ownCpuMs();
    await store.close();
    return (c1 - c0) * 1000 / runner.jobsDone;
  };
  await turn(variants[0]); // warm-up: module compilation, page cache
  for (let r = 0; r < rounds; r++) {
    for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
      per.get(v.name)!.push(await turn(v));
    }
    loads.push(await loadAverage());
  }
  const a = per.get("this")!;
  const b = per.get("base")!;
  const ratios = a.map((x, i) => x / b[i]);
  const cell = (xs: number[]) =>
    `${fmt(median(xs), 0)} [${fmt(Math.min(...xs), 0)}-${fmt(Math.max(...xs), 0)}]`;
  console.error(
    `runner own CPU per job (µs), ${rounds} turns of ${chunk} jobs each; load average ${
      loads.join(" ")
    }\n` +
      `  this ${cell(a)}\n  base ${cell(b)} (${base})\n` +
      `  this/base per round: median ${fmt(median(ratios), 3)} [${
        ratios.map((x) => fmt(x, 2)).join(" ")
      }]`,
  );
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
