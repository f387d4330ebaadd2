/** Runs the real queuectl CLI as a subprocess, the way a user does. */
import denoJson from "../../deno.json" with { type: "json" };
import { permissionFlagsFromTask } from "../../src/worker/self_exec.ts";

/** A file URL, not `.pathname` (which is "/C:/..." on Windows); `deno run` takes either. */
export const MAIN = new URL("../../src/main.ts", import.meta.url).href;

/** The explicit permission flags of the `queuectl` task in deno.json (one source of truth). */
export const PERMISSIONS: readonly string[] = permissionFlagsFromTask(denoJson.tasks.queuectl);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  db?: string;
  env?: Record<string, string>;
  stdin?: string;
  cwd?: string;
}

/** The argv that starts the CLI: `deno run <perms> src/main.ts <args>`. */
export function cliArgv(args: readonly string[]): string[] {
  return ["run", "--quiet", ...PERMISSIONS, MAIN, ...args];
}

export async function runCli(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  // INIT_CWD "" = not under `deno task`: the test runner's own INIT_CWD (set when the suite runs
  // through `deno task test`) must not decide the default cwd of the jobs a test enqueues.
  const env: Record<string, string> = { NO_COLOR: "1", INIT_CWD: "", ...opts.env };
  if (opts.db !== undefined) env.QUEUECTL_DB = opts.db;
  const child = new Deno.Command(Deno.execPath(), {
    args: cliArgv(args),
    env,
    cwd: opts.cwd,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(opts.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Runs the CLI and parses its stdout as JSON (fails with the stderr when the exit code is not 0). */
export async function runCliJson<T = unknown>(
  args: readonly string[],
  opts: CliOptions = {},
): Promise<T> {
  const r = await runCli([...args, "--json"], opts);
  if (r.code !== 0) throw new Error(`queuectl ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
