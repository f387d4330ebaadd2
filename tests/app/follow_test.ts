/**
 * `logs --follow` (app/follow.ts) on both backends: another connection's live output and settle
 * reach the follower through the change hints (a slow safety poll alone would take 5 s a step).
 */
import assert from "node:assert/strict";
import { systemClock } from "../../src/core/clock.ts";
import { DEFAULT_CONFIG } from "../../src/core/config.ts";
import { complete, fail } from "../../src/core/transitions.ts";
import { followJob, unseen } from "../../src/app/follow.ts";
import { openPostgresStore } from "../../src/store/postgres/mod.ts";
import { openSqliteStore } from "../../src/store/sqlite/mod.ts";
import type { Store } from "../../src/store/store.ts";
import { admin, PG_URL, postgresAvailability } from "../helpers/postgres.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";
import { newJob } from "../store/conformance.ts";

const { ignore: noPg } = await postgresAvailability("app follow");

Deno.test("unseen: the new part of a growing, possibly cut, tail", () => {
  assert.deepEqual(unseen("", "abc"), { text: "abc", gap: false });
  assert.deepEqual(unseen("abc", "abcdef"), { text: "def", gap: false });
  const shown = "x".repeat(40) + "0123456789abcdefghij";
  assert.deepEqual(unseen(shown, "0123456789abcdefghij" + "NEW"), { text: "NEW", gap: false });
  assert.deepEqual(unseen(shown, shown), { text: "", gap: false });
  // Nothing in common: the stored tail moved past everything shown, so output may be missing.
  assert.deepEqual(unseen("abc", "zzz"), { text: "zzz", gap: true });
});

async function scenario(store: Store, peer: Store): Promise<void> {
  const now = Date.now();
  await store.insertJobs({ jobs: [newJob("f", { run_at: now, max_retries: 1 })], now });
  const claim = async () =>
    (await peer.claimJobs({
      workerId: "w1",
      queues: null,
      now: Date.now(),
      leaseMs: 60_000,
      limit: 1,
    }))[0];
  let job = await claim();
  const out: string[] = [];
  const controller = new AbortController();
  const guard = setTimeout(() => controller.abort(), 30_000);
  const following = followJob({ store, clock: systemClock }, "f", {
    stdout: (t) => out.push(t),
    stderr: (t) => out.push(`E:${t}`),
    gap: (stream) => out.push(`GAP:${stream}`),
  }, controller.signal);
  const append = (stdout: string) =>
    peer.appendRunOutput({
      jobId: "f",
      attempt: job.attempts,
      worker: "w1",
      host: null,
      startedAt: job.started_at,
      stdout,
      stderr: "",
      limit: 1000,
      now: Date.now(),
    });
  assert.ok(await append("one\n"));
  await waitFor(() => out.join("") === "one\n", { timeoutMs: 4000, what: "live output" });
  assert.ok(await append("two\n"));
  await waitFor(() => out.join("") === "one\ntwo\n", { timeoutMs: 4000, what: "more output" });
  // More than the stored tail (limit 1000) between two reads: the follower says a part may be
  // missing before what it shows next.
  const burst = "Z".repeat(1500);
  assert.ok(await append(burst));
  await waitFor(() => out.at(-1) === burst.slice(-1000), { timeoutMs: 4000, what: "the burst" });
  // The run fails; the retry's run is followed too, up to the job's end.
  assert.ok(
    await peer.applyChange({
      change: fail(job, { now: Date.now(), workerId: "w1", exit_code: 1, error: "x" }, {
        ...DEFAULT_CONFIG,
        backoff_base: 1.0001,
      }),
      output: { stdout: burst.slice(-994) + "three\n", stderr: "bad\n" },
    }),
  );
  await waitFor(() => out.includes("E:bad\n"), { timeoutMs: 4000, what: "the final stderr" });
  await waitFor(async () => (job = await claim()) !== undefined, { what: "the retry" });
  assert.ok(
    await peer.applyChange({
      change: complete(job, { now: Date.now(), workerId: "w1", exit_code: 0 }),
      output: { stdout: "again\n", stderr: "" },
    }),
  );
  const state = await following;
  clearTimeout(guard);
  assert.equal(controller.signal.aborted, false, "ended by the settle, not the guard");
  assert.equal(state, "completed");
  assert.deepEqual(out, [
    "one\n",
    "two\n",
    "GAP:stdout",
    "Z".repeat(1000),
    "three\n",
    "E:bad\n",
    "again\n",
  ]);
}

Deno.test("follow (sqlite): live output, a retry, the end", async () => {
  await using dir = await tempDir();
  const store = await openSqliteStore(dir.file("q.db"));
  const peer = await openSqliteStore(dir.file("q.db"));
  try {
    await scenario(store, peer);
  } finally {
    await peer.close();
    await store.close();
  }
});

Deno.test({
  name: "follow (postgres): live output, a retry, the end",
  ignore: noPg,
  fn: async () => {
    const schema = `qt_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
    const store = await openPostgresStore(PG_URL, { schema });
    const peer = await openPostgresStore(PG_URL, { schema });
    try {
      await scenario(store, peer);
    } finally {
      await peer.close();
      await store.close();
      const sql = admin();
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await sql.end();
    }
  },
});

Deno.test("follow: a settle between the job read and the run read does not repeat the output", async () => {
  await using dir = await tempDir();
  const real = await openSqliteStore(dir.file("q.db"));
  try {
    const now = Date.now();
    await real.insertJobs({ jobs: [newJob("r", { run_at: now, max_retries: 0 })], now });
    const [job] = await real.claimJobs({
      workerId: "w1",
      queues: null,
      now,
      leaseMs: 60_000,
      limit: 1,
    });
    assert.ok(
      await real.appendRunOutput({
        jobId: "r",
        attempt: job.attempts,
        worker: "w1",
        host: null,
        startedAt: job.started_at,
        stdout: "one\n",
        stderr: "",
        limit: 1000,
        now,
      }),
    );
    // Once "one" was shown, a look reads the job while it still runs and the run after it was
    // settled: the race a follower meets when a job ends between its two reads.
    const out: string[] = [];
    let settled = false;
    const store = new Proxy(real, {
      get(target, key, receiver) {
        if (key === "getJob") {
          return async (p: { id: string }) => {
            const seen = await target.getJob(p);
            if (out.length > 0 && !settled) {
              settled = true;
              await target.applyChange({
                change: complete(job, { now: Date.now(), workerId: "w1", exit_code: 0 }),
                output: { stdout: "one\ntwo\n", stderr: "" },
              });
            }
            return seen;
          };
        }
        const value = Reflect.get(target, key, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const state = await followJob({ store, clock: systemClock }, "r", {
      stdout: (t) => out.push(t),
      stderr: (t) => out.push(`E:${t}`),
    }, AbortSignal.timeout(30_000));
    assert.equal(state, "completed");
    assert.ok(settled);
    assert.equal(out.join(""), "one\ntwo\n");
  } finally {
    await real.close();
  }
});
