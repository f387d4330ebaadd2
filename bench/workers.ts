/**
 * Worker benchmarks (issue 3), measured side by side in one run:
 * 1. throughput: N no-op jobs (`true`) run by `worker start --count 2 --until-empty`, against
 *    `xargs -P 2` running the same N `sh -c true`; rounds interleaved so machine noise hits both,
 *    the ratio taken per round (adjacent runs) and its median reported. Also the CPU time per job
 *    of each (user + system of the process and everything it waited for, from the shell's
 *    `times`): unlike wall time it hardly moves when other programs load the machine;
 * 2. wake-up: enqueue-to-start latency (job started_at - created_at) with 2 idle workers, jobs
 *    enqueued one at a time through the same code path as `queuectl enqueue`;
 * 3. memory: RSS of each worker process (`ps -o rss=`), idle and while running the N jobs, and
 *    its curve over a 5-minute busy run (worker_memory.ts);
 * 4. peers, when installed, in the same rounds: task-spooler (`tsp -S 2`) and GNU `parallel -j 2`
 *    on the same N `sh -c true` (skipped with a note otherwise), and the spawn ceiling: a bare
 *    Deno program spawning the same jobs (spawn_ceiling.ts);
 * 5. latency-bound jobs: 1,000 `sleep 0.01` with 4 workers against `xargs -P 4` (issue 15.1).
 *
 * `deno task bench --only=workers`, or alone: `deno run <permissions> bench/workers.ts [--quick]`.
 */
import { systemClock } from "../src/core/clock.ts";
import { enqueue } from "../src/app/queue.ts";
import { openStore } from "../src/store/mod.ts";
import { openSqliteStore } from "../src/store/sqlite/mod.ts";
import type { Store } from "../src/store/store.ts";
import { memoryTable, workerMemory } from "./worker_memory.ts";
import {
  fmt,
  loadAverage,
  MAIN,
  median,
  percentile,
  PERMISSIONS,
  runTimed,
  timeCommand,
} from "./util.ts";

const deno = Deno.execPath();

function cli(args: string[]): string[] {
  return ["run", ...PERMISSIONS, MAIN, ...args];
}

/** RSS in KiB of each pid (ps: /proc/<pid>/status would need --allow-all). */
async function rssKiB(pids: number[]): Promise<number[]> {
  if (pids.length === 0) return [];
  const out = await new Deno.Command("ps", {
    args: ["-o", "rss=", "-p", pids.join(",")],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => Number(l.trim()))
    .filter((n) => n > 0);
}

async function workerPids(store: Store): Promise<number[]> {
  return (await store.listWorkers()).filter((w) => w.supervisor_id !== null).map((w) => w.pid);
}

interface Timed {
  wallMs: number;
  /** User + system CPU of the command and all the processes it waited for, ms. */
  cpuMs: number;
}

/**
 * Runs `argv` under `sh`, whose `times` then reports the CPU its children used (the command and
 * every process it waited for, recursively). Throws if the command fails.
 */
async function timed(
  argv: string[],
  opts: { env?: Record<string, string>; stdin?: string } = {},
): Promise<Timed> {
  const { out, ms: wallMs } = await runTimed(
    "sh",
    ["-c", '"$@" >/dev/null || exit; times', "sh", ...argv],
    { ...opts, stdout: "piped" },
  );
  const text = new TextDecoder().decode(out.stdout);
  // `times`: the shell's own user and system time, then its children's: "0m1.234s 0m0.567s".
  const children = text.trim().split("\n").at(-1)!.match(/(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/);
  if (!children) throw new Error(`unexpected output of times: ${JSON.stringify(text)}`);
  const [, um, us, sm, ss] = children.map(Number);
  return { wallMs, cpuMs: (um * 60 + us + sm * 60 + ss) * 1000 };
}

function xargsRun(n: number, parallel = 2, cmd = "true"): Promise<Timed> {
  return timed(["xargs", "-P", String(parallel), "-n", "1", "sh", "-c", cmd], {
    stdin: Array.from({ length: n }, (_, i) => i).join("\n"),
  });
}

/** Whether `cmd` is on the PATH (peers are run only when installed). */
async function installed(cmd: string): Promise<boolean> {
  try {
    const out = await new Deno.Command("sh", {
      args: ["-c", 'command -v "$1" >/dev/null', "sh", cmd],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

/** GNU parallel, 2 at a time, the same `sh -c true` per input line. */
function parallelRun(n: number): Promise<Timed> {
  return timed(["parallel", "--will-cite", "-j", "2", "-N0", "sh", "-c", "true"], {
    stdin: Array.from({ length: n }, (_, i) => i).join("\n") + "\n",
  });
}

/**
 * task-spooler with 2 slots on a private socket: every job queued by a `tsp -n sh -c true` client
 * (jobs start as soon as they are queued, so the time covers queueing and running), then wait
 * until none is queued or running. The server is a daemon: its CPU and its jobs' are not counted.
 */
function tspRun(dir: string, n: number, round: number): Promise<Timed> {
  const script = `
    export TS_SOCKET="$1/tsp-$2.sock" TS_MAXFINISHED=${n + 10} TS_SLOTS=2
    tsp -S 2
    i=0
    while [ "$i" -lt ${n} ]; do tsp -n sh -c true >/dev/null || exit 1; i=$((i + 1)); done
    tsp -w >/dev/null 2>&1
    while tsp | grep -qE ' (running|queued) '; do sleep 0.005; done
    finished=$(tsp | grep -c ' finished ')
    tsp -K
    [ "$finished" -eq ${n} ] || { echo "tsp finished $finished of ${n}" >&2; exit 1; }
  `;
  return timed(["sh", "-c", script, "sh", dir, String(round)]);
}

interface QueueRun {
  /** Wall time of `worker start --until-empty`, process start-up to exit. */
  wallMs: number;
  /** CPU of the supervisor, its workers and their jobs, start-up to exit. */
  cpuMs: number;
  /** First job start to last job finish, from the job rows. */
  spanMs: number;
  /** Largest RSS seen per worker while it ran, KiB. */
  busyRss: number[];
}

/** The bare Deno spawner of spawn_ceiling.ts on the same `sh -c true` jobs, 2 at a time. */
function ceilingRun(n: number): Promise<Timed> {
  return timed([
    deno,
    "run",
    "--allow-run",
    new URL("./spawn_ceiling.ts", import.meta.url).pathname,
    String(n),
  ]);
}

async function queuectlRun(
  dir: string,
  n: number,
  round: string,
  opts: { count?: number; cmd?: string } = {},
): Promise<QueueRun> {
  const db = `${dir}/throughput-${round}.db`;
  const file = `${dir}/jobs.jsonl`;
  await Deno.writeTextFile(
    file,
    (JSON.stringify({ command: opts.cmd ?? "true" }) + "\n").repeat(n),
  );
  const env = { QUEUECTL_DB: db, NO_COLOR: "1" };
  await timeCommand(deno, cli(["enqueue", "--file", file]), { env });
  const store = await openSqliteStore(db);
  const busyRss = new Map<number, number>();
  let running = true;
  const sampler = (async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, 250));
      const pids = await workerPids(store).catch(() => []);
      const rss = await rssKiB(pids);
      pids.forEach((pid, i) => rss[i] && busyRss.set(pid, Math.max(busyRss.get(pid) ?? 0, rss[i])));
    }
  })();
  const { wallMs, cpuMs } = await timed(
    [deno, ...cli(["worker", "start", "--count", String(opts.count ?? 2), "--until-empty"])],
    { env },
  );
  running = false;
  await sampler;
  const jobs = await store.listJobs({ limit: n, order: "oldest" });
  await store.close();
  if (jobs.length !== n || jobs.some((j) => j.state !== "completed")) {
    throw new Error(`throughput run: not every job completed`);
  }
  const spanMs = Math.max(...jobs.map((j) => j.finished_at!)) -
    Math.min(...jobs.map((j) => j.started_at!));
  return { wallMs, cpuMs, spanMs, busyRss: [...busyRss.values()] };
}

async function latency(
  dbUrl: string,
  samples: number,
): Promise<{ ms: number[]; idleRss: number[] }> {
  const store = await openStore(dbUrl);
  const supervisor = new Deno.Command(deno, {
    args: cli(["worker", "start", "--count", "2"]),
    env: { QUEUECTL_DB: dbUrl, NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  try {
    const deadline = performance.now() + 30_000;
    while ((await workerPids(store)).length < 2) {
      if (performance.now() > deadline) throw new Error("workers did not start");
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300)); // let both reach their idle wait
    const idleRss = await rssKiB(await workerPids(store));
    const ctx = { store, clock: systemClock };
    const ms: number[] = [];
    for (let i = 0; i < samples; i++) {
      // Idle gap: both workers back in their wait, as for a job that arrives out of the blue.
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 60));
      const [id] = await enqueue(ctx, [{ value: { command: "true" } }]);
      let job = await store.getJob({ id });
      const until = performance.now() + 10_000;
      while (job && job.state !== "completed") {
        if (performance.now() > until) throw new Error(`job ${id} did not run within 10 s`);
        await new Promise((r) => setTimeout(r, 2));
        job = await store.getJob({ id });
      }
      ms.push(job!.started_at! - job!.created_at);
    }
    return { ms, idleRss };
  } finally {
    supervisor.kill("SIGTERM");
    await supervisor.status;
    await store.close();
  }
}

/** The same latency on PostgreSQL (LISTEN/NOTIFY), in a fresh schema; null if no server. */
async function pgLatency(samples: number): Promise<number[] | null> {
  const base = Deno.env.get("QUEUECTL_TEST_PG_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
  const { default: postgres } = await import("postgres");
  const admin = postgres(base, { max: 1, onnotice: () => {}, connect_timeout: 3 });
  const schema = `bench_workers_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  try {
    await admin`SELECT 1`;
  } catch {
    await admin.end({ timeout: 1 }).catch(() => {});
    return null;
  }
  try {
    const url = `${base}${base.includes("?") ? "&" : "?"}schema=${schema}`;
    return (await latency(url, samples)).ms;
  } finally {
    await admin.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await admin.end();
  }
}

export async function benchWorkers(opts: { quick?: boolean } = {}): Promise<string> {
  const n = opts.quick ? 1000 : 5000;
  const rounds = opts.quick ? 1 : 5;
  const samples = opts.quick ? 20 : 100;
  const dir = await Deno.makeTempDir({ prefix: "queuectl-bench-workers-" });
  try {
    await xargsRun(200); // warm the page cache for sh and xargs
    const x: Timed[] = [];
    const q: QueueRun[] = [];
    const hasTsp = await installed("tsp");
    const hasParallel = await installed("parallel");
    // Peers run a fifth of the jobs (GNU parallel costs ~10x xargs per job), each beside an xargs
    // run of the same size in the same round.
    const peerN = Math.max(100, Math.floor(n / 5));
    const xp: Timed[] = [];
    const t: Timed[] = [];
    const p: Timed[] = [];
    const c: Timed[] = [];
    for (let r = 0; r < rounds; r++) {
      x.push(await xargsRun(n));
      q.push(await queuectlRun(dir, n, `noop-${r}`));
      c.push(await ceilingRun(n));
      if (hasTsp || hasParallel) xp.push(await xargsRun(peerN));
      if (hasTsp) t.push(await tspRun(dir, peerN, r));
      if (hasParallel) p.push(await parallelRun(peerN));
    }
    // Latency-bound jobs: `sleep 0.01` with 4 at a time, against `xargs -P 4`.
    const sleepN = opts.quick ? 200 : 1000;
    const xs: Timed[] = [];
    const qs: QueueRun[] = [];
    for (let r = 0; r < rounds; r++) {
      xs.push(await xargsRun(sleepN, 4, "sleep 0.01"));
      qs.push(await queuectlRun(dir, sleepN, `sleep-${r}`, { count: 4, cmd: "sleep 0.01" }));
    }
    const lat = await latency(`${dir}/latency.db`, samples);
    const pg = await pgLatency(samples);
    const memSeconds = opts.quick ? 20 : 300;
    const memory = await workerMemory(dir, {
      seconds: memSeconds,
      every: opts.quick ? 5 : 15,
      jobs: memSeconds * 1500,
    });

    const xMs = median(x.map((r) => r.wallMs));
    const wallMs = median(q.map((r) => r.wallMs));
    const spanMs = median(q.map((r) => r.spanMs));
    // Ratios per round: each queuectl run against the xargs run just before it.
    const wallRatios = q.map((r, i) => x[i].wallMs / r.wallMs);
    const spanRatios = q.map((r, i) => x[i].wallMs / r.spanMs);
    const ceilingRatios = c.map((r, i) => x[i].wallMs / r.wallMs);
    const sleepRatios = qs.map((r, i) => xs[i].wallMs / r.wallMs);
    const xsMs = median(xs.map((r) => r.wallMs));
    const qsMs = median(qs.map((r) => r.wallMs));
    const range = (xs: number[]) =>
      xs.length > 1 ? ` (${fmt(Math.min(...xs), 2)}-${fmt(Math.max(...xs), 2)})` : "";
    const cpuPerJob = (runs: { cpuMs: number }[]) => fmt(median(runs.map((r) => r.cpuMs)) / n, 2);
    const rate = (ms: number) => n / (ms / 1000);
    const mib = (kib: number[]) => kib.length ? fmt(median(kib) / 1024) : "?";
    const busy = q.flatMap((r) => r.busyRss);
    /** A peer's row: same columns, ratio per round against that round's xargs run. */
    const peerRow = (name: string, runs: Timed[], missing: string): string[] => {
      if (runs.length === 0) return [`| ${name} | ${missing} | | | |`];
      const ms = median(runs.map((r) => r.wallMs));
      const ratios = runs.map((r, i) => xp[i].wallMs / r.wallMs);
      return [
        `| ${name} | ${fmt(ms / 1000, 2)} s | ${fmt(peerN / (ms / 1000), 0)} | ${
          fmt(median(ratios), 2)
        }${range(ratios)} | ${fmt(median(runs.map((r) => r.cpuMs)) / peerN, 2)} ms |`,
      ];
    };
    return [
      "### Workers: throughput, wake-up latency, memory",
      "",
      `${
        n.toLocaleString("en")
      } no-op jobs (\`true\`) with 2 workers against \`xargs -P 2\` running ` +
      `the same ${n.toLocaleString("en")} \`sh -c true\`; ${rounds} interleaved round${
        rounds === 1 ? "" : "s"
      }, medians.`,
      "",
      "| run | time | jobs/s | ratio to xargs (median of rounds, range) | CPU per job |",
      "|---|---|---|---|---|",
      `| \`xargs -P 2 -n 1 sh -c true\` | ${fmt(xMs / 1000, 2)} s | ${fmt(rate(xMs), 0)} | 1.00 | ${
        cpuPerJob(x)
      } ms |`,
      `| \`worker start --count 2 --until-empty\`, end to end (process start-up to exit) | ${
        fmt(wallMs / 1000, 2)
      } s | ${fmt(rate(wallMs), 0)} | **${fmt(median(wallRatios), 2)}**${range(wallRatios)} | ${
        cpuPerJob(q)
      } ms |`,
      `| the same runs, first job start to last job finish (job timestamps) | ${
        fmt(spanMs / 1000, 2)
      } s | ${fmt(rate(spanMs), 0)} | ${fmt(median(spanRatios), 2)}${range(spanRatios)} | |`,
      `| spawn ceiling: a bare Deno program spawning the same jobs through \`Deno.Command\` ` +
      `(pipes read), 2 at a time, nothing else (\`bench/spawn_ceiling.ts\`) | ${
        fmt(median(c.map((r) => r.wallMs)) / 1000, 2)
      } s | ${fmt(rate(median(c.map((r) => r.wallMs))), 0)} | ${fmt(median(ceilingRatios), 2)}${
        range(ceilingRatios)
      } | ${cpuPerJob(c)} ms |`,
      ...(xp.length
        ? [
          `| peers below: ${peerN.toLocaleString("en")} jobs each, ratio to an \`xargs -P 2\` ` +
          `run of ${peerN.toLocaleString("en")} in the same round (median ${
            fmt(median(xp.map((r) => r.wallMs)) / 1000, 2)
          } s) | | | | ${fmt(median(xp.map((r) => r.cpuMs)) / peerN, 2)} ms |`,
        ]
        : []),
      ...peerRow(
        "task-spooler: `tsp -S 2`, each job queued by `tsp -n sh -c true` (queueing included; " +
          "CPU: clients only, the server is a daemon)",
        t,
        "`tsp` not installed (Debian: `apt-get install task-spooler`): not measured",
      ),
      ...peerRow(
        "GNU parallel: `parallel -j 2 -N0 sh -c true`",
        p,
        "GNU `parallel` not installed (Debian: `apt-get install parallel`): not measured",
      ),
      "",
      `Target (issue 15.1) ratio >= 0.8. Every job of every round completed. CPU per job: user + system time ` +
      `of the whole run (for queuectl: supervisor, 2 workers and every job's shell, start-up ` +
      `included) divided by the jobs; on a 2-core machine the ratio can at best approach ` +
      `xargs' CPU per job / queuectl's. Load average at the end: ${await loadAverage()}.`,
      "",
      `${sleepN.toLocaleString("en")} jobs \`sleep 0.01\` with 4 workers against ` +
      `\`xargs -P 4 -n 1 sh -c 'sleep 0.01'\`, ${rounds} interleaved round${
        rounds === 1 ? "" : "s"
      } (target, issue 15.1: >= 0.9):`,
      "",
      "| run | time | ratio to xargs (median of rounds, range) | CPU per job |",
      "|---|---|---|---|",
      `| \`xargs -P 4\` | ${fmt(xsMs / 1000, 2)} s | 1.00 | ${
        fmt(median(xs.map((r) => r.cpuMs)) / sleepN, 2)
      } ms |`,
      `| \`worker start --count 4 --until-empty\`, end to end | ${fmt(qsMs / 1000, 2)} s | **${
        fmt(median(sleepRatios), 2)
      }**${range(sleepRatios)} | ${fmt(median(qs.map((r) => r.cpuMs)) / sleepN, 2)} ms |`,
      "",
      `Enqueue-to-start latency with 2 idle workers (${samples} jobs enqueued one at a time, ` +
      `20-80 ms apart, started_at - created_at): **p50 ${fmt(median(lat.ms))} ms, p99 ${
        fmt(percentile(lat.ms, 99))
      } ms** (target median < 50 ms; SQLite: a watch on the wake file wakes idle workers).` +
      (pg
        ? ` On PostgreSQL (LISTEN/NOTIFY): p50 ${fmt(median(pg))} ms, p99 ${
          fmt(percentile(pg, 99))
        } ms.`
        : " (PostgreSQL not reachable: not measured there.)"),
      "",
      `RSS per worker process: ${mib(lat.idleRss)} MiB idle, ${
        mib(busy)
      } MiB while running jobs (median over workers of each one's largest sample).`,
      "",
      memoryTable(memory, memSeconds),
    ].join("\n");
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  console.log(await benchWorkers({ quick: Deno.args.includes("--quick") }));
}
