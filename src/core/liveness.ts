/**
 * Liveness of worker and supervisor records, pure: what a heartbeat's age says about the process
 * that wrote it. Heartbeat times are epoch milliseconds; the lease is in seconds (config `lease`).
 */

/** A record is alive while its heartbeat is at most one lease old. */
export function isAlive(heartbeatAt: number, now: number, leaseS: number): boolean {
  return now - heartbeatAt <= leaseS * 1000;
}

/**
 * Heartbeats older than this time belong to dead processes (two leases, at least 5 s): their
 * records are pruned by the maintenance service and removed by `worker stop`.
 */
export function staleBefore(now: number, leaseS: number): number {
  return now - Math.max(2 * leaseS * 1000, 5000);
}

/** How often a supervisor records its liveness (a worker does every lease/3). */
export const SUPERVISOR_HEARTBEAT_MS = 1000;

/**
 * True when a record was refreshed within a few heartbeats: its pid is the process that wrote it,
 * not a recycled one, and may be signalled. `supervisor`: a supervisor's record (heartbeat every
 * second) rather than a worker's (every lease/3).
 */
export function recentlyAlive(
  heartbeatAt: number,
  now: number,
  leaseS: number,
  supervisor: boolean,
): boolean {
  const beat = supervisor ? SUPERVISOR_HEARTBEAT_MS : leaseS * 1000 / 3;
  return now - heartbeatAt <= 3 * beat + 1000;
}

/**
 * How long one database call of a worker or supervisor may go unanswered before it counts as
 * failed (Store.setCallTimeout): the lease, within 2-10 s. A worker renews every lease/3, so a cut
 * shows within about one lease; a slow but live server gets at least 2 s.
 */
export function storeCallLimitMs(leaseS: number): number {
  return Math.min(Math.max(leaseS * 1000, 2000), 10_000);
}

/** What a `/proc/<pid>/stat` line (Linux) says about a process, as far as queuectl asks. */
export interface ProcStat {
  pid: number;
  /** One letter: R, S, D, Z (zombie), X (dead), T (stopped)... */
  state: string;
  /** The session id (field 6). */
  session: number;
  /** The start time in clock ticks since boot (field 22), as text: with the pid, a process's name. */
  startTime: string;
}

/**
 * Parses one `/proc/<pid>/stat` line, or null when it is not one: "<pid> (<comm>) <state> <ppid>
 * <pgrp> <session> ...", where comm may hold spaces and parentheses itself, so the fields are
 * those after the last ")".
 */
export function parseProcStat(line: string): ProcStat | null {
  const close = line.lastIndexOf(")");
  if (close < 0) return null;
  const pid = Number(line.slice(0, line.indexOf(" ")));
  const fields = line.slice(close + 2).split(" ");
  const startTime = fields[19];
  if (!Number.isInteger(pid) || startTime === undefined) return null;
  return { pid, state: fields[0], session: Number(fields[3]), startTime };
}
