/**
 * The runner in-process, on a real SQLite store and real subprocesses. Time in the database comes
 * from a ManualClock, so backoff and lease expiry are checked exactly, without waiting for them.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../../src/core/clock.ts";
import { StorageError } from "../../src/core/errors.ts";
import type { JobToInsert } from "../../src/core/job.ts";
import { openSqliteStore } from "../../src/store/sqlite/mod.ts";
import type { Store } from "../../src/store/store.ts";
import { Runner, type RunnerOptions } from "../../src/worker/runner.ts";
import { isTransient } from "../../src/core/errors.ts";
import { failureReason } from "../../src/worker/describe.ts";
import { readStartMarker } from "../../src/worker/start_marker.ts";
import { rescueExpiredLeases } from "../../src/worker/maintenance.ts";
import { DEFAULT_CONFIG } from "../../src/core/config.ts";
import { tempStore } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

function job(id: string, command: string, extra: Partial<JobToInsert> = {}): JobToInsert {
  return {
    id,
    command,
    queue: "default",
    priority: 0,
    max_retries: 3,
    timeout: null,
    run_at: 0,
    ...extra,
  };
}

function runnerFor(
  store: Store,
  clock: ManualClock,
  extra: Partial<RunnerOptions> = {},
): { runner: Runner; lines: string[] } {
  const lines: string[] = [];
  const runner = new Runner({ store, clock, log: (l) => lines.push(l), graceMs: 200, ...extra });
  return { runner, lines };
}

Deno.test("runOne completes a job, stores its output and logs a completed line", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({ jobs: [job("job1", "echo Hello; echo oops >&2")], now: clock.now() });
  const { runner, lines } = runnerFor(t.store, clock, { index: 2 });
  assert.equal(await runner.runOne(), true);
  const done = await t.store.getJob({ id: "job1" });
  assert.equal(done?.state, "completed");
  assert.equal(done?.exit_code, 0);
  assert.equal(done?.attempts, 1);
  assert.equal(done?.lease_owner, null);
  assert.deepEqual(await t.store.getJobOutput({ id: "job1" }), {
    stdout: "Hello\n",
    stderr: "oops\n",
  });
  assert.equal(lines[0], "[worker 2] started job1: echo Hello; echo oops >&2");
  assert.match(lines[1], /^\[worker 2\] completed job1 \(\d+\.\d\ds\)$/);
  assert.equal(await runner.runOne(), false, "nothing left to claim");
});

Deno.test("a silent run replaces the output of an earlier run (no stale output)", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.setConfig({ key: "backoff_base", value: "1" });
  await t.store.insertJobs({
    jobs: [job("j", 'if [ "$QUEUECTL_ATTEMPT" = 1 ]; then echo first; exit 1; fi')],
    now: clock.now(),
  });
  const { runner } = runnerFor(t.store, clock);
  await runner.runOne();
  assert.equal((await t.store.getJobOutput({ id: "j" }))?.stdout, "first\n");
  clock.advance(1000);
  await runner.runOne();
  assert.equal((await t.store.getJob({ id: "j" }))?.state, "completed");
  assert.deepEqual(await t.store.getJobOutput({ id: "j" }), { stdout: "", stderr: "" });
});

Deno.test("the job sees QUEUECTL_JOB_ID, QUEUECTL_ATTEMPT and QUEUECTL_QUEUE", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({
    jobs: [job("env-1", 'echo "$QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT $QUEUECTL_QUEUE"', {
      queue: "mail",
    })],
    now: clock.now(),
  });
  const { runner } = runnerFor(t.store, clock);
  await runner.runOne();
  assert.equal((await t.store.getJobOutput({ id: "env-1" }))?.stdout, "env-1 1 mail\n");
});

Deno.test("a failing job is retried after backoff_base ^ n seconds, then moves to the DLQ", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.setConfig({ key: "backoff_base", value: "3" });
  await t.store.insertJobs({
    jobs: [job("flaky", "exit 7", { max_retries: 2 })],
    now: clock.now(),
  });
  const { runner, lines } = runnerFor(t.store, clock);

  assert.equal(await runner.runOne(), true);
  let j = (await t.store.getJob({ id: "flaky" }))!;
  assert.equal(j.state, "failed");
  assert.equal(j.exit_code, 7);
  assert.equal(j.error, "exit code 7");
  assert.equal(j.run_at - clock.now(), 3000, "retry 1 waits 3^1 s");
  assert.equal(lines.at(-1), "[worker 1] failed flaky (exit 7), retry 1/2 in 3s");

  clock.advance(2999);
  assert.equal(await runner.runOne(), false, "not due yet");
  clock.advance(1);
  assert.equal(await runner.runOne(), true);
  j = (await t.store.getJob({ id: "flaky" }))!;
  assert.equal(j.state, "failed");
  assert.equal(j.run_at - clock.now(), 9000, "retry 2 waits 3^2 s");
  assert.match(lines.at(-2)!, /started flaky \(attempt 2\/3\): exit 7/);

  clock.advance(9000);
  assert.equal(await runner.runOne(), true);
  j = (await t.store.getJob({ id: "flaky" }))!;
  assert.equal(j.state, "dead");
  assert.equal(j.attempts, 3, "1 + max_retries runs");
  assert.equal(lines.at(-1), "[worker 1] flaky moved to DLQ (exit 7, 3 attempts)");
  clock.advance(3_600_000);
  assert.equal(await runner.runOne(), false, "a dead job is never claimed");
});

Deno.test("a command that cannot be found fails with exit 127 like any failure", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({ jobs: [job("nf", "idontexist123", { max_retries: 0 })], now: 0 });
  const { runner, lines } = runnerFor(t.store, clock);
  await runner.runOne();
  const j = (await t.store.getJob({ id: "nf" }))!;
  assert.equal(j.state, "dead");
  assert.equal(j.exit_code, 127);
  assert.match((await t.store.getJobOutput({ id: "nf" }))!.stderr, /idontexist123/);
  assert.equal(lines.at(-1), "[worker 1] nf moved to DLQ (exit 127, 1 attempt)");
});

Deno.test("a job's own timeout terminates it and counts as a failure", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({ jobs: [job("slow", "sleep 30", { timeout: 0.3 })], now: 0 });
  const { runner, lines } = runnerFor(t.store, clock);
  const started = performance.now();
  await runner.runOne();
  assert.ok(performance.now() - started < 10_000, "the job did not run its full 30 s");
  const j = (await t.store.getJob({ id: "slow" }))!;
  assert.equal(j.state, "failed");
  assert.equal(j.exit_code, null);
  assert.match(j.error ?? "", /^timed out after 300ms/);
  assert.match(lines.at(-1)!, /failed slow \(timed out after 300ms\), retry 1\/3 in 2s/);
});

Deno.test("config job_timeout applies to jobs without their own timeout", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.setConfig({ key: "job_timeout", value: "0.3" });
  await t.store.insertJobs({ jobs: [job("slow", "sleep 30", { max_retries: 0 })], now: 0 });
  const { runner } = runnerFor(t.store, clock);
  await runner.runOne();
  const j = (await t.store.getJob({ id: "slow" }))!;
  assert.equal(j.state, "dead");
  assert.match(j.error ?? "", /timed out/);
});

Deno.test("an exit 0 reported after a rescue took the job over completes it while no other run started", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  const gate = t.dir.file("gate");
  await t.store.setConfig({ key: "lease", value: "5" });
  await t.store.insertJobs({
    jobs: [job("slow", `while [ ! -e '${gate}' ]; do sleep 0.02; done`)],
    now: clock.now(),
  });
  const { runner, lines } = runnerFor(t.store, clock, { id: "stale" });
  const running = runner.runOne();
  await waitFor(() => lines.some((l) => l.includes("started slow")), { what: "job start" });
  clock.advance(5_000);
  assert.equal(
    (await rescueExpiredLeases(t.store, clock.now(), DEFAULT_CONFIG)).length,
    1,
    "the maintenance service rescues the expired lease",
  );
  await runner.heartbeat();
  assert.ok(lines.some((l) => /lost the lease on slow .*recorded only if it completes/.test(l)));
  await Deno.writeTextFile(gate, "");
  await running;
  // No other run had started: the run's exit 0 is what is recorded, the rescue's run rewritten.
  const j = (await t.store.getJob({ id: "slow" }))!;
  assert.deepEqual([j.state, j.exit_code, j.error], ["completed", 0, null]);
  const runs = await t.store.listRuns({ jobId: "slow", outputChars: 10 });
  assert.deepEqual(runs.map((r) => [r.outcome, r.worker]), [["completed", "stale"]]);
  assert.match(lines.at(-1)!, /completed slow \(.*recorded late: the job had been taken over/);
});

Deno.test("abort terminates the running job and releases it without using a retry", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({ jobs: [job("long", "sleep 30")], now: clock.now() });
  const { runner, lines } = runnerFor(t.store, clock);
  const running = runner.runOne();
  await waitFor(() => lines.some((l) => l.includes("started long")), { what: "job start" });
  runner.requestStop("graceful", "test");
  runner.requestStop("abort", "test again");
  await running;
  const j = (await t.store.getJob({ id: "long" }))!;
  assert.equal(j.state, "pending");
  assert.equal(j.attempts, 0);
  assert.equal(j.lease_owner, null);
  assert.match(lines.at(-1)!, /released long back to pending/);
});

Deno.test("a settle claims the next job; a stop before it starts gives it back unstarted", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({ jobs: [job("j1", "true"), job("j2", "true")], now: clock.now() });
  const { runner, lines } = runnerFor(t.store, clock);
  assert.equal(await runner.runOne(), true);
  assert.equal((await t.store.getJob({ id: "j1" }))?.state, "completed");
  const ahead = (await t.store.getJob({ id: "j2" }))!;
  assert.equal(ahead.state, "processing", "claimed by j1's settle");
  assert.equal(ahead.lease_owner, runner.id);
  runner.requestStop("graceful", "test");
  assert.equal(await runner.runOne(), false);
  const back = (await t.store.getJob({ id: "j2" }))!;
  assert.equal(back.state, "pending");
  assert.equal(back.attempts, 0, "not counted: it never ran");
  assert.equal(back.lease_owner, null);
  assert.ok(
    !lines.some((l) => l.includes("j2")),
    `never reported as started:\n${lines.join("\n")}`,
  );
});

Deno.test("a job claimed ahead runs next, without another claim", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({ jobs: [job("j1", "true"), job("j2", "echo two")], now: clock.now() });
  const { runner, lines } = runnerFor(t.store, clock);
  assert.equal(await runner.runOne(), true);
  // Another job arrives with a higher priority: j2 is already in hand and runs first.
  await t.store.insertJobs({ jobs: [job("urgent", "true", { priority: 9 })], now: clock.now() });
  assert.equal(await runner.runOne(), true);
  assert.equal((await t.store.getJob({ id: "j2" }))?.state, "completed");
  assert.equal((await t.store.getJobOutput({ id: "j2" }))?.stdout, "two\n");
  assert.match(lines.at(-2)!, /started j2: echo two/);
  assert.equal((await t.store.getJob({ id: "urgent" }))?.lease_owner, runner.id);
  assert.equal(await runner.runOne(), true);
  assert.equal(await runner.runOne(), false);
  assert.equal((await t.store.getJob({ id: "urgent" }))?.state, "completed");
});

Deno.test("run(): a graceful stop lets the job in hand finish, then unregisters", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  const gate = t.dir.file("gate");
  await t.store.insertJobs({
    jobs: [job("j1", `while [ ! -e '${gate}' ]; do sleep 0.02; done`), job("j2", "true")],
    now: clock.now(),
  });
  const { runner, lines } = runnerFor(t.store, clock);
  const exit = runner.run();
  await waitFor(() => lines.some((l) => l.includes("started j1")), { what: "j1 start" });
  assert.deepEqual((await t.store.listWorkers()).map((w) => w.id), [runner.id]);
  runner.requestStop("graceful", "test");
  await Deno.writeTextFile(gate, "");
  assert.equal(await exit, 0);
  assert.equal((await t.store.getJob({ id: "j1" }))?.state, "completed");
  assert.equal((await t.store.getJob({ id: "j2" }))?.state, "pending", "no claim after the stop");
  assert.deepEqual(await t.store.listWorkers(), []);
});

Deno.test("run(): an idle worker starts a job enqueued by another process without waiting for its poll", async () => {
  await using t = await tempStore();
  await t.store.setConfig({ key: "poll_interval", value: "60" });
  const { runner, lines } = runnerFor(t.store, new ManualClock(Date.now()));
  const exit = runner.run();
  await waitFor(async () => (await t.store.listWorkers()).length === 1, { what: "registration" });
  await waitFor(() => runner.idle, { what: "the runner to wait for work" });
  const other = await openSqliteStore(t.dbPath);
  try {
    await other.insertJobs({ jobs: [job("late", "true")], now: Date.now() });
  } finally {
    await other.close();
  }
  await waitFor(() => lines.some((l) => l.includes("completed late")), {
    timeoutMs: 10_000,
    what: "the job to run well before the 60 s poll",
  });
  runner.requestStop("graceful", "test");
  assert.equal(await exit, 0);
});

Deno.test("heartbeat renews the lease in hand and reads a stop request", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.setConfig({ key: "lease", value: "6" });
  const gate = t.dir.file("gate");
  await t.store.insertJobs({
    jobs: [job("j", `while [ ! -e '${gate}' ]; do sleep 0.02; done`)],
    now: clock.now(),
  });
  const { runner, lines } = runnerFor(t.store, clock);
  const exit = runner.run();
  await waitFor(() => lines.some((l) => l.includes("started j")), { what: "start" });
  clock.advance(4000);
  await runner.heartbeat();
  assert.equal((await t.store.getJob({ id: "j" }))?.lease_expires_at, clock.now() + 6000);
  assert.equal((await t.store.listWorkers())[0].current_job, "j");
  clock.advance(4000);
  assert.equal(
    (await rescueExpiredLeases(t.store, clock.now(), DEFAULT_CONFIG)).length,
    0,
    "renewed lease is not rescued",
  );
  await t.store.requestStop({ now: clock.now() });
  await runner.heartbeat();
  assert.equal(runner.stopMode, "graceful");
  await Deno.writeTextFile(gate, "");
  assert.equal(await exit, 0);
  assert.equal((await t.store.getJob({ id: "j" }))?.state, "completed");
});

Deno.test("a worker whose record was pruned as stale registers again instead of stopping", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  const { runner, lines } = runnerFor(t.store, clock);
  const exit = runner.run();
  await waitFor(() => runner.idle, { what: "idle" });
  await t.store.removeWorker({ id: runner.id });
  await runner.heartbeat();
  assert.equal(runner.stopMode, null);
  assert.deepEqual((await t.store.listWorkers()).map((w) => w.id), [runner.id]);
  assert.match(lines.at(-1)!, /registering again/);
  runner.requestStop("graceful", "test");
  assert.equal(await exit, 0);
});

/**
 * A real store whose settles (applyChange, settleAndClaim) fail with a transient error the first
 * `failures` times.
 */
function flakyStore(store: Store, failures: number): Store & { calls: number } {
  let calls = 0;
  return new Proxy(store, {
    get(target, prop) {
      if (prop === "calls") return calls;
      if (prop === "applyChange" || prop === "settleAndClaim") {
        const method = Reflect.get(target, prop).bind(target);
        return (p: never) => {
          calls++;
          if (calls <= failures) {
            return Promise.reject(new StorageError("connection lost", { transient: true }));
          }
          return method(p);
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as Store & { calls: number };
}

Deno.test("a settle that hits a transient error is retried and the outcome kept", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({ jobs: [job("j", "echo kept")], now: clock.now() });
  const flaky = flakyStore(t.store, 2);
  const { runner, lines } = runnerFor(flaky, clock);
  assert.equal(await runner.runOne(), true);
  assert.equal(flaky.calls, 3);
  assert.equal((await t.store.getJob({ id: "j" }))?.state, "completed");
  assert.equal((await t.store.getJobOutput({ id: "j" }))?.stdout, "kept\n");
  assert.ok(
    lines.some((l) => /cannot record the result of j \(connection lost\); retrying/.test(l)),
  );
});

Deno.test("when the database stays unreachable the worker gives up with exit 5, job not done", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({ jobs: [job("j", "true")], now: clock.now() });
  const flaky = flakyStore(t.store, Infinity);
  const { runner, lines } = runnerFor(flaky, clock, { storeRetryLimitMs: 300 });
  assert.equal(await runner.run(), 5);
  const j = (await t.store.getJob({ id: "j" }))!;
  assert.equal(j.state, "processing", "never marked done: rescued after its lease instead");
  assert.ok(lines.some((l) => /fatal: Could not record the result of j/.test(l)), lines.join("\n"));
});

Deno.test("queues: a worker only claims jobs of its queues", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({
    jobs: [job("a", "true", { queue: "other" }), job("b", "true", { queue: "mail" })],
    now: clock.now(),
  });
  const { runner } = runnerFor(t.store, clock, { queues: ["mail"] });
  assert.equal(await runner.runOne(), true);
  assert.equal(await runner.runOne(), false);
  assert.equal((await t.store.getJob({ id: "a" }))?.state, "pending");
  assert.equal((await t.store.getJob({ id: "b" }))?.state, "completed");
});

Deno.test("failureReason and isTransient", () => {
  assert.equal(
    failureReason({ exit_code: 127, timed_out: false, error: "exit code 127" }),
    "exit 127",
  );
  assert.equal(
    failureReason({
      exit_code: null,
      timed_out: true,
      error: "timed out after 5s (process group terminated)",
    }),
    "timed out after 5s",
  );
  assert.equal(
    failureReason({ exit_code: null, timed_out: false, error: "killed by SIGKILL" }),
    "killed by SIGKILL",
  );
  assert.equal(isTransient(new StorageError("x", { transient: true })), true);
  assert.equal(
    isTransient(new StorageError("The database stayed locked: database is locked")),
    true,
  );
  assert.equal(isTransient(new StorageError("corrupt")), false);
  assert.equal(isTransient(new Error("connection lost")), false);
});

Deno.test("a heartbeat that finds no lease because the job's own settle landed announces no drop", async () => {
  // Issue 12, fault 8: on PostgreSQL a renewal on one connection can run just after the settle on
  // another committed; it then renews nothing, though the lease was never lost.
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({ jobs: [job("j", "true")], now: clock.now() });
  let landed!: () => void;
  const settleLanded = new Promise<void>((resolve) => (landed = resolve));
  let release!: () => void;
  const replyArrives = new Promise<void>((resolve) => (release = resolve));
  const store = new Proxy(t.store, {
    get(target, prop, receiver) {
      if (prop === "settleAndClaim" || prop === "applyChange") {
        return async (p: never) => {
          // The settle commits, and its reply is slow to come back.
          const result = await (target[prop] as (p: never) => Promise<unknown>).call(target, p);
          landed();
          await replyArrives;
          return result;
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const { runner, lines } = runnerFor(store, clock);
  const running = runner.runOne();
  await settleLanded;
  await runner.heartbeat(); // renews nothing: the job is completed already
  release();
  await running;
  assert.equal((await t.store.getJob({ id: "j" }))?.state, "completed");
  assert.ok(lines.some((l) => /completed j /.test(l)), lines.join("\n"));
  assert.deepEqual(lines.filter((l) => /lost the lease|dropped/.test(l)), []);
});

Deno.test({
  name: "a heartbeat that finds the database file replaced stops the worker at once, exit code 5",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await using t = await tempStore();
    const clock = new ManualClock();
    await t.store.insertJobs({ jobs: [job("long", "sleep 30")], now: clock.now() });
    const { runner, lines } = runnerFor(t.store, clock);
    const exit = runner.run();
    await waitFor(() => lines.some((l) => l.includes("started long")), { what: "start" });
    const other = await openSqliteStore(t.dir.file("other.db"));
    await other.close();
    await Deno.rename(t.dir.file("other.db"), t.dbPath);
    await runner.heartbeat();
    assert.equal(runner.stopMode, "abort");
    assert.equal(await exit, 5);
    const fatal = lines.filter((l) => /fatal: .*was replaced by another file/.test(l));
    assert.equal(fatal.length, 1, lines.join("\n"));
  },
});

/** `store` with its live output writes (appendRunOutput) counted. */
function countingAppends(store: Store): { store: Store; appends: () => number } {
  let appends = 0;
  const counting = new Proxy(store, {
    get(target, prop) {
      if (prop === "appendRunOutput") {
        return (p: Parameters<Store["appendRunOutput"]>[0]) => {
          appends++;
          return target.appendRunOutput(p);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { store: counting, appends: () => appends };
}

Deno.test("live output: written while a job prints, never for a job that prints nothing", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  const { store: counting, appends } = countingAppends(t.store);
  const gate = `${t.dbPath}.gate`;
  await t.store.insertJobs({
    jobs: [
      job("quiet", "sleep 1.5"),
      job("chatty", `echo one; while [ ! -f '${gate}' ]; do sleep 0.05; done; echo two`),
    ],
    now: clock.now(),
  });
  const { runner } = runnerFor(counting, clock);
  assert.equal(await runner.runOne(), true);
  assert.equal((await t.store.getJob({ id: "quiet" }))?.state, "completed");
  assert.equal(appends(), 0, "a job that prints nothing writes no live output");
  const running = runner.runOne();
  // The job waits for the gate until its first line is in the store: live, not at the settle.
  await waitFor(async () => (await t.store.getJobOutput({ id: "chatty" }))?.stdout === "one\n", {
    timeoutMs: 30_000,
    what: "the running job's first line in the store",
  });
  assert.equal((await t.store.getJob({ id: "chatty" }))?.state, "processing");
  await Deno.writeTextFile(gate, "");
  assert.equal(await running, true);
  assert.ok(appends() >= 1);
  // One run row, closed by the settle with the whole output.
  const runs = await t.store.listRuns({ jobId: "chatty", outputChars: 100 });
  assert.deepEqual(runs.map((r) => [r.outcome, r.stdout]), [["completed", "one\ntwo\n"]]);
});

Deno.test("live output: a job that prints fast is written at most ten times a second", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  const { store: counting, appends } = countingAppends(t.store);
  // 30 MB as fast as the pipe takes it: a write per 64 KiB would be 457 writes.
  await t.store.insertJobs({
    jobs: [job("fast", "head -c 30000000 /dev/zero | tr '\\0' x; echo; echo end")],
    now: clock.now(),
  });
  const { runner } = runnerFor(counting, clock);
  assert.equal(await runner.runOne(), true);
  const done = await t.store.getJob({ id: "fast" });
  assert.equal(done?.state, "completed");
  const [run] = await t.store.listRuns({ jobId: "fast", outputChars: 100_000 });
  // The settle still stores the last output_limit bytes, the end included.
  assert.equal(run.stdout.length, DEFAULT_CONFIG.output_limit);
  assert.ok(run.stdout.endsWith("xxx\nend\n"));
  // The first write goes at once, then one per 100 ms at most (the job's time rounded up).
  const bound = 2 + Math.ceil((run.duration_ms ?? 0) / 100);
  assert.ok(appends() >= 1, "written while it ran");
  assert.ok(
    appends() <= bound,
    `${appends()} live writes in ${run.duration_ms} ms (at most ${bound})`,
  );
});

Deno.test("after a short job one is claimed ahead and starts before the settle of the one before; the start marker names both", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({
    jobs: [job("a", "true"), job("b", "true"), job("c", "true")],
    now: clock.now(),
  });
  const marker = t.dir.file("marker");
  // Any job counts as short here: the choice must not depend on how fast the machine spawns.
  const { runner, lines } = runnerFor(t.store, clock, {
    startMarker: marker,
    aheadAfterMs: 60_000,
  });
  const done = runner.run();
  try {
    await waitFor(() => runner.jobsDone === 3, { what: "3 jobs settled" });
  } finally {
    runner.requestStop("graceful", "test over");
  }
  assert.equal(await done, 0);
  // a's settle claimed b (to run next) and c (ahead); c was spawned the moment b ended, before
  // b's settle: its start line comes first, and the marker names b as well (a death before b's
  // settle must not release b uncounted).
  const started = lines.findIndex((l) => l.includes("started c"));
  const completed = lines.findIndex((l) => l.includes("completed b"));
  assert.ok(started >= 0 && completed > started, lines.join("\n"));
  const record = readStartMarker(marker);
  assert.equal(record?.job?.id, "c");
  assert.equal(record?.unsettled?.id, "b");
  for (const id of ["a", "b", "c"]) {
    const j = (await t.store.getJob({ id }))!;
    assert.deepEqual([j.id, j.state, j.attempts], [id, "completed", 1]);
  }
});

Deno.test("runOne: a job spawned ahead is the job in hand, finished by the next runOne", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({
    jobs: [job("a", "true"), job("b", "true"), job("c", "true")],
    now: clock.now(),
  });
  const { runner } = runnerFor(t.store, clock, { aheadAfterMs: 60_000 });
  assert.equal(await runner.runOne(), true);
  const held = async () =>
    (await t.store.listLeased({ worker: runner.id })).map((j) => j.id).sort();
  assert.deepEqual(await held(), ["b", "c"], "b to run next, c ahead");
  assert.equal(await runner.runOne(), true);
  assert.equal(runner.currentJob?.id, "c");
  assert.equal((await t.store.getJob({ id: "b" }))?.state, "completed");
  assert.equal(await runner.runOne(), true, "c is finished by the next runOne");
  assert.equal(runner.currentJob, null);
  assert.equal(await runner.runOne(), false);
  assert.equal((await t.store.getJob({ id: "c" }))?.state, "completed");
});

Deno.test("no job is claimed ahead after a long one (aheadAfterMs 0: never)", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({
    jobs: [job("a", "true"), job("b", "true"), job("c", "true")],
    now: clock.now(),
  });
  const { runner } = runnerFor(t.store, clock, { aheadAfterMs: 0 });
  assert.equal(await runner.runOne(), true);
  assert.deepEqual(
    (await t.store.listLeased({ worker: runner.id })).map((j) => j.id),
    ["b"],
    "only the next job",
  );
  assert.equal(await runner.runOne(), true);
  assert.equal(runner.currentJob, null);
});

/**
 * Jobs `short`, then `long` (runs until the file `gate` exists), then `after`: after `short` a
 * worker claims `long` to run next and `after` ahead, and holds `after` while `long` runs.
 */
async function shortLongAfter(store: Store, clock: ManualClock, gate: string): Promise<string> {
  await store.insertJobs({
    jobs: [
      job("short", "true", { priority: 3 }),
      job("long", `while [ ! -e '${gate}' ]; do sleep 0.02; done`, { priority: 2 }),
      job("after", "true", { priority: 1 }),
    ],
    now: clock.now(),
  });
  return gate;
}

Deno.test("a job claimed ahead is given back once the job it waits for runs long: an idle worker runs it meanwhile", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  const gate = await shortLongAfter(t.store, clock, t.dir.file("gate"));
  const a = runnerFor(t.store, clock, { id: "A", aheadAfterMs: 60_000 });
  const b = runnerFor(t.store, clock, { id: "B", aheadAfterMs: 60_000 });
  assert.equal(await a.runner.runOne(), true);
  assert.equal((await t.store.getJob({ id: "after" }))?.lease_owner, "A", "claimed ahead");
  const running = a.runner.runOne(); // long: runs until the gate opens
  try {
    // B finds "after" once A gives it back (AHEAD_HOLD_MS after long started), long still running.
    await waitFor(() => b.runner.runOne(), { what: "B runs the job A held ahead" });
    const after = (await t.store.getJob({ id: "after" }))!;
    assert.deepEqual([after.state, after.attempts], ["completed", 1], "the hold did not count");
    assert.equal((await t.store.listRuns({ jobId: "after", outputChars: 0 }))[0].worker, "B");
    assert.equal((await t.store.getJob({ id: "long" }))?.state, "processing");
  } finally {
    await Deno.writeTextFile(gate, "");
    await running;
  }
  assert.equal((await t.store.getJob({ id: "long" }))?.state, "completed");
});

Deno.test("a held job whose release fails is released at the next heartbeat, never forgotten", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  const gate = await shortLongAfter(t.store, clock, t.dir.file("gate"));
  // Every release of a claim (processing -> pending) fails until `failing` is cleared.
  let failing = true;
  let refused = 0;
  const store = new Proxy(t.store, {
    get(target, key) {
      if (key !== "applyChange") {
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      }
      return (p: Parameters<Store["applyChange"]>[0]) => {
        if (failing && p.change.from === "processing" && p.change.to === "pending") {
          refused++;
          return Promise.reject(new StorageError("connection lost", { transient: true }));
        }
        return target.applyChange(p);
      };
    },
  });
  const { runner } = runnerFor(store, clock, { id: "A", aheadAfterMs: 60_000 });
  assert.equal(await runner.runOne(), true);
  const running = runner.runOne(); // long
  try {
    await waitFor(() => refused > 0, { what: "the release after the hold to fail" });
    assert.equal((await t.store.getJob({ id: "after" }))?.lease_owner, "A", "still held");
    failing = false;
    await runner.heartbeat();
    const after = (await t.store.getJob({ id: "after" }))!;
    assert.deepEqual([after.state, after.attempts, after.lease_owner], ["pending", 0, null]);
  } finally {
    await Deno.writeTextFile(gate, "");
    await running;
  }
});

Deno.test("a fatal error in a settle while the next job runs (spawned ahead) ends that job too: the worker exits, the job is left to the rescue", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  const pidFile = t.dir.file("pid");
  await t.store.insertJobs({
    jobs: [
      job("a", "true", { priority: 3 }),
      job("b", "true", { priority: 2 }),
      job("c", `echo $$ > '${pidFile}'; sleep 30`, { priority: 1 }),
    ],
    now: clock.now(),
  });
  // b's settle fails for good (not transient) while c, claimed ahead, runs (spawned at b's end).
  const store = new Proxy(t.store, {
    get(target, key) {
      const value = Reflect.get(target, key);
      if (key !== "applyChange" && key !== "settleAndClaim") {
        return typeof value === "function" ? value.bind(target) : value;
      }
      return async (p: { change: { id: string } }) => {
        if (p.change.id !== "b") return await value.call(target, p);
        // Once c's shell runs (so that its pid is known), the settle of b fails.
        await waitFor(() => Deno.stat(pidFile).then(() => true, () => false), {
          what: "c's shell to start",
        });
        throw new StorageError("the database file is corrupt");
      };
    },
  }) as Store;
  const { runner, lines } = runnerFor(store, clock, { aheadAfterMs: 60_000 });
  const started = performance.now();
  assert.notEqual(await runner.run(), 0);
  assert.ok(performance.now() - started < 10_000, "c did not run its full 30 s");
  assert.ok(lines.some((l) => l.includes("started c")), lines.join("\n"));
  assert.ok(lines.some((l) => /fatal: .*corrupt/.test(l)), lines.join("\n"));
  // Its process was ended before run() returned; its record is left to the lease rescue.
  const pid = Number(await Deno.readTextFile(pidFile));
  assert.throws(() => Deno.kill(pid, "SIGCONT"), Deno.errors.NotFound, "c's shell is gone");
  assert.equal((await t.store.getJob({ id: "c" }))?.state, "processing");
});
