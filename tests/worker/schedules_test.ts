/**
 * Schedules fired by the maintenance service (worker/schedules.ts), in-process on real SQLite
 * stores with a ManualClock: each slot once across candidates, restarts, downtime with and without
 * catch-up, pause/resume, run now. The guarded fire is checked on both backends by
 * tests/store/schedule_conformance.ts.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../../src/core/clock.ts";
import { DEFAULT_CONFIG } from "../../src/core/config.ts";
import { openSqliteStore } from "../../src/store/sqlite/mod.ts";
import type { Store } from "../../src/store/store.ts";
import {
  addSchedule,
  getSchedule,
  pauseSchedule,
  resumeSchedule,
  runScheduleNow,
} from "../../src/app/schedules.ts";
import { complete } from "../../src/core/transitions.ts";
import { Maintenance } from "../../src/worker/maintenance.ts";
import { fireDueSchedules } from "../../src/worker/schedules.ts";
import { schedule } from "../store/schedule_conformance.ts";
import { tempStore } from "../helpers/temp.ts";

const MIN = 60_000;
/** A Monday, 03:59:30 UTC. */
const START = Date.UTC(2026, 0, 5, 3, 59, 30);

function candidate(store: Store, clock: ManualClock, holder: string) {
  const lines: string[] = [];
  const service = new Maintenance({ store, clock, holder, out: (l) => lines.push(l) });
  return { service, lines };
}

async function jobCount(store: Store): Promise<number> {
  return (await store.listJobs({ limit: 10_000 })).length;
}

Deno.test("every slot fires exactly once while candidates step, whoever leads", async () => {
  await using t = await tempStore();
  const clock = new ManualClock(START);
  await t.store.setConfig({ key: "lease", value: "3" });
  const other = await openSqliteStore(t.dbPath);
  try {
    const app = { store: t.store, clock };
    await addSchedule(app, { name: "m", every: "1m", job: { command: "echo m" } });
    const a = candidate(t.store, clock, "s-a");
    const b = candidate(other, clock, "s-b");
    // 10 minutes and 2 s in steps of a third of a second, both candidates stepping; halfway, the leader
    // resigns (a supervisor stopped) and the other takes over.
    for (let i = 0; i < 10 * 60 * 3 + 6; i++) {
      clock.advance(333);
      if (i === 900) await a.service.stop();
      if (i < 900) await a.service.step();
      await b.service.step();
    }
    assert.equal(await jobCount(t.store), 10, "one job per minute");
    const fired = [...a.lines, ...b.lines].filter((l) => l.includes("schedule m: enqueued"));
    assert.equal(fired.length, 10);
    const runs = (await t.store.listJobs({ limit: 100, order: "oldest" })).map((j) => j.run_at);
    for (let i = 1; i < runs.length; i++) {
      // Due slots are looked for every second.
      assert.ok(Math.abs(runs[i] - runs[i - 1] - MIN) <= 1400, `a minute apart: ${runs}`);
    }
  } finally {
    await other.close();
  }
});

Deno.test("two leaders at once (a frozen one and its successor) fire a slot once", async () => {
  await using t = await tempStore();
  const clock = new ManualClock(START);
  const other = await openSqliteStore(t.dbPath);
  try {
    await addSchedule({ store: t.store, clock }, {
      name: "c",
      cron: "0 4 * * *",
      tz: "UTC",
      job: { command: "echo c" },
    });
    clock.advance(31_000);
    const [x, y] = await Promise.all([
      fireDueSchedules(t.store, clock.now(), DEFAULT_CONFIG),
      fireDueSchedules(other, clock.now(), DEFAULT_CONFIG),
    ]);
    assert.equal(x.length + y.length, 1, `one fired: ${x} / ${y}`);
    assert.equal(await jobCount(t.store), 1);
    // Later looks find nothing due until the next day's slot.
    assert.deepEqual(await fireDueSchedules(other, clock.now() + 1000, DEFAULT_CONFIG), []);
    const s = await getSchedule({ store: t.store, clock }, "c");
    assert.equal(new Date(s.next_run_at).toISOString(), "2026-01-06T04:00:00.000Z");
  } finally {
    await other.close();
  }
});

Deno.test("after downtime a missed slot fires once; with --no-catch-up it is skipped", async () => {
  await using t = await tempStore();
  const clock = new ManualClock(START);
  const app = { store: t.store, clock };
  await addSchedule(app, { name: "up", every: "10m", job: { command: "echo up" } });
  await addSchedule(app, {
    name: "skip",
    every: "10m",
    catchUp: false,
    job: { command: "echo skip" },
  });
  const first = candidate(t.store, clock, "s-1");
  await first.service.step();
  await first.service.stop();
  // Every supervisor down for 3 hours: 18 slots of each schedule pass unseen.
  clock.advance(3 * 60 * MIN + 5 * MIN);
  const second = candidate(t.store, clock, "s-2");
  await second.service.step();
  const jobs = await t.store.listJobs({ limit: 100 });
  assert.deepEqual(jobs.map((j) => j.command), ["echo up"], "one catch-up run, none skipped");
  assert.equal(jobs[0].run_at, clock.now(), "due now");
  assert.deepEqual(second.lines.sort(), [
    "[maintenance] schedule skip: skipped 18 missed slots (no catch-up), next 2026-01-05T07:09:30.000Z",
    `[maintenance] schedule up: enqueued ${
      jobs[0].id
    } for 2026-01-05T06:59:30.000Z (17 earlier missed slots not run)`,
  ]);
  for (const name of ["up", "skip"]) {
    const s = await getSchedule(app, name);
    assert.equal(new Date(s.next_run_at).toISOString(), "2026-01-05T07:09:30.000Z");
  }
  // The next slot on time fires both.
  clock.set(Date.parse("2026-01-05T07:09:31Z"));
  await second.service.step();
  assert.equal(await jobCount(t.store), 3);
});

Deno.test("a restarted service (a new process, a new store) fires no slot twice", async () => {
  await using t = await tempStore();
  const clock = new ManualClock(START);
  await addSchedule({ store: t.store, clock }, {
    name: "r",
    every: "1m",
    job: { command: "echo r" },
  });
  clock.advance(MIN);
  const before = candidate(t.store, clock, "s-1");
  await before.service.step();
  assert.equal(await jobCount(t.store), 1);
  // Killed without resigning: its lease runs out, and a new process on a new connection leads.
  const again = await openSqliteStore(t.dbPath);
  try {
    clock.advance(DEFAULT_CONFIG.lease * 1000 + 1);
    const after = candidate(again, clock, "s-2");
    await after.service.step();
    assert.equal(after.service.leading, true);
    assert.equal(await jobCount(t.store), 1, "the minute it fired is not fired again");
  } finally {
    await again.close();
  }
});

Deno.test("a paused schedule does not fire; resumed, it starts from its next slot; run fires now", async () => {
  await using t = await tempStore();
  const clock = new ManualClock(START);
  const app = { store: t.store, clock };
  await addSchedule(app, { name: "p", every: "1m", job: { command: "echo p", queue: "q" } });
  // Resuming a schedule that is not paused changes nothing (its due slot still fires).
  clock.advance(MIN + 1);
  const unchanged = await resumeSchedule(app, "p");
  assert.equal(unchanged.next_run_at, START + MIN);
  await pauseSchedule(app, "p");
  const c = candidate(t.store, clock, "s-1");
  clock.advance(5 * MIN);
  await c.service.step();
  assert.equal(await jobCount(t.store), 0, "paused");
  const id = await runScheduleNow(app, "p");
  const job = (await t.store.getJob({ id }))!;
  assert.equal(job.queue, "q");
  assert.equal(job.run_at, clock.now());
  const resumed = await resumeSchedule(app, "p");
  assert.equal(resumed.paused, false);
  assert.ok(resumed.next_run_at > clock.now(), "no catch-up for slots that fell while paused");
  assert.equal(resumed.last_job_id, id);
  await c.service.step();
  assert.equal(await jobCount(t.store), 1);
  clock.set(resumed.next_run_at);
  await c.service.step();
  assert.equal(await jobCount(t.store), 2);
});

Deno.test("a schedule whose rule or job no longer reads is paused with one line; others go on", async () => {
  await using t = await tempStore();
  const clock = new ManualClock(START);
  // As if written by a host whose tz database knew a zone this one does not.
  await t.store.insertSchedule({
    schedule: schedule("odd", {
      cron: "0 4 * * *",
      every_ms: null,
      tz: "Mars/Olympus",
      next_run_at: START,
    }),
  });
  // And one whose job no longer passes enqueue's checks; a good one after both still fires.
  await t.store.insertSchedule({
    schedule: schedule("bad-job", { job: '{"command":""}', next_run_at: START }),
  });
  await t.store.insertSchedule({ schedule: schedule("ok", { next_run_at: START }) });
  const c = candidate(t.store, clock, "s-1");
  await c.service.step();
  clock.advance(2000);
  await c.service.step();
  assert.equal(c.lines.length, 3, c.lines.join("\n"));
  c.lines.sort();
  assert.match(c.lines[0], /^\[maintenance\] schedule bad-job paused: Invalid command/);
  assert.equal(c.lines[1], '[maintenance] schedule odd paused: Unknown time zone "Mars/Olympus"');
  assert.match(c.lines[2], /^\[maintenance\] schedule ok: enqueued /);
  for (const name of ["odd", "bad-job"]) {
    assert.equal((await getSchedule({ store: t.store, clock }, name)).paused, true);
  }
  assert.equal(await jobCount(t.store), 1);
});

Deno.test("the leader looks for due slots every second but renews its lead only every lease/3", async () => {
  await using t = await tempStore();
  const clock = new ManualClock(START);
  let leads = 0;
  let looks = 0;
  const counting = new Proxy(t.store, {
    get(target, prop) {
      if (prop === "tryLead") leads++;
      if (prop === "dueSchedules") looks++;
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const { service } = candidate(counting, clock, "s-1");
  // Default lease 30 s: renewed every 10 s.
  for (let i = 0; i < 30; i++) {
    const wait = await service.step();
    assert.equal(wait, 1000);
    clock.advance(wait);
  }
  assert.equal(looks, 30);
  assert.equal(leads, 3);
  assert.equal(service.leading, true);
});

Deno.test("a unique key held by the last slot's job skips slots; once it finished, the next slot enqueues", async () => {
  await using t = await tempStore();
  const clock = new ManualClock(START);
  const app = { store: t.store, clock };
  await addSchedule(app, {
    name: "sync",
    every: "1m",
    job: { command: "echo sync", unique_key: "sync-job" },
  });
  const c = candidate(t.store, clock, "s-1");
  clock.advance(MIN);
  await c.service.step();
  const [first] = await t.store.listJobs({ limit: 10 });
  assert.equal(first.unique_key, "sync-job");
  // It runs for three more slots: each is skipped, naming it.
  const [claimed] = await t.store.claimJobs({
    workerId: "w1",
    queues: null,
    now: clock.now(),
    leaseMs: 60 * MIN,
    limit: 1,
  });
  assert.equal(claimed.id, first.id);
  for (let i = 0; i < 3; i++) {
    clock.advance(MIN);
    await c.service.step();
  }
  assert.equal(await jobCount(t.store), 1, "no pile-up");
  const skipped = c.lines.filter((l) => l.includes("skipped"));
  assert.equal(skipped.length, 3, c.lines.join("\n"));
  assert.equal(
    skipped[0],
    `[maintenance] schedule sync: slot 2026-01-05T04:01:30.000Z skipped: job ${first.id} with key "sync-job" still active, next 2026-01-05T04:02:30.000Z`,
  );
  const held = await getSchedule(app, "sync");
  assert.deepEqual([held.last_job_id, held.last_job_state], [first.id, "processing"]);
  assert.equal(held.last_run_at, START + MIN, "when it last enqueued");
  // `schedule run` while held: nothing enqueued, the holder's id.
  assert.equal(await runScheduleNow(app, "sync"), first.id);
  assert.equal(await jobCount(t.store), 1);
  // The holder finishes; the next slot enqueues again.
  assert.ok(
    await t.store.applyChange({
      change: complete(claimed, { now: clock.now(), workerId: "w1", exit_code: 0 }),
    }),
  );
  clock.advance(MIN);
  await c.service.step();
  const jobs = await t.store.listJobs({ limit: 10, order: "oldest" });
  assert.equal(jobs.length, 2);
  assert.equal(jobs[1].state, "pending");
  assert.match(c.lines.at(-1)!, new RegExp(`schedule sync: enqueued ${jobs[1].id} for `));
  const after = await getSchedule(app, "sync");
  assert.deepEqual([after.last_job_id, after.last_run_at], [jobs[1].id, clock.now()]);
});
