/**
 * The queue as the fault suite drives it: only through the CLI (`config set`, `enqueue --file`,
 * `list --json`, `worker list --json`, `worker stop`), so that the tests hold whatever the code
 * behind the commands becomes.
 */
import { runCli, runCliJson } from "../run_cli.ts";
import type { JobRecord } from "../../reliability/ledger.ts";
import { shq } from "../../reliability/profile.ts";

/** `config set` for each entry; throws with the CLI's error when one is refused. */
export async function configure(
  db: string,
  entries: Record<string, string | number>,
): Promise<void> {
  for (const [key, value] of Object.entries(entries)) {
    const r = await runCli(["config", "set", key, String(value)], { db });
    if (r.code !== 0) throw new Error(`config set ${key} ${value}: ${r.stderr.trim()}`);
  }
}

/** `config set` that may be refused (a key the code does not know yet): the error, or null. */
export async function tryConfigure(db: string, key: string, value: string | number) {
  const r = await runCli(["config", "set", key, String(value)], { db });
  return r.code === 0 ? null : r.stderr.trim();
}

/**
 * The shell step a job ends with: appends `<id> <attempt>` to the runs file. Being the command's
 * last step, its line means the run reached its end and exited 0.
 */
export function recordRun(runsFile: string): string {
  return `printf '%s %s\\n' "$QUEUECTL_JOB_ID" "$QUEUECTL_ATTEMPT" >> ${shq(runsFile)}`;
}

export interface JobSpec {
  id: string;
  command: string;
  [field: string]: unknown;
}

/**
 * `enqueue --file --json` (all or nothing, one transaction); returns the ids the CLI acknowledged.
 */
export async function enqueueAll(db: string, specs: JobSpec[], file: string): Promise<string[]> {
  await Deno.writeTextFile(file, specs.map((s) => JSON.stringify(s)).join("\n") + "\n");
  const r = await runCli(["enqueue", "--file", file, "--json"], { db });
  if (r.code !== 0) throw new Error(`enqueue --file exited ${r.code}: ${r.stderr.trim()}`);
  const ids = JSON.parse(r.stdout) as string[];
  if (ids.length !== specs.length) throw new Error(`enqueued ${ids.length} of ${specs.length}`);
  return ids;
}

/** Every job's record (`list --json`, page by page by keyset: `--after` the last id). */
export async function jobRecords(db: string, env?: Record<string, string>): Promise<JobRecord[]> {
  const page = 10_000;
  const all: JobRecord[] = [];
  for (;;) {
    const after = all.length ? ["--after", all[all.length - 1].id] : [];
    const jobs = await runCliJson<JobRecord[]>(
      ["list", "--limit", String(page), ...after],
      { db, env },
    );
    all.push(...jobs);
    if (jobs.length < page) return all;
  }
}

/** Counts per state (`list --json`). */
export async function stateCounts(db: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const j of await jobRecords(db)) counts[j.state] = (counts[j.state] ?? 0) + 1;
  return counts;
}

export interface WorkerRow {
  id: string;
  pid: number;
  host: string;
  current_job: string | null;
  supervisor_id: string | null;
  alive: boolean;
}

/** `worker list --json`. */
export async function workerRows(db: string): Promise<WorkerRow[]> {
  return await runCliJson<WorkerRow[]>(["worker", "list"], { db });
}
