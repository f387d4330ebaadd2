/** Small helpers shared by the benchmarks. */
import denoJson from "../deno.json" with { type: "json" };
import { permissionFlagsFromTask } from "../src/worker/self_exec.ts";

export const ROOT = new URL("..", import.meta.url).pathname;
export const MAIN = `${ROOT}src/main.ts`;
/** The explicit permission flags of the `queuectl` task in deno.json (one source of truth). */
export const PERMISSIONS: readonly string[] = permissionFlagsFromTask(denoJson.tasks.queuectl);

/** `deno` arguments of `queuectl worker start --count N --until-empty` from the source at `main`. */
export function untilEmptyArgs(main: string, count: number): string[] {
  return [
    "run",
    ...PERMISSIONS,
    main,
    "worker",
    "start",
    "--count",
    String(count),
    "--until-empty",
  ];
}

/**
 * Runs a command to completion, feeding it `opts.stdin` if given; returns its output and wall time
 * in ms. Throws on a non-zero exit.
 */
export async function runTimed(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; stdin?: string; stdout?: "piped" | "null" } = {},
): Promise<{ out: Deno.CommandOutput; ms: number }> {
  const start = performance.now();
  const child = new Deno.Command(cmd, {
    args,
    env: opts.env,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: opts.stdout ?? "null",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const ms = performance.now() - start;
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return { out, ms };
}

/** Runs a command to completion and returns its wall time in ms (throws on non-zero exit). */
export async function timeCommand(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; stdin?: string } = {},
): Promise<number> {
  return (await runTimed(cmd, args, opts)).ms;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export const fmt = (n: number, digits = 1) => n.toFixed(digits);

/**
 * The 1-minute load average (Linux), or "?". Through `cat`: Deno lets only --allow-all read /proc,
 * and Deno.loadavg would need --allow-sys=loadavg.
 */
export async function loadAverage(): Promise<string> {
  try {
    const out = await new Deno.Command("cat", { args: ["/proc/loadavg"], stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).split(" ")[0] : "?";
  } catch {
    return "?";
  }
}

/**
 * The checkouts a side-by-side benchmark runs: `[label, directory]`, another checkout's first when
 * `base` names one (`--base=DIR`), then this one.
 */
export function benchCheckouts(base: string): [string, string][] {
  const here: [string, string] = ["this checkout", MAIN.slice(0, -"/src/main.ts".length)];
  return base ? [[`base (${base})`, base], here] : [here];
}

/** `--backend=sqlite|postgres|both` as the list of backends to run. */
export function benchBackends(arg: string): ("sqlite" | "postgres")[] {
  return arg === "both" ? ["sqlite", "postgres"] : [arg as "sqlite" | "postgres"];
}
