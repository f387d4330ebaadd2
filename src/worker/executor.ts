/**
 * Runs one job's shell command as a subprocess and reports how it ended.
 *
 * - The command runs through the shell (`sh -c` on Unix, `cmd /d /s /c` on Windows), stdin closed,
 *   the inherited environment plus `env`.
 * - On Unix the job's processes must be reachable as a whole (timeout, abort, leftovers). Two ways,
 *   chosen by {@link ExecOptions.groupVia}:
 *   - own group (default): the shell starts in a new session, so the job and everything it starts
 *     share one process group whose id is the shell's pid. The session comes from the `setsid`
 *     program when it is on PATH (`setsid sh -c ...`: setsid(2), then exec, same pid), else from
 *     Deno's `detached` option. Both end in setsid(2), but `detached` makes Deno fork its whole
 *     address space instead of using posix_spawn, and the extra exec of `setsid` costs ~1.5 ms of
 *     CPU per job, more than the whole plain spawn of `sh -c true`.
 *   - `"session"`: the caller already leads a session of its own (the supervisor starts each
 *     worker with `detached`, once) and runs one job at a time, so every other process in that
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
 *   worker by keeping the output pipes open. Own group: checked after every job (one failing
 *   kill(2) when nothing is left). Session: checked at once when the pipes stay open after the
 *   shell exited, else at most once per {@link SWEEP_INTERVAL_MS} (a `ps` costs ~10 ms of CPU), so
 *   under a steady flow of jobs a leftover that holds no pipe is terminated after a later job,
 *   within about that interval, instead of right after its own. On Windows the process tree is
 *   killed with `taskkill /T /F /PID` (no grace: no SIGTERM for console programs there).
 * - stdout and stderr are streamed into tail buffers that keep only the last `outputLimit` bytes
 *   each, so memory stays bounded whatever the job prints.
 *
 * The hot path of session mode (no timeout, no abort, nothing left behind) is one plain spawn and
 * two pipe readers: no extra process, no timer, no signal.
 */
import { formatDuration } from "../core/duration.ts";

export interface ExecOptions {
  /** Run through the shell: `sh -c <command>` on Unix, `cmd /d /s /c "<command>"` on Windows. */
  command: string;
  /** Extra environment variables, added to the inherited environment. */
  env?: Record<string, string>;
  /** null/undefined/0 = no timeout. */
  timeoutMs?: number | null;
  /** After SIGTERM to the process group on timeout/abort, wait this long, then SIGKILL. Default 5000. */
  graceMs?: number;
  /** Keep only the last `outputLimit` bytes of stdout and of stderr each. */
  outputLimit: number;
  /** Abort = terminate the job's whole process group now (SIGTERM, then SIGKILL after graceMs). */
  signal?: AbortSignal;
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

const DEFAULT_GRACE_MS = 5000;
/** How often the group is checked for survivors while waiting out the grace period. */
const SURVIVOR_POLL_MS = 50;
/** After the shell exited, wait at least this long for the output pipes to close. */
const MIN_PIPE_WAIT_MS = 1000;
/** A group signal that came before the `setsid` program's setsid() is sent again this much later. */
const GROUP_RETRY_MS = 20;
/**
 * Session mode: after a job whose pipes closed normally, look for leftovers in the session at most
 * this often. One `ps` costs ~10 ms of CPU with a hundred processes on the machine: once a second
 * is ~1% of a core, against ~2 ms per job for a no-op job.
 */
export const SWEEP_INTERVAL_MS = 1000;
const IS_WINDOWS = Deno.build.os === "windows";
const decoder = new TextDecoder(); // non-fatal: invalid UTF-8 becomes U+FFFD
const EMPTY = new Uint8Array(0);

/** The argv the executor runs: ["sh","-c",cmd] or ["cmd","/d","/s","/c",cmd]; exported for tests. */
export function shellArgv(command: string, os: typeof Deno.build.os = Deno.build.os): string[] {
  return os === "windows" ? ["cmd", "/d", "/s", "/c", command] : ["sh", "-c", command];
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
 * be in that session. Asks `ps` once (Deno has no getsid); false on Windows or without a `ps` that
 * knows the `sid` column (macOS), which keeps the own-group default.
 */
export async function leadsOwnSession(): Promise<boolean> {
  if (IS_WINDOWS) return false;
  try {
    const ps = await new Deno.Command("ps", {
      args: ["-o", "sid=", "-p", String(Deno.pid)],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return ps.success && Number(decoder.decode(ps.stdout).trim()) === Deno.pid;
  } catch {
    return false;
  }
}

/** Runs `opts.command` and resolves when it has ended; never rejects. */
export async function execute(opts: ExecOptions): Promise<ExecResult> {
  const started = performance.now();
  const graceMs = Math.max(0, opts.graceMs ?? DEFAULT_GRACE_MS);
  const out = new TailBuffer(opts.outputLimit);
  const err = new TailBuffer(opts.outputLimit);
  const finish = (fields: Partial<ExecResult>): ExecResult => ({
    exit_code: null,
    signal: null,
    timed_out: false,
    aborted: false,
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
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      windowsRawArguments: IS_WINDOWS,
      env: opts.env,
      cwd: opts.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      detached,
    }).spawn();
  } catch (e) {
    return finish({ error: `could not start: ${oneLine(e)}` });
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
    ? setTimeout(() => {
      timedOut = true;
      group.terminate();
    }, timeoutMs)
    : undefined;
  const onAbort = () => {
    aborted = true;
    group.terminate();
  };
  opts.signal?.addEventListener("abort", onAbort, { once: true });

  let status: Deno.CommandStatus;
  try {
    status = await child.status;
    group.exited = true;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
  }

  // The shell is gone. Normally the pipes reach EOF together with it: one more turn of the event
  // loop (setImmediate, no timer) is enough.
  if (pipesOpen()) await Promise.race([pipesDone, new Promise((go) => setImmediate(go))]);
  // Anything still in its group was left behind: terminate it too.
  if (!group.terminating) await group.terminateLeftovers(pipesOpen());
  // A process that left the group (setsid) can keep the pipes open forever: then stop collecting
  // output after the grace period.
  if (pipesOpen()) {
    const gaveUp = await raceTimeout(pipesDone, Math.max(graceMs, MIN_PIPE_WAIT_MS));
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
  if (timedOut) error = `timed out after ${formatDuration(timeoutMs)} (${what} ${how})`;
  else if (aborted) error = `aborted (${what} ${how})`;
  else if (signal !== null) error = `killed by ${signal}`;
  else if (exitCode !== 0) error = `exit code ${exitCode}`;
  return finish({ exit_code: exitCode, signal, timed_out: timedOut, aborted, error });
}

/** The processes of one job, terminated as a whole: SIGTERM now, SIGKILL after the grace period. */
interface JobProcesses {
  terminating: boolean;
  killed: boolean;
  /** Set once the shell has been reaped. */
  exited: boolean;
  /** Timeout or abort: SIGTERM everything, SIGKILL it after the grace period. */
  terminate(): void;
  /**
   * After the shell exited by itself: terminate whatever it left behind. `pipesHeld`: the output
   * pipes are still open, so something was surely left behind.
   */
  terminateLeftovers(pipesHeld: boolean): Promise<void> | void;
  /** Resolves once nothing is alive any more (or it was SIGKILLed). */
  settle(): Promise<void>;
}

/**
 * The job's own process group (Unix: pgid = the shell's pid, thanks to setsid) or process tree
 * (Windows).
 */
class ProcessGroup implements JobProcesses {
  terminating = false;
  killed = false;
  exited = false;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly child: Deno.ChildProcess, readonly graceMs: number) {}

  terminate(): void {
    if (this.terminating) return;
    this.terminating = true;
    if (IS_WINDOWS) {
      this.#killWindowsTree();
      return;
    }
    this.#signal("SIGTERM");
    this.#graceTimer = setTimeout(() => this.#kill(), this.graceMs);
  }

  /** If the group still exists, terminate it (one failing kill(2) when it is empty). */
  terminateLeftovers(): void {
    // Windows: taskkill /T walks the tree from a live parent, and the parent is gone; spawning it
    // for every job would also cost too much. Pipes held open are still bounded by the caller.
    if (IS_WINDOWS) return;
    if (this.#signal("SIGTERM")) {
      this.terminating = true;
      this.#graceTimer = setTimeout(() => this.#kill(), this.graceMs);
    }
  }

  async settle(): Promise<void> {
    try {
      if (!this.terminating || IS_WINDOWS) return;
      while (!this.killed && await hasLiveMembers(this.child.pid)) {
        await new Promise((resolve) => setTimeout(resolve, SURVIVOR_POLL_MS));
      }
    } finally {
      if (this.#graceTimer !== undefined) clearTimeout(this.#graceTimer);
      clearTimeout(this.#retryTimer);
    }
  }

  #kill(): void {
    if (this.killed) return;
    this.killed = true;
    this.#signal("SIGKILL");
  }

  /** Signals the whole group; false if it no longer exists. */
  #signal(signo: Deno.Signal): boolean {
    try {
      Deno.kill(-this.child.pid, signo);
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        // ESRCH. Once the shell has exited, the group is empty. Before, the `setsid` program may
        // not have called setsid() yet (spawn returns at its exec): signal it directly then.
        if (this.exited) return false;
      }
      // ESRCH before setsid(), or unexpected (EPERM from a member that changed uid...): at least
      // reach the shell itself. The `setsid` program may have run setsid() and exec'd the shell,
      // which may have forked, between the two kills: signal the group once more a little later.
      try {
        this.child.kill(signo);
        if (!this.exited) {
          clearTimeout(this.#retryTimer);
          this.#retryTimer = setTimeout(() => {
            try {
              Deno.kill(-this.child.pid, signo);
            } catch {
              // no group: the program died before its setsid()
            }
          }, GROUP_RETRY_MS);
        }
        return true;
      } catch {
        return false;
      }
    }
  }

  #killWindowsTree(): void {
    this.killed = true;
    const pid = String(this.child.pid);
    new Deno.Command("taskkill", {
      args: ["/T", "/F", "/PID", pid],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output().then(
      (s) => s.success || this.#killShellOnly(),
      () => this.#killShellOnly(),
    );
  }

  #killShellOnly(): void {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** When session mode last looked for leftovers (performance.now()). */
let lastSweep = -Infinity;

/**
 * Session mode: the job is every process of the caller's session but the caller itself (and the
 * `ps` it runs to list them). Signals go to each member found by one `ps`; the shell, a direct
 * child, is also signalled at once so a timeout needs no `ps` to take effect.
 *
 * Every `ps` and signal is chained on #work, and settle() waits for it: a listing must never be
 * taken after the caller spawned its next job, or that job would be signalled too.
 */
class SessionMembers implements JobProcesses {
  terminating = false;
  killed = false;
  exited = false;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;
  #work: Promise<void> = Promise.resolve();

  constructor(readonly child: Deno.ChildProcess, readonly graceMs: number) {}

  terminate(): void {
    if (this.terminating) return;
    this.terminating = true;
    if (!this.exited) {
      try {
        this.child.kill("SIGTERM");
      } catch {
        // already gone
      }
    }
    this.#signalMembers("SIGTERM");
    this.#graceTimer = setTimeout(() => this.#kill(), this.graceMs);
  }

  async terminateLeftovers(pipesHeld: boolean): Promise<void> {
    if (!pipesHeld && performance.now() - lastSweep < SWEEP_INTERVAL_MS) return;
    lastSweep = performance.now();
    const members = await sessionMembers();
    if (members === null || members.length === 0) return;
    this.terminating = true;
    signalEach(members, "SIGTERM");
    this.#graceTimer = setTimeout(() => this.#kill(), this.graceMs);
  }

  async settle(): Promise<void> {
    try {
      await this.#work;
      if (!this.terminating) return;
      for (;;) {
        const members = await sessionMembers();
        // Without a usable `ps`, the grace period's SIGKILL ends the wait.
        if (members !== null && members.length === 0) break;
        if (this.killed) break;
        await new Promise((resolve) => setTimeout(resolve, SURVIVOR_POLL_MS));
      }
      await this.#work;
    } finally {
      if (this.#graceTimer !== undefined) clearTimeout(this.#graceTimer);
    }
  }

  #kill(): void {
    if (this.killed) return;
    this.killed = true;
    if (!this.exited) {
      try {
        this.child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    this.#signalMembers("SIGKILL");
  }

  #signalMembers(signo: Deno.Signal): void {
    this.#work = this.#work.then(async () => {
      const members = await sessionMembers();
      if (members) signalEach(members, signo);
      lastSweep = performance.now();
    });
  }
}

function signalEach(pids: readonly number[], signo: Deno.Signal): void {
  for (const pid of pids) {
    try {
      Deno.kill(pid, signo);
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * The live processes (not zombies) of this process's session other than itself, from one `ps`
 * (Deno only lets a fully privileged program read /proc/<pid>); null if `ps` failed.
 */
async function sessionMembers(): Promise<number[] | null> {
  try {
    const ps = new Deno.Command("ps", {
      args: ["-A", "-o", "pid=,sid=,stat="],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const { success, stdout } = await ps.output();
    if (!success) return null;
    const me = Deno.pid;
    const members: number[] = [];
    for (const line of decoder.decode(stdout).split("\n")) {
      const [pid, sid, state = "Z"] = line.trim().split(/\s+/);
      const n = Number(pid);
      if (Number(sid) === me && n !== me && n !== ps.pid && !state.startsWith("Z")) members.push(n);
    }
    return members;
  } catch {
    return null;
  }
}

/**
 * True while the group has a member that is not a zombie. `kill(-pgid, 0)` alone counts zombies,
 * and orphaned zombies can linger where PID 1 reaps slowly or never (containers without an init),
 * so a group that still exists is confirmed with `ps` (Deno only lets a fully privileged program
 * read /proc/<pid>). Only used while a termination is under way, never on the hot path. Without a
 * usable `ps` the group counts as alive, and the grace period's SIGKILL ends the wait.
 */
async function hasLiveMembers(pgid: number): Promise<boolean> {
  try {
    Deno.kill(-pgid, 0);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
  }
  try {
    const ps = await new Deno.Command("ps", {
      args: ["-A", "-o", "pgid=,stat="],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!ps.success) return true;
    for (const line of decoder.decode(ps.stdout).split("\n")) {
      const [group, state] = line.trim().split(/\s+/);
      if (Number(group) === pgid && state !== undefined && !state.startsWith("Z")) return true;
    }
    return false;
  } catch {
    return true;
  }
}

/** Keeps the last `limit` bytes pushed into it, in the chunks they arrived in. */
class TailBuffer {
  dropped = false;
  /** Set by drain() once the pipe reached its end (or broke, or was cancelled). */
  closed = false;
  #chunks: Uint8Array[] = [];
  #head = 0; // index of the oldest chunk still kept
  #size = 0; // bytes in chunks[head..]
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = Math.max(0, Math.floor(limit));
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const limit = this.#limit;
    if (chunk.length >= limit) {
      // This chunk alone fills the buffer: keep its tail (a copy, not a view of a big buffer).
      if (chunk.length > limit || this.#size > 0) this.dropped = true;
      this.#chunks = limit === 0 ? [] : [chunk.length === limit ? chunk : chunk.slice(-limit)];
      this.#head = 0;
      this.#size = limit;
      return;
    }
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    // Drop whole chunks while the rest still holds `limit` bytes; the excess is cut in bytes().
    while (this.#size - this.#chunks[this.#head].length >= limit) {
      this.#size -= this.#chunks[this.#head].length;
      this.#chunks[this.#head] = EMPTY; // let the dropped chunk be collected now
      this.#head++;
      this.dropped = true;
    }
    if (this.#head > 64 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }

  bytes(): Uint8Array {
    const kept = this.#chunks.length - this.#head;
    if (kept === 0) return new Uint8Array(0);
    let all: Uint8Array;
    if (kept === 1) {
      all = this.#chunks[this.#head];
    } else {
      all = new Uint8Array(this.#size);
      let at = 0;
      for (let i = this.#head; i < this.#chunks.length; i++) {
        all.set(this.#chunks[i], at);
        at += this.#chunks[i].length;
      }
    }
    if (all.length > this.#limit) {
      this.dropped = true;
      all = all.subarray(all.length - this.#limit);
    }
    return all;
  }

  /**
   * The kept bytes as text. When the head was cut, up to 3 leading UTF-8 continuation bytes (the
   * rest of a character cut in half) are skipped rather than shown as U+FFFD. NUL becomes U+FFFD:
   * PostgreSQL rejects \u0000 in TEXT.
   */
  text(): string {
    if (this.#size === 0) return "";
    let bytes = this.bytes();
    if (this.dropped) {
      let skip = 0;
      while (skip < 3 && skip < bytes.length && (bytes[skip] & 0xc0) === 0x80) skip++;
      if (skip > 0) bytes = bytes.subarray(skip);
    }
    const s = decoder.decode(bytes);
    return s.includes("\0") ? s.replaceAll("\0", "\uFFFD") : s;
  }
}

/** Size of one pipe read. */
const READ_SIZE = 65536;
/** Read buffers of finished jobs, for the next ones (at most a few are kept). */
const spareBuffers: ArrayBuffer[] = [];

/**
 * Reads a pipe to its end into `into`. BYOB reads into a buffer taken from spareBuffers and given
 * back at the end: the default reader would allocate a fresh 64 KiB buffer for every read, at
 * least two per job even when it prints nothing. Only the bytes read are copied into the tail.
 */
async function drain(reader: ReadableStreamBYOBReader, into: TailBuffer): Promise<void> {
  let buffer = spareBuffers.pop() ?? new ArrayBuffer(READ_SIZE);
  try {
    for (;;) {
      // The read transfers `buffer` and hands its memory back as `value.buffer`.
      const { value, done } = await reader.read(new Uint8Array(buffer));
      if (value === undefined) return;
      buffer = value.buffer as ArrayBuffer;
      if (value.length > 0) into.push(value.slice());
      if (done) return;
    }
  } catch {
    // cancelled or the pipe broke: keep what we have
  } finally {
    into.closed = true;
    // A transferred-away buffer is detached (byteLength 0): not reusable.
    if (buffer.byteLength === READ_SIZE && spareBuffers.length < 8) spareBuffers.push(buffer);
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
