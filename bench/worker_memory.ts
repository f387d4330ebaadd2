/**
 * Worker memory (issue 15.7): the RSS of each worker process of `worker start --count 2` during a
 * busy run of `seconds` (default 300), sampled every `every` seconds (`ps -o rss=`). The queue
 * holds more jobs than the run can take (`echo` of a line, so output is captured and stored),
 * enqueued first with `enqueue --file`; the run is ended by SIGTERM. Prints the curve (per sample:
 * seconds since start, jobs completed, each worker's RSS) and the largest RSS per worker.
 *
 * `deno run <permissions> bench/worker_memory.ts [--seconds=N] [--every=N] [--jobs=N]`; `deno task
 * bench --only=workers` runs it for 300 s.
 */
import { openSqliteStore } from "../src/store/sqlite/mod.ts";
import type { Store } from "../src/store/store.ts";
import { fmt, loadAverage, MAIN, PERMISSIONS, timeCommand } from "./util.ts";

const deno = Deno.execPath();
const cli = (args: string[]) => ["run", ...PERMISSIONS, MAIN, ...args];

async function rssKiB(pids: number[]): Promise<number[]> {
  if (pids.length === 0) return [];
  const out = await new Deno.Command("ps", {
    args: ["-o", "pid=,rss=", "-p", pids.join(",")],
    stdout: "piped",
    stderr: "null",
  }).output();
  const byPid = new Map(
    new TextDecoder().decode(out.stdout).trim().split("\n").filter((l) => l.trim())
      .map((l) => l.trim().split(/\s+/).map(Number) as [number, number]),
  );
  return pids.map((p) => byPid.get(p) ?? 0);
}

async function workerPids(store: Store): Promise<number[]> {
  return (await store.listWorkers()).filter((w) => w.supervisor_id !== null).map((w) => w.pid)
    .sort((a, b) => a - b);
}

export interface MemoryCurve {
  samples: { s: number; done: number; rssMiB: number[] }[];
  peakMiB: number[];
  jobs: number;
  load: string[];
}

export async function workerMemory(
  dir: string,
  opts: { seconds: number; every: number; jobs: number },
): Promise<MemoryCurve> {
  const db = `${dir}/memory.db`;
  const file = `${dir}/memory.jsonl`;
  await Deno.writeTextFile(
    file,
    Array.from({ length: opts.jobs }, (_, i) => `{"command":"echo job ${i} of the memory run"}`)
      .join("\n") + "\n",
  );
  const env = { QUEUECTL_DB: db, NO_COLOR: "1" };
  await timeCommand(deno, cli(["enqueue", "--file", file]), { env });
  const load = [await loadAverage()];
  const store = await openSqliteStore(db);
  const supervisor = new Deno.Command(deno, {
    args: cli(["worker", "start", "--count", "2"]),
    env,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const samples: MemoryCurve["samples"] = [];
  const peak = new Map<number, number>();
  try {
    const t0 = performance.now();
    let pids: number[] = [];
    while (performance.now() - t0 < opts.seconds * 1000) {
      await new Promise((r) => setTimeout(r, opts.every * 1000));
      pids = await workerPids(store);
      const rss = await rssKiB(pids);
      const { counts } = await store.stats({ now: Date.now() });
      pids.forEach((p, i) => rss[i] && peak.set(p, Math.max(peak.get(p) ?? 0, rss[i])));
      samples.push({
        s: Math.round((performance.now() - t0) / 1000),
        done: counts.completed,
        rssMiB: rss.map((k) => k / 1024),
      });
      if (counts.pending === 0) throw new Error("memory run: the queue ran dry; give more --jobs");
    }
  } finally {
    supervisor.kill("SIGTERM");
    await supervisor.status;
    await store.close();
  }
  load.push(await loadAverage());
  return { samples, peakMiB: [...peak.values()].map((k) => k / 1024), jobs: opts.jobs, load };
}

export function memoryTable(c: MemoryCurve, seconds: number): string {
  return [
    `### Worker memory during a busy run (issue 15.7)`,
    "",
    `\`worker start --count 2\` on SQLite for ${seconds} s with a queue of ${
      c.jobs.toLocaleString("en")
    } \`echo\` jobs (never empty), RSS of each worker (\`ps -o rss=\`). Load average (1 min) ` +
    `at the start and end: ${c.load.join(", ")}. Target: <= 80 MiB. Largest RSS per worker: ` +
    `**${c.peakMiB.map((m) => fmt(m)).join(" / ")} MiB**.`,
    "",
    "| s | jobs completed | RSS MiB per worker |",
    "|---:|---:|---|",
    ...c.samples.map((x) =>
      `| ${x.s} | ${x.done.toLocaleString("en")} | ${x.rssMiB.map((m) => fmt(m)).join(" / ")} |`
    ),
    "",
  ].join("\n");
}

if (import.meta.main) {
  const arg = (name: string, d: number) =>
    Number(Deno.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? d);
  const seconds = arg("seconds", 300);
  const dir = await Deno.makeTempDir({ prefix: "queuectl-bench-mem-" });
  try {
    const curve = await workerMemory(dir, {
      seconds,
      every: arg("every", seconds >= 120 ? 15 : 3),
      jobs: arg("jobs", seconds * 1500),
    });
    console.log(memoryTable(curve, seconds));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
