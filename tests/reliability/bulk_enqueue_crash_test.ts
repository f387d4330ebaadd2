/**
 * Crash during bulk enqueue: `enqueue --file` of a large file (every fourth round `--file -` from
 * a pipe) is SIGKILLed at random moments (while the CLI starts, parses, or writes its transaction). Each time, either every job of that
 * file is in the database or none is; the database passes `PRAGMA integrity_check`, and the
 * per-state counters agree with the jobs table.
 */
import assert from "node:assert/strict";
import { cliArgv, runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { integrityCheck, query, randomInt, report, size } from "./profile.ts";

const JOBS = size(5_000, 100_000);
const KILLS = size(5, 20);

/** The file of round `r`: ids r<r>-0 ... r<r>-<JOBS-1>; JSON Lines or a JSON array. */
function jobFile(round: number): string {
  const jobs = Array.from(
    { length: JOBS },
    (_, i) => JSON.stringify({ id: `r${round}-${i}`, command: `echo ${round} ${i}` }),
  );
  return round % 2 === 0 ? jobs.join("\n") + "\n" : `[${jobs.join(",\n")}]`;
}

/** Jobs of round `r` in the database (range scan on the primary key). */
function jobsOfRound(db: string, round: number): number {
  const [row] = query<{ n: number }>(
    db,
    "SELECT count(*) AS n FROM jobs WHERE id >= ? AND id < ?",
    `r${round}-`,
    `r${round}.`, // "." sorts right after "-"
  );
  return row.n;
}

/** The per-state counters kept by the store match a real count. */
function assertCountersAgree(db: string): void {
  const counted = Object.fromEntries(
    query<{ state: string; n: number }>(db, "SELECT state, count(*) AS n FROM jobs GROUP BY state")
      .map((r) => [r.state, r.n]),
  );
  for (
    const { state, n } of query<{ state: string; n: number }>(
      db,
      "SELECT state, sum(n) AS n FROM job_counts GROUP BY state",
    )
  ) {
    assert.equal(n, counted[state] ?? 0, `job_counts for ${state}`);
  }
}

Deno.test("crash during bulk enqueue: SIGKILL at random moments leaves all of a file's jobs or none", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const init = await runCli(["status"], { db });
  assert.equal(init.code, 0, init.stderr);

  /** Starts `enqueue --file` for round `r`; kills it after `killAfterMs` unless it ended first. */
  async function enqueueRound(round: number, killAfterMs: number | null) {
    const file = dir.file(`round-${round}.jobs`);
    await Deno.writeTextFile(file, jobFile(round));
    const started = performance.now();
    // Every fourth round from a pipe: read whole into a temporary file first (app/job_spool.ts).
    const piped = round % 4 === 2;
    const child = new Deno.Command(Deno.execPath(), {
      args: cliArgv(["enqueue", "--file", piped ? "-" : file, "--db", db]),
      // A killed enqueue leaves its temporary files: in the test's directory, removed after.
      env: { NO_COLOR: "1", TMPDIR: dir.path },
      stdin: piped ? "piped" : "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const feeding = piped
      ? ReadableStream.from([new TextEncoder().encode(await Deno.readTextFile(file))])
        .pipeTo(child.stdin).catch(() => {}) // killed before it read everything
      : Promise.resolve();
    // Pacing, not waiting for a condition: the kill lands at a chosen random moment.
    const timer = killAfterMs === null ? undefined : setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // it finished first
      }
    }, killAfterMs);
    // Round 0 only: note when the write transaction starts filling the WAL (measurement).
    let walGrewAt: number | null = null;
    const watching = killAfterMs === null
      ? (async () => {
        const initial = walSize();
        let exited = false;
        child.status.then(() => (exited = true));
        while (!exited && walGrewAt === null) {
          if (walSize() > initial) walGrewAt = performance.now() - started;
          await new Promise((r) => setTimeout(r, 5));
        }
      })()
      : Promise.resolve();
    const out = await child.output();
    await feeding;
    await watching;
    clearTimeout(timer);
    await Deno.remove(file);
    return {
      killed: out.signal === "SIGKILL",
      code: out.code,
      stderr: new TextDecoder().decode(out.stderr),
      ms: performance.now() - started,
      walGrewAt,
    };
  }

  function walSize(): number {
    try {
      return Deno.statSync(`${db}-wal`).size;
    } catch {
      return 0;
    }
  }

  // Round 0 runs to the end: it must enqueue everything, and it times a whole run.
  const calibration = await enqueueRound(0, null);
  assert.equal(calibration.code, 0, calibration.stderr);
  assert.equal(jobsOfRound(db, 0), JOBS);
  // The length of a whole run; shortened whenever a run ends before its kill (load varies).
  let runMs = calibration.ms;
  // From here to the end of the run, a kill lands inside the write transaction (or its commit).
  const writeFromPct = calibration.walGrewAt === null
    ? null
    : Math.round((calibration.walGrewAt / runMs) * 100);

  let kills = 0;
  let all = 1; // round 0
  let none = 0;
  let finishedBeforeKill = 0;
  const killMoments: number[] = [];
  for (let round = 1; kills < KILLS; round++) {
    assert.ok(round <= KILLS * 5, "too many rounds finished before their kill");
    // Every other kill aims at the write window, the rest anywhere in the run.
    const from = kills % 2 === 1 && writeFromPct !== null ? (runMs * writeFromPct) / 100 : 0;
    const killAfter = randomInt(Math.round(from), Math.round(runMs * 0.95));
    const r = await enqueueRound(round, killAfter);
    const found = jobsOfRound(db, round);
    assert.ok(
      found === 0 || found === JOBS,
      `round ${round} killed after ${killAfter} ms: ${found} of ${JOBS} jobs in the database`,
    );
    assert.equal(integrityCheck(db), "ok", `integrity after round ${round}`);
    assertCountersAgree(db);
    if (r.killed) {
      kills++;
      killMoments.push(Math.min(100, Math.round((killAfter / runMs) * 100)));
      if (found === 0) none++;
      else all++;
    } else {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(found, JOBS);
      finishedBeforeKill++;
      runMs = Math.min(runMs, r.ms);
      all++;
    }
  }
  // The database is still usable by the CLI after all those crashes.
  const status = await runCli(["status", "--json"], { db });
  assert.equal(status.code, 0, status.stderr);
  assert.equal(JSON.parse(status.stdout).counts.pending, all * JOBS);
  report("crash during bulk enqueue", {
    jobs_per_file: JOBS,
    kills,
    files_all: all,
    files_none: none,
    partial: 0,
    finished_before_kill: finishedBeforeKill,
    run_ms: Math.round(runMs),
    kill_moments_pct_of_run: killMoments.sort((a, b) => a - b),
    writes_start_at_pct_of_run: writeFromPct,
    kills_during_writes: writeFromPct === null
      ? null
      : killMoments.filter((p) => p >= writeFromPct).length,
    integrity: "ok",
  });
});
