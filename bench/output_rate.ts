/**
 * A job that prints a lot, fast (docs/architecture.md "Live output"): how long the job takes under
 * a worker, and the CPU of queuectl's processes (supervisor and worker, the job included), against
 * the same command with its output piped to `cat > /dev/null` (the job alone). Live output was
 * written to the store every 64 KiB: on SQLite the worker's synchronous writes kept it from
 * reading the job's pipes, so the job waited for them.
 *
 *   deno run -A bench/output_rate.ts [--base=DIR] [--backend=sqlite|postgres|both]
 *     [--bytes=100000000] [--rounds=3]
 *
 * Each round runs every checkout once (alternating order), each in a fresh database: one job
 * `head -c BYTES /dev/zero`, then `worker start --count 1 --until-empty` under /usr/bin/time.
 * The job's time is its run's duration_ms (`show --json`).
 */
import postgres from "postgres";
import { benchBackends, benchCheckouts, fmt, loadAverage, median, PERMISSIONS } from "./util.ts";

const arg = (name: string, def: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const bytes = Number(arg("bytes", "100000000"));
const rounds = Number(arg("rounds", "3"));
const base = arg("base", "");
const backendArg = arg("backend", "both");
const PG_URL = Deno.env.get("QUEUECTL_TEST_PG_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
type Backend = "sqlite" | "postgres";

const dir = await Deno.makeTempDir({ prefix: "queuectl-bench-output-" });
const command = `head -c ${bytes} /dev/zero`;
let serial = 0;

async function run(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(args[0], {
    args: args.slice(1),
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  if (!out.success) throw new Error(`${args.join(" ")}: ${text(out.stderr)}`);
  return { stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** [job ms, wall ms, CPU s of the supervisor, its worker and the job] */
async function once(checkout: string, backend: Backend): Promise<[number, number, number]> {
  const main = `${checkout}/src/main.ts`;
  const tag = `outbench_${Date.now()}_${serial++}`;
  const db = backend === "sqlite"
    ? `${dir}/${tag}.db`
    : `${PG_URL}${PG_URL.includes("?") ? "&" : "?"}schema=${tag}`;
  const env = { QUEUECTL_DB: db, NO_COLOR: "1" };
  const q = ["deno", "run", ...PERMISSIONS, main];
  try {
    await run([...q, "enqueue", JSON.stringify({ id: "big", command })], env);
    const started = performance.now();
    const timed = await run(
      [
        "/usr/bin/time",
        "-f",
        "cpu %U %S",
        ...q,
        "worker",
        "start",
        "--count",
        "1",
        "--until-empty",
      ],
      env,
    );
    const wall = performance.now() - started;
    const [, user, sys] = /cpu ([\d.]+) ([\d.]+)/.exec(timed.stderr)!;
    const job = JSON.parse((await run([...q, "show", "big", "--json"], env)).stdout);
    if (job.state !== "completed") throw new Error(`the job ended ${job.state}`);
    return [job.runs.at(-1).duration_ms, wall, Number(user) + Number(sys)];
  } finally {
    if (backend === "postgres") {
      const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${tag}" CASCADE`);
      await sql.end();
    }
  }
}

/** The job alone: the same command, its output piped to cat. */
async function alone(): Promise<number> {
  const started = performance.now();
  await run(["sh", "-c", `${command} | cat > /dev/null`]);
  return performance.now() - started;
}

const checkouts = benchCheckouts(base);
const backends: Backend[] = benchBackends(backendArg);
const loadBefore = await loadAverage();
const range = (v: number[], d: number) => `${fmt(Math.min(...v), d)}-${fmt(Math.max(...v), d)}`;
const rows: string[] = [];
const aloneMs: number[] = [];
for (const backend of backends) {
  const results = new Map<string, [number, number, number][]>(checkouts.map(([l]) => [l, []]));
  for (let r = 0; r < rounds; r++) {
    aloneMs.push(await alone());
    const order = r % 2 === 0 ? checkouts : [...checkouts].reverse();
    for (const [label, path] of order) results.get(label)!.push(await once(path, backend));
  }
  for (const [label] of checkouts) {
    const xs = results.get(label)!;
    const col = (i: number, d: number) => {
      const v = xs.map((x) => x[i]);
      return `${fmt(median(v), d)} (${range(v, d)})`;
    };
    rows.push(`| ${backend} | ${label} | ${col(0, 0)} | ${col(1, 0)} | ${col(2, 2)} |`);
  }
}
const loadAfter = await loadAverage();
await Deno.remove(dir, { recursive: true });
console.log(
  `### A job printing ${bytes.toLocaleString("en")} bytes\n\n` +
    `Measured ${new Date().toISOString().slice(0, 16)} UTC with \`bench/output_rate.ts${
      Deno.args.length ? " " + Deno.args.join(" ") : ""
    }\`; medians (ranges) of ${rounds} rounds, load average ${loadBefore} before, ${loadAfter} ` +
    `after. The job alone (\`${command} | cat > /dev/null\`): ${fmt(median(aloneMs), 0)} ms ` +
    `(${range(aloneMs, 0)}).\n\n` +
    `| backend | code | the job's run, ms | \`worker start --count 1 --until-empty\`, ms | ` +
    `its CPU (supervisor, worker, job), s |\n|---|---|---|---|---|\n` + rows.join("\n"),
);
