import assert from "node:assert/strict";
import { Conflict } from "../../src/core/errors.ts";
import type { Job } from "../../src/core/job.ts";
import {
  ALLOWED_MOVES,
  CLAIM_RULE,
  claimFields,
  compareClaimOrder,
  complete,
  fail,
  isAllowed,
  killed,
  loseLease,
  moveToDlq,
  release,
  restore,
  retryNow,
} from "../../src/core/transitions.ts";

const policy = { backoff_base: 2, backoff_max: 3600 };
const T = 1_000_000;

function job(over: Partial<Job> = {}): Job {
  return {
    id: "j",
    command: "true",
    queue: "default",
    state: "processing",
    priority: 0,
    attempts: 1,
    max_retries: 3,
    timeout: null,
    run_at: T,
    created_at: T,
    updated_at: T,
    started_at: T,
    finished_at: null,
    exit_code: null,
    error: null,
    lease_owner: "w1",
    lease_expires_at: T + 30_000,
    cwd: null,
    env: null,
    kill_signal: null,
    kill_retry: null,
    depends_on: null,
    blocked_by: 0,
    unique_key: null,
    ...over,
  };
}

Deno.test("the table allows only the documented moves", () => {
  assert.deepEqual(ALLOWED_MOVES.completed, ["pending"], "only `retry` re-runs a completed job");
  assert.ok(isAllowed("pending", "processing"));
  assert.ok(!isAllowed("pending", "completed"));
  assert.ok(!isAllowed("dead", "processing"));
  assert.ok(isAllowed("failed", "dead"));
});

Deno.test("complete: guarded by the lease owner, clears the lease", () => {
  const c = complete(job(), { now: T + 5, workerId: "w1", exit_code: 0 });
  assert.equal(c.from, "processing");
  assert.equal(c.to, "completed");
  assert.equal(c.leaseOwner, "w1");
  assert.equal(c.set.lease_owner, null);
  assert.equal(c.set.finished_at, T + 5);
  assert.throws(
    () => complete(job({ state: "pending" }), { now: T, workerId: "w", exit_code: 0 }),
    Conflict,
  );
});

Deno.test("fail: retry n waits backoff_base ^ n seconds, then the DLQ after 1 + max_retries runs", () => {
  const delays: number[] = [];
  for (let attempts = 1; attempts <= 3; attempts++) {
    const c = fail(
      job({ attempts }),
      { now: T, workerId: "w1", exit_code: 1, error: "exit 1" },
      policy,
    );
    assert.equal(c.to, "failed");
    delays.push((c.set.run_at! - T) / 1000);
  }
  assert.deepEqual(delays, [2, 4, 8]);
  const last = fail(job({ attempts: 4 }), { now: T, workerId: "w1", exit_code: 1 }, policy);
  assert.equal(last.to, "dead");
  assert.equal(last.set.run_at, undefined);
  const none = fail(
    job({ attempts: 1, max_retries: 0 }),
    { now: T, workerId: "w1", exit_code: 1 },
    policy,
  );
  assert.equal(none.to, "dead");
});

Deno.test("fail: delay capped by backoff_max", () => {
  const c = fail(job({ attempts: 20, max_retries: 50 }), { now: T, workerId: "w", exit_code: 1 }, {
    backoff_base: 2,
    backoff_max: 60,
  });
  assert.equal(c.set.run_at, T + 60_000);
});

Deno.test("loseLease: guarded by the old owner and expiry; counts as a failed run", () => {
  const c = loseLease(job({ attempts: 1 }), T + 40_000, policy);
  assert.equal(c.to, "failed");
  assert.equal(c.leaseOwner, "w1");
  assert.equal(c.leaseExpiredBy, T + 40_000);
  assert.match(c.set.error!, /worker lost/);
  assert.throws(() => loseLease(job({ state: "pending", lease_owner: null }), T, policy), Conflict);
});

Deno.test("release: back to pending without consuming a retry", () => {
  const c = release(job({ attempts: 2 }), T, "w1");
  assert.equal(c.to, "pending");
  assert.equal(c.set.attempts, 1);
  assert.equal(c.set.run_at, T);
});

Deno.test("retryNow, restore and moveToDlq: allowed only from their states", () => {
  const r = retryNow(job({ state: "failed", lease_owner: null }), T);
  assert.equal(r.to, "pending");
  assert.equal(r.set.attempts, undefined, "a failed job keeps its attempts");
  const d = restore(job({ state: "dead", attempts: 4 }), T);
  assert.equal(d.set.attempts, 0, "a restored job gets a fresh budget");
  assert.throws(() => restore(job({ state: "failed" }), T), Conflict);
  const again = retryNow(job({ state: "completed", attempts: 2, lease_owner: null }), T);
  assert.deepEqual([again.from, again.to, again.set.attempts], ["completed", "pending", 0]);
  assert.throws(
    () => retryNow(job({ state: "processing" }), T),
    (e: Error) => e instanceof Conflict && /queuectl kill/.test(e.hint ?? ""),
  );
  assert.throws(() => retryNow(job({ state: "pending" }), T), Conflict);
  assert.equal(moveToDlq(job({ state: "failed" }), T).to, "dead");
  assert.throws(() => moveToDlq(job({ state: "pending" }), T), Conflict);
});

Deno.test("killed: to the DLQ by default, under the retry policy with retry; clears the request", () => {
  const run = {
    now: T + 9,
    workerId: "w1",
    exit_code: null,
    error: "killed by SIGTERM via queuectl kill",
  };
  const held = job({ attempts: 1, max_retries: 3, kill_signal: "SIGTERM", kill_retry: 0 });
  const dead = killed(held, run, policy, false);
  assert.deepEqual([dead.to, dead.leaseOwner, dead.set.error], ["dead", "w1", run.error]);
  assert.deepEqual(
    [dead.run?.outcome, dead.run?.error],
    ["dead", run.error],
    "the run is recorded",
  );
  assert.deepEqual([dead.set.kill_signal, dead.set.kill_retry, dead.set.lease_owner], [
    null,
    null,
    null,
  ]);
  // The killed run is recorded (run history), like every end of a run.
  assert.deepEqual(
    [dead.run?.outcome, dead.run?.attempt, dead.run?.worker, dead.run?.error],
    ["dead", 1, "w1", run.error],
  );
  const retried = killed(held, run, policy, true);
  assert.deepEqual([retried.to, retried.set.run_at], ["failed", T + 9 + 2000]);
  assert.deepEqual([retried.run?.outcome, retried.run?.retry_delay_ms], ["failed", 2000]);
  assert.equal(retried.set.kill_signal, null);
  assert.equal(killed(job({ attempts: 4, max_retries: 3 }), run, policy, true).to, "dead");
  // Every other end of a run clears a kill request too.
  assert.equal(complete(held, { ...run, exit_code: 0 }).set.kill_signal, null);
  assert.equal(release(held, T, "w1").set.kill_signal, null);
  assert.equal(loseLease(held, T + 60_000, policy).set.kill_signal, null);
});

Deno.test("the claim rule: allowed moves, what a claim writes, claim order", () => {
  for (const from of CLAIM_RULE.from) assert.ok(isAllowed(from, CLAIM_RULE.to), from);
  assert.deepEqual(claimFields(job({ attempts: 2 }), T, "w9", 5_000), {
    attempts: 3,
    started_at: T,
    lease_owner: "w9",
    lease_expires_at: T + 5_000,
  });
  const jobs = [
    job({ id: "late", priority: 5, run_at: T + 2, created_at: T }),
    job({ id: "low", priority: -1, run_at: T, created_at: T }),
    job({ id: "young", priority: 5, run_at: T + 1, created_at: T + 1 }),
    job({ id: "high", priority: 9, run_at: T + 9, created_at: T + 9 }),
    job({ id: "old", priority: 5, run_at: T + 1, created_at: T }),
    job({ id: "tie", priority: 5, run_at: T + 1, created_at: T }),
  ];
  // Array.prototype.sort is stable: ties keep their (insertion) order.
  assert.deepEqual(
    [...jobs].sort(compareClaimOrder).map((j) => j.id),
    ["high", "old", "tie", "young", "late", "low"],
  );
});
