/**
 * Where queuectl's own CPU per job goes (issue 15.1), by component: `perf record` (on-CPU samples
 * with call stacks, JS frames named through V8's --perf-basic-prof, and functions run by the
 * interpreter too through --interpreted-frames-native-stack: workers run without V8's optimizing
 * compilers, and without it their interpreted JavaScript showed as native work with no JS frame)
 * of `worker start --count C --until-empty` on N no-op jobs and on an empty queue; each sample
 * of the supervisor or of a worker process (its threads; not the jobs) is put in the first
 * component whose pattern one of its frames matches, and (samples with N jobs - samples with
 * none) / sampling rate / N gives µs per job. Needs Linux `perf` (skipped with a note
 * otherwise); -A: perf, /proc, /tmp perf maps.
 *
 *   deno run -A bench/worker_cpu_profile.ts [--n=1500] [--count=2] [--cmd=true] [--freq=999]
 *     [--main=src/main.ts]
 *
 * A sample's cost is 1/freq s of CPU; the profile slows the processes somewhat (the table's total
 * is higher than bench/worker_cpu.ts's), so read it as shares. Categories are ordered: a sample
 * of a settle inside a spawn callback counts once, for the first that matches.
 */
import { fmt, loadAverage, MAIN, PERMISSIONS, runTimed, untilEmptyArgs } from "./util.ts";

const arg = (name: string, def: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const n = Number(arg("n", "1500"));
const count = Number(arg("count", "2"));
const freq = Number(arg("freq", "999"));
const main = arg("main", MAIN);
const cmd = arg("cmd", "true");

/** Component -> a pattern over a sample's frames (JS frames are `JS:^name file:line:col`). */
export const COMPONENTS: [string, RegExp][] = [
  [
    "SQLite: settle + claim transaction",
    /JS:[~^*]?(transaction|#claim|#settle|#recordRun|#writeCounts|#lockedWrite|hotWrite|settleAndClaim|claimJobs|#checkFile|tryLockSync|unlockSync|#passiveCheckpoint) /,
  ],
  ["SQLite: other store calls", /src\/store\//],
  [
    "spawn of the job (Deno.Command)",
    /JS:[~^*]?(spawnChildInner|spawnChild|spawn|ChildProcess) ext:deno_process/,
  ],
  ["pipes: stdout/stderr streams, tails", /06_streams\.js|output_tail\.ts|JS:\S* drain /],
  ["child exit (status, leftovers sweep)", /40_process\.js|job_processes\.ts/],
  ["event lines (log)", /log_sink\.ts|describe\.ts|core\/text\.ts|JS:\S* log src\/worker/],
  ["heartbeats, kill checks", /JS:[~^*]?(heartbeat|checkKills|renewLeases|heartbeatWorker) /],
  ["timers", /02_timers\.js|timers\.mjs|deno_node\/timers/],
  ["supervisor: --until-empty looks", /JS:[~^*]?(#checkEmpty|lookAtQueue) /],
  ["maintenance (rescue, prune)", /maintenance\.ts/],
  ["runner, executor, supervisor: other JS", /src\/(worker|core|app|cli)\//],
  ["Deno runtime: other JS", /JS:/],
  ["native, no JS frame: spawn (clone3, munmap of its stack)", /\b(clone3|__munmap|posix_spawn)/],
  ["native, no JS frame: event loop (epoll)", /epoll_wait/],
  ["native, no JS frame: other (GC, malloc, kernel)", /./],
];

interface Profile {
  /** role -> component -> samples */
  samples: Map<string, Map<string, number>>;
  wallMs: number;
}

async function profile(db: string, dir: string, tag: string): Promise<Profile> {
  const data = `${dir}/perf-${tag}.data`;
  const started = performance.now();
  // In `dir`: V8 writes its isolate logs to the current directory.
  const rec = await new Deno.Command("perf", {
    args: [
      "record",
      "-q",
      "-F",
      String(freq),
      "-g",
      "-o",
      data,
      "--",
      Deno.execPath(),
      ...untilEmptyArgs(main, count),
    ],
    cwd: dir,
    env: {
      QUEUECTL_DB: db,
      NO_COLOR: "1",
      DENO_V8_FLAGS: "--perf-basic-prof,--interpreted-frames-native-stack",
    },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!rec.success) throw new Error(`perf record failed: ${new TextDecoder().decode(rec.stderr)}`);
  const wallMs = performance.now() - started;
  const script = await new Deno.Command("perf", {
    args: ["script", "-i", data, "-F", "pid,tid,ip,sym,dso"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(script.stdout);
  // Group samples by pid first: a process's role is known from its frames.
  const byPid = new Map<string, string[]>();
  let pid = "";
  let frames: string[] = [];
  const flush = () => {
    if (pid && frames.length) {
      let list = byPid.get(pid);
      if (!list) byPid.set(pid, list = []);
      list.push(frames.join("\n"));
    }
  };
  for (const line of text.split("\n")) {
    if (line === "") continue;
    // A sample's header is its "pid/tid" (right-aligned: it may start with spaces); frames follow.
    const header = line.match(/^\s*(\d+)\/\d+\s*$/);
    if (header) {
      flush();
      pid = header[1];
      frames = [];
    } else {
      const m = line.match(/^\s*[0-9a-f]+ (.*) \((.*)\)$/);
      if (m) frames.push(m[1]);
    }
  }
  flush();
  const samples = new Map<string, Map<string, number>>();
  for (const list of byPid.values()) {
    const all = list.join("\n");
    const role = /src\/worker\/runner\.ts/.test(all)
      ? "workers"
      : /src\/worker\/supervisor\.ts/.test(all)
      ? "supervisor"
      : null;
    if (role === null) continue; // the jobs' shells, ps, perf itself
    let counts = samples.get(role);
    if (!counts) samples.set(role, counts = new Map());
    for (const s of list) {
      const name = COMPONENTS.find(([, rx]) => rx.test(s))![0];
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
  }
  if (!Deno.env.get("KEEP_PERF")) await Deno.remove(data).catch(() => {});
  for (const p of byPid.keys()) await Deno.remove(`/tmp/perf-${p}.map`).catch(() => {});
  return { samples, wallMs };
}

try {
  await new Deno.Command("perf", { args: ["--version"], stdout: "null", stderr: "null" }).output();
} catch {
  console.log("perf is not installed: no profile (Linux `perf` is needed)");
  Deno.exit(0);
}
const dir = await Deno.makeTempDir({ prefix: "queuectl-worker-profile-" });
try {
  const cli = (db: string, args: string[]) =>
    runTimed(Deno.execPath(), ["run", ...PERMISSIONS, main, ...args], { env: { QUEUECTL_DB: db } });
  await Deno.writeTextFile(`${dir}/jobs.jsonl`, `${JSON.stringify({ command: cmd })}\n`.repeat(n));
  await cli(`${dir}/full.db`, ["enqueue", "--file", `${dir}/jobs.jsonl`]);
  await cli(`${dir}/empty.db`, ["status"]);
  const load0 = await loadAverage();
  const full = await profile(`${dir}/full.db`, dir, "full");
  const empty = await profile(`${dir}/empty.db`, dir, "empty");
  console.log(
    `${main}: n=${n} count=${count} cmd=${
      JSON.stringify(cmd)
    } perf -F ${freq}; load average ${load0} ${await loadAverage()}`,
  );
  console.log("µs of CPU per job = (samples with N jobs - samples with none) / freq / N");
  for (const role of ["workers", "supervisor"]) {
    const f = full.samples.get(role) ?? new Map();
    const e = empty.samples.get(role) ?? new Map();
    const rows = COMPONENTS.map(([name]) => {
      const us = ((f.get(name) ?? 0) - (e.get(name) ?? 0)) / freq * 1e6 / n;
      return { name, us };
    });
    const total = rows.reduce((a, r) => a + r.us, 0);
    console.log(`\n${role} (all processes of the role together): ${fmt(total, 0)} µs/job`);
    for (const r of rows.filter((r) => Math.abs(r.us) >= 0.5).sort((a, b) => b.us - a.us)) {
      console.log(
        `  ${r.name.padEnd(58)} ${fmt(r.us, 0).padStart(6)} µs  ${
          fmt(100 * r.us / total, 1).padStart(5)
        }%`,
      );
    }
  }
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
