/**
 * A "host" of the fault suite: one `queuectl worker start` (a supervisor and its worker
 * processes) writing to its own `--log` file, optionally inside a network partition's namespace.
 * The test sees it from outside only: the process tree (`ps`), its log lines, the CLI.
 *
 * Disposal SIGKILLs, by pid, the supervisor and every process it started that is still running:
 * its descendants, and the members of its workers' sessions (jobs run in the worker's session or
 * a session of their own under it), recorded at each look and once more at the end. A job that
 * escaped into a session of its own (`setsid`) is the test's to clean up (it knows the pid).
 */
import { type CliProcess, startCli } from "../cli_process.ts";
import { type LogLine, parseLogLines } from "../../reliability/ledger.ts";
import { descendantsOf, killAll, processTable, type ProcInfo } from "./procs.ts";
import type { Partition } from "./partition.ts";

export interface QueueHost extends AsyncDisposable {
  readonly name: string;
  readonly proc: CliProcess;
  readonly logFile: string;
  readonly pid: number;
  /** The worker processes running now (`worker run` children of the supervisor). */
  workers(): ProcInfo[];
  /** The supervisor and everything under it that is still running. */
  processes(): ProcInfo[];
  /** True once the supervisor and every process it started are gone. */
  gone(): boolean;
  /** The log's lines so far, tagged with this host's name. */
  lines(): LogLine[];
  /** The raw log text so far. */
  logText(): string;
  /**
   * SIGTERM to the supervisor (a graceful stop) and waits up to `timeoutMs` for it to exit; true
   * when it did. What is left is killed by the disposal.
   */
  stop(timeoutMs?: number): Promise<boolean>;
}

export interface HostOptions {
  name: string;
  /** `--db` (a path or a postgres:// URL). */
  db: string;
  count: number;
  logFile: string;
  partition?: Partition;
  untilEmpty?: boolean;
  env?: Record<string, string>;
}

export function startHost(opts: HostOptions): QueueHost {
  const args = [
    "worker",
    "start",
    "--db",
    opts.db,
    "--count",
    String(opts.count),
    "--log",
    opts.logFile,
    ...(opts.untilEmpty ? ["--until-empty"] : []),
  ];
  const proc = startCli(args, { env: opts.env, via: opts.partition?.argv([]) });
  const seen = new Map<number, ProcInfo>();
  seen.set(proc.pid, {
    pid: proc.pid,
    ppid: 0,
    pgid: 0,
    sid: 0,
    stat: "",
    started: processTable().find((p) => p.pid === proc.pid)?.started ?? "",
    args: "",
  });
  const look = (): ProcInfo[] => {
    const table = processTable();
    const self = table.find((p) => p.pid === proc.pid);
    const under = descendantsOf(proc.pid, table);
    const sessions = new Set(under.filter((p) => /worker run/.test(p.args)).map((p) => p.pid));
    const members = table.filter((p) => sessions.has(p.sid) && !under.includes(p));
    const all = [...(self ? [self] : []), ...under, ...members]
      .filter((p) => !p.stat.startsWith("Z"));
    for (const p of all) seen.set(p.pid, p);
    return all;
  };
  const logText = () => {
    try {
      return Deno.readTextFileSync(opts.logFile);
    } catch {
      return "";
    }
  };
  return {
    name: opts.name,
    proc,
    logFile: opts.logFile,
    pid: proc.pid,
    workers: () => look().filter((p) => p.ppid === proc.pid && /worker run/.test(p.args)),
    processes: look,
    gone: () => look().length === 0,
    lines: () => parseLogLines(opts.name, logText()),
    logText,
    stop: async (timeoutMs = 20_000) => {
      proc.kill("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
      try {
        return await Promise.race([proc.status.then(() => true), late]);
      } finally {
        clearTimeout(timer);
      }
    },
    [Symbol.asyncDispose]: async () => {
      look();
      killAll([...seen.values()]);
      await proc[Symbol.asyncDispose]();
    },
  };
}
