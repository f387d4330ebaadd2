/**
 * Spawn cost against the spawning process's RSS (issue 15.1: "fork cost growing with the worker's
 * RSS"). One Deno process allocates `--mb` MiB and touches every page (ArrayBuffers, so the memory
 * is resident and mapped like a worker's heap), then spawns `--n` `sh -c true` jobs one at a time
 * the way a worker does (`Deno.Command`, stdin null, stdout/stderr piped and read to the end), and
 * prints its own CPU per job and its children's (from /proc/self/stat, after the last job).
 * `--detached` adds Deno's `detached` option (setsid in a pre-exec hook), which makes Rust's
 * process code fork instead of posix_spawn, for comparison.
 *
 *   deno run -A bench/spawn_rss.ts [--mb=0,64,256] [--n=2000] [--rounds=3] [--detached]
 *
 * Each (size, round) runs in a fresh process, sizes interleaved within a round; medians printed.
 */
const arg = (name: string, def: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;

const TICK_MS = 10; // USER_HZ is 100 on Linux

function cpuTicks(): { self: number; children: number } {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  // utime, stime, cutime, cstime are fields 14-17; f[0] is field 3.
  return { self: f[11] + f[12], children: f[13] + f[14] };
}

function rssMiB(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(status.match(/VmRSS:\s+(\d+)/)![1]) / 1024;
}

async function child(mb: number, n: number, detached: boolean): Promise<void> {
  const keep: Uint8Array[] = [];
  for (let i = 0; i < mb; i++) keep.push(new Uint8Array(1 << 20).fill(1));
  const rss = rssMiB();
  const t0 = cpuTicks();
  const w0 = performance.now();
  for (let i = 0; i < n; i++) {
    const c = new Deno.Command("/bin/sh", {
      args: ["-c", "true"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      detached,
    }).spawn();
    await Promise.all([
      c.stdout.pipeTo(new WritableStream()),
      c.stderr.pipeTo(new WritableStream()),
    ]);
    await c.status;
  }
  const wall = performance.now() - w0;
  const t1 = cpuTicks();
  console.log(JSON.stringify({
    mb,
    rss,
    selfMs: ((t1.self - t0.self) * TICK_MS) / n,
    childMs: ((t1.children - t0.children) * TICK_MS) / n,
    wallMs: wall / n,
    kept: keep.length,
  }));
}

if (Deno.args.includes("--child")) {
  await child(Number(arg("mb", "0")), Number(arg("n", "2000")), Deno.args.includes("--detached"));
} else {
  const sizes = arg("mb", "0,64,256").split(",").map(Number);
  const n = Number(arg("n", "2000"));
  const rounds = Number(arg("rounds", "3"));
  const detached = Deno.args.includes("--detached");
  const results = new Map<
    number,
    { rss: number; selfMs: number; childMs: number; wallMs: number }[]
  >();
  const load = async () =>
    (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  console.log(`load ${await load()}; ${n} spawns per run, ${rounds} rounds, detached=${detached}`);
  for (let r = 0; r < rounds; r++) {
    for (const mb of sizes) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A", // reading the process's own /proc entries needs --allow-all
          import.meta.filename!,
          "--child",
          `--mb=${mb}`,
          `--n=${n}`,
          ...(detached ? ["--detached"] : []),
        ],
        stdout: "piped",
        stderr: "inherit",
        // the same glibc setting as a worker (self_exec.ts, MALLOC_TUNING)
        env: { MALLOC_MMAP_THRESHOLD_: "65536" },
      }).output();
      const row = JSON.parse(new TextDecoder().decode(out.stdout));
      results.set(mb, [...(results.get(mb) ?? []), row]);
    }
  }
  const med = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
  console.log("MiB allocated | RSS MiB | parent CPU ms/job | children CPU ms/job | wall ms/job");
  for (const [mb, rows] of results) {
    const col = (k: "selfMs" | "childMs" | "wallMs") =>
      `${med(rows.map((x) => x[k])).toFixed(2)} (${range(rows.map((x) => x[k]))})`;
    console.log(
      `${mb} | ${med(rows.map((x) => x.rss)).toFixed(0)} | ${col("selfMs")} | ${col("childMs")} | ${
        col("wallMs")
      }`,
    );
  }
  console.log(`load ${await load()}`);
}
