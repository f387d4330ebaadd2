/**
 * Quick side-by-side throughput check while iterating (issue 15.1): queuectl
 * `worker start --count C --until-empty` against `xargs -P C` on the same N jobs, R interleaved
 * rounds, medians. The queue is copied from a prepared database before each run (not timed).
 *
 *   deno run -A bench/quick_throughput.ts [--n=2000] [--rounds=3] [--count=2] [--cmd=true]
 *
 * `--cmd='sleep 0.01' --count=4 --n=1000` is the sleep comparison. `--base=<dir>` also runs the
 * queuectl of another checkout (e.g. /work/main) in the same rounds, for an A/B comparison.
 */
import {
  fmt,
  loadAverage,
  MAIN,
  median,
  PERMISSIONS,
  runTimed,
  timeCommand,
  untilEmptyArgs,
} from "./util.ts";

const arg = (name: string, def: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const n = Number(arg("n", "2000"));
const rounds = Number(arg("rounds", "3"));
const count = Number(arg("count", "2"));
const cmd = arg("cmd", "true");
const deno = Deno.execPath();
const base = Deno.args.find((a) => a.startsWith("--base="))?.slice("--base=".length);

async function timed(argv: string[], opts: { env?: Record<string, string>; stdin?: string } = {}) {
  const { out, ms } = await runTimed(
    "sh",
    ["-c", '"$@" >/dev/null || exit; times', "sh", ...argv],
    { ...opts, stdout: "piped" },
  );
  const text = new TextDecoder().decode(out.stdout);
  const m = text.trim().split("\n").at(-1)!.match(/(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/)!;
  const [, um, us, sm, ss] = m.map(Number);
  return { wallMs: ms, cpuMs: (um * 60 + us + sm * 60 + ss) * 1000 };
}

const dir = await Deno.makeTempDir({ prefix: "queuectl-quick-" });
try {
  const template = `${dir}/template.db`;
  await Deno.writeTextFile(
    `${dir}/jobs.jsonl`,
    JSON.stringify({ command: cmd }).concat("\n").repeat(n),
  );
  await timeCommand(deno, ["run", ...PERMISSIONS, MAIN, "enqueue", "--file", `${dir}/jobs.jsonl`], {
    env: { QUEUECTL_DB: template },
  });
  const input = Array.from({ length: n }, (_, i) => i).join("\n");
  await timed(["xargs", "-P", String(count), "-n", "1", "sh", "-c", cmd], { stdin: input });
  const x: { wallMs: number; cpuMs: number }[] = [];
  const q: { wallMs: number; cpuMs: number }[] = [];
  const b: { wallMs: number; cpuMs: number }[] = [];
  const run = async (main: string, r: number) => {
    const db = `${dir}/run-${r}.db`;
    await Deno.copyFile(template, db);
    const t = await timed(
      [
        deno,
        ...untilEmptyArgs(main, count),
      ],
      { env: { QUEUECTL_DB: db, NO_COLOR: "1" } },
    );
    await Deno.remove(db);
    return t;
  };
  const loads: string[] = [await loadAverage()];
  for (let r = 0; r < rounds; r++) {
    x.push(
      await timed(["xargs", "-P", String(count), "-n", "1", "sh", "-c", cmd], { stdin: input }),
    );
    q.push(await run(MAIN, r));
    if (base) b.push(await run(`${base}/src/main.ts`, r));
    loads.push(await loadAverage());
  }
  const ratios = q.map((r, i) => x[i].wallMs / r.wallMs);
  console.log(
    `n=${n} cmd=${JSON.stringify(cmd)} count=${count} rounds=${rounds} load ${loads.join(" ")}\n` +
      `xargs  wall ${fmt(median(x.map((r) => r.wallMs)))} ms  cpu/job ${
        fmt(median(x.map((r) => r.cpuMs)) / n, 3)
      } ms\n` +
      `queue  wall ${fmt(median(q.map((r) => r.wallMs)))} ms  cpu/job ${
        fmt(median(q.map((r) => r.cpuMs)) / n, 3)
      } ms\n` +
      `ratio median ${fmt(median(ratios), 3)} range ${fmt(Math.min(...ratios), 2)}-${
        fmt(Math.max(...ratios), 2)
      } [${ratios.map((r) => fmt(r, 2)).join(" ")}]`,
  );
  if (base) {
    const br = b.map((r, i) => x[i].wallMs / r.wallMs);
    console.log(
      `base   wall ${fmt(median(b.map((r) => r.wallMs)))} ms  cpu/job ${
        fmt(median(b.map((r) => r.cpuMs)) / n, 3)
      } ms\n` +
        `base ratio median ${fmt(median(br), 3)} range ${fmt(Math.min(...br), 2)}-${
          fmt(Math.max(...br), 2)
        } [${br.map((r) => fmt(r, 2)).join(" ")}]`,
    );
  }
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
