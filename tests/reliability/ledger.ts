/**
 * The fault suite's bookkeeping: from what a user can see (the jobs' final records from
 * `list --json`, the lines the jobs themselves appended to a runs file, and the workers' log
 * files) it counts what the promise is about:
 *
 * - **lost**: a job that was acknowledged (enqueue exited 0) and is neither finished (completed or
 *   dead) nor still runnable (pending, failed awaiting its retry, or processing under a live
 *   worker); a job missing from the database altogether counts as lost (and as **vanished**).
 * - **duplicates**: a job whose command ran to its end more than once (its line appears more than
 *   once in the runs file), each with the deaths behind it: a worker process that died while
 *   holding the job (the supervisor's "exited/killed ... unexpectedly" line, or a death the test
 *   caused and recorded), a host cut off, a crash of the database server. A duplicate without a
 *   death behind each extra run is **unexplained**: the promise says it must not happen.
 * - **wrong outcomes**: a job whose command exited 0 (its line is in the runs file: the line is the
 *   command's last step) but ends `failed`/`dead`, unless a worker's death explains it (it died
 *   before it could report; a database server's crash does not excuse this); or a job that ends
 *   `completed` without ever having run.
 * - **stuck**: `processing` at the final look, after the test waited out the documented limits.
 * - **contradictions**: log lines that contradict each other or the recorded outcome: a worker says
 *   a result "will be dropped" and then records it; the last outcome a log line states for a job is
 *   not the job's final state.
 *
 * Log lines are matched by the patterns in {@link LOG}, the one place to adjust when the wording
 * of the workers' lines changes.
 */

/** A job as `list --json` / `show --json` print it (the fields the ledger reads). */
export interface JobRecord {
  id: string;
  state: string;
  attempts: number;
  error?: string | null;
  exit_code?: number | null;
  lease_owner?: string | null;
}

/** One log line: which log (host) it came from, when (ms), and the text after the timestamp. */
export interface LogLine {
  source: string;
  at: number;
  text: string;
}

/** `<iso> text` lines of a `--log` file → LogLine[] tagged with `source`. */
export function parseLogLines(source: string, text: string): LogLine[] {
  return text.split("\n").filter((l) => l.trim()).map((l) => {
    const space = l.indexOf(" ");
    return { source, at: Date.parse(l.slice(0, space)), text: l.slice(space + 1) };
  });
}

/** The workers' and supervisor's log lines the ledger understands (today's wording). */
export const LOG = {
  started: /^\[worker (\S+)\] started (\S+?)(?: \(attempt \d+\/\d+\))?: /,
  completed: /^\[worker (\S+)\] completed (\S+) \(/,
  failed: /^\[worker (\S+)\] failed (\S+) \(/,
  dead: /^\[worker (\S+)\] (\S+) moved to DLQ \(/,
  released: /^\[worker (\S+)\] released (\S+) back to pending/,
  rescued: /^\[maintenance\] rescued (\S+) from lost worker (\S+): (.*)$/,
  /** A supervisor gave back a claim its dead worker never started (attempt not counted). */
  releasedUnstarted: /^\[supervisor \S+\] released (\S+): worker \S+ \((\S+)\) claimed it and died/,
  dropped: /^\[worker (\S+)\] (\S+): result dropped \(/,
  lostLease: /^\[worker (\S+)\] lost the lease on (\S+) .*dropped/,
  workerDied:
    /^\[supervisor \S+\] worker (\S+) \(pid (\d+)\) (was killed by \S+|exited with code \d+) unexpectedly/,
  fatal: /^\[(?:worker \S+|supervisor \S+)\] (fatal|cannot start): (.*)$/,
};

/** A death the test caused or observed: the jobs it explains a rerun (or a failure) of. */
export interface Death {
  /** e.g. "worker 2 SIGKILLed by the test", "host A cut off", "server crash (-m immediate)". */
  what: string;
  jobs: Iterable<string>;
  /**
   * Whether it also excuses a job that exited 0 ending failed/dead (default true: the worker died
   * before it could report). False for a database server's crash: it may lose a write and cause a
   * rerun, but a worker that lived and reported its result must see it recorded.
   */
  excusesOutcome?: boolean;
}

export interface LedgerInput {
  /** Every job the test enqueued and saw acknowledged. */
  ids: readonly string[];
  /** Final records (`list --json`); a job missing here vanished. */
  records: readonly JobRecord[];
  /** The runs file: one `<id> <attempt>` line per run that reached its end. */
  runsText: string;
  /** Every log line of every host. */
  logs: readonly LogLine[];
  /** Deaths the test caused or knows of, beyond those the supervisors' lines tell. */
  deaths?: readonly Death[];
  /** Lease owners alive at the final look (a `processing` job of another owner is stuck). */
  liveOwners?: ReadonlySet<string>;
}

export interface Duplicate {
  id: string;
  runs: number;
  /** The deaths behind it; empty when none. */
  deaths: string[];
}

export interface Ledger {
  jobs: number;
  runs: number;
  states: Record<string, number>;
  lost: string[];
  vanished: string[];
  duplicates: Duplicate[];
  unexplainedDuplicates: Duplicate[];
  wrongOutcomes: { id: string; state: string; runs: number; error: string | null }[];
  stuck: string[];
  contradictions: string[];
  /** Deaths per job (from the logs and the test). */
  deathsByJob: Map<string, string[]>;
}

/** Runs per job from the runs file. */
export function countRuns(runsText: string): Map<string, number> {
  const runs = new Map<string, number>();
  for (const line of runsText.split("\n")) {
    const id = line.trim().split(/\s+/)[0];
    if (id) runs.set(id, (runs.get(id) ?? 0) + 1);
  }
  return runs;
}

/** Per log source, the job each worker index has started and not yet settled. */
function openRunsTracker() {
  const open = new Map<string, string>(); // `${source}#${index}` -> job id
  return {
    start: (l: LogLine, index: string, id: string) => open.set(`${l.source}#${index}`, id),
    close: (l: LogLine, index: string) => open.delete(`${l.source}#${index}`),
    holding: (l: LogLine, index: string) => open.get(`${l.source}#${index}`),
  };
}

/** Deaths the supervisors' lines tell: a worker that exited or was killed while it held a job. */
export function deathsFromLogs(logs: readonly LogLine[]): Death[] {
  const sorted = [...logs].sort((a, b) => a.at - b.at);
  const runs = openRunsTracker();
  const deaths: Death[] = [];
  for (const l of sorted) {
    let m;
    if ((m = LOG.started.exec(l.text))) runs.start(l, m[1], m[2]);
    else if (
      (m = LOG.completed.exec(l.text) ?? LOG.failed.exec(l.text) ?? LOG.dead.exec(l.text) ??
        LOG.released.exec(l.text) ?? LOG.dropped.exec(l.text))
    ) runs.close(l, m[1]);
    else if ((m = LOG.workerDied.exec(l.text))) {
      const held = runs.holding(l, m[1]);
      runs.close(l, m[1]);
      if (held) {
        deaths.push({ what: `worker ${m[1]} of ${l.source} ${m[3]} (pid ${m[2]})`, jobs: [held] });
      }
    }
  }
  return deaths;
}

/** The state a log line says a job ended its run in, or null when the line states no outcome. */
function outcomeOf(text: string): { id: string; state: string } | null {
  let m;
  if ((m = LOG.completed.exec(text))) return { id: m[2], state: "completed" };
  if ((m = LOG.dead.exec(text))) return { id: m[2], state: "dead" };
  if ((m = LOG.failed.exec(text))) return { id: m[2], state: "failed" };
  if ((m = LOG.released.exec(text))) return { id: m[2], state: "pending" };
  if ((m = LOG.releasedUnstarted.exec(text))) return { id: m[1], state: "pending" };
  if ((m = LOG.rescued.exec(text))) {
    return { id: m[1], state: /moved to DLQ/.test(m[3]) ? "dead" : "failed" };
  }
  return null;
}

/** Log lines that contradict each other or the final records. */
export function findContradictions(
  logs: readonly LogLine[],
  records: ReadonlyMap<string, JobRecord>,
): string[] {
  const sorted = [...logs].sort((a, b) => a.at - b.at);
  const found: string[] = [];
  const announcedDrop = new Map<string, LogLine>(); // `${source}#${index}#${id}` -> line
  const lastOutcome = new Map<string, { state: string; line: LogLine }>();
  const lastStart = new Map<string, LogLine>();
  for (const l of sorted) {
    let m;
    if ((m = LOG.lostLease.exec(l.text))) {
      announcedDrop.set(`${l.source}#${m[1]}#${m[2]}`, l);
      continue;
    }
    if ((m = LOG.started.exec(l.text))) {
      lastStart.set(m[2], l);
      announcedDrop.delete(`${l.source}#${m[1]}#${m[2]}`);
      continue;
    }
    if ((m = LOG.dropped.exec(l.text))) {
      announcedDrop.delete(`${l.source}#${m[1]}#${m[2]}`);
      continue;
    }
    const outcome = outcomeOf(l.text);
    if (!outcome) continue;
    const worker = /^\[worker (\S+)\]/.exec(l.text)?.[1];
    const key = `${l.source}#${worker}#${outcome.id}`;
    const drop = worker !== undefined && !LOG.rescued.test(l.text)
      ? announcedDrop.get(key)
      : undefined;
    if (drop) {
      found.push(
        `${outcome.id}: "${drop.text}" (${drop.source}) then "${l.text}" (${l.source})`,
      );
      announcedDrop.delete(key);
    }
    lastOutcome.set(outcome.id, { state: outcome.state, line: l });
  }
  for (const [id, { state, line }] of lastOutcome) {
    const record = records.get(id);
    if (!record) continue;
    const restarted = (lastStart.get(id)?.at ?? -Infinity) > line.at;
    if (restarted) continue; // a later run is under way or ended without a line yet
    if (record.state !== state) {
      found.push(
        `${id}: last log line "${line.text}" (${line.source}) says ${state}, recorded ${record.state}`,
      );
    }
  }
  return found;
}

export function ledger(input: LedgerInput): Ledger {
  const records = new Map(input.records.map((r) => [r.id, r]));
  const runs = countRuns(input.runsText);
  const deathsByJob = new Map<string, string[]>();
  const excused = new Set<string>();
  for (const d of [...deathsFromLogs(input.logs), ...(input.deaths ?? [])]) {
    for (const id of d.jobs) {
      deathsByJob.set(id, [...(deathsByJob.get(id) ?? []), d.what]);
      if (d.excusesOutcome !== false) excused.add(id);
    }
  }
  const states: Record<string, number> = {};
  const lost: string[] = [];
  const vanished: string[] = [];
  const stuck: string[] = [];
  const duplicates: Duplicate[] = [];
  const wrongOutcomes: Ledger["wrongOutcomes"] = [];
  let totalRuns = 0;
  for (const id of input.ids) {
    const r = records.get(id);
    const n = runs.get(id) ?? 0;
    totalRuns += n;
    const deaths = deathsByJob.get(id) ?? [];
    if (!r) {
      vanished.push(id);
      lost.push(id);
      continue;
    }
    states[r.state] = (states[r.state] ?? 0) + 1;
    if (r.state === "processing") {
      const owner = r.lease_owner ?? "";
      if (input.liveOwners && !input.liveOwners.has(owner)) lost.push(id);
      stuck.push(id);
    }
    if (n > 1) duplicates.push({ id, runs: n, deaths });
    if ((r.state === "dead" || r.state === "failed") && n > 0 && !excused.has(id)) {
      wrongOutcomes.push({ id, state: r.state, runs: n, error: r.error ?? null });
    }
    if (r.state === "completed" && n === 0) {
      wrongOutcomes.push({ id, state: r.state, runs: n, error: r.error ?? null });
    }
  }
  return {
    jobs: input.ids.length,
    runs: totalRuns,
    states,
    lost,
    vanished,
    duplicates,
    unexplainedDuplicates: duplicates.filter((d) => d.deaths.length < d.runs - 1),
    wrongOutcomes,
    stuck,
    contradictions: findContradictions(input.logs, records),
    deathsByJob,
  };
}

/** The ledger as figures for a `[reliability]` line (ids listed, capped). */
export function ledgerFigures(l: Ledger): Record<string, unknown> {
  const few = <T>(xs: T[]) => xs.slice(0, 10);
  return {
    jobs: l.jobs,
    runs: l.runs,
    states: l.states,
    lost: l.lost.length,
    vanished: l.vanished.length,
    duplicates: l.duplicates.length,
    duplicates_with_a_death: l.duplicates.length - l.unexplainedDuplicates.length,
    duplicates_without_a_death: l.unexplainedDuplicates.length,
    wrong_outcomes: l.wrongOutcomes.length,
    stuck: l.stuck.length,
    contradicting_log_lines: l.contradictions.length,
    ...(l.lost.length ? { lost_ids: few(l.lost) } : {}),
    ...(l.unexplainedDuplicates.length
      ? { duplicate_ids: few(l.unexplainedDuplicates.map((d) => `${d.id}x${d.runs}`)) }
      : {}),
    ...(l.wrongOutcomes.length
      ? { wrong: few(l.wrongOutcomes.map((w) => `${w.id}: ${w.state} (${w.error})`)) }
      : {}),
    ...(l.contradictions.length ? { contradictions: few(l.contradictions) } : {}),
  };
}

/**
 * The promise of issue 12 on a ledger: lost 0, wrong outcomes 0, every duplicate with a death
 * behind it, nothing stuck, no log line contradicting the outcome. Returns the broken parts
 * (empty when the promise held), so a test can report its figures before it fails.
 */
export function brokenPromises(l: Ledger): string[] {
  const broken: string[] = [];
  if (l.lost.length) broken.push(`${l.lost.length} lost: ${l.lost.slice(0, 5).join(", ")}`);
  if (l.wrongOutcomes.length) {
    broken.push(
      `${l.wrongOutcomes.length} wrong outcomes: ${
        l.wrongOutcomes.slice(0, 5).map((w) => `${w.id} ran ${w.runs}x, exited 0, ${w.state}`)
          .join("; ")
      }`,
    );
  }
  if (l.unexplainedDuplicates.length) {
    broken.push(
      `${l.unexplainedDuplicates.length} duplicates without a death behind them: ${
        l.unexplainedDuplicates.slice(0, 5).map((d) => `${d.id} ran ${d.runs}x`).join(", ")
      }`,
    );
  }
  if (l.stuck.length) broken.push(`${l.stuck.length} stuck processing: ${l.stuck.slice(0, 5)}`);
  if (l.contradictions.length) {
    broken.push(
      `${l.contradictions.length} contradicting log lines: ${
        l.contradictions.slice(0, 3).join("; ")
      }`,
    );
  }
  return broken;
}
