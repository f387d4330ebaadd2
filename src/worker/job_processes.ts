/**
 * The processes of one job, reached as a whole to terminate them (timeout, abort, leftovers):
 * its own process group ({@link ProcessGroup}), or every other member of the worker's session
 * ({@link SessionMembers}). Which one and why: executor.ts.
 */
const IS_WINDOWS = Deno.build.os === "windows";
const decoder = new TextDecoder();

/** How long a job's processes get between SIGTERM and SIGKILL, unless told otherwise. */
export const DEFAULT_GRACE_MS = 5000;
/** How often the group is checked for survivors while waiting out the grace period. */
const SURVIVOR_POLL_MS = 50;
/** A group signal that came before the `setsid` program's setsid() is sent again this much later. */
const GROUP_RETRY_MS = 20;
/**
 * Session mode: after a job whose pipes closed normally, look for leftovers in the session at most
 * this often. One `ps` costs ~10 ms of CPU with a hundred processes on the machine: once a second
 * is ~1% of a core, against ~2 ms per job for a no-op job. On a loaded machine a `ps` takes
 * longer (30-50 ms): the interval then grows to keep sweeping near 1% of the time, up to
 * {@link MAX_SWEEP_INTERVAL_MS} (see {@link sweepIntervalMs}).
 */
export const SWEEP_INTERVAL_MS = 1000;
/** The longest interval between two sweeps (see {@link sweepIntervalMs}). */
export const MAX_SWEEP_INTERVAL_MS = 5000;

/**
 * The interval before the next sweep: 100 times what the last one took (its `ps`, wall time: it
 * grows when the CPU is scarce), within {@link SWEEP_INTERVAL_MS} and
 * {@link MAX_SWEEP_INTERVAL_MS}. Busy workers with two-core machines spent 3-4% of all CPU in
 * these `ps` at 1 s when loaded.
 */
export function sweepIntervalMs(lastSweepMs: number): number {
  return Math.min(MAX_SWEEP_INTERVAL_MS, Math.max(SWEEP_INTERVAL_MS, 100 * lastSweepMs));
}

/** The processes of one job, terminated as a whole: SIGTERM now, SIGKILL after the grace period. */
export interface JobProcesses {
  terminating: boolean;
  killed: boolean;
  /** Set once the shell has been reaped. */
  exited: boolean;
  /**
   * Timeout, abort or `queuectl kill`: `signo` (default SIGTERM) to everything, SIGKILL to what
   * is left after the grace period.
   */
  terminate(signo?: Deno.Signal): void;
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
export class ProcessGroup implements JobProcesses {
  terminating = false;
  killed = false;
  exited = false;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly child: Deno.ChildProcess, readonly graceMs: number) {}

  terminate(signo: Deno.Signal = "SIGTERM"): void {
    if (this.terminating) return;
    this.terminating = true;
    if (IS_WINDOWS) {
      this.#killWindowsTree();
      return;
    }
    this.#signal(signo);
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

/**
 * When session mode last looked for leftovers (performance.now()). Starts at the process's start:
 * a process that leads its own session has no leftovers before it ran a job, so the first sweep
 * comes after the first {@link SWEEP_INTERVAL_MS}, not with the first job.
 */
let lastSweep = performance.now();
/** How long the last sweep's `ps` took (ms, wall). */
let lastSweepMs = 0;

/**
 * Session mode: the job is every process of the caller's session but the caller itself (and the
 * `ps` it runs to list them). Signals go to each member found by one `ps`; the shell, a direct
 * child, is also signalled at once so a timeout needs no `ps` to take effect.
 *
 * Every `ps` and signal is chained on #work, and settle() waits for it: a listing must never be
 * taken after the caller spawned its next job, or that job would be signalled too.
 */
export class SessionMembers implements JobProcesses {
  terminating = false;
  killed = false;
  exited = false;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;
  #work: Promise<void> = Promise.resolve();

  constructor(readonly child: Deno.ChildProcess, readonly graceMs: number) {}

  terminate(signo: Deno.Signal = "SIGTERM"): void {
    if (this.terminating) return;
    this.terminating = true;
    if (!this.exited) {
      try {
        this.child.kill(signo);
      } catch {
        // already gone
      }
    }
    this.#signalMembers(signo);
    this.#graceTimer = setTimeout(() => this.#kill(), this.graceMs);
  }

  async terminateLeftovers(pipesHeld: boolean): Promise<void> {
    if (!pipesHeld && performance.now() - lastSweep < sweepIntervalMs(lastSweepMs)) return;
    lastSweep = performance.now();
    const members = await sessionMembers();
    lastSweepMs = performance.now() - lastSweep;
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
 * What is left of a supervised worker's session once the worker is gone (killed by SIGKILL, the
 * OOM killer): its job's processes (session mode, executor.ts), which would otherwise run on
 * unsupervised while the job is rescued and started again elsewhere, two runs of one job at once.
 * SIGTERM to each, then SIGKILL to what is still alive after `graceMs`; resolves once none is left
 * (or after a last SIGKILL), with how many were found. 0: nothing was left, or `ps` cannot be used.
 * A session id cannot be taken by a new process while any member of the session lives (the kernel
 * keeps the number), so `sid` names the dead worker's session only.
 */
export async function terminateSession(sid: number, graceMs: number): Promise<number> {
  if (IS_WINDOWS) return 0;
  const found = await sessionMembers(sid);
  // A member whose pid is the session's id leads it: not the dead worker's session but a new one
  // (its pid was free again: the session had no member left).
  if (found === null || found.length === 0 || found.includes(sid)) return 0;
  signalEach(found, "SIGTERM");
  const deadline = performance.now() + graceMs;
  let left: number[] | null = found;
  while (performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, SURVIVOR_POLL_MS));
    left = await sessionMembers(sid);
    if (left !== null && left.length === 0) return found.length;
  }
  // A member may fork while it is signalled: SIGKILL until none is left (a few rounds at most).
  for (let round = 0; round < 5 && (left === null || left.length > 0); round++) {
    signalEach(left ?? found, "SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, SURVIVOR_POLL_MS));
    left = await sessionMembers(sid);
  }
  return found.length;
}

/**
 * The live processes (not zombies) of session `sid` (default: this process's own) other than this
 * process, from one `ps` (Deno only lets a fully privileged program read /proc/<pid>); null if
 * `ps` failed.
 */
async function sessionMembers(sid = Deno.pid): Promise<number[] | null> {
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
      const [pid, session, state = "Z"] = line.trim().split(/\s+/);
      const n = Number(pid);
      const member = Number(session) === sid && n !== me && n !== ps.pid;
      if (member && !state.startsWith("Z")) members.push(n);
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
