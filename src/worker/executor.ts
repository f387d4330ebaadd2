/**
 * Runs one job's shell command as a subprocess and reports how it ended.
 *
 * - The command runs through the shell (`sh -c` on Unix, `cmd /d /s /c` on Windows), stdin closed,
 *   in `cwd`, with the inherited environment minus queuectl's credentials
 *   ({@link HIDDEN_VARIABLES}) plus `env`.
 * - On Unix the job's processes must be reachable as a whole (timeout, abort, leftovers). Two ways,
 *   chosen by {@link ExecOptions.groupVia}:
 *   - own group (default): the shell starts in a new session, so the job and everything it starts
 *     share one process group whose id is the shell's pid. The session comes from the `setsid`
 *     program when it is on PATH (`setsid sh -c ...`: setsid(2), then exec, same pid), else from
 *     Deno's `detached` option. Both end in setsid(2), but `detached` makes Deno fork its whole
 *     address space instead of using posix_spawn, and the extra exec of `setsid` costs ~1.5 ms of
 *     CPU per job, more than the whole plain spawn of `sh -c true`.
 *   - `"session"`: the caller already leads a session of its own (the supervisor starts each
 *     worker with `detached`, once; the worker reads its session id from /proc on Linux, through
 *     one `cat`) and runs one job at a time, so every other process in that
 *     session is this job's, or a leftover of an earlier one. The job is spawned plainly (the
 *     posix_spawn fast path) and the session's members are found with one `ps` when they must be
 *     signalled: only on a timeout, an abort, or a leftover sweep. Trade-off: the job shares the
 *     caller's process group, so a signal the job sends to its group (`kill 0`) reaches the
 *     worker too. Supervised workers ignore SIGTERM, SIGINT and SIGHUP (runner.ts); another
 *     signal sent that way (`kill -9 0`) ends the worker, which its supervisor restarts, and the
 *     job is rescued after its lease like any job of a crashed worker.
 * - A timeout or an abort sends SIGTERM to the whole group, then SIGKILL after `graceMs` if
 *   anything in it is still alive. When the shell exits by itself, whatever it left behind
 *   (`sleep 100 &`) is terminated the same way, so a job can neither leak processes nor hold the
 *   worker by keeping the output pipes open (past {@link DRAIN_MS}: a process that left the group
 *   is not found, and is not waited for). Own group: checked after every job (one failing
 *   kill(2) when nothing is left). Session: checked at once when the pipes stay open after the
 *   shell exited, else at most once per {@link SWEEP_INTERVAL_MS} (a `ps` costs ~10 ms of CPU;
 *   up to {@link MAX_SWEEP_INTERVAL_MS} on a loaded machine, where a `ps` costs more: see
 *   `sweepIntervalMs`), so under a steady flow of jobs a leftover that holds no pipe is terminated
 *   after a later job, within about that interval, instead of right after its own. On Windows the process tree is
 *   killed with `taskkill /T /F /PID` (no grace: no SIGTERM for console programs there).
 * - stdout and stderr are streamed into tail buffers that keep only the last `outputLimit` bytes
 *   each, so memory stays bounded whatever the job prints.
 *
 * The hot path of session mode (no timeout, no abort, nothing left behind) is one plain spawn and
 * two pipe readers: no extra process, no timer, no signal.
 */
import { setLongTimeout } from "../core/clock.ts";
import { parseProcStat } from "../core/liveness.ts";
import { formatDuration } from "../core/duration.ts";
import { quote } from "../core/text.ts";
import { hostname } from "./host.ts";
import {
  DEFAULT_GRACE_MS,
  type JobProcesses,
  ProcessGroup,
  SessionMembers,
} from "./job_processes.ts";
import { drain, TailBuffer } from "./output_tail.ts";

export interface ExecOptions {
  /** Run through the shell: `sh -c <command>` on Unix, `cmd /d /s /c "<command>"` on Windows. */
  command: string;
  /**
   * Variables added to the environment inherited from this process, which never includes
   * {@link HIDDEN_VARIABLES} (a name in `env` is given its value there all the same).
   */
  env?: Record<string, string>;
  /** null/undefined/0 = no timeout. */
  timeoutMs?: number | null;
  /** After SIGTERM to the process group on timeout/abort, wait this long, then SIGKILL. Default 5000. */
  graceMs?: number;
  /** Keep only the last `outputLimit` bytes of stdout and of stderr each. */
  outputLimit: number;
  /** Told of each chunk of output as it arrives (live output: worker/output_tail.ts LiveOutput). */
  onOutput?: (stream: "stdout" | "stderr", chunk: Uint8Array) => void;
  /**
   * Called right before the spawn, once nothing but the spawn itself can stop the job from
   * starting (not when it ends before that: aborted, killed).
   */
  beforeSpawn?: () => void;
  /** Abort = terminate the job's whole process group now (SIGTERM, then SIGKILL after graceMs). */
  signal?: AbortSignal;
  /**
   * `queuectl kill`: when aborted, its `reason` (a signal name, e.g. "SIGTERM") goes to the whole
   * process group, then SIGKILL after `graceMs` to what is left; the run ends as `killed`.
   */
  kill?: AbortSignal;
  /** Working directory of the job; defaults to the worker's. */
  cwd?: string;
  /**
   * How the job's processes are kept together on Unix (ignored on Windows).
   * `"setsid-program"`: the shell gets its own session via `setsid sh -c ...` (needs the `setsid`
   * program, util-linux or busybox). `"detached"`: the same via Deno's `detached` option (works
   * everywhere, slower spawn). `"session"`: no group of its own; only for a caller that leads its
   * own session and runs one job at a time (see {@link leadsOwnSession}): the job is every other
   * process of that session. Default: `"setsid-program"` when `setsid` is on PATH, else
   * `"detached"`.
   */
  groupVia?: "setsid-program" | "detached" | "session";
}

export interface ExecResult {
  /** null when killed by a signal or could not start. */
  exit_code: number | null;
  /** e.g. "SIGTERM" if the shell was killed by a signal. */
  signal: string | null;
  timed_out: boolean;
  aborted: boolean;
  /** The signal `queuectl kill` asked for, when the run was killed that way; else null. */
  killed: string | null;
  /**
   * One line saying why the job failed ("exit code 127", "timed out after 5s (process group
   * terminated)", "killed by SIGKILL", "could not start: ..."); null exactly when the job succeeded.
   */
  error: string | null;
  /** Decoded as UTF-8 (invalid bytes and NUL become U+FFFD): storable as SQLite/PostgreSQL TEXT. */
  stdout: string;
  stderr: string;
  /** True if bytes were dropped to respect outputLimit. */
  truncated: { stdout: boolean; stderr: boolean };
  duration_ms: number;
}

/**
 * After the shell exited (by itself, or terminated on a timeout or an abort), output is read for at
 * most this long. The outcome is the shell's: a process that left the job's process group or
 * session (`setsid cmd &`, a daemon) and keeps the pipes open must not hold the outcome, nor the
 * worker, any longer (README, "Timeouts and escaped processes").
 */
export const DRAIN_MS = 500;
const IS_WINDOWS = Deno.build.os === "windows";
const decoder = new TextDecoder(); // non-fatal: invalid UTF-8 becomes U+FFFD

/** The argv the executor runs: ["sh","-c",cmd] or ["cmd","/d","/s","/c",cmd]; exported for tests. */
export function shellArgv(command: string, os: typeof Deno.build.os = Deno.build.os): string[] {
  return os === "windows" ? ["cmd", "/d", "/s", "/c", command] : ["sh", "-c", command];
}

/**
 * Variables of the worker's environment a job never sees: queuectl's credentials (the database
 * URL, which may hold a password; the password variable of the PostgreSQL driver; the dashboard
 * token) and `INIT_CWD` (the directory a `deno task` was started from: it would make a
 * `queuectl enqueue` inside the job default to the worker's directory instead of the job's).
 */
export const HIDDEN_VARIABLES: readonly string[] = [
  "QUEUECTL_DB",
  "QUEUECTL_DASHBOARD_TOKEN",
  "PGPASSWORD",
  "INIT_CWD",
];

let inherited: { env: Record<string, string>; hiding: boolean } | null = null;

/**
 * What every job inherits: this process's environment without {@link HIDDEN_VARIABLES} (names
 * compared case-insensitively on Windows), read once (a worker's environment does not change).
 * `hiding`: some hidden variable is set here, so a job's environment must be built from `env`
 * alone (clearEnv); otherwise a job inherits the environment as is, plus its own variables, as
 * cheaply as before.
 */
export function inheritedEnvironment(): { env: Record<string, string>; hiding: boolean } {
  if (inherited !== null) return inherited;
  let all: Record<string, string> = {};
  try {
    all = Deno.env.toObject();
  } catch {
    // no permission to read the environment: nothing to hide that we could see
  }
  const norm = (name: string) => IS_WINDOWS ? name.toUpperCase() : name;
  const hidden = new Set(HIDDEN_VARIABLES.map(norm));
  const env = Object.fromEntries(Object.entries(all).filter(([name]) => !hidden.has(norm(name))));
  inherited = { env, hiding: Object.keys(env).length < Object.keys(all).length };
  return inherited;
}

const programPaths = new Map<string, string | null>();

/**
 * Absolute path of a program on PATH, looked up once per process; null when there is none (or
 * PATH cannot be read). Spawning `sh` by its path spares Deno a PATH search (a failing stat per
 * directory) on every job.
 */
function programPath(name: string): string | null {
  let path = programPaths.get(name);
  if (path !== undefined) return path;
  path = null;
  try {
    for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
      if (!dir.startsWith("/")) continue;
      try {
        if (Deno.statSync(`${dir}/${name}`).isFile) {
          path = `${dir}/${name}`;
          break;
        }
      } catch {
        // not in this directory
      }
    }
  } catch {
    // no permission to read PATH
  }
  programPaths.set(name, path);
  return path;
}

/**
 * True when this process leads its own session (pid = session id: it was started with setsid(2),
 * e.g. Deno's `detached`), so `groupVia: "session"` is safe: nothing but its own descendants can
 * be in that session. Deno has no getsid, and lets only a program with every permission read
 * /proc (so not a worker, which runs with the explicit flags of deno.json): on Linux the
 * session id is field 6 of `/proc/<pid>/stat` as printed by `cat` (1.1 ms, where `ps -o sid=`,
 * which this asked before, took 3.8 ms of CPU on every worker's start, before its first claim);
 * elsewhere `ps` answers. False on Windows or without a `ps` that knows the `sid` column (macOS),
 * which keeps the own-group default.
 */
export async function leadsOwnSession(): Promise<boolean> {
  if (IS_WINDOWS) return false;
  const [cmd, args] = Deno.build.os === "linux"
    ? ["cat", [`/proc/${Deno.pid}/stat`]]
    : ["ps", ["-o", "sid=", "-p", String(Deno.pid)]];
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return false;
    const text = decoder.decode(out.stdout);
    const sid = cmd === "cat" ? parseProcStat(text)?.session : Number(text.trim());
    return sid === Deno.pid;
  } catch {
    return false;
  }
}

/** Runs `opts.command` and resolves when it has ended; never rejects. */
export async function execute(opts: ExecOptions): Promise<ExecResult> {
  const started = performance.now();
  const graceMs = Math.max(0, opts.graceMs ?? DEFAULT_GRACE_MS);
  const onOutput = opts.onOutput;
  const out = new TailBuffer(opts.outputLimit, onOutput && ((c) => onOutput("stdout", c)));
  const err = new TailBuffer(opts.outputLimit, onOutput && ((c) => onOutput("stderr", c)));
  const finish = (fields: Partial<ExecResult>): ExecResult => ({
    exit_code: null,
    signal: null,
    timed_out: false,
    aborted: false,
    killed: null,
    error: null,
    stdout: out.text(),
    stderr: err.text(),
    truncated: { stdout: out.dropped, stderr: err.dropped },
    ...fields,
    duration_ms: Math.round(performance.now() - started),
  });

  if (opts.signal?.aborted) {
    return finish({ aborted: true, error: "aborted before start" });
  }
  if (opts.kill?.aborted) {
    const sig = String(opts.kill.reason);
    return finish({ killed: sig, error: `killed by ${sig} via queuectl kill (before it started)` });
  }

  let argv = shellArgv(opts.command);
  let detached = false;
  const inSession = !IS_WINDOWS && opts.groupVia === "session";
  if (IS_WINDOWS) {
    // cmd.exe parses its own command line: pass `/d /s /c "<command>"` verbatim, as Node does for
    // `shell: true`; with /s cmd strips exactly the outer quotes and runs the rest as typed.
    argv = [...argv.slice(0, -1), `"${opts.command}"`];
  } else {
    argv[0] = programPath(argv[0]) ?? argv[0];
    if (!inSession) {
      // A new session, so the shell leads a process group we can signal as a whole. (On Windows,
      // `detached` would mean DETACHED_PROCESS: new console windows for child programs.)
      const setsid = opts.groupVia === "detached" ? null : programPath("setsid");
      if (setsid === null) detached = true;
      else argv = [setsid, ...argv];
    }
  }
  const base = inheritedEnvironment();
  let child: Deno.ChildProcess;
  try {
    const command = new Deno.Command(argv[0], {
      args: argv.slice(1),
      windowsRawArguments: IS_WINDOWS,
      clearEnv: base.hiding,
      env: base.hiding ? { ...base.env, ...opts.env } : opts.env,
      cwd: opts.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      detached,
    });
    opts.beforeSpawn?.();
    child = command.spawn();
  } catch (e) {
    return finish({ error: `could not start: ${await cwdProblem(opts.cwd) ?? oneLine(e)}` });
  }

  const group: JobProcesses = inSession
    ? new SessionMembers(child, graceMs)
    : new ProcessGroup(child, graceMs);
  const outReader = child.stdout.getReader({ mode: "byob" });
  const errReader = child.stderr.getReader({ mode: "byob" });
  const outDone = drain(outReader, out);
  const errDone = drain(errReader, err);
  const pipesDone = Promise.all([outDone, errDone]);
  const pipesOpen = () => !out.closed || !err.closed;

  let timedOut = false;
  let aborted = false;
  const timeoutMs = opts.timeoutMs ?? 0;
  const timer = timeoutMs > 0
    ? setLongTimeout(() => {
      timedOut = true;
      group.terminate();
    }, timeoutMs)
    : undefined;
  const onAbort = () => {
    aborted = true;
    group.terminate();
  };
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  let killedWith: string | null = null;
  const onKill = () => {
    killedWith = String(opts.kill?.reason ?? "SIGTERM");
    group.terminate(killedWith as Deno.Signal);
  };
  opts.kill?.addEventListener("abort", onKill, { once: true });

  let status: Deno.CommandStatus;
  try {
    status = await child.status;
    group.exited = true;
  } finally {
    timer?.clear();
    opts.signal?.removeEventListener("abort", onAbort);
    opts.kill?.removeEventListener("abort", onKill);
  }

  // The shell is gone. Normally the pipes reach EOF together with it: one more turn of the event
  // loop (setImmediate, no timer) is enough.
  if (pipesOpen()) await Promise.race([pipesDone, new Promise((go) => setImmediate(go))]);
  // Anything still in its group was left behind: terminate it too.
  if (!group.terminating) await group.terminateLeftovers(pipesOpen());
  // A process that left the group (setsid) can keep the pipes open forever: then stop collecting
  // output after a short drain. (Leftovers still in the group are being terminated meanwhile;
  // settle() below waits for them, at most the grace period.)
  if (pipesOpen()) {
    const gaveUp = await raceTimeout(pipesDone, DRAIN_MS);
    if (gaveUp) {
      await Promise.allSettled([outReader.cancel(), errReader.cancel()]);
    }
  }
  await group.settle();

  const signal = status.signal ?? null;
  const exitCode = signal === null ? status.code : null;
  const how = IS_WINDOWS
    ? "killed"
    : group.killed
    ? `killed with SIGKILL after ${formatDuration(graceMs)} grace`
    : "terminated";
  const what = IS_WINDOWS ? "process tree" : "process group";
  let error: string | null = null;
  if (killedWith !== null) {
    error = `killed by ${killedWith} via queuectl kill${
      group.killed && killedWith !== "SIGKILL"
        ? ` (SIGKILL after ${formatDuration(graceMs)} grace)`
        : ""
    }`;
  } else if (timedOut) error = `timed out after ${formatDuration(timeoutMs)} (${what} ${how})`;
  else if (aborted) error = `aborted (${what} ${how})`;
  else if (signal !== null) error = `killed by ${signal}`;
  else if (exitCode !== 0) error = `exit code ${exitCode}`;
  return finish({
    exit_code: exitCode,
    signal,
    timed_out: timedOut,
    aborted,
    killed: killedWith,
    error,
  });
}

/**
 * Why a job cannot start in `cwd` on this host (missing, not a directory), or null when the
 * directory looks fine: asked only after a spawn failed, so the hot path never stats it.
 */
async function cwdProblem(cwd: string | undefined): Promise<string | null> {
  if (cwd === undefined) return null;
  const where = `working directory ${quote(cwd)}`;
  try {
    const info = await Deno.stat(cwd);
    if (!info.isDirectory) return `${where} is not a directory on host ${hostname()}`;
    return null;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return `${where} does not exist on host ${hostname()}`;
    return `${where} cannot be used on host ${hostname()}: ${oneLine(e)}`;
  }
}

/** Waits for `p` at most `ms`; true if the time ran out first. */
async function raceTimeout(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  try {
    return await Promise.race([p.then(() => false), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

function oneLine(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.split("\n")[0].trim() || String(e);
}
