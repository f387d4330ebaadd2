/**
 * The schedule part of the Store contract (docs/architecture.md "Schedules"), which every backend
 * passes (tests/store/sqlite_test.ts, postgres_test.ts): records, the due list, and the guarded
 * fire that lets a slot enqueue once however many leaders race, after restarts too.
 */
import assert from "node:assert/strict";
import { Conflict } from "../../src/core/errors.ts";
import { complete } from "../../src/core/transitions.ts";
import type { Schedule } from "../../src/core/schedule.ts";
import type { Store } from "../../src/store/store.ts";
import { type ConformanceOptions, newJob } from "./conformance.ts";

const T0 = Date.UTC(2026, 0, 1);
const MIN = 60_000;

export function schedule(name: string, o: Partial<Schedule> = {}): Schedule {
  return {
    name,
    cron: null,
    every_ms: 10 * MIN,
    tz: "UTC",
    job: JSON.stringify({ command: `echo ${name}`, queue: "default", priority: 0 }),
    catch_up: true,
    paused: false,
    next_run_at: T0 + 10 * MIN,
    last_run_at: null,
    last_job_id: null,
    created_at: T0,
    updated_at: T0,
    ...o,
  };
}

export function scheduleConformance(
  name: string,
  open: () => Promise<Store>,
  opts: ConformanceOptions,
): void {
  function test(title: string, fn: (store: Store) => Promise<void>): void {
    Deno.test({
      name: `${name}: ${title}`,
      ignore: opts.ignore ?? false,
      fn: async () => {
        const store = await open();
        try {
          await fn(store);
        } finally {
          await store.close();
        }
      },
    });
  }

  test("schedules: insert, get, list by name, delete; a duplicate name is a Conflict that changes nothing", async (store) => {
    const b = schedule("b", { cron: "0 4 * * *", every_ms: null, tz: "Europe/Berlin" });
    await store.insertSchedule({ schedule: b });
    await store.insertSchedule({ schedule: schedule("a", { catch_up: false }) });
    await assert.rejects(
      store.insertSchedule({ schedule: schedule("a", { every_ms: 1000, job: "{}" }) }),
      (err) => err instanceof Conflict && /schedule named "a" already exists/.test(err.message),
    );
    const list = await store.listSchedules();
    assert.deepEqual(list.map((s) => s.name), ["a", "b"]);
    assert.deepEqual({ ...list[0] }, {
      ...schedule("a", { catch_up: false }),
      last_job_state: null,
    });
    assert.deepEqual({ ...(await store.getSchedule({ name: "b" }))! }, {
      ...b,
      last_job_state: null,
    });
    assert.equal(await store.getSchedule({ name: "zz" }), null);
    assert.equal(await store.deleteSchedule({ name: "a" }), true);
    assert.equal(await store.deleteSchedule({ name: "a" }), false);
    assert.deepEqual((await store.listSchedules()).map((s) => s.name), ["b"]);
  });

  test("schedules: dueSchedules lists unpaused schedules at or past next_run_at, earliest first", async (store) => {
    await store.insertSchedule({ schedule: schedule("late", { next_run_at: T0 + 2 * MIN }) });
    await store.insertSchedule({ schedule: schedule("early", { next_run_at: T0 + MIN }) });
    await store.insertSchedule({ schedule: schedule("future", { next_run_at: T0 + 9 * MIN }) });
    await store.insertSchedule({
      schedule: schedule("paused", { next_run_at: T0, paused: true }),
    });
    const due = (now: number) =>
      store.dueSchedules({ now, limit: 10 }).then((l) => l.map((s) => s.name));
    assert.deepEqual(await due(T0 + MIN - 1), []);
    assert.deepEqual(await due(T0 + 2 * MIN), ["early", "late"]);
    assert.deepEqual(
      await store.dueSchedules({ now: T0 + 2 * MIN, limit: 1 }).then((l) => l.length),
      1,
    );
    assert.equal(
      await store.setSchedulePaused({
        name: "paused",
        paused: false,
        nextRunAt: T0 + 3 * MIN,
        now: T0,
      }),
      true,
    );
    assert.deepEqual(await due(T0 + 3 * MIN), ["early", "late", "paused"]);
    assert.equal(await store.setSchedulePaused({ name: "early", paused: true, now: T0 }), true);
    const early = (await store.getSchedule({ name: "early" }))!;
    assert.equal(early.paused, true);
    assert.equal(early.next_run_at, T0 + MIN, "pausing alone keeps next_run_at");
    assert.deepEqual(await due(T0 + 3 * MIN), ["late", "paused"]);
    assert.equal(await store.setSchedulePaused({ name: "nope", paused: true, now: T0 }), false);
  });

  test("schedules: fireSchedule inserts the slot's job and moves next_run_at in one guarded write", async (store) => {
    await store.insertSchedule({ schedule: schedule("s") });
    const now = T0 + 10 * MIN + 500;
    const job = newJob("j1", { run_at: now });
    assert.deepEqual(
      await store.fireSchedule({
        name: "s",
        expectNextRunAt: T0 + 10 * MIN,
        nextRunAt: T0 + 20 * MIN,
        job,
        now,
      }),
      { heldBy: null },
    );
    const s = (await store.getSchedule({ name: "s" }))!;
    assert.equal(s.next_run_at, T0 + 20 * MIN);
    assert.equal(s.last_run_at, now);
    assert.equal(s.last_job_id, "j1");
    assert.equal(s.last_job_state, "pending");
    assert.equal((await store.getJob({ id: "j1" }))!.state, "pending");
    assert.equal((await store.stats({ now })).counts.pending, 1, "counted like an enqueue");
    // The same slot again (a second leader that read the old next_run_at): nothing happens.
    assert.deepEqual(
      await store.fireSchedule({
        name: "s",
        expectNextRunAt: T0 + 10 * MIN,
        nextRunAt: T0 + 20 * MIN,
        job: newJob("j2", { run_at: now }),
        now: now + 1,
      }),
      null,
    );
    assert.equal(await store.getJob({ id: "j2" }), null, "no job for a slot already fired");
    assert.equal((await store.getSchedule({ name: "s" }))!.last_job_id, "j1");
    // Skipping a slot (no job) moves next_run_at only.
    assert.deepEqual(
      await store.fireSchedule({
        name: "s",
        expectNextRunAt: T0 + 20 * MIN,
        nextRunAt: T0 + 30 * MIN,
        now: now + 2,
      }),
      { heldBy: null },
    );
    const skipped = (await store.getSchedule({ name: "s" }))!;
    assert.equal(skipped.next_run_at, T0 + 30 * MIN);
    assert.equal(skipped.last_run_at, now, "a skipped slot is no run");
    // A run now (no guard) keeps next_run_at; the last job's state follows the job.
    assert.deepEqual(
      await store.fireSchedule({
        name: "s",
        expectNextRunAt: null,
        job: newJob("j3"),
        now: now + 3,
      }),
      { heldBy: null },
    );
    const ran = (await store.getSchedule({ name: "s" }))!;
    assert.equal(ran.next_run_at, T0 + 30 * MIN);
    assert.equal(ran.last_job_id, "j3");
    await store.deleteJobs({ states: ["pending"], ids: ["j3"] });
    assert.equal((await store.getSchedule({ name: "s" }))!.last_job_state, null, "job deleted");
    // A schedule that is gone fires nothing.
    assert.deepEqual(
      await store.fireSchedule({ name: "gone", expectNextRunAt: null, job: newJob("j4"), now }),
      null,
    );
    assert.equal(await store.getJob({ id: "j4" }), null);
  });

  test("schedules: a fire whose job id exists is a Conflict and moves nothing", async (store) => {
    await store.insertSchedule({ schedule: schedule("s") });
    await store.insertJobs({ jobs: [newJob("taken")], now: T0 });
    await assert.rejects(
      store.fireSchedule({
        name: "s",
        expectNextRunAt: T0 + 10 * MIN,
        nextRunAt: T0 + 20 * MIN,
        job: newJob("taken"),
        now: T0 + 10 * MIN,
      }),
      Conflict,
    );
    assert.equal((await store.getSchedule({ name: "s" }))!.next_run_at, T0 + 10 * MIN);
  });

  test("schedules: eight connections firing the same slot at once enqueue one job", async (store) => {
    await store.insertSchedule({ schedule: schedule("race") });
    const peers = await Promise.all(Array.from({ length: 7 }, () => opts.reopen(store)));
    try {
      const results = await Promise.all([store, ...peers].map((s, i) =>
        s.fireSchedule({
          name: "race",
          expectNextRunAt: T0 + 10 * MIN,
          nextRunAt: T0 + 20 * MIN,
          job: newJob(`r${i}`, { run_at: T0 + 10 * MIN }),
          now: T0 + 10 * MIN,
        })
      ));
      assert.equal(results.filter(Boolean).length, 1, `one winner: ${results}`);
      const jobs = await store.listJobs({ limit: 100 });
      assert.equal(jobs.length, 1);
      assert.equal((await store.getSchedule({ name: "race" }))!.last_job_id, jobs[0].id);
    } finally {
      await Promise.all(peers.map((p) => p.close()));
    }
  });

  test("schedules: a slot whose unique key an active job holds enqueues nothing, names the holder, moves on", async (store) => {
    const keyed = JSON.stringify({
      command: "echo k",
      queue: "default",
      priority: 0,
      unique_key: "K",
    });
    await store.insertSchedule({ schedule: schedule("k", { job: keyed }) });
    const slot = T0 + 10 * MIN;
    const fire = (id: string, expect: number, now: number) =>
      store.fireSchedule({
        name: "k",
        expectNextRunAt: expect,
        nextRunAt: expect + 10 * MIN,
        job: newJob(id, { run_at: now, unique_key: "K" }),
        now,
      });
    assert.deepEqual(await fire("k1", slot, slot), { heldBy: null });
    // k1 still pending at the next slot (and then running at the one after): nothing enqueued.
    assert.deepEqual(await fire("k2", slot + 10 * MIN, slot + 10 * MIN), { heldBy: "k1" });
    const [claimed] = await store.claimJobs({
      workerId: "w1",
      queues: null,
      now: slot + 11 * MIN,
      leaseMs: 30 * MIN,
      limit: 1,
    });
    assert.equal(claimed.id, "k1");
    assert.deepEqual(await fire("k3", slot + 20 * MIN, slot + 20 * MIN), { heldBy: "k1" });
    assert.equal(await store.getJob({ id: "k2" }), null);
    assert.equal(await store.getJob({ id: "k3" }), null);
    assert.equal(await store.countJobs({}), 1);
    const held = (await store.getSchedule({ name: "k" }))!;
    assert.equal(held.next_run_at, slot + 30 * MIN, "skipped slots still move the schedule on");
    assert.equal(held.last_job_id, "k1");
    assert.equal(held.last_run_at, slot, "last_run_at: when it last enqueued");
    assert.equal(held.last_job_state, "processing");
    // A job someone else enqueued with the key holds it too: the schedule names it.
    assert.ok(
      await store.applyChange({
        change: complete(claimed, { now: slot + 25 * MIN, workerId: "w1", exit_code: 0 }),
      }),
    );
    await store.insertJobs({ jobs: [newJob("by-hand", { unique_key: "K" })], now: slot });
    assert.deepEqual(await fire("k4", slot + 30 * MIN, slot + 30 * MIN), { heldBy: "by-hand" });
    assert.equal((await store.getSchedule({ name: "k" }))!.last_job_id, "by-hand");
    // Once the holder is gone, the next slot enqueues again.
    await store.deleteJobs({ states: ["pending"], ids: ["by-hand"] });
    assert.deepEqual(await fire("k5", slot + 40 * MIN, slot + 40 * MIN), { heldBy: null });
    const again = (await store.getSchedule({ name: "k" }))!;
    assert.deepEqual([again.last_job_id, again.last_run_at], ["k5", slot + 40 * MIN]);
    assert.equal((await store.getJob({ id: "k5" }))!.unique_key, "K");
    assert.equal((await store.stats({ now: slot + 40 * MIN })).counts.pending, 1);
  });

  test("schedules: fires and enqueues racing on one unique key make one active job", async (store) => {
    const keyed = JSON.stringify({
      command: "echo k",
      queue: "default",
      priority: 0,
      unique_key: "K",
    });
    await store.insertSchedule({ schedule: schedule("a", { job: keyed }) });
    await store.insertSchedule({ schedule: schedule("b", { job: keyed }) });
    const peers = await Promise.all(Array.from({ length: 7 }, () => opts.reopen(store)));
    try {
      const now = T0 + 10 * MIN;
      const fires: Promise<unknown>[] = [];
      const held: Record<string, string> = {};
      [store, ...peers].forEach((s, i) => {
        const job = newJob(`x${i}`, { run_at: now, unique_key: "K" });
        if (i % 4 === 3) {
          fires.push(s.insertJobs({ jobs: [job], now, onExisting: (id, h) => held[id] = h }));
        } else {
          // Two leaders on slot `a`, two on `b` and two runs now: each slot fires once.
          const name = i % 4 === 0 ? "a" : "b";
          fires.push(
            s.fireSchedule({
              name,
              expectNextRunAt: i % 4 === 2 ? null : T0 + 10 * MIN,
              nextRunAt: T0 + 20 * MIN,
              job,
              now,
            }).then((r) => {
              if (r?.heldBy) held[job.id] = r.heldBy;
            }),
          );
        }
      });
      await Promise.all(fires);
      const jobs = await store.listJobs({ limit: 100 });
      assert.equal(jobs.length, 1, `one job: ${jobs.map((j) => j.id)}`);
      const winner = jobs[0].id;
      for (const [id, holder] of Object.entries(held)) assert.equal(holder, winner, id);
      for (const name of ["a", "b"]) {
        const s = (await store.getSchedule({ name }))!;
        assert.equal(s.next_run_at, T0 + 20 * MIN);
        assert.equal(s.last_job_id, winner, name);
      }
      assert.equal((await store.stats({ now })).counts.pending, 1);
    } finally {
      await Promise.all(peers.map((p) => p.close()));
    }
  });
}
