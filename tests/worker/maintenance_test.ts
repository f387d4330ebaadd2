/**
 * The maintenance service in-process, on real SQLite stores. Time in the database comes from a
 * ManualClock and steps are taken by hand, so leases and periods are checked exactly.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../../src/core/clock.ts";
import type { NewJob } from "../../src/core/job.ts";
import { DEFAULT_CONFIG } from "../../src/core/config.ts";
import { StorageError } from "../../src/core/errors.ts";
import { openSqliteStore } from "../../src/store/sqlite/mod.ts";
import type { Store } from "../../src/store/store.ts";
import {
  COUNTS_BATCH,
  COUNTS_DUTY,
  DUTIES,
  type Duty,
  MAINTENANCE,
  Maintenance,
  PRUNE_DUTY,
  RESCUE_DUTY,
  rescueExpiredLeases,
  RETENTION_BATCH,
  RETENTION_DUTY,
} from "../../src/worker/maintenance.ts";
import { complete, fail } from "../../src/core/transitions.ts";
import { Runner } from "../../src/worker/runner.ts";
import { SCHEDULE_DUTY } from "../../src/worker/schedules.ts";
import { tempStore } from "../helpers/temp.ts";

function job(id: string): NewJob {
  return {
    id,
    command: "true",
    queue: "default",
    priority: 0,
    max_retries: 3,
    timeout: null,
    run_at: 0,
    cwd: null,
    env: null,
    depends_on: null,
    unique_key: null,
  };
}

function candidate(
  store: Store,
  clock: ManualClock,
  holder: string,
  duties?: readonly Duty[],
): { service: Maintenance; lines: string[] } {
  const lines: string[] = [];
  const service = new Maintenance({ store, clock, holder, out: (l) => lines.push(l), duties });
  return { service, lines };
}

Deno.test("rescueExpiredLeases counts an expired lease as a lost run, not one still valid", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.insertJobs({ jobs: [job("a"), job("b")], now: clock.now() });
  for (const workerId of ["ghost", "other"]) {
    await t.store.claimJobs({
      workerId,
      queues: null,
      now: clock.now(),
      leaseMs: 10_000,
      limit: 1,
    });
  }
  clock.advance(9_999);
  assert.deepEqual(await rescueExpiredLeases(t.store, clock.now(), DEFAULT_CONFIG), []);
  clock.advance(1);
  const lines = await rescueExpiredLeases(t.store, clock.now(), DEFAULT_CONFIG);
  assert.deepEqual(lines.sort(), [
    "rescued a from lost worker ghost: retry 1/3 in 2s",
    "rescued b from lost worker other: retry 1/3 in 2s",
  ]);
  for (const id of ["a", "b"]) {
    const rescued = (await t.store.getJob({ id }))!;
    assert.equal(rescued.state, "failed");
    assert.equal(rescued.lease_owner, null);
    assert.match(rescued.error ?? "", /^worker lost: (ghost|other) stopped renewing its lease$/);
    assert.equal(rescued.run_at, clock.now() + 2000);
  }
});

Deno.test("SQLite: a job leased to a worker whose process lives is kept past its lease, rescued once it is gone", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.setConfig({ key: "lease", value: "10" });
  await t.store.insertJobs({ jobs: [job("a")], now: clock.now() });
  // The worker's process: a real one, whose end the test decides. The runner (in this process)
  // records that pid, as a worker process records its own.
  const proc = new Deno.Command("sleep", { args: ["60"], stdin: "null" }).spawn();
  try {
    const runner = new Runner({ store: t.store, clock, id: "me", pid: proc.pid, log: () => {} });
    // A claim made in the worker's name that it does not hold (and so does not renew).
    await t.store.claimJobs({
      workerId: "me",
      queues: null,
      now: clock.now(),
      leaseMs: 10_000,
      limit: 1,
    });
    const { service, lines } = candidate(t.store, clock, "s-1");
    await service.step();
    assert.equal(service.leading, true);
    clock.advance(30_000);
    await runner.heartbeat(); // registers the record (pid + start time of `sleep`)
    await service.step();
    assert.deepEqual(lines, [], "its process lives: nothing is rescued, however old the lease");
    assert.equal((await t.store.getJob({ id: "a" }))!.state, "processing");
    proc.kill("SIGKILL");
    await proc.status;
    clock.advance(10_000 / 3);
    await service.step();
    assert.deepEqual(lines, ["[maintenance] rescued a from lost worker me: retry 1/3 in 2s"]);
    assert.equal((await t.store.getJob({ id: "a" }))!.state, "failed");
  } finally {
    try {
      proc.kill("SIGKILL");
    } catch {
      // already gone
    }
    await proc.status;
  }
});

Deno.test("only the leader runs the duties; a candidate takes over within one lease of its death", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.setConfig({ key: "lease", value: "6" });
  const other = await openSqliteStore(t.dbPath);
  try {
    const a = candidate(t.store, clock, "s-a");
    const b = candidate(other, clock, "s-b");
    await a.service.step();
    await b.service.step();
    assert.deepEqual([a.service.leading, b.service.leading], [true, false]);

    // A job of a dead worker: the leader rescues it, the other candidate never touches it.
    await t.store.insertJobs({ jobs: [job("j")], now: clock.now() });
    await t.store.claimJobs({
      workerId: "w",
      queues: null,
      now: clock.now(),
      leaseMs: 1,
      limit: 1,
    });
    clock.advance(2000);
    await b.service.step();
    assert.equal((await t.store.getJob({ id: "j" }))!.state, "processing");
    await a.service.step();
    assert.equal((await t.store.getJob({ id: "j" }))!.state, "failed");
    assert.match(a.lines.join("\n"), /\[maintenance\] rescued j from lost worker w: /);

    // The leader dies (stops stepping at its last renewal): not replaced before its lease ran out.
    clock.advance(5999);
    await b.service.step();
    assert.equal(b.service.leading, false);
    clock.advance(1);
    await b.service.step();
    assert.equal(b.service.leading, true);
    assert.deepEqual(b.lines, ["[maintenance] took over the maintenance duties"]);
    // The old leader comes back: it learns it no longer leads and runs nothing.
    await a.service.step();
    assert.equal(a.service.leading, false);
    assert.equal(a.lines.at(-1), "[maintenance] another process runs the maintenance duties now");

    // A leader that stops resigns: another candidate takes over at its next step, at once.
    await b.service.stop();
    await a.service.step();
    assert.equal(a.service.leading, true);
  } finally {
    await other.close();
  }
});

Deno.test("each duty runs at its own period while leading; a failing duty is logged once", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  const ran: string[] = [];
  let broken = true;
  const duties: Duty[] = [
    { name: "often", periodMs: () => 1000, run: () => (ran.push("often"), Promise.resolve([])) },
    {
      name: "rarely",
      periodMs: () => 5000,
      run: () => {
        ran.push("rarely");
        return broken
          ? Promise.reject(new StorageError("disk on fire"))
          : Promise.resolve(["did it"]);
      },
    },
  ];
  const { service, lines } = candidate(t.store, clock, "s-1", duties);
  assert.equal(await service.step(), 1000, "the next step comes at the shortest period");
  assert.deepEqual(ran.splice(0), ["often", "rarely"]);
  clock.advance(999);
  await service.step();
  assert.deepEqual(ran.splice(0), []);
  clock.advance(1);
  await service.step();
  assert.deepEqual(ran.splice(0), ["often"]);
  clock.advance(4000);
  await service.step();
  assert.deepEqual(ran.splice(0), ["often", "rarely"]);
  assert.deepEqual(lines, ["[maintenance] rarely failed: disk on fire"], "logged once");
  broken = false;
  clock.advance(5000);
  await service.step();
  assert.deepEqual(lines.slice(1), ["[maintenance] did it"]);
});

Deno.test("the service's duties: rescue every lease/3, prune stale records every 10 s", async () => {
  assert.deepEqual(DUTIES, [RESCUE_DUTY, PRUNE_DUTY, SCHEDULE_DUTY, RETENTION_DUTY, COUNTS_DUTY]);
  assert.equal(RESCUE_DUTY.periodMs({ ...DEFAULT_CONFIG, lease: 30 }), 10_000);
  assert.equal(PRUNE_DUTY.periodMs(DEFAULT_CONFIG), 10_000);
  await using t = await tempStore();
  const clock = new ManualClock();
  const record = (id: string, heartbeat_at: number) => ({
    id,
    pid: 1,
    host: "h",
    queues: null,
    started_at: heartbeat_at,
    heartbeat_at,
    current_job: null,
    stop_requested_at: null,
    supervisor_id: null,
  });
  // Lease 30 s: records silent for more than two leases are stale.
  await t.store.registerWorker({ worker: record("dead", clock.now() - 60_001) });
  await t.store.registerWorker({ worker: record("slow", clock.now() - 60_000) });
  await PRUNE_DUTY.run({ store: t.store, now: clock.now(), config: DEFAULT_CONFIG });
  assert.deepEqual((await t.store.listWorkers()).map((w) => w.id), ["slow"]);
});

Deno.test("stop() resigns the lead; a candidate that never led resigns nothing", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  const a = candidate(t.store, clock, "s-a");
  const b = candidate(t.store, clock, "s-b");
  await a.service.start();
  await b.service.start();
  assert.equal(a.service.leading, true);
  await b.service.stop();
  assert.equal(
    await t.store.tryLead({ name: MAINTENANCE, holder: "x", now: clock.now(), leaseMs: 1 }),
    false,
  );
  await a.service.stop();
  assert.equal(
    await t.store.tryLead({ name: MAINTENANCE, holder: "x", now: clock.now(), leaseMs: 1 }),
    true,
  );
});

Deno.test("after an outage the leader rescues nothing until owners had the reconnect grace to renew", async () => {
  await using t = await tempStore();
  const clock = new ManualClock();
  await t.store.setConfig({ key: "lease", value: "10" });
  await t.store.insertJobs({ jobs: [job("held"), job("orphan")], now: clock.now() });
  for (const workerId of ["owner", "ghost"]) {
    await t.store.claimJobs({
      workerId,
      queues: null,
      now: clock.now(),
      leaseMs: 10_000,
      limit: 1,
    });
  }
  // The candidate's view of the database: unreachable while `down`.
  let down = false;
  const flaky = new Proxy(t.store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) =>
        down
          ? Promise.reject(new StorageError("Cannot reach the database", { transient: true }))
          : value.apply(target, args);
    },
  });
  const { service, lines } = candidate(flaky, clock, "s-1");
  await service.step();
  assert.equal(service.leading, true);
  // An outage of two leases: both leases run out meanwhile.
  down = true;
  for (let i = 0; i < 6; i++) {
    clock.advance(10_000 / 3);
    await service.step();
  }
  down = false;
  clock.advance(1000);
  await service.step();
  assert.deepEqual(lines.filter((l) => / rescued /.test(l)), [], "nothing rescued on return");
  // The owner reconnects and renews within the grace; the ghost never comes back.
  await t.store.renewLeases({ workerId: "owner", now: clock.now(), leaseMs: 10_000 });
  clock.advance(10_000 / 3);
  await service.step();
  assert.deepEqual(lines.filter((l) => / rescued /.test(l)), [], "still within the grace");
  clock.advance(5_000);
  await t.store.renewLeases({ workerId: "owner", now: clock.now(), leaseMs: 10_000 });
  clock.advance(5_000);
  await service.step();
  assert.deepEqual(lines.filter((l) => / rescued /.test(l)), [
    "[maintenance] rescued orphan from lost worker ghost: retry 1/3 in 2s",
  ]);
  assert.equal((await t.store.getJob({ id: "held" }))!.state, "processing");
});

Deno.test("a rescue that ends in the DLQ runs hook_dead (and hook_drained) from the maintenance service", async () => {
  await using t = await tempStore();
  const dir = await Deno.makeTempDir();
  try {
    const clock = new ManualClock();
    const log = `${dir}/hooks.log`;
    await t.store.setConfig({ key: "lease", value: "10" });
    await t.store.setConfig({
      key: "hook_dead",
      value: `echo "$QUEUECTL_EVENT $QUEUECTL_JOB_ID $QUEUECTL_STATE $QUEUECTL_ERROR" >> '${log}'`,
    });
    await t.store.setConfig({
      key: "hook_drained",
      value: `echo "drained $QUEUECTL_QUEUE" >> '${log}'`,
    });
    await t.store.insertJobs({ jobs: [{ ...job("lost"), max_retries: 0 }], now: clock.now() });
    await t.store.claimJobs({
      workerId: "ghost",
      queues: null,
      now: clock.now(),
      leaseMs: 10_000,
      limit: 1,
    });
    clock.advance(10_000);
    const { service, lines } = candidate(t.store, clock, "s-1");
    await service.step();
    await service.stop(); // waits for the hooks it started
    assert.match(lines.join("\n"), /rescued lost from lost worker ghost/);
    assert.equal((await t.store.getJob({ id: "lost" }))!.state, "dead");
    assert.deepEqual((await Deno.readTextFile(log)).trim().split("\n").sort(), [
      "dead lost dead worker lost: ghost stopped renewing its lease",
      "drained default",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Inserts `n` jobs named `<prefix>-<i>` and settles them now: completed, or dead (no retries). */
async function finished(
  store: Store,
  clock: ManualClock,
  prefix: string,
  n: number,
  outcome: "completed" | "dead",
): Promise<void> {
  const jobs = Array.from({ length: n }, (_, i) => ({
    ...job(`${prefix}-${i}`),
    max_retries: 0,
  }));
  await store.insertJobs({ jobs, now: clock.now() });
  const claimed = await store.claimJobs({
    workerId: "w",
    queues: null,
    now: clock.now(),
    leaseMs: 60_000,
    limit: n,
  });
  assert.equal(claimed.length, n);
  for (const j of claimed) {
    const r = { now: clock.now(), workerId: "w", exit_code: outcome === "completed" ? 0 : 1 };
    const change = outcome === "completed" ? complete(j, r) : fail(j, r, DEFAULT_CONFIG);
    assert.ok(await store.applyChange({ change, output: { stdout: "out", stderr: "" } }));
  }
}

Deno.test("retention deletes completed and dead jobs past retain_completed / retain_dead, with their runs, in batches", async () => {
  await using t = await tempStore();
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const day = 86_400_000;
  // Defaults: completed kept 7 days, dead 30 days.
  assert.equal(DEFAULT_CONFIG.retain_completed, 7 * 86_400);
  assert.equal(DEFAULT_CONFIG.retain_dead, 30 * 86_400);
  // More old completed jobs than one batch holds.
  await finished(t.store, clock, "old", RETENTION_BATCH * 2 + 7, "completed");
  await finished(t.store, clock, "olddead", 3, "dead");
  clock.advance(6 * day);
  await finished(t.store, clock, "recent", 2, "completed");
  await t.store.insertJobs({ jobs: [job("waiting")], now: clock.now() });
  clock.advance(day + 1); // "old" is 7 days + 1 ms old; "recent" 1 day
  const { service, lines } = candidate(t.store, clock, "s1", [RETENTION_DUTY]);
  await service.step();
  assert.deepEqual(lines, [
    `[maintenance] retention: deleted ${RETENTION_BATCH * 2 + 7} completed jobs older than 7d`,
  ]);
  const left = await t.store.listJobIds({ states: ["pending", "completed", "dead"] });
  assert.deepEqual(left.sort(), [
    "olddead-0",
    "olddead-1",
    "olddead-2",
    "recent-0",
    "recent-1",
    "waiting",
  ]);
  assert.deepEqual(await t.store.listRuns({ jobId: "old-0", outputChars: 10 }), []);
  assert.equal((await t.store.listRuns({ jobId: "recent-0", outputChars: 10 })).length, 1);
  const stats = await t.store.stats({ now: clock.now() });
  assert.deepEqual([stats.counts.completed, stats.counts.dead], [2, 3]);
  // Dead jobs after 30 days; 0 keeps completed jobs for good.
  await t.store.setConfig({ key: "retain_completed", value: "0" });
  clock.advance(30 * day);
  await service.step();
  assert.deepEqual(lines.slice(1), [
    "[maintenance] retention: deleted 3 dead jobs older than 30d",
  ]);
  assert.deepEqual(
    (await t.store.listJobIds({ states: ["pending", "completed", "dead"] })).sort(),
    ["recent-0", "recent-1", "waiting"],
  );
});

Deno.test("the counters duty deletes the counters of queues gone, more than a batch in one run", async () => {
  await using t = await tempStore();
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const queues = COUNTS_BATCH + 5;
  const jobs = Array.from({ length: queues }, (_, i) => ({ ...job(`j${i}`), queue: `build-${i}` }));
  await t.store.insertJobs({ jobs: [...jobs, job("kept")], now: clock.now() });
  const ids = jobs.map((j) => j.id);
  assert.equal((await t.store.deleteJobs({ states: ["pending"], ids })).length, queues);
  const { service, lines } = candidate(t.store, clock, "s1", [COUNTS_DUTY]);
  await service.step();
  assert.deepEqual(lines, []);
  assert.deepEqual(await t.store.compactCounts({ limit: queues }), { found: 0, removed: 0 });
  assert.equal(await t.store.countJobs({ state: "pending" }), 1);
  assert.deepEqual((await t.store.queueMetrics({ now: clock.now() })).map((m) => m.queue), [
    "default",
  ]);
});
