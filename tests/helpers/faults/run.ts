/** Running system programs (ip, mount, initdb, pg_ctl...) from the fault suite's helpers. */

const decoder = new TextDecoder();

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end; never throws for a non-zero exit (see {@link mustRun}). */
export async function runProgram(
  cmd: string,
  args: readonly string[],
  opts: { env?: Record<string, string>; cwd?: string } = {},
): Promise<Ran> {
  try {
    const r = await new Deno.Command(cmd, {
      args: [...args],
      env: opts.env,
      cwd: opts.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: r.code, stdout: decoder.decode(r.stdout), stderr: decoder.decode(r.stderr) };
  } catch (err) {
    return { code: 127, stdout: "", stderr: `${cmd}: ${(err as Error).message}` };
  }
}

/** Runs a program and throws with its output when it fails. */
export async function mustRun(
  cmd: string,
  args: readonly string[],
  opts: { env?: Record<string, string>; cwd?: string } = {},
): Promise<Ran> {
  const r = await runProgram(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  }
  return r;
}

/** True when the program can be found (on PATH, or as given). */
export function hasProgram(cmd: string): boolean {
  const r = new Deno.Command("sh", {
    args: ["-c", 'command -v "$1" >/dev/null 2>&1', "sh", cmd],
    stdout: "null",
    stderr: "null",
  }).outputSync();
  return r.code === 0;
}

/** The effective user id (Unix), or null. */
export function uid(): number | null {
  try {
    return Deno.uid();
  } catch {
    return null;
  }
}

/** A free TCP port on `hostname` right now (the kernel's choice); never 5432. */
export function freePort(hostname = "127.0.0.1"): number {
  for (;;) {
    const l = Deno.listen({ hostname, port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    if (port !== 5432) return port;
  }
}
