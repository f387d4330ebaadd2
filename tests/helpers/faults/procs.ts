/**
 * Processes seen from outside, for the fault suite: the process table (`ps`, since reading /proc
 * directly needs --allow-all), freezing and thawing with SIGSTOP/SIGCONT, the locks a process
 * holds (/proc/locks, read through `cat` for the same reason) and cleanup by pid.
 */

export interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** ps state letters: R running, S sleeping, T stopped, Z zombie, ... */
  stat: string;
  /** Start time in clock ticks since boot: with the pid it names one process for good. */
  started: string;
  args: string;
}

const decoder = new TextDecoder();

function run(cmd: string, args: string[]): { code: number; out: string; err: string } {
  const r = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  return { code: r.code, out: decoder.decode(r.stdout), err: decoder.decode(r.stderr) };
}

/** A process's arguments, from /proc/<pid>/cmdline (through `cat`); [] when it is gone. */
export function argvOf(pid: number): string[] {
  const { code, out } = run("cat", [`/proc/${pid}/cmdline`]);
  if (code !== 0) return [];
  const args = out.split("\0");
  if (args.at(-1) === "") args.pop();
  return args;
}

/** Every process on the machine (one `ps`). */
export function processTable(): ProcInfo[] {
  const { out } = run("ps", ["-e", "-o", "pid=,ppid=,pgid=,sid=,stat=,lstart=,args="]);
  const rows: ProcInfo[] = [];
  for (const line of out.split("\n")) {
    // lstart is five words: "Mon Nov 27 10:00:00 2026".
    const m = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+\s+\S+\s+\S+\s+\S+\s+\S+)\s+(.*)$/
      .exec(line);
    if (!m) continue;
    rows.push({
      pid: Number(m[1]),
      ppid: Number(m[2]),
      pgid: Number(m[3]),
      sid: Number(m[4]),
      stat: m[5],
      started: m[6],
      args: m[7],
    });
  }
  return rows;
}

/** One process, or null when it does not exist (zombies included: they are still listed). */
export function procInfo(pid: number): ProcInfo | null {
  const { out } = run("ps", ["-o", "pid=,ppid=,pgid=,sid=,stat=,lstart=,args=", "-p", String(pid)]);
  const m = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+\s+\S+\s+\S+\s+\S+\s+\S+)\s+(.*)$/
    .exec(out.trim());
  if (!m) return null;
  return {
    pid: Number(m[1]),
    ppid: Number(m[2]),
    pgid: Number(m[3]),
    sid: Number(m[4]),
    stat: m[5],
    started: m[6],
    args: m[7],
  };
}

/** True while the process exists and is not a zombie. */
export function alive(pid: number): boolean {
  const p = procInfo(pid);
  return p !== null && !p.stat.startsWith("Z");
}

/** True while the process is stopped (SIGSTOP). */
export function stopped(pid: number): boolean {
  return procInfo(pid)?.stat.startsWith("T") ?? false;
}

/** Direct children of `pid`. */
export function childrenOf(pid: number, table = processTable()): ProcInfo[] {
  return table.filter((p) => p.ppid === pid);
}

/** Every descendant of `pid` that is still its descendant (not those that were reparented). */
export function descendantsOf(pid: number, table = processTable()): ProcInfo[] {
  const out: ProcInfo[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const child of table) {
      if (child.ppid === parent) {
        out.push(child);
        queue.push(child.pid);
      }
    }
  }
  return out;
}

/** Sends a signal; false when the process is gone. */
export function signal(pid: number, sig: Deno.Signal): boolean {
  try {
    Deno.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** SIGSTOP: the process is frozen (no instruction runs, its locks stay held) until thawed. */
export function freeze(pid: number): boolean {
  return signal(pid, "SIGSTOP");
}

/** SIGCONT. */
export function thaw(pid: number): boolean {
  return signal(pid, "SIGCONT");
}

/**
 * SIGKILLs each process that is still the one recorded (same pid and start time), thawing it
 * first is unnecessary (SIGKILL reaches a stopped process). For cleanup after a test, pass or fail.
 */
export function killAll(procs: readonly { pid: number; started?: string }[]): number {
  let n = 0;
  const table = new Map(processTable().map((p) => [p.pid, p]));
  for (const p of procs) {
    const now = table.get(p.pid);
    if (!now || (p.started !== undefined && now.started !== p.started)) continue;
    if (signal(p.pid, "SIGKILL")) n++;
  }
  return n;
}

/** One line of /proc/locks. */
export interface LockInfo {
  kind: "FLOCK" | "POSIX" | "OFDLCK" | string;
  mode: "READ" | "WRITE" | string;
  pid: number;
  inode: number;
  start: number;
  /** "EOF" or a byte offset. */
  end: string;
}

/** The kernel's table of file locks. */
export function fileLocks(): LockInfo[] {
  const { out } = run("cat", ["/proc/locks"]);
  const locks: LockInfo[] = [];
  for (const line of out.split("\n")) {
    // "1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF" (blocked waiters are "1: -> FLOCK ...")
    const m = /^\d+:\s+(\S+)\s+\S+\s+(\S+)\s+(\d+)\s+[0-9a-f]+:[0-9a-f]+:(\d+)\s+(\d+)\s+(\S+)/
      .exec(line);
    if (!m) continue;
    locks.push({
      kind: m[1],
      mode: m[2],
      pid: Number(m[3]),
      inode: Number(m[4]),
      start: Number(m[5]),
      end: m[6],
    });
  }
  return locks;
}

/** True when `pid` holds an flock(2) on `path` (e.g. the workers' `<db>-lock`). */
export function holdsFlock(pid: number, path: string, locks = fileLocks()): boolean {
  let ino: number | null;
  try {
    ino = Deno.statSync(path).ino;
  } catch {
    return false;
  }
  return locks.some((l) => l.kind === "FLOCK" && l.pid === pid && l.inode === ino);
}

/**
 * True when `pid` holds SQLite's WAL write lock on `db`: a POSIX write lock on byte 120 of the
 * `<db>-shm` file (WAL_WRITE_LOCK, see SQLite's os_unix.c: the locks start at byte 120).
 */
export function holdsSqliteWriteLock(pid: number, db: string, locks = fileLocks()): boolean {
  let ino: number | null;
  try {
    ino = Deno.statSync(`${db}-shm`).ino;
  } catch {
    return false;
  }
  return locks.some((l) =>
    l.kind === "POSIX" && l.mode === "WRITE" && l.pid === pid && l.inode === ino &&
    l.start === 120
  );
}

/** How many processes are waiting (blocked) for an flock on `path` right now. */
export function flockWaiters(path: string): number {
  let ino: number | null;
  try {
    ino = Deno.statSync(path).ino;
  } catch {
    return 0;
  }
  const { out } = run("cat", ["/proc/locks"]);
  let n = 0;
  for (const line of out.split("\n")) {
    const m = /^\d+:\s+->\s+FLOCK\s+\S+\s+\S+\s+\d+\s+[0-9a-f]+:[0-9a-f]+:(\d+)\s/.exec(line);
    if (m && Number(m[1]) === ino) n++;
  }
  return n;
}

/**
 * SIGSTOPs whichever of `pids` takes an flock on `path` first, the moment /proc/locks shows it
 * (a shell loop of builtins, no fork per look, so a lock held for a fraction of a millisecond is
 * caught). Returns the pid stopped, or null after `timeoutMs`.
 */
export async function freezeFlockHolder(
  path: string,
  pids: readonly number[],
  timeoutMs: number,
): Promise<number | null> {
  const ino = Deno.statSync(path).ino;
  const script = `
    while :; do
      while read -r n kind adv mode pid dev rest; do
        if [ "$kind" = FLOCK ] && [ "\${dev##*:}" = "$1" ]; then
          case " $2 " in *" $pid "*) kill -STOP "$pid" && echo "$pid" && exit 0;; esac
        fi
      done < /proc/locks
    done`;
  const child = new Deno.Command("sh", {
    args: ["-c", script, "sh", String(ino), pids.join(" ")],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const out = await child.output();
    const pid = Number(decoder.decode(out.stdout).trim());
    return out.success && pid > 0 ? pid : null;
  } finally {
    clearTimeout(timer);
  }
}
