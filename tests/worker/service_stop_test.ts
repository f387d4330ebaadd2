/**
 * A service manager's stop: systemd's default KillMode=control-group sends SIGTERM to every
 * process of the service at once (supervisor, workers, the jobs' shells and their children). The
 * jobs so ended were not failures of their own: each goes back to pending with its attempt not
 * counted, and runs again at the next start. A job ended by SIGTERM outside a stop still fails.
 * See README, "Graceful stop".
 */
import assert from "node:assert/strict";
import { startCli } from "../helpers/cli_process.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { skipAllowedBecause } from "../helpers/services.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";
import { PID1_WARNING } from "../../src/worker/supervisor.ts";

interface RunJson {
  attempt: number;
  outcome: string;
  signal: string | null;
  exit_code: number | null;
  error: string | null;
}

interface JobJson {
  state: string;
  attempts: number;
  error: string | null;
  runs: RunJson[];
}

async function ok(args: string[], db: string): Promise<void> {
  const r = await runCli(args, { db });
  assert.equal(r.code, 0, `queuectl ${args.join(" ")}: ${r.stderr}`);
}

const show = (id: string, db: string) => runCliJson<JobJson>(["show", id], { db });

/** The processes below `pid`, deepest first (`ps`: Deno lets only --allow-all read /proc). */
async function descendants(pid: number): Promise<number[]> {
  const out = await new Deno.Command("ps", { args: ["-eo", "pid=,ppid="] }).output();
  const children = new Map<number, number[]>();
  for (const line of new TextDecoder().decode(out.stdout).trim().split("\n")) {
    const [child, parent] = line.trim().split(/\s+/).map(Number);
    children.set(parent, [...children.get(parent) ?? [], child]);
  }
  const below = (p: number): number[] => (children.get(p) ?? []).flatMap((c) => [...below(c), c]);
  return below(pid);
}

const skip = Deno.build.os !== "linux"; // ps -o ppid, POSIX signals to a whole tree

/**
 * Runs the job `deploy` (`first` on its first run, then a line in `out`) under `worker start`,
 * sends SIGTERM to the supervisor and everything below it, deepest first (the job ends before its
 * worker hears of the stop: the order that needs the worker to wait for the supervisor's order),
 * and checks the job went back to pending uncounted, then runs as attempt 1 at the next start.
 */
async function serviceStop(first: (marker: string) => string, ended: RegExp): Promise<void> {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const marker = dir.file("marker");
  const out = dir.file("out");
  // No retry at all: before, the stop sent the job to the DLQ.
  await ok(["config", "set", "max_retries", "0"], db);
  const command = `if [ -e '${marker}' ]; then echo "run $QUEUECTL_ATTEMPT" >> '${out}'; ` +
    `else ${first(marker)}; fi`;
  await ok(["enqueue", JSON.stringify({ id: "deploy", command })], db);

  await using sup = startCli(["worker", "start", "--count", "1"], { db });
  await sup.waitForOutput(/\] started deploy/);
  await waitFor(() => Deno.stat(marker).then(() => true, () => false), {
    what: "the job's shell to start",
  });
  const below = await waitFor(async () => {
    const pids = await descendants(sup.pid);
    return pids.length >= 3 ? pids : null; // the worker, the job's shell, its sleep
  }, { what: "the job's processes" });
  for (const pid of [...below, sup.pid]) {
    try {
      Deno.kill(pid, "SIGTERM");
    } catch {
      // gone already
    }
  }
  const status = await sup.status;
  assert.equal(status.code, 0, sup.stdout() + sup.stderr());
  assert.match(
    sup.stdout(),
    /released deploy back to pending \(SIGTERM reached it while the worker was stopping/,
    sup.stdout() + sup.stderr(),
  );

  const job = await show("deploy", db);
  assert.equal(job.state, "pending", "not failed, not in the DLQ");
  assert.equal(job.attempts, 0, "the attempt is not counted");
  assert.equal(job.runs.length, 1);
  assert.equal(job.runs[0].outcome, "interrupted");
  const { signal, exit_code, error } = job.runs[0];
  assert.match(`${error} (signal ${signal}, exit ${exit_code})`, ended);

  // The next start runs it, as its first counted attempt.
  const again = await runCli(["worker", "start", "--until-empty"], { db });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  const done = await show("deploy", db);
  assert.equal(done.state, "completed");
  assert.equal(done.attempts, 1);
  assert.equal(await Deno.readTextFile(out), "run 1\n");
}

Deno.test({
  name:
    "a service manager's stop (SIGTERM to supervisor, worker and job at once) returns the job to pending, attempt not counted; the next start runs it",
  ignore: skip,
  // The shell dies of its SIGTERM, or first sees its sleep die of one and exits 143.
  fn: () =>
    serviceStop(
      (marker) => `touch '${marker}'; sleep 60`,
      /^interrupted: (killed by SIGTERM|exit code 143) while the worker was stopping \(signal (SIGTERM, exit null|null, exit 143)\)$/,
    ),
});

Deno.test({
  name:
    "a service manager's stop that a job traps and answers with exit 143 also returns it to pending, uncounted",
  ignore: skip,
  fn: () =>
    serviceStop(
      // 143 whichever gets the SIGTERM first: the shell (its trap) or the sleep (`wait $!`).
      (marker) => `trap 'exit 143' TERM; touch '${marker}'; sleep 60 & wait $!; exit $?`,
      /^interrupted: exit code 143 while the worker was stopping \(signal null, exit 143\)$/,
    ),
});

Deno.test("a job ended by SIGTERM while its worker is not stopping still fails (attempt counted)", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  await ok(["config", "set", "max_retries", "0"], db);
  // The shell signals itself: it dies by SIGTERM, and nothing stops the worker.
  await ok(["enqueue", JSON.stringify({ id: "victim", command: "kill -TERM $$" })], db);
  const r = await runCli(["worker", "start", "--until-empty"], { db });
  assert.equal(r.code, 6, "one job reached the DLQ: " + r.stdout + r.stderr);
  assert.match(r.stdout, /victim moved to DLQ \(killed by SIGTERM, 1 attempt\)/);
  const job = await show("victim", db);
  assert.equal(job.state, "dead");
  assert.equal(job.attempts, 1);
  assert.equal(job.runs[0].outcome, "dead");
});

Deno.test({
  name:
    "a supervisor that is PID 1 (a container without an init) warns once that leftovers of jobs are not reaped",
  ignore: skip,
  fn: async () => {
    if (Deno.uid() !== 0 || !hasUnshare()) {
      const why = skipAllowedBecause("root");
      if (why === null) throw new Error("needs root and unshare for a PID namespace");
      console.log(`skipped: needs root and unshare for a PID namespace (${why})`);
      return;
    }
    await using dir = await tempDir();
    const db = dir.file("q.db");
    // The job leaves an orphan: what piles up as a zombie under a PID 1 supervisor.
    await ok(["enqueue", JSON.stringify({ id: "leaver", command: "(sleep 0.1 &); true" })], db);
    // exec: the supervisor itself is PID 1 of the new namespace.
    await using pid1 = startCli(["worker", "start", "--until-empty"], {
      db,
      via: ["unshare", "--pid", "--fork", "--mount-proc", "--", "sh", "-c", 'exec "$@"', "sh"],
    });
    const status = await pid1.status;
    assert.equal(status.code, 0, pid1.stdout() + pid1.stderr());
    const warnings = pid1.stdout().split("\n").filter((l) => l.includes(PID1_WARNING));
    assert.equal(warnings.length, 1, pid1.stdout());
    assert.match(pid1.stdout(), /completed leaver/);

    // Not PID 1: no warning.
    await ok(["enqueue", JSON.stringify({ id: "plain", command: "true" })], db);
    const plain = await runCli(["worker", "start", "--until-empty"], { db });
    assert.equal(plain.code, 0, plain.stdout + plain.stderr);
    assert.doesNotMatch(plain.stdout, /PID 1/);
  },
});

function hasUnshare(): boolean {
  try {
    return new Deno.Command("unshare", { args: ["--version"] }).outputSync().success;
  } catch {
    return false;
  }
}
