/**
 * The behaviour every Store backend must show (see docs/architecture.md). A backend's test file
 * calls {@link storeConformance} with a factory that returns a fresh, empty store, and one that
 * opens another connection to the same database (leadership needs two candidates).
 *
 * Conventions the suite pins down (the Store interface leaves them open):
 * - Ordering ties (same created_at, e.g. one enqueue batch) break by insertion order, in listJobs
 *   (newest: later inserts first; oldest/next: earlier first) and in claimJobs.
 * - A claim writes only state, attempts + 1, started_at, lease_owner, lease_expires_at and
 *   updated_at; the last run's exit_code, error and finished_at stay until the next settle.
 * - A job's output changes only through applyChange with `output`; getJobOutput gives empty
 *   strings for a job that never produced any.
 * - completedPerBucket: index i counts completed jobs with since + i*bucketMs <= finished_at <
 *   since + (i+1)*bucketMs; the array ends at the last non-empty bucket (callers pad).
 * - deleteJobs with `ids: []` deletes nothing; renewLeases does not touch updated_at.
 * - All times come from the caller (a ManualClock here); nothing sleeps, except the test of a
 *   leader that stops renewing, which waits for its real lease to run out (PostgreSQL's lock
 *   is freed by the server's idle_session_timeout, which counts real time).
 */
import assert from "node:assert/strict";
import { ManualClock } from "../../src/core/clock.ts";
import { Conflict, InvalidInput, NotFound } from "../../src/core/errors.ts";
import { type Job, JOB_COLUMNS, type JobToInsert } from "../../src/core/job.ts";
import type { RetryPolicy } from "../../src/core/retry_policy.ts";
import {
  complete,
  completeLate,
  fail,
  loseLease,
  moveToDlq,
  release,
  restore,
  retryNow,
} from "../../src/core/transitions.ts";
import type { OnDuplicate, Store, WorkerRecord } from "../../src/store/store.ts";
import { releaseUnstarted } from "../../src/worker/start_marker.ts";

export interface ConformanceOptions {
  /** Register the tests as ignored (backend unavailable and skipping is allowed). */
  ignore?: boolean;
  /** Opens another store on the same database as `store` (the test closes it). */
  reopen: (store: Store) => Promise<Store>;
}

const T0 = Date.UTC(2026, 0, 1);
const POLICY: RetryPolicy = { backoff_base: 2, backoff_max: 3600 };
const LEASE = 30_000;
/** Every job column (core's field list), sorted: what getJob and listJobs return, no more. */
const JOB_KEYS = [...JOB_COLUMNS].sort();

/** A queue name with what a list literal must quote or escape (PostgreSQL's text[] syntax). */
const ODD_QUEUE = 'odd "q" \\ {a,b} NULL \u00e9';

/** A job to insert, with sensible defaults. */
export function newJob(id: string, o: Partial<JobToInsert> = {}): JobToInsert {
  return {
    id,
    command: `echo ${id}`,
    queue: "default",
    priority: 0,
    max_retries: 3,
    timeout: null,
    run_at: T0,
    ...o,
  };
}

/**
 * 30 due jobs of queue "bulk" (bulk-0 to bulk-29), "bulk" paused, then 3 due jobs of "mail" (m1 to
 * m3), all at `now`: a paused backlog ahead of another queue's jobs (the backends' counter tests).
 */
export async function pausedBacklog(store: Store, now: number): Promise<void> {
  await store.insertJobs({
    jobs: Array.from({ length: 30 }, (_, i) => newJob(`bulk-${i}`, { queue: "bulk" })),
    now,
  });
  await store.setQueueControl({ name: "bulk", paused: true, now });
  await store.insertJobs({
    jobs: ["m1", "m2", "m3"].map((id) => newJob(id, { queue: "mail" })),
    now,
  });
}

/** The ids one claim of one job takes at `now`, from `queues` (all when null). */
export async function claimIds(
  store: Store,
  queues: string[] | null,
  now: number,
): Promise<string[]> {
  return (await store.claimJobs({ workerId: "w", queues, now, leaseMs: 30_000, limit: 1 }))
    .map((j) => j.id);
}

/**
 * After {@link pausedBacklog} and the removal of "mail"'s counter row (the caller's, as each
 * backend keeps it): claims with any queue filter still take mail's jobs, in order. The counters
 * choose only how a claim walks, never which queues it reads.
 */
export async function mailClaimedUncounted(store: Store, now: number): Promise<void> {
  assert.deepEqual(await claimIds(store, null, now), ["m1"]);
  assert.deepEqual(await claimIds(store, ["mail"], now), ["m2"]);
  assert.deepEqual(await claimIds(store, ["mail", "bulk"], now), ["m3"]);
}

/** Calls `fn` every `everyMs` until it returns true (then true) or `withinMs` passed (false). */
async function waitUntil(
  fn: () => Promise<boolean>,
  everyMs: number,
  withinMs: number,
): Promise<boolean> {
  const deadline = performance.now() + withinMs;
  for (;;) {
    if (await fn()) return true;
    if (performance.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Normalises a row (some drivers return null-prototype objects) for deepEqual. */
function plain<T extends object>(x: T): T {
  return { ...x };
}

function ids(jobs: readonly Pick<Job, "id">[]): string[] {
  return jobs.map((j) => j.id);
}

async function mustGet(store: Store, id: string): Promise<Job> {
  const job = await store.getJob({ id });
  assert.ok(job, `job ${id} should exist`);
  return plain(job);
}

export function storeConformance(
  name: string,
  open: () => Promise<Store>,
  opts: ConformanceOptions,
): void {
  function test(title: string, fn: (store: Store, clock: ManualClock) => Promise<void>): void {
    Deno.test({
      name: `${name}: ${title}`,
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

  /** Inserts jobs and claims them all for `workerId` (returns the claimed jobs by id). */
  async function insertAndClaim(
    store: Store,
    clock: ManualClock,
    jobs: JobToInsert[],
    workerId = "w1",
  ): Promise<Map<string, Job>> {
    await store.insertJobs({ jobs, now: clock.now() });
    const claimed = await store.claimJobs({
      workerId,
      queues: null,
      now: clock.now(),
      leaseMs: LEASE,
      limit: jobs.length,
    });
    assert.deepEqual(ids(claimed).sort(), ids(jobs).sort());
    return new Map(claimed.map((j) => [j.id, plain(j)]));
  }

  // --- identity -------------------------------------------------------------------------------

  test("kind and location describe the backend", (store) => {
    assert.ok(store.kind === "sqlite" || store.kind === "postgres");
    assert.equal(typeof store.location, "string");
    assert.ok(store.location.length > 0);
    return Promise.resolve();
  });

  // --- insert and read ------------------------------------------------------------------------

  test("insertJobs stores a pending job that getJob returns field by field", async (store) => {
    await store.insertJobs({
      jobs: [
        newJob("job-1", {
          command: "sleep 1 && echo 'done'",
          queue: "mail",
          priority: 7,
          max_retries: 5,
          timeout: 2.5,
          run_at: T0 + 60_000,
          cwd: "/home/ann/my 'proj' é",
          env: '{"A":"1","B":"x \'y\' é"}',
          unique_key: "nightly report é",
        }),
      ],
      now: T0 - 1000,
    });
    assert.deepEqual(plain((await store.getJob({ id: "job-1" }))!), {
      id: "job-1",
      command: "sleep 1 && echo 'done'",
      queue: "mail",
      state: "pending",
      priority: 7,
      attempts: 0,
      max_retries: 5,
      timeout: 2.5,
      run_at: T0 + 60_000,
      created_at: T0 - 1000,
      updated_at: T0 - 1000,
      started_at: null,
      finished_at: null,
      exit_code: null,
      error: null,
      lease_owner: null,
      lease_expires_at: null,
      cwd: "/home/ann/my 'proj' é",
      env: '{"A":"1","B":"x \'y\' é"}',
      kill_signal: null,
      kill_retry: null,
      depends_on: null,
      blocked_by: 0,
      unique_key: "nightly report é",
    });
  });

  test("getJob and getJobOutput return null for an unknown id", async (store) => {
    assert.equal(await store.getJob({ id: "nope" }), null);
    assert.equal(await store.getJobOutput({ id: "nope" }), null);
  });

  test("getJobOutput of a job that never ran is empty", async (store) => {
    await store.insertJobs({ jobs: [newJob("a")], now: T0 });
    assert.deepEqual(plain((await store.getJobOutput({ id: "a" }))!), { stdout: "", stderr: "" });
  });

  test("insertJobs with an empty batch changes nothing", async (store) => {
    await store.insertJobs({ jobs: [], now: T0 });
    assert.equal(await store.countJobs({}), 0);
  });

  test("insertJobs refuses an existing id with Conflict and inserts nothing", async (store) => {
    await store.insertJobs({ jobs: [newJob("dup", { command: "first" })], now: T0 });
    await assert.rejects(
      store.insertJobs({
        jobs: [newJob("new-1"), newJob("dup", { command: "second" }), newJob("new-2")],
        now: T0 + 1,
      }),
      (err: unknown) => err instanceof Conflict && err.message.includes('"dup"'),
    );
    assert.equal(await store.countJobs({}), 1);
    assert.equal(await store.getJob({ id: "new-1" }), null);
    assert.equal(await store.getJob({ id: "new-2" }), null);
    assert.equal((await mustGet(store, "dup")).command, "first");
  });

  test("insertJobs refuses a duplicate within one batch and inserts nothing", async (store) => {
    await assert.rejects(
      store.insertJobs({ jobs: [newJob("x"), newJob("y"), newJob("x")], now: T0 }),
      (err: unknown) => err instanceof Conflict && err.message.includes('"x"'),
    );
    assert.equal(await store.countJobs({}), 0);
  });

  test("insertJobs of many jobs names a duplicate wherever it sits and keeps every field", async (store) => {
    await store.insertJobs({ jobs: [newJob("stored")], now: T0 - 1 });
    const jobs = Array.from(
      { length: 200 },
      (_, i) =>
        newJob(`m-${i}`, {
          priority: i,
          timeout: i % 2 ? i / 2 : null,
          queue: `q${i % 3}`,
          ...(i % 5 ? { cwd: `/w/${i}` } : {}),
        }),
    );
    for (const [at, id] of [[0, "stored"], [70, "stored"], [199, "stored"], [150, "m-90"]]) {
      const input = jobs.map((j, i) => i === at ? { ...j, id: id as string } : j);
      await assert.rejects(
        store.insertJobs({ jobs: input, now: T0 }),
        (err: unknown) => err instanceof Conflict && err.message.includes(`"${id}"`),
        `duplicate at ${at}`,
      );
      assert.equal(await store.countJobs({}), 1);
    }
    await store.insertJobs({ jobs, now: T0 });
    assert.equal(await store.countJobs({}), 201);
    for (const i of [0, 63, 64, 77, 199]) {
      const job = await mustGet(store, `m-${i}`);
      assert.deepEqual(
        [job.priority, job.timeout, job.queue, job.state, job.created_at, job.cwd],
        [i, i % 2 ? i / 2 : null, `q${i % 3}`, "pending", T0, i % 5 ? `/w/${i}` : null],
      );
    }
  });

  test("insertJobs of 12,000 jobs is all-or-nothing and then complete", async (store) => {
    await store.insertJobs({ jobs: [newJob("existing")], now: T0 - 1 });
    const jobs = Array.from({ length: 12_000 }, (_, i) => newJob(`bulk-${i}`));
    // The clash comes last, after many rows went in: all of them must be rolled back.
    await assert.rejects(
      store.insertJobs({ jobs: [...jobs, newJob("existing")], now: T0 }),
      (err: unknown) => err instanceof Conflict && err.message.includes('"existing"'),
    );
    assert.equal(await store.countJobs({}), 1);
    await store.insertJobs({ jobs, now: T0 });
    assert.equal(await store.countJobs({}), 12_001);
    assert.equal(await store.countJobs({ state: "pending" }), 12_001);
    // One batch keeps its order: oldest first is insertion order.
    assert.deepEqual(
      ids(await store.listJobs({ limit: 3, order: "oldest" })),
      ["existing", "bulk-0", "bulk-1"],
    );
  });

  /** Batches of `size` jobs pulled one at a time; `fail` throws when batch `failAt` is due. */
  async function* streamOf(
    jobs: readonly JobToInsert[],
    size: number,
    failAt = -1,
  ): AsyncGenerator<JobToInsert[]> {
    for (let i = 0, b = 0; i < jobs.length; i += size, b++) {
      if (b === failAt) throw new InvalidInput(`bad line in batch ${b}`);
      await Promise.resolve(); // a read of the input between batches
      yield jobs.slice(i, i + size);
    }
  }

  test("insertJobStream inserts every batch in one transaction, in order", async (store) => {
    const jobs = Array.from({ length: 9_500 }, (_, i) => newJob(`s-${i}`, { priority: i % 5 }));
    assert.equal(await store.insertJobStream({ batches: streamOf(jobs, 1000), now: T0 }), 9_500);
    assert.equal(await store.countJobs({ state: "pending" }), 9_500);
    assert.deepEqual(
      ids(await store.listJobs({ limit: 3, order: "oldest" })),
      ["s-0", "s-1", "s-2"],
    );
    assert.equal((await mustGet(store, "s-9499")).priority, 9_499 % 5);
  });

  test("insertJobStream is all or nothing: an input error mid-stream rolls back every batch", async (store) => {
    await store.insertJobs({ jobs: [newJob("before")], now: T0 - 1 });
    const jobs = Array.from({ length: 5_000 }, (_, i) => newJob(`r-${i}`));
    await assert.rejects(
      store.insertJobStream({ batches: streamOf(jobs, 1000, 4), now: T0 }),
      (err: unknown) => err instanceof InvalidInput && err.message === "bad line in batch 4",
    );
    assert.equal(await store.countJobs({}), 1);
    assert.equal(await store.countJobs({ state: "pending" }), 1);
    assert.equal(await store.getJob({ id: "r-0" }), null);
    // The store is usable afterwards.
    assert.equal(await store.insertJobStream({ batches: streamOf(jobs, 1000), now: T0 }), 5_000);
    assert.equal(await store.countJobs({}), 5_001);
  });

  test("insertJobStream names a duplicate: already stored, or twice in the input", async (store) => {
    await store.insertJobs({ jobs: [newJob("stored")], now: T0 - 1 });
    const jobs = Array.from({ length: 3_000 }, (_, i) => newJob(`d-${i}`));
    await assert.rejects(
      store.insertJobStream({ batches: streamOf([...jobs, newJob("stored")], 1000), now: T0 }),
      (err: unknown) => err instanceof Conflict && /"stored" already exists/.test(err.message),
    );
    await assert.rejects(
      store.insertJobStream({ batches: streamOf([...jobs, newJob("d-5")], 1000), now: T0 }),
      (err: unknown) =>
        err instanceof Conflict && /"d-5" appears twice in the input/.test(err.message),
    );
    assert.equal(await store.countJobs({}), 1);
  });

  // --- unique keys ------------------------------------------------------------------------------

  /** insertJobs with a mode; returns how many were inserted and which jobs were left out. */
  async function insertUnique(
    store: Store,
    jobs: JobToInsert[],
    onDuplicate?: OnDuplicate,
  ): Promise<{ n: number; existing: Record<string, string> }> {
    const existing: Record<string, string> = {};
    const n = await store.insertJobs({
      jobs,
      now: T0,
      onDuplicate,
      onExisting: (id, held) => existing[id] = held,
    });
    return { n, existing };
  }

  test("unique_key: a job whose key an active job holds is left out and its holder named", async (
    store,
    clock,
  ) => {
    assert.deepEqual(await insertUnique(store, [newJob("a", { unique_key: "k" })]), {
      n: 1,
      existing: {},
    });
    // Held by a pending job, and earlier in the same input.
    assert.deepEqual(
      await insertUnique(store, [
        newJob("b", { unique_key: "k" }),
        newJob("c", { unique_key: "k2" }),
        newJob("d", { unique_key: "k2" }),
        newJob("e"),
      ]),
      { n: 2, existing: { b: "a", d: "c" } },
    );
    assert.equal(await store.countJobs({}), 3);
    assert.equal((await store.stats({ now: clock.now() })).counts.pending, 3);
    assert.equal(await store.getJob({ id: "b" }), null);
    // Held while processing and while failed (a retry waiting); free once completed or dead.
    const claimed = await store.claimJobs({
      workerId: "w1",
      queues: null,
      now: clock.now(),
      leaseMs: LEASE,
      limit: 10,
    });
    const a = claimed.find((j) => j.id === "a")!;
    const c = claimed.find((j) => j.id === "c")!;
    assert.deepEqual((await insertUnique(store, [newJob("f", { unique_key: "k" })])).existing, {
      f: "a",
    });
    const r = { now: clock.now(), workerId: "w1", exit_code: 1 };
    assert.ok(await store.applyChange({ change: fail(c, r, POLICY) }));
    assert.deepEqual((await insertUnique(store, [newJob("g", { unique_key: "k2" })])).existing, {
      g: "c",
    });
    assert.ok(
      await store.applyChange({
        change: complete(a, { now: clock.now(), workerId: "w1", exit_code: 0 }),
      }),
    );
    assert.deepEqual(await insertUnique(store, [newJob("h", { unique_key: "k" })]), {
      n: 1,
      existing: {},
    });
    assert.equal((await mustGet(store, "h")).unique_key, "k");
    // A finished job cannot come back while another holds its key; it can once that one is gone.
    const done = await mustGet(store, "a");
    await assert.rejects(
      store.applyChange({ change: retryNow(done, clock.now()) }),
      (err: unknown) =>
        err instanceof Conflict &&
        /"a" cannot be queued again: job "h" \(pending\)/.test(err.message),
    );
    assert.equal((await mustGet(store, "a")).state, "completed");
    assert.deepEqual(await store.deleteJobs({ states: ["pending"], ids: ["h"] }), ["h"]);
    assert.ok(await store.applyChange({ change: retryNow(done, clock.now()) }));
    assert.equal((await mustGet(store, "a")).state, "pending");
  });

  test(
    "unique_key: on duplicate error refuses the whole input; replace swaps a waiting job",
    async (
      store,
      clock,
    ) => {
      await insertUnique(store, [
        newJob("a", { unique_key: "k" }),
        newJob("r", { unique_key: "r" }),
      ]);
      await assert.rejects(
        insertUnique(store, [newJob("x"), newJob("b", { unique_key: "k" })], "error"),
        (err: unknown) =>
          err instanceof Conflict && err.message === 'A job with unique key "k" is pending: "a"',
      );
      assert.equal(await store.getJob({ id: "x" }), null);
      assert.equal(await store.countJobs({}), 2);
      // Replace: the pending holder goes (with its runs), the new job comes.
      assert.deepEqual(
        await insertUnique(store, [newJob("b", { unique_key: "k", priority: 7 })], "replace"),
        { n: 1, existing: {} },
      );
      assert.equal(await store.getJob({ id: "a" }), null);
      assert.equal((await mustGet(store, "b")).priority, 7);
      const stats = await store.stats({ now: clock.now() });
      assert.equal(stats.counts.pending, 2);
      // A running holder cannot be replaced.
      await store.claimJobs({
        workerId: "w1",
        queues: null,
        now: clock.now(),
        leaseMs: LEASE,
        limit: 10,
      });
      await assert.rejects(
        insertUnique(store, [newJob("c", { unique_key: "k" })], "replace"),
        (err: unknown) =>
          err instanceof Conflict &&
          /"k" is processing: "b" \(only a waiting job/.test(err.message),
      );
      assert.equal(await store.countJobs({}), 2);
    },
  );

  test("unique_key: insertJobStream leaves out, refuses or replaces like insertJobs", async (store) => {
    await store.insertJobs({ jobs: [newJob("held", { unique_key: "k" })], now: T0 });
    const jobs = [
      ...Array.from({ length: 1500 }, (_, i) => newJob(`s-${i}`)),
      newJob("dup", { unique_key: "k" }),
      newJob("new", { unique_key: "n" }),
      newJob("dup2", { unique_key: "n" }),
      newJob("last"),
    ];
    const existing: Record<string, string> = {};
    const n = await store.insertJobStream({
      batches: streamOf(jobs, 1000),
      now: T0,
      onExisting: (id, held) => existing[id] = held,
    });
    assert.equal(n, 1502);
    assert.deepEqual(existing, { dup: "held", dup2: "new" });
    assert.deepEqual(
      ids(await store.listJobs({ limit: 3, order: "newest" })),
      ["last", "new", "s-1499"],
    );
    await assert.rejects(
      store.insertJobStream({
        batches: streamOf([newJob("z"), newJob("dup", { unique_key: "k" })], 1),
        now: T0,
        onDuplicate: "error",
      }),
      Conflict,
    );
    assert.equal(await store.getJob({ id: "z" }), null);
    assert.equal(
      await store.insertJobStream({
        batches: streamOf([newJob("rep", { unique_key: "k" })], 1),
        now: T0,
        onDuplicate: "replace",
      }),
      1,
    );
    assert.equal(await store.getJob({ id: "held" }), null);
    assert.equal(await store.countJobs({}), 1503);
  });

  test("unique_key: 8 connections enqueueing one key at once make one job", async (store) => {
    const others = await Promise.all(Array.from({ length: 8 }, () => opts.reopen(store)));
    try {
      for (let round = 0; round < 3; round++) {
        const key = `race-${round}`;
        const seen: string[] = [];
        const inserted = await Promise.all(others.map((o, i) =>
          o.insertJobs({
            jobs: [newJob(`${key}-${i}`, { unique_key: key })],
            now: T0,
            onExisting: (_id, held) => seen.push(held),
          })
        ));
        assert.equal(inserted.reduce((a, b) => a + b, 0), 1, "one insert");
        const winner = `${key}-${inserted.indexOf(1)}`;
        assert.deepEqual(seen, new Array(7).fill(winner));
        assert.equal(await store.countJobs({ search: key }), 1);
      }
    } finally {
      await Promise.all(others.map((o) => o.close()));
    }
  });

  test("unique_key: 8 connections replacing one key at once leave one job", async (store) => {
    await store.insertJobs({ jobs: [newJob("first", { unique_key: "swap" })], now: T0 });
    const others = await Promise.all(Array.from({ length: 8 }, () => opts.reopen(store)));
    try {
      const inserted = await Promise.all(others.map((o, i) =>
        o.insertJobs({
          jobs: [newJob(`swap-${i}`, { unique_key: "swap" })],
          now: T0,
          onDuplicate: "replace",
        })
      ));
      assert.deepEqual(inserted, new Array(8).fill(1), "each replaced the waiting job");
      const left = await store.listJobs({ limit: 20 });
      assert.equal(left.length, 1);
      assert.match(left[0].id, /^swap-[0-7]$/);
      assert.equal((await store.stats({ now: T0 })).counts.pending, 1);
    } finally {
      await Promise.all(others.map((o) => o.close()));
    }
  });

  // --- list, count ----------------------------------------------------------------------------

  test(
    "search through the substring index: frequent and rare texts, filters, a count cap",
    async (store, clock) => {
      // 3,000 jobs: every one says "echo", one in 1,000 says "needle"; the newest 2,500 are
      // "common" jobs, so a rare text is found only past the first window of jobs tested one by one.
      const jobs = Array.from(
        { length: 3_000 },
        (_, i) =>
          newJob(`j-${String(i).padStart(4, "0")}`, {
            command: i % 1000 === 7 ? `echo NeedLe-${i}` : `echo common ${i}`,
            queue: i % 2 ? "odd" : "even",
          }),
      );
      await store.insertJobs({ jobs, now: clock.now() });
      const list = (p: Omit<Parameters<Store["listJobs"]>[0], "limit">, limit = 50) =>
        store.listJobs({ ...p, limit }).then(ids);
      assert.deepEqual(await list({ search: "needle" }), ["j-2007", "j-1007", "j-0007"]);
      assert.deepEqual(await list({ search: "NEEDLE-1" }), ["j-1007"]);
      assert.deepEqual(await list({ search: "needle", queue: "odd" }), [
        "j-2007",
        "j-1007",
        "j-0007",
      ]);
      assert.deepEqual(await list({ search: "needle", queue: "even" }), []);
      assert.deepEqual(await list({ search: "needle", order: "oldest" }, 2), ["j-0007", "j-1007"]);
      assert.deepEqual(await list({ search: "needle" }, 1), ["j-2007"]);
      assert.deepEqual(await store.listJobs({ search: "needle", limit: 1, offset: 1 }).then(ids), [
        "j-1007",
      ]);
      assert.deepEqual(await list({ search: "needle", after: "j-2007" }), ["j-1007", "j-0007"]);
      assert.deepEqual(await list({ search: "needle", order: "oldest", after: "j-0007" }), [
        "j-1007",
        "j-2007",
      ]);
      assert.deepEqual(await list({ search: "common 29", after: "j-2998" }, 2), [
        "j-2997",
        "j-2996",
      ]);
      assert.deepEqual(await list({ search: "common 29" }, 3), ["j-2999", "j-2998", "j-2997"]);
      assert.deepEqual(
        await list({ search: "j-000" }),
        Array.from({ length: 10 }, (_, i) => `j-000${9 - i}`),
      );
      assert.equal(await store.countJobs({ search: "needle" }), 3);
      assert.equal(await store.countJobs({ search: "echo" }), 3_000);
      assert.equal(await store.countJobs({ search: "echo", cap: 100 }), 100);
      assert.equal(await store.countJobs({ search: "echo", queue: "odd", cap: 2_000 }), 1_500);
      assert.equal(await store.countJobs({ queue: "odd", cap: 10 }), 10);
      assert.equal(await store.countJobs({ state: "pending", cap: 10 }), 10);
      assert.equal(await store.countJobs({ cap: 5_000 }), 3_000);
    },
  );

  test(
    "search pages agree with the unsearched list when created_at is out of insertion order",
    async (store) => {
      // Batches enqueued with times that go back (a clock set back, writers racing), a bulk
      // stream whose unique keys replace jobs of the same stream and of before, deletions.
      const cmd = (i: number) =>
        i % 7 === 0 ? `backup --Needle ${i}` : i % 3 === 0 ? `echo x${i}` : `echo job ${i}`;
      const times = [50, 10, 60, 60, 5, 70, 20];
      for (const [b, t] of times.entries()) {
        const jobs = Array.from({ length: 30 }, (_, k) => {
          const i = b * 30 + k;
          return newJob(`o-${String(i).padStart(3, "0")}`, {
            command: cmd(i),
            queue: i % 2 ? "odd" : "even",
          });
        });
        await store.insertJobs({ jobs, now: T0 + t });
      }
      const keyed = Array.from({ length: 40 }, (_, k) =>
        newJob(`k-${String(k).padStart(2, "0")}`, {
          command: cmd(k),
          unique_key: `key-${k % 25}`,
        }));
      assert.equal(
        await store.insertJobStream({
          batches: streamOf(keyed, 16),
          now: T0 + 30,
          onDuplicate: "replace",
        }),
        40,
      );
      assert.equal(
        await store.insertJobStream({
          batches: streamOf(keyed, 16),
          now: T0 + 40,
          onDuplicate: "replace",
        }),
        40,
      );
      await store.deleteJobs({ states: ["pending"], ids: ["o-031", "o-100", "o-209"] });
      for (const order of ["newest", "oldest"] as const) {
        for (const filter of [{}, { queue: "odd" }, { state: "pending" as const }]) {
          const all = await store.listJobs({ ...filter, order, limit: 10_000 });
          for (const search of ["needle", "JOB 1", "o-0", "echo", "x", "e 1", "1", "k-", "zzz"]) {
            const s = search.toLowerCase();
            const want = ids(
              all.filter((j) =>
                j.id.toLowerCase().includes(s) || j.command.toLowerCase().includes(s)
              ),
            );
            const what = `${order} ${JSON.stringify(filter)} ${search}`;
            const q = { ...filter, order, search };
            assert.deepEqual(ids(await store.listJobs({ ...q, limit: 10_000 })), want, what);
            assert.equal(await store.countJobs({ ...filter, search }), want.length, what);
            for (const offset of [0, 7, 25]) {
              assert.deepEqual(
                ids(await store.listJobs({ ...q, limit: 9, offset })),
                want.slice(offset, offset + 9),
                `${what} offset ${offset}`,
              );
            }
            const paged: string[] = [];
            let after: string | undefined;
            for (let pages = 0; pages <= want.length / 8 + 1; pages++) {
              const page = ids(await store.listJobs({ ...q, limit: 8, after }));
              paged.push(...page);
              if (page.length < 8) break;
              after = page[7];
            }
            assert.deepEqual(paged, want, `${what} by cursor`);
            // The bounded search (through: the last job to test): the matches among the jobs up
            // to it, from the start or from a cursor, with offsets.
            for (const [from, to] of [[0, 0], [0, 9], [0, 100], [5, 60], [40, all.length - 1]]) {
              if (to >= all.length) continue;
              const after = from === 0 ? undefined : all[from - 1].id;
              const tested = all.slice(from, to + 1);
              const hits = ids(
                tested.filter((j) =>
                  j.id.toLowerCase().includes(s) || j.command.toLowerCase().includes(s)
                ),
              );
              for (const offset of [0, 3]) {
                assert.deepEqual(
                  ids(await store.listJobs({ ...q, limit: 6, offset, after, through: all[to].id })),
                  hits.slice(offset, offset + 6),
                  `${what} through ${from}-${to} offset ${offset}`,
                );
              }
            }
            if (order === "newest") {
              for (const scan of [1, 17, 10_000]) {
                const newest = all.slice(0, scan);
                assert.equal(
                  await store.countJobs({ ...filter, search, scan }),
                  newest.filter((j) =>
                    j.id.toLowerCase().includes(s) || j.command.toLowerCase().includes(s)
                  ).length,
                  `${what} count scan ${scan}`,
                );
              }
            }
          }
          // Without a search, through bounds the list too.
          if (all.length > 20) {
            assert.deepEqual(
              ids(await store.listJobs({ ...filter, order, limit: 100, through: all[20].id })),
              ids(all.slice(0, 21)),
            );
          }
        }
      }
      await assert.rejects(
        store.listJobs({ search: "x", limit: 5, through: "no-such-job" }),
        NotFound,
      );
      await assert.rejects(
        store.listJobs({ search: "x", limit: 5, order: "next", through: "o-001" }),
        InvalidInput,
      );
    },
  );

  test(
    "listJobs after a job id (keyset pages) agrees with offset pages, with filters",
    async (store, clock) => {
      // Two batches: jobs of one batch share created_at, so insertion order breaks the ties.
      const first = Array.from(
        { length: 7 },
        (_, i) => newJob(`a${i}`, { queue: i % 2 ? "x" : "y" }),
      );
      await store.insertJobs({ jobs: first, now: clock.now() });
      clock.advance(1);
      const second = Array.from(
        { length: 6 },
        (_, i) => newJob(`b${i}`, { queue: i % 2 ? "x" : "y" }),
      );
      await store.insertJobs({ jobs: second, now: clock.now() });
      for (const order of ["newest", "oldest"] as const) {
        for (const filter of [{}, { queue: "x" }, { search: "a" }]) {
          const all = ids(await store.listJobs({ ...filter, order, limit: 100 }));
          const paged: string[] = [];
          let after: string | undefined;
          for (;;) {
            const page = ids(await store.listJobs({ ...filter, order, limit: 3, after }));
            paged.push(...page);
            if (page.length < 3) {
              break;
            }
            after = page[2];
          }
          assert.deepEqual(paged, all, `${order} ${JSON.stringify(filter)}`);
        }
      }
      await store.deleteJobs({ states: ["pending"], ids: ["a3"] });
      await assert.rejects(
        store.listJobs({ limit: 3, after: "a3" }),
        (err: unknown) => err instanceof NotFound && /a3/.test(err.message),
      );
    },
  );

  test("listJobs filters by state, queue and search; countJobs agrees", async (store, clock) => {
    await store.insertJobs({
      jobs: [
        newJob("Alpha-1", { command: "echo UNO", queue: "mail" }),
        newJob("beta-2", { command: "backup --all", queue: "mail" }),
        newJob("gamma-3", { command: "echo 100%_done", queue: "default" }),
        newJob("delta-4", { command: "make release", queue: "default" }),
      ],
      now: clock.now(),
    });
    await store.claimJobs({
      workerId: "w",
      queues: ["mail"],
      now: clock.now(),
      leaseMs: LEASE,
      limit: 1,
    });
    const processing = ids(await store.listJobs({ state: "processing", limit: 10 }));
    assert.equal(processing.length, 1);

    const cases: [Parameters<Store["countJobs"]>[0], string[]][] = [
      [{}, ["Alpha-1", "beta-2", "delta-4", "gamma-3"]],
      [
        { state: "pending" },
        ["Alpha-1", "beta-2", "delta-4", "gamma-3"].filter((id) => id !== processing[0]),
      ],
      [{ state: "processing" }, processing],
      [{ state: "dead" }, []],
      [{ queue: "mail" }, ["Alpha-1", "beta-2"]],
      [{ queue: "none" }, []],
      // case-insensitive, on the id ...
      [{ search: "ALPHA" }, ["Alpha-1"]],
      // ... and on the command
      [{ search: "uno" }, ["Alpha-1"]],
      [{ search: "ECHO" }, ["Alpha-1", "gamma-3"]],
      // % and _ are plain characters, not patterns
      [{ search: "100%_" }, ["gamma-3"]],
      [{ search: "%" }, ["gamma-3"]],
      [{ search: "a_" }, []],
      [{ search: "e", queue: "default" }, ["delta-4", "gamma-3"]],
      [{ search: "release", queue: "mail" }, []],
      [{ search: "-", state: "pending", queue: "default" }, ["delta-4", "gamma-3"]],
    ];
    for (const [filter, expected] of cases) {
      const listed = await store.listJobs({ ...filter, limit: 100 });
      assert.deepEqual(ids(listed).sort(), [...expected].sort(), JSON.stringify(filter));
      assert.equal(await store.countJobs(filter), expected.length, JSON.stringify(filter));
    }
  });

  test("a search matches within the id or within the command, never across the two", async (
    store,
    clock,
  ) => {
    // PostgreSQL tests one text per job, its id and command joined by a newline (migration 17):
    // a text that holds one must not match the end of the id and the start of the command.
    await store.insertJobs({
      jobs: [
        newJob("join-a", { command: "b\nc x" }),
        newJob("other", { command: "a\nb" }),
      ],
      now: clock.now(),
    });
    const cases: [string, string[]][] = [
      ["a\nb", ["other"]],
      ["A\nB", ["other"]],
      ["A\nb\nC", []],
      ["B\nC", ["join-a"]],
      ["-A", ["join-a"]],
      ["c x", ["join-a"]],
      ["\n", ["join-a", "other"]],
    ];
    for (const [search, expected] of cases) {
      const what = JSON.stringify(search);
      assert.deepEqual(ids(await store.listJobs({ search, limit: 10 })).sort(), expected, what);
      assert.equal(await store.countJobs({ search }), expected.length, what);
      // The bounded search (the newest jobs up to `through`) tests the same way.
      const bounded = await store.listJobs({ search, limit: 10, through: "join-a" });
      assert.deepEqual(ids(bounded).sort(), expected, what);
    }
  });

  test("listJobs returns jobs without output columns", async (store, clock) => {
    const claimed = await insertAndClaim(store, clock, [newJob("a")]);
    assert.ok(
      await store.applyChange({
        change: complete(claimed.get("a")!, { now: clock.now(), workerId: "w1", exit_code: 0 }),
        output: { stdout: "out", stderr: "err" },
      }),
    );
    const [listed] = await store.listJobs({ limit: 1 });
    assert.deepEqual(Object.keys(listed).sort(), JOB_KEYS);
    assert.deepEqual(Object.keys((await store.getJob({ id: "a" }))!).sort(), JOB_KEYS);
  });

  test("listJobs orders newest, oldest and next; ties keep insertion order", async (store) => {
    // Inserted in two batches; within a batch created_at is equal.
    await store.insertJobs({
      jobs: [
        newJob("c", { priority: 0, run_at: T0 + 5 }),
        newJob("a", { priority: 0, run_at: T0 + 5 }),
        newJob("b", { priority: 9, run_at: T0 + 50 }),
      ],
      now: T0,
    });
    await store.insertJobs({
      jobs: [
        newJob("e", { priority: 0, run_at: T0 + 1 }),
        newJob("d", { priority: 9, run_at: T0 + 50 }),
      ],
      now: T0 + 10,
    });
    assert.deepEqual(ids(await store.listJobs({ limit: 10 })), ["d", "e", "b", "a", "c"]);
    assert.deepEqual(
      ids(await store.listJobs({ limit: 10, order: "newest" })),
      ["d", "e", "b", "a", "c"],
    );
    assert.deepEqual(
      ids(await store.listJobs({ limit: 10, order: "oldest" })),
      ["c", "a", "b", "e", "d"],
    );
    // next: priority desc, run_at asc, created_at asc, then insertion order.
    assert.deepEqual(
      ids(await store.listJobs({ limit: 10, order: "next" })),
      ["b", "d", "e", "c", "a"],
    );
  });

  test("listJobs pages with limit and offset", async (store) => {
    const jobs = Array.from({ length: 7 }, (_, i) => newJob(`p${i}`));
    for (const [i, job] of jobs.entries()) await store.insertJobs({ jobs: [job], now: T0 + i });
    assert.deepEqual(ids(await store.listJobs({ limit: 3, order: "oldest" })), ["p0", "p1", "p2"]);
    assert.deepEqual(
      ids(await store.listJobs({ limit: 3, offset: 3, order: "oldest" })),
      ["p3", "p4", "p5"],
    );
    assert.deepEqual(ids(await store.listJobs({ limit: 3, offset: 6, order: "oldest" })), ["p6"]);
    assert.deepEqual(ids(await store.listJobs({ limit: 3, offset: 7 })), []);
    assert.deepEqual(ids(await store.listJobs({ limit: 2, offset: 1 })), ["p5", "p4"]);
    assert.deepEqual(
      ids(await store.listJobs({ limit: 2, offset: 1, state: "pending", order: "newest" })),
      ["p5", "p4"],
    );
  });

  // --- stats ----------------------------------------------------------------------------------

  test("stats of an empty store", async (store, clock) => {
    assert.deepEqual(await store.stats({ now: clock.now() }), {
      counts: { pending: 0, processing: 0, completed: 0, failed: 0, dead: 0 },
      oldest_pending_at: null,
      scheduled: 0,
      blocked: 0,
    });
  });

  test("stats counts every state, the oldest due pending job and scheduled jobs", async (
    store,
    clock,
  ) => {
    // Due pending jobs created at T0+1 and T0+2; a pending job created earlier but due later.
    await store.insertJobs({ jobs: [newJob("later", { run_at: T0 + 3_600_000 })], now: T0 });
    await store.insertJobs({ jobs: [newJob("p1")], now: T0 + 1 });
    await store.insertJobs({ jobs: [newJob("p2")], now: T0 + 2 });
    clock.set(T0 + 10);
    await store.insertJobs({
      jobs: [newJob("run"), newJob("ok"), newJob("bad"), newJob("gone", { max_retries: 0 })],
      now: T0 + 3,
    });
    const claimed = await store.claimJobs({
      workerId: "w1",
      queues: null,
      now: clock.now(),
      leaseMs: LEASE,
      limit: 10,
    });
    // "later" is not due; p1 and p2 (older) come before the batch created at T0+3.
    assert.deepEqual(ids(claimed), ["p1", "p2", "run", "ok", "bad", "gone"]);
    const byId = new Map(claimed.map((j) => [j.id, j]));
    const now = clock.now();
    // Put p1 and p2 back to pending (released), settle the others.
    for (const id of ["p1", "p2"]) {
      assert.ok(await store.applyChange({ change: release(byId.get(id)!, now, "w1") }));
    }
    const r = { now, workerId: "w1", exit_code: 1 };
    assert.ok(
      await store.applyChange({ change: complete(byId.get("ok")!, { ...r, exit_code: 0 }) }),
    );
    assert.ok(await store.applyChange({ change: fail(byId.get("bad")!, r, POLICY) }));
    assert.ok(await store.applyChange({ change: fail(byId.get("gone")!, r, POLICY) }));

    const stats = await store.stats({ now });
    assert.deepEqual(stats.counts, {
      pending: 3,
      processing: 1,
      completed: 1,
      failed: 1,
      dead: 1,
    });
    assert.equal(stats.oldest_pending_at, T0 + 1);
    // "later" (pending, due in an hour) and "bad" (failed, retry in 2 s).
    assert.equal(stats.scheduled, 2);
    // Once the retry is due it no longer counts as scheduled.
    const afterRetry = await store.stats({ now: now + 2000 });
    assert.equal(afterRetry.scheduled, 1);
    const afterAll = await store.stats({ now: T0 + 3_600_000 });
    assert.equal(afterAll.scheduled, 0);
    assert.equal(afterAll.oldest_pending_at, T0);
  });

  test("renewLeases with jobIds renews only those jobs of the worker", async (store, clock) => {
    await store.insertJobs({ jobs: [newJob("r1"), newJob("r2"), newJob("r3")], now: clock.now() });
    const claimed = await store.claimJobs({
      workerId: "w1",
      queues: null,
      now: clock.now(),
      leaseMs: LEASE,
      limit: 3,
    });
    assert.equal(claimed.length, 3);
    clock.advance(1000);
    const n = await store.renewLeases({
      workerId: "w1",
      now: clock.now(),
      leaseMs: LEASE,
      jobIds: ["r2"],
    });
    assert.equal(n, 1);
    assert.equal((await mustGet(store, "r2")).lease_expires_at, clock.now() + LEASE);
    assert.equal((await mustGet(store, "r1")).lease_expires_at, clock.now() - 1000 + LEASE);
    assert.equal(
      await store.renewLeases({ workerId: "w2", now: clock.now(), leaseMs: LEASE, jobIds: ["r1"] }),
      0,
      "another worker's job is not renewed",
    );
    assert.equal(
      await store.renewLeases({ workerId: "w1", now: clock.now(), leaseMs: LEASE, jobIds: [] }),
      0,
    );
  });

  test("completedPerBucket counts completions per bucket since a time", async (store, clock) => {
    const jobs = ["a", "b", "c", "d", "e"].map((id) => newJob(id));
    const claimed = await insertAndClaim(store, clock, jobs);
    const finish = async (id: string, at: number, ok = true) => {
      const job = claimed.get(id)!;
      const result = { now: at, workerId: "w1", exit_code: ok ? 0 : 1 };
      const change = ok ? complete(job, result) : fail(job, result, POLICY);
      assert.ok(await store.applyChange({ change }));
    };
    const since = T0 + 60_000;
    await finish("a", since - 1); // before the window
    await finish("b", since); // bucket 0
    await finish("c", since + 59_999); // bucket 0
    await finish("d", since + 120_000); // bucket 2
    await finish("e", since + 10, false); // failed: not counted
    const buckets = await store.completedPerBucket({ since, bucketMs: 60_000 });
    const expected = [2, 0, 1];
    assert.ok(buckets.length >= expected.length, `got ${JSON.stringify(buckets)}`);
    for (const [i, n] of buckets.entries()) assert.equal(n, expected[i] ?? 0, `bucket ${i}`);
    assert.deepEqual(
      await store.completedPerBucket({ since: since + 200_000, bucketMs: 1000 }),
      [],
    );
  });

  // --- claim ----------------------------------------------------------------------------------

  test("claimJobs takes due jobs by priority, run_at, created_at, insertion order", async (
    store,
    clock,
  ) => {
    await store.insertJobs({
      jobs: [
        newJob("low-old", { priority: -1, run_at: T0 - 5000 }),
        newJob("mid-2", { priority: 0, run_at: T0 - 100 }),
        newJob("mid-1", { priority: 0, run_at: T0 - 200 }),
        newJob("high", { priority: 5, run_at: T0 }),
        newJob("future", { priority: 100, run_at: T0 + 1 }),
        newJob("tie-z", { priority: 0, run_at: T0 - 100 }),
        newJob("tie-a", { priority: 0, run_at: T0 - 100 }),
      ],
      now: T0 - 10_000,
    });
    await store.insertJobs({ jobs: [newJob("mid-late", { run_at: T0 - 100 })], now: T0 - 9000 });
    const first = await store.claimJobs({
      workerId: "w1",
      queues: null,
      now: clock.now(),
      leaseMs: LEASE,
      limit: 3,
    });
    assert.deepEqual(ids(first), ["high", "mid-1", "mid-2"]);
    const rest = await store.claimJobs({
      workerId: "w2",
      queues: null,
      now: clock.now(),
      leaseMs: LEASE,
      limit: 10,
    });
    assert.deepEqual(ids(rest), ["tie-z", "tie-a", "mid-late", "low-old"]);
    assert.deepEqual(
      await store.claimJobs({
        workerId: "w3",
        queues: null,
        now: clock.now(),
        leaseMs: LEASE,
        limit: 10,
      }),
      [],
    );
    // The future job becomes claimable when its time comes.
    clock.advance(1);
    assert.deepEqual(
      ids(
        await store.claimJobs({
          workerId: "w3",
          queues: null,
          now: clock.now(),
          leaseMs: LEASE,
          limit: 10,
        }),
      ),
      ["future"],
    );
  });

  test(
    "claimJobs and nextRunAt of a small queue beside another queue's backlog keep the claim order",
    async (
      store,
      clock,
    ) => {
      // 60 due jobs of "busy", older than all of "small" (on SQLite, "small" is then read through
      // its own jobs, not by walking "busy"'s in claim order: see walksQueues).
      await store.insertJobs({
        jobs: Array.from(
          { length: 60 },
          (_, i) => newJob(`busy-${i}`, { queue: "busy", run_at: T0 - 50_000, priority: 9 }),
        ),
        now: T0 - 60_000,
      });
      assert.equal(await store.nextRunAt({ queues: ["small"] }), null);
      assert.equal(await store.nextRunAt({ queues: ["small", "none"], after: T0 }), null);
      await store.insertJobs({
        jobs: [
          newJob("low-old", { queue: "small", priority: -1, run_at: T0 - 5000 }),
          newJob("mid-2", { queue: "small", run_at: T0 - 100 }),
          newJob("mid-1", { queue: "small", run_at: T0 - 200 }),
          newJob("high", { queue: "small", priority: 5, run_at: T0 }),
          newJob("future", { queue: "small", priority: 100, run_at: T0 + 1 }),
          newJob("tie-z", { queue: "small", run_at: T0 - 100 }),
          newJob("tie-a", { queue: "small", run_at: T0 - 100 }),
        ],
        now: T0 - 10_000,
      });
      await store.insertJobs({
        jobs: [newJob("mid-late", { queue: "small", run_at: T0 - 100 })],
        now: T0 - 9000,
      });
      assert.equal(await store.nextRunAt({ queues: ["small"] }), T0 - 5000);
      assert.equal(await store.nextRunAt({ queues: ["none", "small"], after: T0 }), T0 + 1);
      const claim = async (limit: number, queues = ["small"]) =>
        ids(
          await store.claimJobs({ workerId: "w", queues, now: clock.now(), leaseMs: LEASE, limit }),
        );
      assert.deepEqual(await claim(3), ["high", "mid-1", "mid-2"]);
      assert.deepEqual(await claim(10, ["none", "small"]), [
        "tie-z",
        "tie-a",
        "mid-late",
        "low-old",
      ]);
      assert.deepEqual(await claim(10), []);
      assert.deepEqual(await claim(10, ["none"]), []);
      clock.advance(1);
      assert.deepEqual(await claim(10), ["future"]);
      assert.equal((await claim(100, ["busy"])).length, 60);
    },
  );

  test("insertJobs stores a nullable field left out of the job as null", async (store) => {
    const { timeout: _, ...noTimeout } = newJob("a", { timeout: 5 });
    await store.insertJobs({ jobs: [noTimeout], now: T0 });
    assert.equal((await mustGet(store, "a")).timeout, null);
  });

  test("claimJobs returns the job as it is after the claim", async (store, clock) => {
    await store.insertJobs({ jobs: [newJob("a", { timeout: 9, max_retries: 2 })], now: T0 - 50 });
    const before = await mustGet(store, "a");
    clock.advance(1234);
    const [claimed] = await store.claimJobs({
      workerId: "worker-7",
      queues: null,
      now: clock.now(),
      leaseMs: LEASE,
      limit: 1,
    });
    const expected: Job = {
      ...before,
      state: "processing",
      attempts: 1,
      started_at: clock.now(),
      lease_owner: "worker-7",
      lease_expires_at: clock.now() + LEASE,
      updated_at: clock.now(),
    };
    assert.deepEqual(plain(claimed), expected);
    assert.deepEqual(await mustGet(store, "a"), expected);
  });

  test("claimJobs retries a failed job when due, keeping its last error", async (store, clock) => {
    const claimed = await insertAndClaim(store, clock, [newJob("a")]);
    clock.advance(1000);
    const failChange = fail(
      claimed.get("a")!,
      { now: clock.now(), workerId: "w1", exit_code: 3, error: "exit 3" },
      POLICY,
    );
    assert.ok(await store.applyChange({ change: failChange }));
    const failed = await mustGet(store, "a");
    assert.equal(failed.state, "failed");
    assert.equal(failed.run_at, clock.now() + 2000);
    const claim = (workerId: string) =>
      store.claimJobs({ workerId, queues: null, now: clock.now(), leaseMs: LEASE, limit: 5 });
    assert.deepEqual(await claim("w2"), []);
    clock.advance(2000);
    const [again] = await claim("w2");
    assert.deepEqual(plain(again), {
      ...failed,
      state: "processing",
      attempts: 2,
      started_at: clock.now(),
      lease_owner: "w2",
      lease_expires_at: clock.now() + LEASE,
      updated_at: clock.now(),
    });
  });

  test("claimJobs only takes pending and failed jobs, from the given queues", async (
    store,
    clock,
  ) => {
    await store.insertJobs({
      jobs: [
        newJob("m1", { queue: "mail" }),
        newJob("r1", { queue: "reports" }),
        newJob("d1", { queue: "default" }),
        newJob("m2", { queue: "mail" }),
      ],
      now: T0,
    });
    const claim = (queues: string[] | null, limit = 10) =>
      store.claimJobs({ workerId: "w", queues, now: clock.now(), leaseMs: LEASE, limit });
    assert.deepEqual(await claim(["mail"], 0), []);
    assert.deepEqual(ids(await claim(["mail"], 1)), ["m1"]);
    assert.deepEqual(ids(await claim(["reports", "mail"])), ["r1", "m2"]);
    assert.deepEqual(await claim(["mail", "reports"]), []);
    assert.deepEqual(await claim(["other"]), []);
    assert.deepEqual(ids(await claim(null)), ["d1"]);
    // Processing jobs are not claimable again, even when their lease expired.
    clock.advance(LEASE * 10);
    assert.deepEqual(await claim(null), []);
  });

  test("concurrent claims never hand out a job twice", async (store, clock) => {
    const jobs = Array.from({ length: 200 }, (_, i) => newJob(`c${i}`, { priority: i % 3 }));
    await store.insertJobs({ jobs, now: clock.now() });
    const claimer = async (w: number): Promise<string[]> => {
      const got: string[] = [];
      for (;;) {
        const batch = await store.claimJobs({
          workerId: `w${w}`,
          queues: null,
          now: clock.now(),
          leaseMs: LEASE,
          limit: 1 + (w % 3),
        });
        if (batch.length === 0) return got;
        for (const j of batch) {
          assert.equal(j.lease_owner, `w${w}`);
          assert.equal(j.attempts, 1);
        }
        got.push(...ids(batch));
      }
    };
    const results = await Promise.all(Array.from({ length: 8 }, (_, w) => claimer(w)));
    const all = results.flat();
    assert.equal(all.length, 200, "every job claimed once");
    assert.equal(new Set(all).size, 200, "no job claimed twice");
    assert.equal(await store.countJobs({ state: "processing" }), 200);
    // Each row's lease owner is the claimer that got it.
    for (const [w, got] of results.entries()) {
      for (const id of got.slice(0, 5)) {
        assert.equal((await mustGet(store, id)).lease_owner, `w${w}`);
      }
    }
  });

  // --- applyChange ----------------------------------------------------------------------------

  test("complete stores the outcome and the output", async (store, clock) => {
    const claimed = await insertAndClaim(store, clock, [newJob("a")]);
    const job = claimed.get("a")!;
    clock.advance(500);
    const change = complete(job, { now: clock.now(), workerId: "w1", exit_code: 0 });
    const output = { stdout: "hello\nwörld ✓\n", stderr: "warn: x\n" };
    assert.equal(await store.applyChange({ change, output }), true);
    assert.deepEqual(await mustGet(store, "a"), {
      ...job,
      state: "completed",
      finished_at: clock.now(),
      exit_code: 0,
      error: null,
      lease_owner: null,
      lease_expires_at: null,
      updated_at: clock.now(),
    });
    assert.deepEqual(plain((await store.getJobOutput({ id: "a" }))!), output);
  });

  test("getStderrTails cuts the last characters of each stderr in the database", async (
    store,
    clock,
  ) => {
    const claimed = await insertAndClaim(store, clock, [
      newJob("long"),
      newJob("short"),
      newJob("quiet"),
    ]);
    const r = { now: clock.now(), workerId: "w1", exit_code: 1, error: "exited with code 1" };
    const outputs: Record<string, string> = {
      long: "x".repeat(5000) + "wörld ✓ KeyError: 'id'\n",
      short: "boom\n",
      quiet: "",
    };
    for (const [id, stderr] of Object.entries(outputs)) {
      assert.ok(
        await store.applyChange({
          change: fail(claimed.get(id)!, r, POLICY),
          output: { stdout: "out", stderr },
        }),
      );
    }
    await store.insertJobs({ jobs: [newJob("never-ran")], now: clock.now() });
    const tails = await store.getStderrTails({
      ids: ["long", "short", "quiet", "never-ran", "unknown", "long"],
      chars: 17,
    });
    assert.deepEqual(
      [...tails].sort(),
      [["long", "✓ KeyError: 'id'\n"], ["short", "boom\n"]],
    );
    assert.deepEqual([...await store.getStderrTails({ ids: [], chars: 10 })], []);
  });

  test("output is replaced by the next run's output and kept by changes without one", async (
    store,
    clock,
  ) => {
    const claimed = await insertAndClaim(store, clock, [newJob("a")]);
    const r = { now: clock.now(), workerId: "w1", exit_code: 2, error: "exit 2" };
    assert.ok(
      await store.applyChange({
        change: fail(claimed.get("a")!, r, POLICY),
        output: { stdout: "run 1", stderr: "boom 1" },
      }),
    );
    // retry (no output) keeps the first run's output.
    assert.ok(
      await store.applyChange({ change: retryNow(await mustGet(store, "a"), clock.now()) }),
    );
    assert.deepEqual(plain((await store.getJobOutput({ id: "a" }))!), {
      stdout: "run 1",
      stderr: "boom 1",
    });
    const [again] = await store.claimJobs({
      workerId: "w2",
      queues: null,
      now: clock.now(),
      leaseMs: LEASE,
      limit: 1,
    });
    assert.ok(
      await store.applyChange({
        change: complete(again, { now: clock.now(), workerId: "w2", exit_code: 0 }),
        output: { stdout: "run 2", stderr: "" },
      }),
    );
    assert.deepEqual(plain((await store.getJobOutput({ id: "a" }))!), {
      stdout: "run 2",
      stderr: "",
    });
  });

  test("every settle records its run, in the same write; runs go with their job", async (
    store,
    clock,
  ) => {
    const claimed = await insertAndClaim(store, clock, [newJob("a", { max_retries: 3 })], "w1");
    const t1 = clock.now();
    clock.advance(1500);
    const failed = fail(claimed.get("a")!, {
      now: clock.now(),
      workerId: "w1",
      exit_code: null,
      error: "killed by SIGKILL",
      signal: "SIGKILL",
      host: "host-1",
      duration_ms: 1499,
    }, POLICY);
    assert.ok(
      await store.applyChange({
        change: failed,
        output: { stdout: "out 1\n", stderr: "x".repeat(50) + "boom 1\n" },
      }),
    );
    clock.advance(2000);
    const t2 = clock.now();
    const [second] = await store.claimJobs({
      workerId: "w2",
      queues: null,
      now: t2,
      leaseMs: LEASE,
      limit: 1,
    });
    // A stale settle of run 1 is refused and records nothing.
    const stale = complete(claimed.get("a")!, { now: t2, workerId: "w1", exit_code: 0 });
    assert.equal(
      await store.applyChange({ change: stale, output: { stdout: "no", stderr: "" } }),
      false,
    );
    // A forced stop: an interrupted run, the attempt not counted.
    clock.advance(100);
    assert.ok(
      await store.applyChange({
        change: release(second, clock.now(), "w2", { host: "host-2", error: "interrupted" }),
        output: { stdout: "partial", stderr: "" },
      }),
    );
    clock.advance(10);
    const [third] = await store.claimJobs({
      workerId: "w3",
      queues: null,
      now: clock.now(),
      leaseMs: LEASE,
      limit: 1,
    });
    const t3 = clock.now();
    clock.advance(20);
    assert.ok(
      await store.applyChange({
        change: complete(third, { now: clock.now(), workerId: "w3", exit_code: 0 }),
      }),
    );

    const runs = (await store.listRuns({ jobId: "a", outputChars: 8 })).map(plain);
    assert.deepEqual(runs, [
      {
        run: 1,
        attempt: 1,
        outcome: "failed",
        worker: "w1",
        host: "host-1",
        started_at: t1,
        finished_at: t1 + 1500,
        duration_ms: 1499,
        exit_code: null,
        signal: "SIGKILL",
        error: "killed by SIGKILL",
        retry_delay_ms: 2000,
        stdout: "out 1\n",
        stderr: "boom 1\n".padStart(8, "x"),
      },
      {
        run: 2,
        attempt: 2,
        outcome: "interrupted",
        worker: "w2",
        host: "host-2",
        started_at: t2,
        finished_at: t2 + 100,
        duration_ms: 100,
        exit_code: null,
        signal: null,
        error: "interrupted",
        retry_delay_ms: null,
        stdout: "partial",
        stderr: "",
      },
      {
        run: 3,
        attempt: 2,
        outcome: "completed",
        worker: "w3",
        host: null,
        started_at: t3,
        finished_at: t3 + 20,
        duration_ms: 20,
        exit_code: 0,
        signal: null,
        error: null,
        retry_delay_ms: null,
        stdout: "",
        stderr: "",
      },
    ]);
    const bare = await store.listRuns({ jobId: "a", outputChars: 0 });
    assert.deepEqual(bare.map((r) => [r.stdout, r.stderr]), [["", ""], ["", ""], ["", ""]]);
    assert.deepEqual(plain((await store.getRunOutput({ jobId: "a", attempt: 1 }))!), {
      stdout: "out 1\n",
      stderr: "x".repeat(50) + "boom 1\n",
    });
    // Attempt 2 ran twice: the latest run of it.
    assert.deepEqual(plain((await store.getRunOutput({ jobId: "a", attempt: 2 }))!), {
      stdout: "",
      stderr: "",
    });
    assert.equal(await store.getRunOutput({ jobId: "a", attempt: 9 }), null);
    assert.deepEqual(await store.listRuns({ jobId: "nope", outputChars: 10 }), []);

    assert.deepEqual(await store.deleteJobs({ states: ["completed"], ids: ["a"] }), ["a"]);
    assert.deepEqual(await store.listRuns({ jobId: "a", outputChars: 10 }), []);
    assert.equal(await store.getRunOutput({ jobId: "a", attempt: 1 }), null);
  });

  test("a rescued run is recorded as lost with its worker; purge deletes runs", async (
    store,
    clock,
  ) => {
    const claimed = await insertAndClaim(store, clock, [newJob("a", { max_retries: 0 })], "w1");
    const started = clock.now();
    clock.advance(LEASE);
    assert.ok(
      await store.applyChange({ change: loseLease(claimed.get("a")!, clock.now(), POLICY) }),
    );
    const [run] = await store.listRuns({ jobId: "a", outputChars: 100 });
    assert.deepEqual(
      [run.outcome, run.worker, run.started_at, run.finished_at, run.attempt],
      ["dead", "w1", started, clock.now(), 1],
    );
    assert.match(run.error!, /worker lost: w1/);
    assert.deepEqual(await store.deleteJobs({ states: ["dead"] }), ["a"]);
    assert.deepEqual(await store.listRuns({ jobId: "a", outputChars: 10 }), []);
  });

  test("appendRunOutput: live output of the lease holder, capped, closed by the settle", async (
    store,
    clock,
  ) => {
    const claimed = await insertAndClaim(store, clock, [newJob("a"), newJob("b")], "w1");
    const a = claimed.get("a")!;
    const append = (o: Partial<Parameters<Store["appendRunOutput"]>[0]>) =>
      store.appendRunOutput({
        jobId: "a",
        attempt: a.attempts,
        worker: "w1",
        host: "h1",
        startedAt: a.started_at,
        stdout: "",
        stderr: "",
        limit: 10,
        now: clock.now(),
        ...o,
      });
    assert.equal(await store.getLatestRun({ jobId: "a" }), null);
    assert.equal(await append({ stdout: "one\n", stderr: "e1 ✓" }), true);
    let run = plain((await store.getLatestRun({ jobId: "a" }))!);
    assert.deepEqual(
      [run.run, run.outcome, run.attempt, run.worker, run.host, run.started_at],
      [1, "running", 1, "w1", "h1", a.started_at],
    );
    assert.deepEqual([run.stdout, run.stderr], ["one\n", "e1 ✓"]);
    // The output so far is the job's output (logs of a running job).
    assert.deepEqual(plain((await store.getJobOutput({ id: "a" }))!), {
      stdout: "one\n",
      stderr: "e1 ✓",
    });
    assert.equal(await append({ stdout: "two\nthree\n" }), true);
    run = plain((await store.getLatestRun({ jobId: "a" }))!);
    assert.deepEqual([run.stdout, run.stderr], ["two\nthree\n".slice(-10), "e1 ✓"]);
    // Another worker, or a job not processing, writes nothing.
    assert.equal(await append({ worker: "w2", stdout: "x" }), false);
    assert.equal(await append({ jobId: "nope", stdout: "x" }), false);
    assert.equal((await store.listRuns({ jobId: "a", outputChars: 100 })).length, 1);

    // The settle closes the running row with the whole captured output: one run.
    assert.ok(
      await store.applyChange({
        change: complete(a, { now: clock.now(), workerId: "w1", exit_code: 0, host: "h1" }),
        output: { stdout: "one\ntwo\nthree\n", stderr: "e1 ✓" },
      }),
    );
    const runs = await store.listRuns({ jobId: "a", outputChars: 100 });
    assert.deepEqual(
      runs.map((r) => [r.run, r.outcome, r.stdout]),
      [[1, "completed", "one\ntwo\nthree\n"]],
    );
    assert.equal(await append({ stdout: "late" }), false, "not processing any more");

    // A rescue (no output given) keeps the live output of the lost run.
    const b = claimed.get("b")!;
    assert.ok(
      await store.appendRunOutput({
        jobId: "b",
        attempt: b.attempts,
        worker: "w1",
        host: null,
        startedAt: b.started_at,
        stdout: "half",
        stderr: "",
        limit: 100,
        now: clock.now(),
      }),
    );
    clock.advance(LEASE);
    assert.ok(await store.applyChange({ change: loseLease(b, clock.now(), POLICY) }));
    const [lost] = await store.listRuns({ jobId: "b", outputChars: 100 });
    assert.deepEqual([lost.outcome, lost.stdout], ["failed", "half"]);
    assert.deepEqual(plain((await store.getJobOutput({ id: "b" }))!), {
      stdout: "half",
      stderr: "",
    });
  });

  test("a stale lease owner cannot settle a job another worker holds", async (store, clock) => {
    const claimed = await insertAndClaim(store, clock, [newJob("a", { max_retries: 2 })], "w1");
    const stale = claimed.get("a")!;
    // w1 stops heartbeating; the lease expires and the job is rescued, then w2 claims it.
    clock.advance(LEASE);
    assert.ok(
      await store.applyChange({
        change: loseLease(await mustGet(store, "a"), clock.now(), POLICY),
      }),
    );
    clock.advance(10_000);
    const [mine] = await store.claimJobs({
      workerId: "w2",
      queues: null,
      now: clock.now(),
      leaseMs: LEASE,
      limit: 1,
    });
    assert.equal(mine.lease_owner, "w2");
    const before = await mustGet(store, "a");
    // w1 comes back and reports its old run: refused, nothing changes (output neither).
    const late = complete(stale, { now: clock.now(), workerId: "w1", exit_code: 0 });
    assert.equal(
      await store.applyChange({ change: late, output: { stdout: "stale", stderr: "" } }),
      false,
    );
    assert.deepEqual(await mustGet(store, "a"), before);
    assert.deepEqual(plain((await store.getJobOutput({ id: "a" }))!), { stdout: "", stderr: "" });
    // w2 settles normally.
    assert.ok(
      await store.applyChange({
        change: complete(mine, { now: clock.now(), workerId: "w2", exit_code: 0 }),
      }),
    );
    assert.equal((await mustGet(store, "a")).state, "completed");
  });

  test(
    "a late exit 0 completes a job rescued as lost while no other run started",
    async (store, clock) => {
      const claimed = await insertAndClaim(store, clock, [
        newJob("dead0", { max_retries: 0 }),
        newJob("retry1", { max_retries: 1 }),
      ], "w1");
      clock.advance(LEASE);
      for (const id of ["dead0", "retry1"]) {
        assert.ok(
          await store.applyChange({
            change: loseLease(await mustGet(store, id), clock.now(), POLICY),
          }),
        );
      }
      assert.equal((await mustGet(store, "dead0")).state, "dead");
      assert.equal((await mustGet(store, "retry1")).state, "failed");
      // The owner was cut off, its shells exited 0; it comes back before any other run started.
      clock.advance(1000);
      const result = { now: clock.now(), workerId: "w1", exit_code: 0 };
      const refused = complete(claimed.get("dead0")!, result);
      assert.equal(await store.applyChange({ change: refused }), false);
      const late = completeLate(claimed.get("dead0")!, result);
      assert.ok(await store.applyChange({ change: late, output: { stdout: "ok\n", stderr: "" } }));
      const done = await mustGet(store, "dead0");
      assert.deepEqual([done.state, done.exit_code, done.error], ["completed", 0, null]);
      const runs = await store.listRuns({ jobId: "dead0", outputChars: 100 });
      assert.deepEqual(
        runs.map((r) => [r.outcome, r.exit_code, r.error, r.worker, r.stdout]),
        [["completed", 0, null, "w1", "ok\n"]],
      );
      // Twice is refused: the job is no longer the rescued one.
      assert.equal(await store.applyChange({ change: late }), false);
      const stats = await store.stats({ now: clock.now() });
      assert.equal(stats.counts.completed, 1);
      assert.equal(stats.counts.dead, 0);
      assert.equal(stats.counts.failed, 1);
      // retry1: another worker claimed the retry first, so the late result is dropped.
      clock.advance(60_000);
      const [again] = await store.claimJobs({
        workerId: "w2",
        queues: null,
        now: clock.now(),
        leaseMs: LEASE,
        limit: 1,
      });
      assert.equal(again.id, "retry1");
      const before = await mustGet(store, "retry1");
      assert.equal(
        await store.applyChange({
          change: completeLate(claimed.get("retry1")!, { ...result, now: clock.now() }),
        }),
        false,
      );
      assert.deepEqual(await mustGet(store, "retry1"), before);
      // A run that failed on its own (not rescued) is never rewritten by a late result.
      await store.insertJobs({ jobs: [newJob("own", { max_retries: 0 })], now: clock.now() });
      const [own] = await store.claimJobs({
        workerId: "w3",
        queues: null,
        now: clock.now(),
        leaseMs: LEASE,
        limit: 1,
      });
      assert.ok(
        await store.applyChange({
          change: fail(own, { now: clock.now(), workerId: "w3", exit_code: 1 }, POLICY),
        }),
      );
      assert.equal(
        await store.applyChange({
          change: completeLate(own, { now: clock.now(), workerId: "w3", exit_code: 0 }),
        }),
        false,
      );
      assert.equal((await mustGet(store, "own")).state, "dead");
    },
  );

  test("a change from a state the job has left is refused", async (store, clock) => {
    const claimed = await insertAndClaim(store, clock, [newJob("a")]);
    const r = { now: clock.now(), workerId: "w1", exit_code: 1 };
    assert.ok(await store.applyChange({ change: fail(claimed.get("a")!, r, POLICY) }));
    const failed = await mustGet(store, "a");
    // Two users retry the same failed job: only the first one moves it.
    assert.equal(await store.applyChange({ change: retryNow(failed, clock.now()) }), true);
    assert.equal(await store.applyChange({ change: retryNow(failed, clock.now() + 5) }), false);
    const pending = await mustGet(store, "a");
    assert.equal(pending.state, "pending");
    assert.equal(pending.updated_at, clock.now());
    // A worker's settle after the job went back to pending is refused as well.
    assert.equal(
      await store.applyChange({ change: complete(claimed.get("a")!, { ...r, exit_code: 0 }) }),
      false,
    );
    assert.deepEqual(await mustGet(store, "a"), pending);
    // And a change for a job that does not exist.
    assert.equal(
      await store.applyChange({ change: { ...retryNow(failed, clock.now()), id: "ghost" } }),
      false,
    );
  });

  test("of several identical changes applied at once exactly one wins", async (store, clock) => {
    await insertAndClaim(store, clock, [newJob("a")]);
    clock.advance(LEASE);
    const job = await mustGet(store, "a");
    const changes = Array.from({ length: 6 }, () => loseLease(job, clock.now(), POLICY));
    const results = await Promise.all(changes.map((change) => store.applyChange({ change })));
    assert.equal(results.filter((x) => x).length, 1);
    assert.equal((await mustGet(store, "a")).state, "failed");
  });

  test("loseLease needs an expired lease and counts the run as failed", async (store, clock) => {
    const claimed = await insertAndClaim(
      store,
      clock,
      [newJob("a", { max_retries: 1 }), newJob("b", { max_retries: 0 })],
      "w1",
    );
    clock.advance(LEASE - 1);
    const early = loseLease(claimed.get("a")!, clock.now(), POLICY);
    assert.equal(await store.applyChange({ change: early }), false);
    assert.equal((await mustGet(store, "a")).state, "processing");
    clock.advance(1);
    const job = await mustGet(store, "a");
    assert.equal(await store.applyChange({ change: loseLease(job, clock.now(), POLICY) }), true);
    assert.deepEqual(await mustGet(store, "a"), {
      ...job,
      state: "failed",
      run_at: clock.now() + 2000,
      finished_at: clock.now(),
      exit_code: null,
      error: "worker lost: w1 stopped renewing its lease",
      lease_owner: null,
      lease_expires_at: null,
      updated_at: clock.now(),
    });
    // No retry left: straight to the DLQ.
    const b = await mustGet(store, "b");
    assert.ok(await store.applyChange({ change: loseLease(b, clock.now(), POLICY) }));
    assert.equal((await mustGet(store, "b")).state, "dead");
    // A renewed lease is not lost.
    clock.advance(2000);
    const [again] = await store.claimJobs({
      workerId: "w2",
      queues: null,
      now: clock.now(),
      leaseMs: LEASE,
      limit: 1,
    });
    assert.equal(again.id, "a");
    clock.advance(LEASE - 1);
    assert.equal(await store.renewLeases({ workerId: "w2", now: clock.now(), leaseMs: LEASE }), 1);
    clock.advance(1);
    const renewed = await mustGet(store, "a");
    assert.equal(
      await store.applyChange({ change: loseLease(again, clock.now(), POLICY) }),
      false,
    );
    assert.deepEqual(await mustGet(store, "a"), renewed);
  });

  test("fail schedules a retry with backoff, then the DLQ when retries run out", async (
    store,
    clock,
  ) => {
    await store.insertJobs({ jobs: [newJob("a", { max_retries: 2 })], now: clock.now() });
    const delays: number[] = [];
    for (let run = 1; run <= 3; run++) {
      const [job] = await store.claimJobs({
        workerId: "w",
        queues: null,
        now: clock.now(),
        leaseMs: LEASE,
        limit: 1,
      });
      assert.equal(job?.attempts, run, `run ${run} claimed`);
      const r = { now: clock.now(), workerId: "w", exit_code: 1, error: `exit 1 (run ${run})` };
      assert.ok(await store.applyChange({ change: fail(job, r, POLICY) }));
      const after = await mustGet(store, "a");
      assert.equal(after.error, `exit 1 (run ${run})`);
      assert.equal(after.exit_code, 1);
      if (run < 3) {
        assert.equal(after.state, "failed");
        delays.push(after.run_at - clock.now());
        clock.set(after.run_at);
      } else {
        assert.equal(after.state, "dead");
      }
    }
    assert.deepEqual(delays, [2000, 4000]);
    assert.deepEqual(
      await store.claimJobs({
        workerId: "w",
        queues: null,
        now: clock.now() + 1e9,
        leaseMs: LEASE,
        limit: 1,
      }),
      [],
    );
  });

  test("release gives a job back as pending without using a retry", async (store, clock) => {
    const claimed = await insertAndClaim(store, clock, [newJob("a", { run_at: T0 - 100 })]);
    clock.advance(700);
    const job = claimed.get("a")!;
    assert.equal(await store.applyChange({ change: release(job, clock.now(), "someone") }), false);
    assert.ok(await store.applyChange({ change: release(job, clock.now(), "w1") }));
    assert.deepEqual(await mustGet(store, "a"), {
      ...job,
      state: "pending",
      attempts: 0,
      run_at: clock.now(),
      started_at: null,
      lease_owner: null,
      lease_expires_at: null,
      updated_at: clock.now(),
    });
  });

  test("settleAndClaim settles the job, then claims the next due jobs for the worker", async (
    store,
    clock,
  ) => {
    const claimed = await insertAndClaim(store, clock, [newJob("a")]);
    await store.insertJobs({
      jobs: [newJob("b"), newJob("c", { priority: 3 }), newJob("d", { queue: "other" })],
      now: clock.now(),
    });
    clock.advance(500);
    const job = claimed.get("a")!;
    const output = { stdout: "out", stderr: "err" };
    const result = await store.settleAndClaim({
      change: complete(job, { now: clock.now(), workerId: "w1", exit_code: 0 }),
      output,
      claim: { workerId: "w1", queues: ["default"], now: clock.now(), leaseMs: LEASE, limit: 1 },
    });
    assert.equal(result.applied, true);
    assert.deepEqual(ids(result.claimed), ["c"], "highest priority first, from its queues");
    assert.deepEqual(plain(result.claimed[0]), await mustGet(store, "c"));
    assert.equal((await mustGet(store, "a")).state, "completed");
    assert.deepEqual(plain((await store.getJobOutput({ id: "a" }))!), output);
    const c = await mustGet(store, "c");
    assert.equal(c.state, "processing");
    assert.equal(c.attempts, 1);
    assert.equal(c.lease_owner, "w1");
    assert.equal(c.started_at, clock.now());
    assert.equal(c.lease_expires_at, clock.now() + LEASE);
    assert.equal((await mustGet(store, "b")).state, "pending");
    assert.equal((await mustGet(store, "d")).state, "pending");
    const { counts } = await store.stats({ now: clock.now() });
    assert.deepEqual([counts.completed, counts.processing, counts.pending], [1, 1, 2]);
  });

  test("settleAndClaim: a refused change still claims; nothing due claims nothing", async (
    store,
    clock,
  ) => {
    const claimed = await insertAndClaim(store, clock, [newJob("a")]);
    await store.insertJobs({ jobs: [newJob("b")], now: clock.now() });
    const claim = { workerId: "w2", queues: null, now: clock.now(), leaseMs: LEASE, limit: 5 };
    const stale = await store.settleAndClaim({
      change: complete(claimed.get("a")!, { now: clock.now(), workerId: "w2", exit_code: 0 }),
      output: { stdout: "not mine", stderr: "" },
      claim,
    });
    assert.equal(stale.applied, false);
    assert.deepEqual(ids(stale.claimed), ["b"]);
    assert.deepEqual(
      await mustGet(store, "a"),
      claimed.get("a"),
      "the refused change wrote nothing",
    );
    assert.deepEqual(plain((await store.getJobOutput({ id: "a" }))!), { stdout: "", stderr: "" });
    const last = await store.settleAndClaim({
      change: complete(claimed.get("a")!, { now: clock.now(), workerId: "w1", exit_code: 0 }),
      claim,
    });
    assert.deepEqual(last, { applied: true, claimed: [] });
    const { counts } = await store.stats({ now: clock.now() });
    assert.deepEqual([counts.completed, counts.processing, counts.pending], [1, 1, 0]);
  });

  test("retryNow, restore and moveToDlq move failed and dead jobs", async (store, clock) => {
    const claimed = await insertAndClaim(store, clock, [
      newJob("f", { max_retries: 3 }),
      newJob("d", { max_retries: 0 }),
      newJob("m", { max_retries: 3 }),
    ]);
    const r = { now: clock.now(), workerId: "w1", exit_code: 1 };
    for (const id of ["f", "d", "m"]) {
      assert.ok(await store.applyChange({ change: fail(claimed.get(id)!, r, POLICY) }));
    }
    clock.advance(100);
    // failed → pending now, keeping attempts.
    const f = await mustGet(store, "f");
    assert.ok(await store.applyChange({ change: retryNow(f, clock.now()) }));
    assert.deepEqual(await mustGet(store, "f"), {
      ...f,
      state: "pending",
      run_at: clock.now(),
      updated_at: clock.now(),
    });
    // dead → pending with a fresh budget.
    const d = await mustGet(store, "d");
    assert.equal(d.state, "dead");
    assert.ok(await store.applyChange({ change: restore(d, clock.now()) }));
    assert.deepEqual(await mustGet(store, "d"), {
      ...d,
      state: "pending",
      attempts: 0,
      run_at: clock.now(),
      updated_at: clock.now(),
    });
    // failed → dead by hand.
    const m = await mustGet(store, "m");
    assert.ok(await store.applyChange({ change: moveToDlq(m, clock.now()) }));
    assert.deepEqual(await mustGet(store, "m"), {
      ...m,
      state: "dead",
      finished_at: clock.now(),
      updated_at: clock.now(),
    });
    // retried jobs are claimable at once.
    const again = await store.claimJobs({
      workerId: "w2",
      queues: null,
      now: clock.now(),
      leaseMs: LEASE,
      limit: 5,
    });
    assert.deepEqual(ids(again).sort(), ["d", "f"]);
  });

  test("countDeadSince counts the jobs that reached the DLQ at or after a time", async (
    store,
    clock,
  ) => {
    const claimed = await insertAndClaim(store, clock, [
      newJob("early", { max_retries: 0, queue: "q1" }),
      newJob("b", { max_retries: 0, queue: "q2" }),
      newJob("c", { max_retries: 0, queue: "q1" }),
      newJob("m", { max_retries: 3, queue: "q2" }),
      newJob("ok", { queue: "q1" }),
    ]);
    const failAt = async (id: string) =>
      assert.ok(
        await store.applyChange({
          change: fail(
            claimed.get(id)!,
            { now: clock.now(), workerId: "w1", exit_code: 1 },
            POLICY,
          ),
        }),
      );
    await failAt("early");
    clock.advance(1000);
    const since = clock.now();
    clock.advance(1000);
    await failAt("b");
    await failAt("c");
    await failAt("m"); // failed, a retry waiting: not dead
    assert.ok(
      await store.applyChange({
        change: complete(claimed.get("ok")!, { now: clock.now(), workerId: "w1", exit_code: 0 }),
      }),
    );
    assert.equal(await store.countDeadSince({ since, queues: null }), 2);
    // Moved by hand (its run ended before) counts from the move.
    clock.advance(1000);
    assert.ok(
      await store.applyChange({ change: moveToDlq(await mustGet(store, "m"), clock.now()) }),
    );
    assert.equal(await store.countDeadSince({ since, queues: null }), 3);
    assert.equal(await store.countDeadSince({ since, queues: [] }), 3);
    assert.equal(await store.countDeadSince({ since, queues: ["q1"] }), 1);
    assert.equal(await store.countDeadSince({ since, queues: ["q2", "nope"] }), 2);
    assert.equal(await store.countDeadSince({ since: since - 1000, queues: null }), 4);
    assert.equal(await store.countDeadSince({ since: clock.now() + 1, queues: null }), 0);
    // Restored, then dead again: counted from its new end only.
    clock.advance(1000);
    assert.ok(
      await store.applyChange({ change: restore(await mustGet(store, "early"), clock.now()) }),
    );
    assert.equal(await store.countDeadSince({ since: since - 1000, queues: null }), 3);
    const [again] = await store.claimJobs({
      workerId: "w2",
      queues: ["q1"],
      now: clock.now(),
      leaseMs: LEASE,
      limit: 1,
    });
    assert.equal(again?.id, "early");
    assert.ok(
      await store.applyChange({
        change: fail(again, { now: clock.now(), workerId: "w2", exit_code: 1 }, POLICY),
      }),
    );
    assert.equal((await mustGet(store, "early")).state, "dead");
    assert.equal(await store.countDeadSince({ since, queues: ["q1"] }), 2);
    assert.equal(await store.countDeadSince({ since: clock.now() + 1, queues: null }), 0);
  });

  // --- leases ---------------------------------------------------------------------------------

  test("renewLeases extends only the worker's processing jobs", async (store, clock) => {
    await store.insertJobs({
      jobs: [newJob("a"), newJob("b"), newJob("c"), newJob("d")],
      now: clock.now(),
    });
    const claim = (workerId: string, limit: number) =>
      store.claimJobs({ workerId, queues: null, now: clock.now(), leaseMs: LEASE, limit });
    const mine = await claim("w1", 2);
    await claim("w2", 1);
    const done = plain(mine[1]);
    assert.ok(
      await store.applyChange({
        change: complete(done, { now: clock.now(), workerId: "w1", exit_code: 0 }),
      }),
    );
    clock.advance(10_000);
    const before = await mustGet(store, mine[0].id);
    assert.equal(await store.renewLeases({ workerId: "w1", now: clock.now(), leaseMs: 5000 }), 1);
    assert.deepEqual(await mustGet(store, mine[0].id), {
      ...before,
      lease_expires_at: clock.now() + 5000,
    });
    assert.equal((await mustGet(store, "c")).lease_expires_at, T0 + LEASE);
    assert.equal((await mustGet(store, done.id)).lease_expires_at, null);
    assert.equal(await store.renewLeases({ workerId: "nobody", now: clock.now(), leaseMs: 1 }), 0);
  });

  test("findExpiredLeases lists processing jobs whose lease ran out", async (store, clock) => {
    await store.insertJobs({
      jobs: [newJob("a"), newJob("b"), newJob("c"), newJob("d")],
      now: clock.now(),
    });
    const claim = (workerId: string, limit: number, leaseMs: number) =>
      store.claimJobs({ workerId, queues: null, now: clock.now(), leaseMs, limit });
    await claim("w1", 1, 3000); // a: expires T0+3000
    await claim("w2", 1, 1000); // b: expires T0+1000
    const [c] = await claim("w3", 1, 2000); // c: expires T0+2000, but completed
    assert.ok(
      await store.applyChange({
        change: complete(c, { now: clock.now(), workerId: "w3", exit_code: 0 }),
      }),
    );
    const expired = async (now: number, limit = 10) =>
      ids(await store.findExpiredLeases({ now, limit }));
    assert.deepEqual(await expired(T0 + 999), []);
    assert.deepEqual(await expired(T0 + 1000), ["b"]);
    assert.deepEqual(await expired(T0 + 5000), ["b", "a"]);
    assert.deepEqual(await expired(T0 + 5000, 1), ["b"]);
    const [job] = await store.findExpiredLeases({ now: T0 + 5000, limit: 1 });
    assert.deepEqual(plain(job), await mustGet(store, "b"));
  });

  test("listLeased lists one worker's processing jobs, expired or not", async (store, clock) => {
    await store.insertJobs({ jobs: [newJob("a"), newJob("b"), newJob("c")], now: clock.now() });
    const claim = (workerId: string, limit: number, leaseMs: number) =>
      store.claimJobs({ workerId, queues: null, now: clock.now(), leaseMs, limit });
    await claim("w1", 1, 1000); // a
    await claim("w2", 1, LEASE); // b
    const [c] = await claim("w1", 1, LEASE); // c, then completed
    assert.ok(
      await store.applyChange({
        change: complete(c, { now: clock.now(), workerId: "w1", exit_code: 0 }),
      }),
    );
    clock.advance(5000); // a's lease ran out: still w1's until rescued
    assert.deepEqual(ids(await store.listLeased({ worker: "w1" })), ["a"]);
    assert.deepEqual(
      (await store.listLeased({ worker: "w2" })).map(plain),
      [await mustGet(store, "b")],
    );
    assert.deepEqual(await store.listLeased({ worker: "nobody" }), []);
  });

  test(
    "releaseUnstarted: a dead worker's claims its start marker does not name go back uncounted",
    async (store, clock) => {
      await store.insertJobs({ jobs: [newJob("a"), newJob("b"), newJob("c")], now: clock.now() });
      const claim = (workerId: string) =>
        store.claimJobs({ workerId, queues: null, now: clock.now(), leaseMs: LEASE, limit: 1 });
      const [a] = await claim("w1"); // spawned: the marker names this claim
      clock.advance(10);
      const [b] = await claim("w1"); // claimed after it, never spawned
      await claim("w2"); // c: another worker's
      assert.equal(a.attempts, 1);
      clock.advance(10);
      const released = await releaseUnstarted(store, clock.now(), {
        worker: "w1",
        job: { id: a.id, attempts: a.attempts, started_at: a.started_at },
      });
      assert.deepEqual(ids(released), ["b"]);
      const backB = await mustGet(store, "b");
      assert.equal(backB.state, "pending");
      assert.equal(backB.attempts, b.attempts - 1, "the attempt is not counted");
      assert.equal(backB.lease_owner, null);
      assert.equal(backB.run_at, clock.now(), "runnable at once");
      assert.deepEqual(await store.listRuns({ jobId: "b", outputChars: 0 }), [], "no run recorded");
      assert.equal((await mustGet(store, "a")).state, "processing", "left to the lease rescue");
      assert.equal((await mustGet(store, "c")).lease_owner, "w2");

      // The same job claimed again by the same worker (after it settled a): a marker of its
      // earlier claim (same id and attempt number, another claim time) does not name this claim.
      assert.ok(
        await store.applyChange({
          change: complete(a, { now: clock.now(), workerId: "w1", exit_code: 0 }),
        }),
      );
      const [again] = await claim("w1");
      assert.equal(again.id, "b");
      assert.equal(again.attempts, b.attempts);
      assert.notEqual(again.started_at, b.started_at);
      assert.deepEqual(
        ids(
          await releaseUnstarted(store, clock.now(), {
            worker: "w1",
            job: { id: "b", attempts: b.attempts, started_at: b.started_at },
          }),
        ),
        ["b"],
      );
      // A marker with no job yet: every claim of that worker is released.
      assert.deepEqual(
        ids(await releaseUnstarted(store, clock.now(), { worker: "w2", job: null })),
        [
          "c",
        ],
      );
    },
  );

  test(
    "releaseUnstarted: a marker written while the job before was settling names both jobs",
    async (store, clock) => {
      await store.insertJobs({ jobs: [newJob("a"), newJob("b"), newJob("c")], now: clock.now() });
      const claim = () =>
        store.claimJobs({
          workerId: "w1",
          queues: null,
          now: clock.now(),
          leaseMs: LEASE,
          limit: 1,
        });
      const [a] = await claim(); // ended, its settle under way when b was spawned
      clock.advance(10);
      const [b] = await claim(); // spawned (claimed ahead)
      clock.advance(10);
      await claim(); // c: claimed ahead of b, never spawned
      const named = (j: typeof a) => ({ id: j.id, attempts: j.attempts, started_at: j.started_at });
      const released = await releaseUnstarted(store, clock.now(), {
        worker: "w1",
        job: named(b),
        unsettled: named(a),
      });
      assert.deepEqual(ids(released), ["c"]);
      assert.equal((await mustGet(store, "a")).state, "processing", "a ran: left to the rescue");
      assert.equal((await mustGet(store, "b")).state, "processing", "b ran: left to the rescue");
    },
  );

  test(
    "a claim ahead never takes a job of a queue with a running limit",
    async (store, clock) => {
      const now = clock.now();
      await store.setQueueControl({ name: "slow", maxRunning: 2, now });
      await store.insertJobs({
        jobs: [
          newJob("s1", { queue: "slow", priority: 9 }),
          newJob("s2", { queue: "slow", priority: 8 }),
          newJob("f1", { priority: 1 }),
        ],
        now,
      });
      const take = (limit: number, ahead: number) =>
        store.claimJobs({ workerId: "w1", queues: null, now, leaseMs: LEASE, limit, ahead })
          .then(ids);
      // One to run now (s1, its slot is free) and one ahead: not s2, whose slot another worker
      // could use now; f1 (no limit) is taken ahead instead, or nothing.
      const first = await take(2, 1);
      assert.equal(first[0], "s1");
      assert.ok(!first.includes("s2"), `s2 claimed ahead: ${first}`);
      // Only ahead: nothing of the limited queue.
      assert.ok(!(await take(1, 1)).includes("s2"));
      assert.deepEqual(await take(1, 0), ["s2"], "a claim to run now takes it");
    },
  );

  test("nextRunAt gives the earliest run_at of claimable jobs", async (store, clock) => {
    assert.equal(await store.nextRunAt({ queues: null }), null);
    await store.insertJobs({
      jobs: [
        newJob("soon", { run_at: T0 + 100, queue: "mail" }),
        newJob("later", { run_at: T0 + 5000 }),
        newJob("now", { run_at: T0 }),
      ],
      now: T0,
    });
    assert.equal(await store.nextRunAt({ queues: null }), T0);
    assert.equal(await store.nextRunAt({ queues: ["mail"] }), T0 + 100);
    assert.equal(await store.nextRunAt({ queues: ["mail", "default"] }), T0);
    assert.equal(await store.nextRunAt({ queues: ["other"] }), null);
    // `after`: the next job due later than a time (the next scheduled one).
    assert.equal(await store.nextRunAt({ queues: null, after: T0 }), T0 + 100);
    assert.equal(await store.nextRunAt({ queues: ["default"], after: T0 }), T0 + 5000);
    assert.equal(await store.nextRunAt({ queues: null, after: T0 + 5000 }), null);
    // The processing job no longer counts; a failed job counts with its retry time.
    const [job] = await store.claimJobs({
      workerId: "w",
      queues: ["default"],
      now: clock.now(),
      leaseMs: LEASE,
      limit: 1,
    });
    assert.equal(job.id, "now");
    assert.equal(await store.nextRunAt({ queues: ["default"] }), T0 + 5000);
    assert.ok(
      await store.applyChange({
        change: fail(job, { now: T0 + 10, workerId: "w", exit_code: 1 }, POLICY),
      }),
    );
    assert.equal(await store.nextRunAt({ queues: ["default"] }), T0 + 10 + 2000);
    assert.equal(await store.nextRunAt({ queues: null }), T0 + 100);
  });

  // --- delete ---------------------------------------------------------------------------------

  test("deleteJobs removes only jobs in the given states", async (store, clock) => {
    const claimed = await insertAndClaim(store, clock, [newJob("c1"), newJob("c2")]);
    for (const [i, id] of ["c1", "c2"].entries()) {
      assert.ok(
        await store.applyChange({
          change: complete(claimed.get(id)!, { now: T0 + i * 1000, workerId: "w1", exit_code: 0 }),
          output: { stdout: id, stderr: "" },
        }),
      );
    }
    await store.insertJobs({ jobs: [newJob("p1"), newJob("p2")], now: T0 });
    const remaining = async () => ids(await store.listJobs({ limit: 100, order: "oldest" }));

    // Guard: ids in another state are kept; empty lists delete nothing.
    assert.deepEqual(await store.deleteJobs({ states: ["completed"], ids: ["p1", "nope"] }), []);
    assert.deepEqual(await store.deleteJobs({ states: ["completed"], ids: [] }), []);
    assert.deepEqual(await store.deleteJobs({ states: [], ids: ["c1"] }), []);
    assert.deepEqual(await store.deleteJobs({ states: [] }), []);
    assert.deepEqual(await remaining(), ["c1", "c2", "p1", "p2"]);
    // updatedBefore is strict: c1 was updated at T0, c2 at T0 + 1000.
    assert.deepEqual(await store.deleteJobs({ states: ["completed"], updatedBefore: T0 }), []);
    assert.deepEqual(
      await store.deleteJobs({ states: ["completed"], updatedBefore: T0 + 1000 }),
      ["c1"],
    );
    assert.equal(await store.getJob({ id: "c1" }), null);
    assert.equal(await store.getJobOutput({ id: "c1" }), null);
    // ids, states and updatedBefore together.
    assert.deepEqual(
      await store.deleteJobs({ states: ["pending"], ids: ["p2"], updatedBefore: T0 }),
      [],
    );
    assert.deepEqual(
      await store.deleteJobs({ states: ["pending", "failed"], ids: ["p1", "c2", "nope"] }),
      ["p1"],
    );
    assert.deepEqual(await store.deleteJobs({ states: ["completed"] }), ["c2"]);
    assert.deepEqual(await remaining(), ["p2"]);
  });

  test(
    "deleteJobs with a limit deletes the jobs updated longest ago first, with their runs",
    async (
      store,
      clock,
    ) => {
      const jobs = Array.from({ length: 6 }, (_, i) => newJob(`f${i}`, { max_retries: 0 }));
      const claimed = await insertAndClaim(store, clock, jobs);
      // f0..f5 settle 1 s apart, in reverse order: f5 is the oldest; f4 and f1 die.
      for (const i of [5, 4, 3, 2, 1, 0]) {
        clock.advance(1000);
        const r = { now: clock.now(), workerId: "w1", exit_code: i % 3 === 1 ? 1 : 0 };
        const j = claimed.get(`f${i}`)!;
        const change = i % 3 === 1 ? fail(j, r, POLICY) : complete(j, r);
        assert.ok(await store.applyChange({ change, output: { stdout: `o${i}`, stderr: "" } }));
      }
      await store.insertJobs({ jobs: [newJob("p")], now: T0 });
      const cutoff = clock.now(); // f0 settled at cutoff: not before it
      // Which jobs, not in which order they are named.
      assert.deepEqual(
        (await store.deleteJobs({ states: ["completed"], updatedBefore: cutoff, limit: 2 })).sort(),
        ["f3", "f5"],
      );
      assert.deepEqual(
        (await store.deleteJobs({
          states: ["completed", "dead"],
          updatedBefore: cutoff,
          limit: 10,
        }))
          .sort(),
        ["f1", "f2", "f4"],
      );
      assert.deepEqual(
        await store.deleteJobs({ states: ["completed"], updatedBefore: cutoff, limit: 10 }),
        [],
      );
      assert.deepEqual(ids(await store.listJobs({ limit: 10 })).sort(), ["f0", "p"]);
      assert.deepEqual(await store.listRuns({ jobId: "f5", outputChars: 10 }), []);
      assert.equal((await store.listRuns({ jobId: "f0", outputChars: 10 })).length, 1);
      const stats = await store.stats({ now: clock.now() });
      assert.deepEqual([stats.counts.completed, stats.counts.dead, stats.counts.pending], [
        1,
        0,
        1,
      ]);
    },
  );

  // --- metrics --------------------------------------------------------------------------------

  test("runTotals count finished runs by outcome and duration bucket, and never go back", async (
    store,
    clock,
  ) => {
    assert.deepEqual([...(await store.runTotals())], []);
    const jobs = [
      newJob("ok", { max_retries: 0 }),
      newJob("retry", { max_retries: 1 }),
      newJob("dies", { max_retries: 0 }),
      newJob("live", { max_retries: 0 }),
    ];
    const claimed = await insertAndClaim(store, clock, jobs);
    // A running row (live output) is not a finished run; its settle counts once.
    const live = claimed.get("live")!;
    assert.ok(
      await store.appendRunOutput({
        jobId: "live",
        attempt: live.attempts,
        worker: "w1",
        host: "h",
        startedAt: live.started_at,
        stdout: "x",
        stderr: "",
        limit: 10,
        now: clock.now(),
      }),
    );
    assert.deepEqual([...(await store.runTotals())], []);
    const settle = async (id: string, ms: number, code: number) => {
      const j = await mustGet(store, id);
      const r = { now: j.started_at! + ms, workerId: "w1", exit_code: code };
      const change = code === 0 ? complete(j, r) : fail(j, r, POLICY);
      assert.ok(await store.applyChange({ change }));
    };
    await settle("ok", 50, 0); // <= 0.1 s
    await settle("retry", 100, 1); // failed, <= 0.1 s (bounds are inclusive)
    await settle("dies", 7_000, 1); // dead, <= 10 s
    await settle("live", 4_000_000, 0); // > 3600 s
    const expected = [
      ["duration_le:+Inf", 1],
      ["duration_le:0.1", 2],
      ["duration_le:10", 1],
      ["duration_sum_ms", 4_007_150],
      ["outcome:completed", 2],
      ["outcome:dead", 1],
      ["outcome:failed", 1],
    ];
    const sorted = async () => [...(await store.runTotals())].sort();
    assert.deepEqual(await sorted(), expected);
    // Deleting the jobs (purge, retention) deletes their runs, not the totals.
    await store.deleteJobs({ states: ["completed", "dead"] });
    assert.equal(await store.getJob({ id: "ok" }), null);
    assert.deepEqual(await sorted(), expected);
  });

  test("queueMetrics: jobs per queue and state, and the longest-waiting due job", async (
    store,
    clock,
  ) => {
    assert.deepEqual(await store.queueMetrics({ now: clock.now() }), []);
    await store.insertJobs({
      jobs: [
        newJob("m1", { queue: "mail", run_at: T0 - 5000 }),
        newJob("m2", { queue: "mail", run_at: T0 - 9000 }),
        newJob("m3", { queue: "mail", run_at: T0 + 60_000 }), // scheduled: not due
        newJob("d1", { run_at: T0 + 1000 }),
      ],
      now: T0 - 10_000,
    });
    await store.claimJobs({
      workerId: "w1",
      queues: ["mail"],
      now: clock.now(),
      leaseMs: LEASE,
      limit: 1,
    }); // takes m2 (oldest run_at)
    assert.deepEqual((await store.queueMetrics({ now: clock.now() })).map(plain), [
      { queue: "default", counts: { pending: 1 }, oldest_due_at: null },
      { queue: "mail", counts: { pending: 2, processing: 1 }, oldest_due_at: T0 - 5000 },
    ]);
    assert.deepEqual(
      (await store.queueMetrics({ now: T0 + 2000 }))[0],
      { queue: "default", counts: { pending: 1 }, oldest_due_at: T0 + 1000 },
    );
  });

  test(
    "queueMetrics: the oldest due job of a queue larger than the waiting jobs and of a small one",
    async (
      store,
      clock,
    ) => {
      await store.insertJobs({
        jobs: [
          ...Array.from(
            { length: 6 },
            (_, i) => newJob(`big-${i}`, { queue: "big", run_at: T0 - 5000 }),
          ),
          newJob("big-due", { queue: "big", run_at: T0 - 3000 }),
          newJob("big-later", { queue: "big", run_at: T0 + 60_000 }),
          newJob("small-due", { queue: "small", run_at: T0 - 1000 }),
          // Read with "small" in one statement on PostgreSQL: a name a list literal must quote.
          newJob("odd-due", { queue: ODD_QUEUE, run_at: T0 - 500 }),
        ],
        now: T0 - 10_000,
      });
      // "big" ends with more jobs (8) than wait in every queue (4).
      for (let i = 0; i < 6; i++) {
        const [job] = await store.claimJobs({
          workerId: "w",
          queues: ["big"],
          now: clock.now(),
          leaseMs: LEASE,
          limit: 1,
        });
        assert.equal(job.id, `big-${i}`);
        assert.ok(
          await store.applyChange({
            change: complete(job, {
              now: clock.now(),
              workerId: "w",
              exit_code: 0,
              duration_ms: 1,
            }),
          }),
        );
      }
      assert.deepEqual(
        (await store.queueMetrics({ now: clock.now() })).map((m) => [m.queue, m.oldest_due_at]),
        [["big", T0 - 3000], [ODD_QUEUE, T0 - 500], ["small", T0 - 1000]],
      );
      assert.deepEqual(
        (await store.queueMetrics({ now: T0 - 2000 })).map((m) => [m.queue, m.oldest_due_at]),
        [["big", T0 - 3000], [ODD_QUEUE, null], ["small", null]],
      );
    },
  );

  test("compactCounts folds the counters of queues come and gone; every count stays", async (
    store,
    clock,
  ) => {
    // Other connections move and delete the jobs (on PostgreSQL: other sessions, so the counters
    // are split over several shards, as by workers and the CLI).
    const peers = await Promise.all(Array.from({ length: 3 }, () => opts.reopen(store)));
    try {
      const now = clock.now();
      const gone = Array.from({ length: 12 }, (_, i) => `gone-${String(i).padStart(2, "0")}`);
      await store.insertJobs({
        jobs: [
          ...gone.map((q) => newJob(`${q}-job`, { queue: q })),
          ...["l1", "l2", "l3", "l4"].map((id) => newJob(id, { queue: "live" })),
        ],
        now,
      });
      for (const [i, q] of [...gone, "live"].entries()) {
        const peer = peers[i % peers.length];
        const [job] = await peer.claimJobs({
          workerId: `w${i}`,
          queues: [q],
          now,
          leaseMs: LEASE,
          limit: 1,
        });
        assert.ok(
          await peers[(i + 1) % peers.length].applyChange({
            change: complete(job, { now, workerId: `w${i}`, exit_code: 0, duration_ms: 1 }),
          }),
        );
      }
      assert.equal(
        (await peers[2].deleteJobs({ states: ["completed"], ids: gone.map((q) => `${q}-job`) }))
          .length,
        gone.length,
      );
      const counts = async () =>
        plain({
          states: Object.fromEntries(
            await Promise.all(
              (["pending", "processing", "completed", "failed", "dead"] as const).map(async (
                state,
              ) => [state, await store.countJobs({ state })]),
            ),
          ),
          all: await store.countJobs({}),
          live: await store.countJobs({ queue: "live" }),
          metrics: (await store.queueMetrics({ now })).map(plain),
        });
      const before = await counts();
      assert.deepEqual(before.metrics, [
        { queue: "live", counts: { pending: 3, completed: 1 }, oldest_due_at: T0 },
      ]);
      let removed = 0;
      for (let batches = 0;; batches++) {
        assert.ok(batches < 100, "compactCounts ends");
        const r = await store.compactCounts({ limit: 5 });
        removed += r.removed;
        assert.deepEqual(await counts(), before, "every count is the same after each batch");
        if (r.found < 5) break;
      }
      // At least the 12 gone queues' zero counters of pending, processing and completed.
      assert.ok(removed >= 3 * gone.length, `removed ${removed}`);
      assert.deepEqual(await store.compactCounts({ limit: 1000 }), { found: 0, removed: 0 });
      // A compacted counter counts on: a gone queue used again, the live one moved on.
      await store.insertJobs({ jobs: [newJob("again", { queue: gone[3] })], now });
      await peers[0].claimJobs({ workerId: "w", queues: ["live"], now, leaseMs: LEASE, limit: 1 });
      assert.deepEqual((await store.queueMetrics({ now })).map(plain), [
        { queue: gone[3], counts: { pending: 1 }, oldest_due_at: T0 },
        { queue: "live", counts: { pending: 2, processing: 1, completed: 1 }, oldest_due_at: T0 },
      ]);
      assert.equal(await store.countJobs({ state: "pending" }), 3);
    } finally {
      for (const peer of peers) await peer.close();
    }
  });

  // --- config ---------------------------------------------------------------------------------

  test("config values are set, replaced, read and unset", async (store) => {
    assert.deepEqual(plain(await store.getConfig()), {});
    await store.setConfig({ key: "max_retries", value: "5" });
    await store.setConfig({ key: "backoff_base", value: "3" });
    await store.setConfig({ key: "max_retries", value: "7" });
    assert.deepEqual(plain(await store.getConfig()), { max_retries: "7", backoff_base: "3" });
    assert.equal(await store.unsetConfig({ key: "max_retries" }), true);
    assert.equal(await store.unsetConfig({ key: "max_retries" }), false);
    assert.equal(await store.unsetConfig({ key: "never_set" }), false);
    assert.deepEqual(plain(await store.getConfig()), { backoff_base: "3" });
  });

  // --- workers --------------------------------------------------------------------------------

  const worker = (id: string, o: Partial<WorkerRecord> = {}): WorkerRecord => ({
    id,
    pid: 4242,
    host: "host-a",
    queues: null,
    started_at: T0,
    heartbeat_at: T0,
    current_job: null,
    stop_requested_at: null,
    supervisor_id: null,
    ...o,
  });

  test("workers are registered, replaced and listed", async (store) => {
    assert.deepEqual(await store.listWorkers(), []);
    const sup = worker("sup-1", { started_at: T0 - 10 });
    const w1 = worker("w1", { queues: ["mail", "reports"], supervisor_id: "sup-1", pid: 11 });
    const w2 = worker("w2", { host: "host-b", current_job: "job-9", pid: 12 });
    for (const w of [w2, w1, sup]) await store.registerWorker({ worker: w });
    assert.deepEqual((await store.listWorkers()).map(plain), [sup, w1, w2]);
    const w1b = { ...w1, pid: 99, queues: ["mail"], started_at: T0 + 5, heartbeat_at: T0 + 5 };
    await store.registerWorker({ worker: w1b });
    assert.deepEqual((await store.listWorkers()).map(plain), [sup, w2, w1b]);
  });

  test("heartbeat records liveness and reports stop requests", async (store) => {
    await store.registerWorker({ worker: worker("w1") });
    await store.registerWorker({ worker: worker("w2") });
    assert.equal(await store.heartbeatWorker({ id: "w1", now: T0 + 100, currentJob: "j1" }), null);
    let [w1] = (await store.listWorkers()).filter((w) => w.id === "w1");
    assert.equal(w1.heartbeat_at, T0 + 100);
    assert.equal(w1.current_job, "j1");
    assert.equal(await store.requestStop({ ids: ["w1", "ghost"], now: T0 + 200 }), 1);
    assert.equal(
      await store.heartbeatWorker({ id: "w1", now: T0 + 300, currentJob: null }),
      T0 + 200,
    );
    [w1] = (await store.listWorkers()).filter((w) => w.id === "w1");
    assert.equal(w1.current_job, null);
    assert.equal(w1.stop_requested_at, T0 + 200);
    assert.equal(await store.heartbeatWorker({ id: "w2", now: T0 + 300, currentJob: null }), null);
    // Stop all: w2 is asked now.
    assert.ok((await store.requestStop({ now: T0 + 400 })) >= 1);
    assert.equal(
      await store.heartbeatWorker({ id: "w2", now: T0 + 500, currentJob: null }),
      T0 + 400,
    );
    // A removed record reads as "stop".
    await store.removeWorker({ id: "w1" });
    assert.equal(
      await store.heartbeatWorker({ id: "w1", now: T0 + 600, currentJob: null }),
      undefined,
    );
    assert.deepEqual((await store.listWorkers()).map((w) => w.id), ["w2"]);
    await store.removeWorker({ id: "w1" });
  });

  test("a stop of everything is numbered and outlives the records it stamped", async (store) => {
    assert.equal(await store.lastStopRequest(), 0);
    // Stopping named records is not a stop of everything.
    await store.requestStop({ ids: ["nobody"], now: T0 });
    assert.equal(await store.lastStopRequest(), 0);
    // Recorded even when no record is there to stamp (the hosts may only be away).
    assert.equal(await store.requestStop({ now: T0 + 1 }), 0);
    const first = await store.lastStopRequest();
    assert.ok(first > 0);
    await store.registerWorker({ worker: worker("w1") });
    await store.requestStop({ now: T0 + 2 });
    await store.removeWorker({ id: "w1" });
    assert.ok(await store.lastStopRequest() > first);
  });

  test("pruneWorkers deletes records with an old heartbeat", async (store) => {
    await store.registerWorker({ worker: worker("old", { heartbeat_at: T0 - 60_000 }) });
    await store.registerWorker({ worker: worker("edge", { heartbeat_at: T0 - 30_000 }) });
    await store.registerWorker({ worker: worker("live", { heartbeat_at: T0 }) });
    assert.deepEqual(await store.pruneWorkers({ before: T0 - 30_000 }), ["old"]);
    assert.deepEqual((await store.pruneWorkers({ before: T0 })).sort(), ["edge"]);
    assert.deepEqual((await store.listWorkers()).map((w) => w.id), ["live"]);
  });

  // --- kill requests --------------------------------------------------------------------------

  test(
    "requestKill marks only a processing job; every settle of the run clears it",
    async (store, clock) => {
      const held = await insertAndClaim(store, clock, [newJob("a"), newJob("b")]);
      await store.insertJobs({ jobs: [newJob("waiting")], now: clock.now() });
      const before = await mustGet(store, "waiting");
      assert.equal(
        await store.requestKill({ id: "waiting", signal: "SIGTERM", retry: false, now: T0 + 5 }),
        false,
      );
      assert.deepEqual(await mustGet(store, "waiting"), before, "a pending job is not touched");
      assert.equal(
        await store.requestKill({ id: "nope", signal: "SIGTERM", retry: false, now: T0 + 5 }),
        false,
      );
      assert.equal(
        await store.requestKill({ id: "a", signal: "SIGINT", retry: true, now: T0 + 5 }),
        true,
      );
      assert.equal(
        await store.requestKill({ id: "b", signal: "SIGTERM", retry: false, now: T0 + 6 }),
        true,
      );
      const a = await mustGet(store, "a");
      assert.deepEqual(
        [a.state, a.kill_signal, a.kill_retry, a.updated_at, a.lease_owner],
        ["processing", "SIGINT", 1, T0 + 5, "w1"],
      );
      assert.equal((await mustGet(store, "b")).kill_retry, 0);
      const run = { now: T0 + 10, workerId: "w1", exit_code: null, error: "killed by SIGINT" };
      assert.ok(await store.applyChange({ change: fail(held.get("a")!, run, POLICY) }));
      assert.ok(await store.applyChange({ change: release(held.get("b")!, T0 + 10, "w1") }));
      for (const id of ["a", "b"]) {
        const job = await mustGet(store, id);
        assert.deepEqual([job.kill_signal, job.kill_retry], [null, null], id);
      }
    },
  );

  test(
    "watchKillRequests hints a watcher of another connection after requestKill",
    async (store, clock) => {
      if (!store.watchKillRequests) return; // optional: workers then read requests at heartbeats
      await insertAndClaim(store, clock, [newJob("a")]);
      await withPeer(store, async (peer) => {
        let hints = 0;
        const stop = peer.watchKillRequests!(() => hints++);
        try {
          // The watch may take a moment to start (LISTEN): ask again until a hint comes.
          const woke = await waitUntil(
            async () => {
              await store.requestKill({ id: "a", signal: "SIGTERM", retry: false, now: T0 + 1 });
              return hints > 0;
            },
            100,
            10_000,
          );
          assert.ok(woke, "no hint within 10 s");
        } finally {
          stop();
        }
      });
    },
  );

  // --- leadership ----------------------------------------------------------------------------

  /** `fn` with a second store on the same database (another process's connection). */
  async function withPeer(store: Store, fn: (peer: Store) => Promise<void>): Promise<void> {
    const peer = await opts.reopen(store);
    try {
      await fn(peer);
    } finally {
      await peer.close();
    }
  }

  const lead = (store: Store, holder: string, now: number, leaseMs = LEASE, name = "duty") =>
    store.tryLead({ name, holder, now, leaseMs });

  test("tryLead: one holder leads; no other while it renews, in this process or another", async (store) => {
    await withPeer(store, async (peer) => {
      assert.equal(await lead(store, "a", T0), true);
      assert.equal(await lead(store, "a", T0 + 1), true, "the holder keeps the lead");
      assert.equal(await lead(peer, "b", T0 + 1), false, "another process's candidate");
      assert.equal(await lead(store, "c", T0 + 1), false, "another candidate of this process");
      assert.equal(await lead(store, "a", T0 + LEASE / 2), true, "renewed");
      // Past the first lease, within the renewed one.
      assert.equal(await lead(peer, "b", T0 + LEASE), false);
      assert.equal(await lead(store, "c", T0 + LEASE), false);
      assert.equal(await lead(store, "a", T0 + LEASE), true);
      // Another name is another election.
      assert.equal(await lead(peer, "b", T0 + LEASE, LEASE, "other duty"), true);
      assert.equal(await lead(store, "a", T0 + LEASE, LEASE, "other duty"), false);
    });
  });

  test("tryLead: candidates racing for a free lead elect exactly one", async (store) => {
    await withPeer(store, async (peer) => {
      const results = await Promise.all([
        lead(store, "a", T0),
        lead(peer, "b", T0),
        lead(store, "c", T0),
        lead(peer, "d", T0),
      ]);
      assert.equal(results.filter((r) => r).length, 1, `one leader: ${results}`);
    });
  });

  test("resign: only the holder gives up the lead, and another candidate leads at once", async (store) => {
    await withPeer(store, async (peer) => {
      assert.equal(await lead(store, "a", T0), true);
      await peer.resign({ name: "duty", holder: "b" });
      await store.resign({ name: "duty", holder: "c" });
      assert.equal(await lead(peer, "b", T0 + 1), false, "a non-holder's resign changes nothing");
      assert.equal(await lead(store, "a", T0 + 1), true);
      await store.resign({ name: "duty", holder: "a" });
      assert.equal(await lead(peer, "b", T0 + 2), true, "taken at once, long before the lease");
      assert.equal(await lead(store, "a", T0 + 3), false);
      await peer.resign({ name: "duty", holder: "b" });
      assert.equal(await lead(store, "c", T0 + 4), true, "in the first holder's process too");
    });
  });

  test("tryLead: a leader that stops renewing is replaced within one lease", async (store) => {
    const leaseMs = 1500;
    await withPeer(store, async (peer) => {
      assert.equal(await lead(store, "a", Date.now(), leaseMs), true);
      const since = performance.now();
      // Another candidate tries as a maintenance service would (often, real time).
      const took = await waitUntil(() => lead(peer, "b", Date.now(), leaseMs), 50, leaseMs + 8000);
      const after = performance.now() - since;
      assert.ok(took, `not replaced within ${leaseMs + 8000} ms`);
      assert.ok(after >= leaseMs - 100, `replaced after ${after} ms, before the lease ran out`);
      assert.equal(await lead(store, "a", Date.now(), leaseMs), false, "the old leader learns it");
      assert.equal(await lead(peer, "b", Date.now(), leaseMs), true);
    });
  });

  // --- wake-ups -------------------------------------------------------------------------------

  test("waitForJobs returns after its timeout or when aborted", async (store) => {
    if (!store.waitForJobs) return;
    await store.waitForJobs({ timeoutMs: 1 });
    const controller = new AbortController();
    const waiting = store.waitForJobs({ timeoutMs: 60_000, signal: controller.signal });
    controller.abort();
    await waiting;
    await store.waitForJobs({ timeoutMs: 60_000, signal: controller.signal });
  });

  test("waitForJobs wakes when jobs are enqueued", async (store) => {
    if (!store.waitForJobs) return;
    // The first call sets up the listener; a hint before it may or may not be seen.
    await store.waitForJobs({ timeoutMs: 0 });
    const controller = new AbortController();
    let woke = false;
    const waiting = store.waitForJobs({ timeoutMs: 60_000, signal: controller.signal }).then(
      () => woke = true,
    );
    await store.insertJobs({ jobs: [newJob("a")], now: T0 });
    // Bounded: if no wake-up comes, abort after 10 s and fail.
    const guard = setTimeout(() => controller.abort(), 10_000);
    await waiting;
    clearTimeout(guard);
    assert.ok(woke && !controller.signal.aborted, "woken by the insert, not by the guard");
  });

  // --- watching jobs (wait, logs --follow) ------------------------------------------------------

  test("getJobStates returns the state of each existing id; listJobIds filters", async (
    store,
    clock,
  ) => {
    const claimed = await insertAndClaim(store, clock, [newJob("e")]);
    await store.applyChange({
      change: complete(claimed.get("e")!, { now: clock.now(), workerId: "w1", exit_code: 0 }),
    });
    await store.insertJobs({
      jobs: [newJob("a"), newJob("b", { queue: "q2" }), newJob("c"), newJob("d")],
      now: clock.now(),
    });
    assert.deepEqual(await store.getJobStates({ ids: [] }), new Map());
    const states = await store.getJobStates({ ids: ["a", "e", "nope", "b"] });
    assert.deepEqual(
      [...states.entries()].sort(),
      [["a", "pending"], ["b", "pending"], ["e", "completed"]],
    );
    const many = Array.from({ length: 1200 }, (_, i) => `x${i}`);
    assert.equal((await store.getJobStates({ ids: [...many, "c"] })).get("c"), "pending");
    assert.deepEqual(await store.listJobIds({ states: ["pending"] }), ["a", "b", "c", "d"]);
    assert.deepEqual(await store.listJobIds({ states: ["pending"], queue: "q2" }), ["b"]);
    assert.deepEqual(await store.listJobIds({ states: ["completed", "dead"] }), ["e"]);
    assert.deepEqual(await store.listJobIds({ states: [] }), []);
  });

  test("waitForChanges wakes when another connection settles a job", async (store, clock) => {
    if (!store.waitForChanges) return;
    await store.insertJobs({ jobs: [newJob("a")], now: clock.now() });
    await withPeer(store, async (peer) => {
      const [job] = await peer.claimJobs({
        workerId: "w1",
        queues: null,
        now: clock.now(),
        leaseMs: LEASE,
        limit: 1,
      });
      // Records the watcher and listens: what commits after this call is seen.
      await store.waitForChanges!({ now: clock.now(), timeoutMs: 0 });
      const controller = new AbortController();
      let woke = false;
      const waiting = store.waitForChanges!({
        now: clock.now(),
        timeoutMs: 60_000,
        signal: controller.signal,
      }).then(() => woke = true);
      assert.ok(
        await peer.applyChange({
          change: complete(job, { now: clock.now(), workerId: "w1", exit_code: 0 }),
        }),
      );
      const guard = setTimeout(() => controller.abort(), 10_000);
      await waiting;
      clearTimeout(guard);
      assert.ok(woke && !controller.signal.aborted, "woken by the settle, not by the guard");
    });
  });
}
