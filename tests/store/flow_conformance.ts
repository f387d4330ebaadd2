/**
 * Flow control every Store backend must show (issue 16, docs/architecture.md "Flow control"): job
 * dependencies (after), queue pause and queue-wide limits. Called by each backend's test file like
 * the main conformance suite (tests/store/conformance.ts), whose conventions hold here too.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../../src/core/clock.ts";
import { InvalidInput } from "../../src/core/errors.ts";
import type { Job, JobToInsert } from "../../src/core/job.ts";
import type { RetryPolicy } from "../../src/core/retry_policy.ts";
import { complete, fail, restore, retryNow } from "../../src/core/transitions.ts";
import type { ClaimParams, Store } from "../../src/store/store.ts";
import { wakerFor } from "../../src/worker/wake.ts";
import { type ConformanceOptions, newJob } from "./conformance.ts";

const T0 = Date.UTC(2026, 0, 1);
const POLICY: RetryPolicy = { backoff_base: 2, backoff_max: 3600 };
const LEASE = 30_000;

/** A job that runs after `deps`. */
function after(id: string, deps: string[], o: Partial<JobToInsert> = {}): JobToInsert {
  return newJob(id, { depends_on: JSON.stringify(deps), ...o });
}

function claimOf(clock: ManualClock, o: Partial<ClaimParams> = {}): ClaimParams {
  return { workerId: "w1", queues: null, now: clock.now(), leaseMs: LEASE, limit: 100, ...o };
}

function ids(jobs: readonly Pick<Job, "id">[]): string[] {
  return jobs.map((j) => j.id).sort();
}

async function state(store: Store, id: string): Promise<[string, number, string | null]> {
  const j = await store.getJob({ id });
  assert.ok(j, `job ${id} exists`);
  return [j.state, j.blocked_by, j.error];
}

async function completeAll(store: Store, clock: ManualClock, jobs: readonly Job[]) {
  for (const j of jobs) {
    assert.ok(
      await store.applyChange({
        change: complete(j, { now: clock.now(), workerId: j.lease_owner!, exit_code: 0 }),
      }),
    );
  }
}

export function flowConformance(
  name: string,
  open: () => Promise<Store>,
  opts: ConformanceOptions,
): void {
  function test(title: string, fn: (store: Store, clock: ManualClock) => Promise<void>): void {
    Deno.test({
      name: `${name}: flow: ${title}`,
      ignore: opts.ignore ?? false,
      fn: async () => {
        const store = await open();
        try {
          await fn(store, new ManualClock(T0));
        } finally {
          await store.close();
        }
      },
    });
  }

  // --- dependencies ---------------------------------------------------------------------------

  test(
    "a job with a unique key waits for its dependencies; a replaced one unlinks",
    async (store, clock) => {
      await store.insertJobs({ jobs: [newJob("a")], now: clock.now() });
      await store.insertJobs({
        jobs: [after("k1", ["a"], { unique_key: "key" }), after("k2", ["k1"])],
        now: clock.now(),
      });
      assert.deepEqual(await state(store, "k1"), ["pending", 1, null]);
      assert.deepEqual(await state(store, "k2"), ["pending", 1, null]);
      // Replacing k1 (its key held while it waits) deletes it: k2 can never run after it.
      await store.insertJobs({
        jobs: [after("k1b", ["a"], { unique_key: "key" })],
        now: clock.now(),
        onDuplicate: "replace",
      });
      assert.equal(await store.getJob({ id: "k1" }), null);
      assert.deepEqual(await state(store, "k1b"), ["pending", 1, null]);
      const [k2, , error] = await state(store, "k2");
      assert.equal(k2, "dead");
      assert.match(error ?? "", /dependency k1 was deleted/);
      // a completes: k1b is claimable.
      const [a] = await store.claimJobs(claimOf(clock));
      assert.equal(a.id, "a");
      await completeAll(store, clock, [a]);
      assert.deepEqual(ids(await store.claimJobs(claimOf(clock))), ["k1b"]);
    },
  );

  test("a blocked job due later is counted blocked, not scheduled", async (store, clock) => {
    await store.insertJobs({
      jobs: [
        newJob("a", { run_at: T0 + 60_000 }),
        after("b", ["a"], { run_at: T0 + 60_000 }),
        after("c", ["a"]),
      ],
      now: clock.now(),
    });
    const stats = await store.stats({ now: clock.now() });
    assert.equal(stats.scheduled, 1, "only a: b waits for a");
    assert.equal(stats.blocked, 2);
    // A waiting job due before every free one is not the next run.
    await store.insertJobs({
      jobs: [after("d", ["a"], { run_at: T0 + 30_000 })],
      now: clock.now(),
    });
    for (const queues of [null, ["default"]]) {
      assert.equal(await store.nextRunAt({ queues, after: clock.now() }), T0 + 60_000);
    }
    assert.equal((await store.stats({ now: clock.now() })).scheduled, 1);
  });

  test("a job is claimable only once every job it runs after completed", async (store, clock) => {
    await store.insertJobs({
      jobs: [newJob("a"), newJob("b"), after("c", ["a", "b"], { priority: 9 })],
      now: clock.now(),
    });
    assert.deepEqual(await state(store, "c"), ["pending", 2, null]);
    assert.equal((await store.stats({ now: clock.now() })).blocked, 1);
    // A waiting job is neither the oldest pending one nor scheduled.
    await store.insertJobs({ jobs: [after("old", ["a"], { run_at: T0 + 5000 })], now: T0 - 9000 });
    const s0 = await store.stats({ now: clock.now() });
    assert.deepEqual([s0.oldest_pending_at, s0.scheduled, s0.blocked], [T0, 0, 2]);
    assert.equal(await store.nextRunAt({ queues: null, after: clock.now() }), null);
    assert.deepEqual(await store.deleteJobs({ states: ["pending"], ids: ["old"] }), ["old"]);
    assert.deepEqual(await store.getBlockers({ ids: ["a", "c"] }), new Map([["c", ["a", "b"]]]));
    const first = await store.claimJobs(claimOf(clock));
    assert.deepEqual(ids(first), ["a", "b"], "c waits although it has the highest priority");
    await completeAll(store, clock, first.filter((j) => j.id === "a"));
    assert.deepEqual(await state(store, "c"), ["pending", 1, null]);
    assert.deepEqual(await store.getBlockers({ ids: ["c"] }), new Map([["c", ["b"]]]));
    assert.deepEqual(await store.claimJobs(claimOf(clock)), []);
    assert.equal(await store.nextRunAt({ queues: null }), null, "a blocked job is not due");
    await completeAll(store, clock, first.filter((j) => j.id === "b"));
    assert.equal((await store.stats({ now: clock.now() })).blocked, 0);
    assert.deepEqual(ids(await store.claimJobs(claimOf(clock))), ["c"]);
    assert.deepEqual(await store.getDependencies({ id: "c", limit: 10 }), {
      dependencies: [{ id: "a", state: "completed" }, { id: "b", state: "completed" }],
      dependents: [],
    });
    assert.deepEqual(await store.getDependencies({ id: "a", limit: 10 }), {
      dependencies: [],
      dependents: [{ id: "c", state: "processing" }],
    });
    assert.equal(await store.getDependencies({ id: "nope", limit: 10 }), null);
  });

  test(
    "a job after a completed one is claimable at once; retrying the dependency blocks it again",
    async (store, clock) => {
      await store.insertJobs({ jobs: [newJob("a")], now: clock.now() });
      await completeAll(store, clock, await store.claimJobs(claimOf(clock)));
      await store.insertJobs({ jobs: [after("b", ["a"])], now: clock.now() });
      assert.deepEqual(await state(store, "b"), ["pending", 0, null]);
      const a = (await store.getJob({ id: "a" }))!;
      assert.ok(await store.applyChange({ change: retryNow(a, clock.now()) }));
      assert.deepEqual(await state(store, "b"), ["pending", 1, null]);
      assert.deepEqual(ids(await store.claimJobs(claimOf(clock))), ["a"]);
    },
  );

  test("an unknown dependency, one later in the input, changes nothing", async (store, clock) => {
    await store.insertJobs({ jobs: [newJob("a")], now: clock.now() });
    await assert.rejects(
      store.insertJobs({ jobs: [newJob("x"), after("y", ["a", "nope"])], now: clock.now() }),
      (e) =>
        e instanceof InvalidInput && /"y" runs after "nope", which does not exist/.test(e.message),
    );
    await assert.rejects(
      store.insertJobs({ jobs: [after("x", ["y"]), newJob("y")], now: clock.now() }),
      (e) => e instanceof InvalidInput && /which comes later in the input/.test(e.message),
    );
    async function* batches() {
      yield [newJob("s1"), after("s2", ["s1", "a"])];
      yield [after("s3", ["s2"]), after("s4", ["s5"])];
      yield [newJob("s5")];
    }
    await assert.rejects(
      store.insertJobStream({ batches: batches(), now: clock.now() }),
      (e) => e instanceof InvalidInput && /"s4" runs after "s5"/.test(e.message),
    );
    assert.deepEqual((await store.listJobs({ limit: 10 })).map((j) => j.id), ["a"]);
    assert.equal((await store.stats({ now: clock.now() })).counts.pending, 1);
    assert.equal((await store.getDependencies({ id: "a", limit: 10 }))!.dependents.length, 0);
  });

  test(
    "a dead dependency kills its dependents down the graph; restoring it brings them back",
    async (store, clock) => {
      await store.insertJobs({
        jobs: [
          newJob("a", { max_retries: 0 }),
          newJob("other"),
          after("b", ["a"]),
          after("c", ["b", "other"]),
          after("d", ["other"]),
        ],
        now: clock.now(),
      });
      const claimed = await store.claimJobs(claimOf(clock));
      assert.deepEqual(ids(claimed), ["a", "other"]);
      const a = claimed.find((j) => j.id === "a")!;
      assert.ok(
        await store.applyChange({
          change: fail(a, { now: clock.now(), workerId: "w1", exit_code: 1 }, POLICY),
        }),
      );
      assert.deepEqual(await state(store, "a"), ["dead", 0, null]);
      assert.deepEqual(await state(store, "b"), ["dead", 1, "dependency a failed"]);
      assert.deepEqual(await state(store, "c"), ["dead", 2, "dependency b failed"]);
      assert.deepEqual(await state(store, "d"), ["pending", 1, null], "not after a");
      let stats = await store.stats({ now: clock.now() });
      assert.deepEqual([stats.counts.dead, stats.counts.pending, stats.blocked], [3, 1, 1]);
      // A job enqueued after a dead one is dead at once.
      await store.insertJobs({ jobs: [after("e", ["c"])], now: clock.now() });
      assert.deepEqual(await state(store, "e"), ["dead", 1, "dependency c failed"]);

      clock.advance(1000);
      const dead = (await store.getJob({ id: "a" }))!;
      assert.ok(await store.applyChange({ change: restore(dead, clock.now()) }));
      for (const [id, blocked] of [["b", 1], ["c", 2], ["e", 1]] as const) {
        assert.deepEqual(await state(store, id), ["pending", blocked, null], id);
      }
      stats = await store.stats({ now: clock.now() });
      assert.deepEqual([stats.counts.dead, stats.counts.pending, stats.blocked], [0, 5, 4]);
      // Now the graph runs to the end.
      await completeAll(store, clock, claimed.filter((j) => j.id === "other"));
      for (const id of ["a", "b", "c", "e"]) {
        const next = await store.claimJobs(claimOf(clock));
        assert.ok(next.some((j) => j.id === id), `${id} runs (got ${ids(next)})`);
        await completeAll(store, clock, next);
      }
      assert.equal((await store.stats({ now: clock.now() })).counts.completed, 6);
    },
  );

  test(
    "deleting an unfinished dependency kills its dependents; a completed one frees them",
    async (store, clock) => {
      await store.insertJobs({
        jobs: [newJob("a"), newJob("b"), after("c", ["a"]), after("d", ["b"]), after("e", ["d"])],
        now: clock.now(),
      });
      assert.deepEqual(await store.deleteJobs({ states: ["pending"], ids: ["b"] }), ["b"]);
      assert.deepEqual(await state(store, "d"), [
        "dead",
        0,
        "dependency b was deleted before it completed",
      ]);
      assert.deepEqual(await state(store, "e"), ["dead", 1, "dependency d failed"]);
      const [a] = await store.claimJobs(claimOf(clock, { limit: 1 }));
      await completeAll(store, clock, [a]);
      assert.deepEqual(await store.deleteJobs({ states: ["completed"], ids: ["a"] }), ["a"]);
      assert.deepEqual(await state(store, "c"), ["pending", 0, null]);
      assert.deepEqual(ids(await store.claimJobs(claimOf(clock))), ["c"]);
      assert.deepEqual(await store.getDependencies({ id: "c", limit: 10 }), {
        dependencies: [{ id: "a", state: null }],
        dependents: [],
      });
      const stats = await store.stats({ now: clock.now() });
      assert.deepEqual([stats.counts.dead, stats.counts.processing, stats.blocked], [2, 1, 0]);
    },
  );

  test(
    "enqueueing after a job while another connection completes it never leaves the new job blocked",
    async (store, clock) => {
      const other = await opts.reopen(store);
      try {
        for (let i = 0; i < 20; i++) {
          await store.insertJobs({ jobs: [newJob(`d${i}`)], now: clock.now() });
          const [dep] = await store.claimJobs(claimOf(clock, { limit: 1 }));
          assert.equal(dep.id, `d${i}`);
          const completion = other.applyChange({
            change: complete(dep, { now: clock.now(), workerId: "w1", exit_code: 0 }),
          });
          const insert = store.insertJobs({ jobs: [after(`x${i}`, [`d${i}`])], now: clock.now() });
          const [done] = await Promise.all([completion, insert]);
          assert.ok(done);
          assert.deepEqual(await state(store, `x${i}`), ["pending", 0, null], `x${i}`);
          const [x] = await store.claimJobs(claimOf(clock, { limit: 1 }));
          assert.equal(x?.id, `x${i}`);
          await completeAll(store, clock, [x]);
        }
      } finally {
        await other.close();
      }
    },
  );

  test("a chain of 1,000 jobs from one streamed input runs in order", async (store, clock) => {
    const n = 1000;
    async function* batches() {
      for (let b = 0; b < n; b += 100) {
        yield Array.from({ length: 100 }, (_, i) => {
          const k = b + i;
          return k === 0 ? newJob("k0") : after(`k${k}`, [`k${k - 1}`], { priority: k });
        });
      }
    }
    assert.equal(await store.insertJobStream({ batches: batches(), now: clock.now() }), n);
    assert.equal((await store.stats({ now: clock.now() })).blocked, n - 1);
    const order: string[] = [];
    for (;;) {
      const got = await store.claimJobs(claimOf(clock, { limit: 5 }));
      if (got.length === 0) break;
      assert.equal(got.length, 1, "only the head of the chain is ever claimable");
      order.push(got[0].id);
      await completeAll(store, clock, got);
    }
    assert.deepEqual(order, Array.from({ length: n }, (_, k) => `k${k}`));
  });

  test("a fan-in of 1,000 jobs into one runs the one last", async (store, clock) => {
    const n = 1000;
    const fan = Array.from({ length: n }, (_, k) => newJob(`f${k}`));
    await store.insertJobs({
      jobs: [...fan, after("sink", fan.map((j) => j.id), { priority: 5 })],
      now: clock.now(),
    });
    let done = 0;
    for (;;) {
      const got = await store.claimJobs(claimOf(clock, { limit: 150 }));
      if (got.length === 0) break;
      if (got.some((j) => j.id === "sink")) {
        assert.equal(done, n, "the sink runs after every other job completed");
        assert.equal(got.length, 1);
        break;
      }
      await completeAll(store, clock, got);
      done += got.length;
    }
    assert.equal((await store.getJob({ id: "sink" }))!.state, "processing");
  });

  // --- queues ---------------------------------------------------------------------------------

  test(
    "a paused queue gives no job until resumed; its running jobs finish",
    async (store, clock) => {
      await store.insertJobs({
        jobs: [newJob("g1", { queue: "gpu", priority: 5 }), newJob("g2", { queue: "gpu" })],
        now: clock.now(),
      });
      await store.insertJobs({ jobs: [newJob("o1")], now: clock.now() });
      const [g1] = await store.claimJobs(claimOf(clock, { limit: 1 }));
      assert.equal(g1.id, "g1");
      assert.deepEqual(
        await store.setQueueControl({ name: "gpu", paused: true, now: clock.now() }),
        {
          name: "gpu",
          paused: true,
          max_running: 0,
        },
      );
      assert.deepEqual(ids(await store.claimJobs(claimOf(clock))), ["o1"]);
      assert.deepEqual(await store.claimJobs(claimOf(clock, { queues: ["gpu"] })), []);
      await completeAll(store, clock, [g1]);
      assert.deepEqual(await store.listQueueControls(), [
        { name: "gpu", paused: true, max_running: 0 },
      ]);
      const queues = await store.listQueues();
      assert.deepEqual(
        queues.map((q) => [q.name, q.paused, q.counts.pending, q.counts.completed]),
        [
          ["default", false, 0, 0],
          ["gpu", true, 1, 1],
        ],
      );
      await store.setQueueControl({ name: "gpu", paused: false, now: clock.now() });
      assert.deepEqual(await store.listQueueControls(), []);
      assert.deepEqual(ids(await store.claimJobs(claimOf(clock))), ["g2"]);
    },
  );

  test(
    "a queue's limit caps its running jobs; other queues are not held back",
    async (store, clock) => {
      const gpu = Array.from(
        { length: 5 },
        (_, i) => newJob(`g${i}`, { queue: "gpu", priority: 9 }),
      );
      await store.insertJobs({ jobs: [...gpu, newJob("o1"), newJob("o2")], now: clock.now() });
      assert.deepEqual(
        await store.setQueueControl({ name: "gpu", maxRunning: 2, now: clock.now() }),
        { name: "gpu", paused: false, max_running: 2 },
      );
      const first = await store.claimJobs(claimOf(clock, { limit: 10 }));
      assert.deepEqual(ids(first), ["g0", "g1", "o1", "o2"]);
      assert.deepEqual(await store.claimJobs(claimOf(clock, { queues: ["gpu"] })), []);
      await completeAll(
        store,
        clock,
        first.filter((j) => j.id === "g0"),
      );
      assert.deepEqual(ids(await store.claimJobs(claimOf(clock))), ["g2"]);
      // Pausing keeps the limit; a limit of 0 removes it.
      await store.setQueueControl({ name: "gpu", paused: true, now: clock.now() });
      assert.deepEqual(await store.listQueueControls(), [{
        name: "gpu",
        paused: true,
        max_running: 2,
      }]);
      // A claim right after a control changed sees it (PostgreSQL: while the store still claims
      // on the flow-controlled path it took for the limit, see #controlledUntil).
      await completeAll(store, clock, first.filter((j) => j.id === "g1"));
      assert.deepEqual(await store.claimJobs(claimOf(clock)), []);
      await store.setQueueControl({ name: "gpu", paused: false, maxRunning: 0, now: clock.now() });
      assert.deepEqual(ids(await store.claimJobs(claimOf(clock))), ["g3", "g4"]);
      const [q] = (await store.listQueues()).filter((x) => x.name === "gpu");
      assert.deepEqual([q.max_running, q.counts.processing, q.counts.completed], [0, 3, 2]);
    },
  );

  test(
    "8 claimers on their own connections never run more than a queue's limit",
    async (store, clock) => {
      const n = 40;
      await store.insertJobs({
        jobs: Array.from({ length: n }, (_, i) => newJob(`l${i}`, { queue: "api" })),
        now: clock.now(),
      });
      await store.setQueueControl({ name: "api", maxRunning: 2, now: clock.now() });
      const others = await Promise.all(Array.from({ length: 7 }, () => opts.reopen(store)));
      const claimers = [store, ...others];
      let running = 0;
      let most = 0;
      let done = 0;
      try {
        await Promise.all(claimers.map(async (s, w) => {
          while (done < n) {
            const got = await s.claimJobs(claimOf(clock, { workerId: `w${w}`, limit: 2 }));
            if (got.length === 0) {
              await new Promise((r) => setTimeout(r, 1));
              continue;
            }
            running += got.length;
            most = Math.max(most, running);
            // What the database says too, while these jobs are held.
            const held = await s.countJobs({ state: "processing", queue: "api" });
            assert.ok(held <= 2, `${held} running`);
            await new Promise((r) => setTimeout(r, 2));
            running -= got.length;
            await completeAll(s, clock, got);
            done += got.length;
          }
        }));
      } finally {
        await Promise.all(others.map((s) => s.close()));
      }
      assert.equal(done, n);
      assert.ok(most <= 2, `at most 2 at once, saw ${most}`);
      assert.equal((await store.stats({ now: clock.now() })).counts.completed, n);
    },
  );

  test(
    "20 workers settling and claiming in one call: no deadlock, never more than a queue's limit",
    async (store, clock) => {
      // As workers do (settleAndClaim). On PostgreSQL every controlled claim locks the limited
      // queues first, then writes the counters (sharded by backend pid: with 20 sessions two
      // share a shard); a transaction that wrote its counter rows before taking that lock would
      // wait for such a claim while the claim waits for it (deadlock detected: a settle and a
      // claim sent as one transaction in that order failed this test 3 of 3). `running` counts a job
      // from its claim's return to just before its settle is sent: never more than the database
      // counts, so never more than the limit. Every other job is of a queue without a limit, so
      // that a settle often frees a slot of `api` while its own claim takes a `free` job.
      const n = 300;
      await store.insertJobs({
        jobs: Array.from(
          { length: n },
          (_, i) => newJob(`s${i}`, { queue: i % 2 ? "api" : "free", run_at: T0 - n + i }),
        ),
        now: clock.now(),
      });
      await store.setQueueControl({ name: "api", maxRunning: 2, now: clock.now() });
      const others = await Promise.all(Array.from({ length: 19 }, () => opts.reopen(store)));
      const workers = [store, ...others];
      let running = 0;
      let most = 0;
      let done = 0;
      try {
        await Promise.all(workers.map(async (s, w) => {
          const claim = () => claimOf(clock, { workerId: `w${w}`, limit: 1 });
          let [job] = await s.claimJobs(claim());
          while (done < n) {
            if (!job) {
              await new Promise((r) => setTimeout(r, 1));
              [job] = await s.claimJobs(claim());
              continue;
            }
            const limited = job.queue === "api" ? 1 : 0;
            running += limited;
            most = Math.max(most, running);
            // What the database says too, while this job is held.
            const held = await s.countJobs({ state: "processing", queue: "api" });
            assert.ok(held <= 2, `${held} running`);
            await new Promise((r) => setTimeout(r, 2));
            running -= limited;
            const r = await s.settleAndClaim({
              change: complete(job, { now: clock.now(), workerId: `w${w}`, exit_code: 0 }),
              claim: claim(),
            });
            assert.ok(r.applied, `${job.id} settled`);
            done++;
            [job] = r.claimed;
          }
        }));
      } finally {
        await Promise.all(others.map((s) => s.close()));
      }
      assert.equal(done, n);
      assert.ok(most <= 2, `at most 2 at once, saw ${most}`);
      assert.ok(most === 2, "the workers did run the queue's jobs side by side");
      assert.equal((await store.stats({ now: clock.now() })).counts.completed, n);
    },
  );

  test(
    "per-queue counts follow every move: claims, settles, deaths down the graph, restores, deletes",
    async (store, clock) => {
      /** What listQueues and countJobs say must be what the jobs themselves say. */
      const check = async (when: string) => {
        const jobs = await store.listJobs({ limit: 1000 });
        const truth = new Map<string, Record<string, number>>();
        for (const j of jobs) {
          const q = truth.get(j.queue) ?? {};
          q[j.state] = (q[j.state] ?? 0) + 1;
          truth.set(j.queue, q);
        }
        for (const q of await store.listQueues()) {
          const want = truth.get(q.name) ?? {};
          for (const [state, n] of Object.entries(q.counts)) {
            assert.equal(n, want[state] ?? 0, `${when}: ${q.name} ${state}`);
            assert.equal(
              await store.countJobs({ queue: q.name, state: state as Job["state"] }),
              want[state] ?? 0,
              `${when}: countJobs ${q.name} ${state}`,
            );
          }
          truth.delete(q.name);
        }
        assert.deepEqual([...truth.keys()], [], `${when}: queues missing from listQueues`);
        assert.equal(
          await store.countJobs({ queue: "b" }),
          jobs.filter((j) => j.queue === "b").length,
        );
      };
      await store.insertJobs({
        jobs: [
          newJob("a1", { queue: "a", max_retries: 0, priority: 9 }),
          newJob("a2", { queue: "a", priority: 8 }),
          newJob("a3", { queue: "a", unique_key: "k" }),
          after("b1", ["a1"], { queue: "b" }),
          after("b2", ["b1"], { queue: "b" }),
          newJob("b3", { queue: "b" }),
        ],
        now: clock.now(),
      });
      await check("inserted");
      const [a1] = await store.claimJobs(claimOf(clock, { limit: 1 }));
      await check("claimed");
      // a1 dies: b1 and b2 (queue b) die with it.
      const { applied, claimed } = await store.settleAndClaim({
        change: fail(a1, { now: clock.now(), workerId: "w1", exit_code: 1 }, POLICY),
        claim: claimOf(clock, { limit: 1 }),
      });
      assert.ok(applied);
      assert.deepEqual(ids(claimed), ["a2"]);
      assert.equal((await store.getJob({ id: "b2" }))!.state, "dead");
      await check("died down the graph");
      await completeAll(store, clock, claimed);
      // A replaced unique job, then a restore bringing the dependents back.
      await store.insertJobs({
        jobs: [newJob("a4", { queue: "b", unique_key: "k" })],
        now: clock.now(),
        onDuplicate: "replace",
      });
      await check("replaced");
      clock.advance(1000);
      assert.ok(
        await store.applyChange({
          change: restore((await store.getJob({ id: "a1" }))!, clock.now()),
        }),
      );
      await check("restored");
      await store.deleteJobs({ states: ["pending"], ids: ["b3"] });
      await check("deleted by id");
      await store.deleteJobs({ states: ["completed", "pending"], limit: 2 });
      await check("deleted oldest");
    },
  );

  test(
    "beside a paused or full queue's backlog, claims take the other queues' jobs in claim order",
    async (store, clock) => {
      // 50 due jobs of "bulk", older than every other (on SQLite a claim then reads the other
      // queues' own jobs, found in the index, instead of walking past these: walksQueues).
      await store.insertJobs({
        jobs: Array.from(
          { length: 50 },
          (_, i) => newJob(`bulk-${i}`, { queue: "bulk", run_at: T0 - 60_000, priority: 9 }),
        ),
        now: T0 - 60_000,
      });
      await store.setQueueControl({ name: "bulk", paused: true, now: clock.now() });
      assert.deepEqual(await store.claimJobs(claimOf(clock, { limit: 1 })), []);
      await store.insertJobs({
        jobs: [
          newJob("mail-low", { queue: "mail", priority: -1, run_at: T0 - 5000 }),
          newJob("mail-2", { queue: "mail", run_at: T0 - 100 }),
          newJob("web-1", { queue: "web", run_at: T0 - 200 }),
          newJob("web-high", { queue: "web", priority: 5 }),
          newJob("web-later", { queue: "web", priority: 100, run_at: T0 + 1 }),
          newJob("tie-z", { queue: "mail", run_at: T0 - 100 }),
          newJob("tie-a", { queue: "web", run_at: T0 - 100 }),
        ],
        now: T0 - 10_000,
      });
      const order = async (o: Partial<ClaimParams>) =>
        (await store.claimJobs(claimOf(clock, o))).map((j) => j.id);
      assert.deepEqual(await order({ limit: 3 }), ["web-high", "web-1", "mail-2"]);
      assert.deepEqual(await order({ limit: 1, queues: ["bulk", "web"] }), ["tie-a"]);
      assert.deepEqual(await order({ limit: 10 }), ["tie-z", "mail-low"]);
      assert.deepEqual(await order({ limit: 10 }), []);
      clock.advance(1);
      // A limit of 1 with three of its jobs running: full, so closed as a paused queue is.
      await store.setQueueControl({ name: "web", maxRunning: 1, now: clock.now() });
      await store.insertJobs({ jobs: [newJob("web-2", { queue: "web" })], now: clock.now() });
      await store.setQueueControl({ name: "bulk", paused: false, now: clock.now() });
      await store.setQueueControl({ name: "bulk", maxRunning: 2, now: clock.now() });
      assert.deepEqual(await order({ limit: 10 }), ["bulk-0", "bulk-1"]);
      assert.deepEqual(await order({ limit: 10 }), []);
      const running = await store.listJobs({ state: "processing", queue: "web", limit: 10 });
      assert.equal(running.length, 3);
      await completeAll(store, clock, running);
      assert.deepEqual(await order({ limit: 10 }), ["web-later"]);
      assert.deepEqual(await order({ limit: 10, queues: ["web", "mail"] }), []);
    },
  );

  test("nextRunAt with open leaves out the jobs of paused and full queues", async (
    store,
    clock,
  ) => {
    await store.insertJobs({
      jobs: Array.from(
        { length: 20 },
        (_, i) => newJob(`bulk-${i}`, { queue: "bulk", run_at: T0 - 60_000 }),
      ),
      now: T0 - 60_000,
    });
    await store.insertJobs({
      jobs: [newJob("mail-1", { queue: "mail", run_at: T0 + 5000 })],
      now: T0,
    });
    await store.setQueueControl({ name: "bulk", paused: true, now: clock.now() });
    assert.equal(await store.nextRunAt({ queues: null }), T0 - 60_000);
    assert.equal(await store.nextRunAt({ queues: null, open: true }), T0 + 5000);
    assert.equal(await store.nextRunAt({ queues: ["bulk"], open: true }), null);
    assert.equal(
      await store.nextRunAt({ queues: ["bulk", "mail"], open: true, after: T0 }),
      T0 + 5000,
    );
    await store.setQueueControl({ name: "mail", paused: true, now: clock.now() });
    assert.equal(await store.nextRunAt({ queues: null, open: true }), null);
    // A full queue (its limit reached) is left out too, until a slot frees.
    await store.setQueueControl({ name: "bulk", paused: false, now: clock.now() });
    await store.setQueueControl({ name: "bulk", maxRunning: 1, now: clock.now() });
    const [running] = await store.claimJobs(claimOf(clock, { queues: ["bulk"] }));
    assert.ok(running);
    assert.equal(await store.nextRunAt({ queues: null, open: true }), null);
    assert.equal(await store.nextRunAt({ queues: ["bulk"], open: true }), null);
    assert.equal(await store.nextRunAt({ queues: null }), T0 - 60_000, "without open: all");
    await store.setQueueControl({ name: "mail", paused: false, now: clock.now() });
    assert.equal(await store.nextRunAt({ queues: null, open: true }), T0 + 5000);
    await completeAll(store, clock, [running]);
    assert.equal(await store.nextRunAt({ queues: null, open: true }), T0 - 60_000);
  });

  test("a limited queue and a worker whose names hold quotes, backslashes and semicolons", async (
    store,
    clock,
  ) => {
    // Through the flow-controlled claim (its lock, its claim statements, the walk decision kept
    // per queue filter): whatever the names hold, they are values, never SQL.
    const queue = "lim ' \\' \\\\ \"; DROP TABLE jobs; --";
    const workerId = "w ' \\'; SELECT 1; --";
    await store.insertJobs({
      jobs: Array.from({ length: 4 }, (_, i) => newJob(`odd-${i}`, { queue })),
      now: clock.now(),
    });
    await store.setQueueControl({ name: queue, maxRunning: 2, now: clock.now() });
    const claims: string[][] = [];
    // Each filter twice: the second claim of each runs while the first one's walk decision holds.
    for (const queues of [[queue], [queue], null, null]) {
      const got = await store.claimJobs(claimOf(clock, { workerId, queues, limit: 2 }));
      claims.push(got.map((j) => j.id));
      for (const j of got) assert.equal(j.lease_owner, workerId);
      await completeAll(store, clock, got);
    }
    assert.deepEqual(claims, [["odd-0", "odd-1"], ["odd-2", "odd-3"], [], []]);
    assert.equal(await store.countJobs({ state: "completed", queue }), 4);
  });

  test("a running job of a limited queue that ends wakes idle workers (its slot is free)", async (
    store,
    clock,
  ) => {
    // Idle workers leave full queues out of their wait, so the end of the job that filled the
    // queue must wake them, whatever its outcome (completed is not a claimable state).
    await store.insertJobs({
      jobs: [newJob("lim-1", { queue: "lim" }), newJob("lim-2", { queue: "lim" })],
      now: clock.now(),
    });
    await store.setQueueControl({ name: "lim", maxRunning: 1, now: clock.now() });
    const [running] = await store.claimJobs(claimOf(clock));
    assert.equal(running?.id, "lim-1");
    assert.equal(await store.nextRunAt({ queues: null, open: true }), null, "lim is full");
    const waker = wakerFor(store);
    try {
      waker.idle();
      // Sets the hint source up (PostgreSQL: LISTEN, after the writes above); hints before it
      // are not seen.
      await waker.wait(0);
      waker.arm();
      const controller = new AbortController();
      let woke: boolean | null = null;
      const waiting = waker.wait(60_000, controller.signal).then((h) => woke = h);
      await completeAll(store, clock, [running]);
      // Bounded: if no wake-up comes, abort after 10 s and fail.
      const guard = setTimeout(() => controller.abort(), 10_000);
      await waiting;
      clearTimeout(guard);
      assert.equal(woke, true, "woken by the settle, not by the guard");
    } finally {
      waker.close();
    }
    assert.equal(await store.nextRunAt({ queues: null, open: true }), T0);
  });
}
