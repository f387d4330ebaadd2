/**
 * A long-running CLI process (`worker start`, `dashboard`) for tests: its output is collected as
 * it arrives, so a test can wait for a line, signal the process, and read its exit status.
 */
import { cliArgv } from "./run_cli.ts";
import { waitFor } from "./wait_for.ts";

export interface CliProcess extends AsyncDisposable {
  readonly pid: number;
  /** stdout so far. */
  stdout(): string;
  /** stderr so far. */
  stderr(): string;
  /** Waits until stdout matches `pattern`; returns the match. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  kill(signal?: Deno.Signal): void;
  /** Writes to its stdin (started with `stdin: "piped"`). */
  writeStdin(text: string): Promise<void>;
  /** Closes its stdin (started with `stdin: "piped"`): end of input. */
  closeStdin(): Promise<void>;
  /** Resolves when the process has exited (and its output is fully read). */
  readonly status: Promise<Deno.CommandStatus>;
}

export function startCli(
  args: readonly string[],
  opts: {
    db?: string;
    env?: Record<string, string>;
    cwd?: string;
    /** Run through this program first, e.g. ["setsid"] (exec'd: the pid stays the CLI's). */
    via?: string[];
    /** "piped": the test writes the process's input (writeStdin, closeStdin); default null. */
    stdin?: "piped" | "null";
  } = {},
): CliProcess {
  // INIT_CWD "" = not under `deno task`: the test runner's own INIT_CWD (set when the suite runs
  // through `deno task test`) must not decide the default cwd of the jobs a test enqueues.
  const env: Record<string, string> = { NO_COLOR: "1", INIT_CWD: "", ...opts.env };
  if (opts.db !== undefined) env.QUEUECTL_DB = opts.db;
  const argv = [...(opts.via ?? []), Deno.execPath(), ...cliArgv(args)];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    cwd: opts.cwd,
    stdin: opts.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const input = opts.stdin === "piped" ? child.stdin.getWriter() : null;
  const piped = () => {
    if (input === null) throw new Error('startCli: stdin was not "piped"');
    return input;
  };
  let out = "";
  let err = "";
  const collect = async (stream: ReadableStream<Uint8Array>, add: (s: string) => void) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) add(decoder.decode(chunk, { stream: true }));
  };
  const reading = Promise.all([
    collect(child.stdout, (s) => (out += s)),
    collect(child.stderr, (s) => (err += s)),
  ]);
  const status = child.status.then(async (s) => {
    await reading;
    return s;
  });
  let exited = false;
  status.then(() => (exited = true));
  return {
    pid: child.pid,
    stdout: () => out,
    stderr: () => err,
    waitForOutput: async (pattern, timeoutMs = 15_000) => {
      try {
        return await waitFor(() => out.match(pattern), { timeoutMs, what: `output ${pattern}` });
      } catch (e) {
        throw new Error(`${(e as Error).message}\n--- stdout:\n${out}\n--- stderr:\n${err}`);
      }
    },
    kill: (signal = "SIGTERM") => {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
    },
    writeStdin: (text) => piped().write(new TextEncoder().encode(text)),
    closeStdin: () => piped().close(),
    status,
    [Symbol.asyncDispose]: async () => {
      await input?.close().catch(() => {});
      if (!exited) {
        try {
          child.kill("SIGKILL");
        } catch {
          // exited meanwhile
        }
      }
      await status;
    },
  };
}

/**
 * True while a process with this pid exists and is not a zombie. (/proc/<pid>/stat would need
 * --allow-all, so the zombie check asks `ps`.)
 */
export function isRunning(pid: number): boolean {
  try {
    Deno.kill(pid, 0 as unknown as Deno.Signal);
  } catch {
    return false;
  }
  if (Deno.build.os === "windows") return true;
  try {
    const out = new Deno.Command("ps", { args: ["-o", "stat=", "-p", String(pid)] }).outputSync();
    const stat = new TextDecoder().decode(out.stdout).trim();
    return stat !== "" && !stat.startsWith("Z");
  } catch {
    return true; // no ps: trust kill(0)
  }
}
