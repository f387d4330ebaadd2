/**
 * Which worker processes are still running, for the SQLite rescue rule (docs/architecture.md,
 * "Rescue rules"): every worker of an SQLite database runs on the database's host, so a job is
 * lost exactly when its worker's process is gone. A process is named by its pid and its start
 * time (field 22 of /proc/<pid>/stat, clock ticks since boot), so a pid reused by a later
 * process does not pass for the worker. Deno lets only a fully privileged program read /proc, so
 * the files are read by `cat` (one spawn for all pids), only when a lease expired or a record
 * went stale, and once per worker at registration.
 */
import { parseProcStat } from "../../core/liveness.ts";

const decoder = new TextDecoder();

/** The running processes among `pids` (zombies count as gone): pid → start time. */
export async function processStarts(pids: readonly number[]): Promise<Map<number, string> | null> {
  const out = new Map<number, string>();
  const wanted = [...new Set(pids)].filter((p) => Number.isInteger(p) && p > 0);
  if (Deno.build.os !== "linux") return null;
  if (wanted.length === 0) return out;
  let text: string;
  try {
    const r = await new Deno.Command("cat", {
      args: wanted.map((p) => `/proc/${p}/stat`),
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    text = decoder.decode(r.stdout);
  } catch {
    return null; // no `cat`, or not allowed to run it
  }
  for (const line of text.split("\n")) {
    const stat = parseProcStat(line);
    if (stat === null || stat.state === "Z" || stat.state === "X") continue;
    out.set(stat.pid, stat.startTime);
  }
  return out;
}

/** This host's name as workers record it (worker/host.ts: "localhost" when it cannot be read). */
export function localHost(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}
