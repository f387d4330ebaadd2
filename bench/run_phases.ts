/**
 * Where the wall time of `worker start --count C --until-empty` goes (issue 15.1, the latency-
 * bound row): from the launch to the first job's start (the supervisor's and the workers' start-
 * up), the span of the jobs (first start to last finish: per worker and job, the job's own time
 * plus the spawn, the exit, the settle and the claim of the next), and from the last finish to the
 * exit; beside the same jobs run by `xargs -P C` and by `bench/spawn_ceiling.ts` (a bare Deno
 * spawner), in alternated rounds. Checkouts side by side with `--main=label=path,...` (each
 * path a src/main.ts or a bundle's main.js).
 *
 *   deno run -A bench/run_phases.ts [--n=1000] [--count=4] [--cmd='sleep 0.01'] [--rounds=5]
 *     [--main=source=src/main.ts,bundle=dist/bundle/main.js]
 *
 * Job times are the runs' started_at / finished_at (ms); the launch and exit are this process's
 * clock around the command. -A: node:sqlite reads the queue's file.
 */
import { DatabaseSync } from "node:sqlite";
import { fmt, loadAverage, MAIN, median, PERMISSIONS, ROOT, timeCommand } from "./util.ts";

const arg = (name: string, def: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const n = Number(arg("n", "1000"));
const count = Number(arg("count", "4"));
const cmd = arg("cmd", "sleep 0.01");
const rounds = Number(arg("rounds", "5"));
const mains = arg("main", `source=${MAIN}`).split(",").map((m) => {
  const at = m.indexOf("=");
  return [m.slice(0, at), m.slice(at + 1)] as [string, string];
});
const deno = Deno.execPath();

interface Phases {
  wall: number;
  toFirst: number;
  perJob: number;
  toExit: number;
}

async function queuectl(main: string, dir: string): Promise<Phases> {
  const db = `${dir}/q-${crypto.randomUUID()}.db`;
  const env = { QUEUECTL_DB: db, NO_COLOR: "1" };
  const file = `${dir}/jobs.jsonl`;
  await Deno.writeTextFile(file, (JSON.stringify({ command: cmd }) + "\n").repeat(n));
  const run = (args: string[]) =>
    timeCommand(deno, ["run", ...PERMISSIONS, main, ...args], { env });
  await run(["enqueue", "--file", file]);
  const launch = Date.now();
  const wall = await run(["worker", "start", "--count", String(count), "--until-empty"]);
  const exit = Date.now();
  const sqlite = new DatabaseSync(db, { readOnly: true });
  const { first, last, done, runs } = sqlite.prepare(
    "SELECT min(started_at) AS first, max(finished_at) AS last, " +
      "(SELECT count(*) FROM jobs WHERE state = 'completed') AS done, count(*) AS runs " +
      "FROM job_runs",
  ).get() as { first: number; last: number; done: number; runs: number };
  sqlite.close();
  if (done !== n || runs !== n) throw new Error(`${done} of ${n} jobs completed in ${runs} runs`);
  return {
    wall,
    toFirst: first - launch,
    perJob: (last - first) / (n / count),
    toExit: exit - last,
  };
}

const dir = await Deno.makeTempDir({ prefix: "queuectl-bench-phases-" });
const load = [await loadAverage()];
const xargs: number[] = [];
const ceiling: number[] = [];
const runs = new Map<string, Phases[]>(mains.map(([label]) => [label, []]));
try {
  const lines = Array.from({ length: n }, (_, i) => String(i)).join("\n") + "\n";
  for (let r = 0; r < rounds; r++) {
    xargs.push(
      await timeCommand("xargs", ["-P", String(count), "-n", "1", "sh", "-c", cmd], {
        stdin: lines,
      }),
    );
    ceiling.push(
      await timeCommand(deno, [
        "run",
        "--allow-run",
        `${ROOT}bench/spawn_ceiling.ts`,
        String(n),
        `--parallel=${count}`,
        `--cmd=${cmd}`,
      ]),
    );
    for (const [label, main] of mains) runs.get(label)!.push(await queuectl(main, dir));
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
load.push(await loadAverage());

const range = (xs: number[], d = 0) =>
  `${fmt(median(xs), d)} (${fmt(Math.min(...xs), d)}-${fmt(Math.max(...xs), d)})`;
const perJob = (ms: number) => ms / (n / count);
console.log(
  [
    `${n.toLocaleString("en")} jobs \`${cmd}\`, ${count} at a time, ${rounds} alternated rounds, ` +
    `median (range); load average (1 min) before and after: ${load.join(", ")}.`,
    "",
    "| run | wall ms | launch to first job ms | per job and worker ms | last job to exit ms | " +
    "xargs / this |",
    "|---|---|---|---|---|---|",
    `| \`xargs -P ${count}\` | ${range(xargs)} | | ${range(xargs.map(perJob), 2)} | | 1 |`,
    `| bare Deno spawner (\`bench/spawn_ceiling.ts\`) | ${range(ceiling)} | | ${
      range(ceiling.map(perJob), 2)
    } | | ${range(ceiling.map((c, i) => xargs[i] / c), 2)} |`,
    ...mains.map(([label]) => {
      const p = runs.get(label)!;
      return `| queuectl (${label}) | ${range(p.map((x) => x.wall))} | ${
        range(p.map((x) => x.toFirst))
      } | ${range(p.map((x) => x.perJob), 2)} | ${range(p.map((x) => x.toExit))} | ${
        range(p.map((x, i) => xargs[i] / x.wall), 2)
      } |`;
    }),
  ].join("\n"),
);
