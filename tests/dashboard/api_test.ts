/**
 * The dashboard's JSON API, served in-process on a free port over a temp SQLite store: every
 * route, bad input, errors, and the cross-origin / CSRF / Host / token defences.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { InvalidInput, StorageError } from "../../src/core/errors.ts";
import { startDashboard } from "../../src/dashboard/server.ts";
import type { Store } from "../../src/store/store.ts";
import { call, harness } from "./harness.ts";
import { add, claim, completeJob, deadJob, failJob } from "./seed.ts";

const SECOND = 1000;

async function countJobs(store: Store): Promise<number> {
  return await store.countJobs({});
}

Deno.test("GET / serves the page with its CSRF token and security headers", async () => {
  await using h = await harness();
  const page = await call(h, "/");
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type")!, /^text\/html/);
  const meta = /<meta name="csrf-token" content="([^"]+)">/.exec(page.body);
  assert.equal(meta?.[1], h.dashboard.csrfToken);
  assert.ok(h.dashboard.csrfToken.length >= 40);
  const csp = page.headers.get("content-security-policy")!;
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(page.headers.get("x-frame-options"), "DENY");
  assert.equal(page.headers.get("x-content-type-options"), "nosniff");
  const js = await call(h, "/assets/app.js");
  assert.equal(js.status, 200);
  assert.match(js.headers.get("content-type")!, /^text\/javascript/);
  assert.match(js.body, /textContent/);
  const css = await call(h, "/assets/style.css");
  assert.match(css.headers.get("content-type")!, /^text\/css/);
  assert.equal((await call(h, "/favicon.svg")).status, 200);
  const missing = await call(h, "/nope");
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error, "Not found: /nope");
});

Deno.test("a second server has another CSRF token", async () => {
  await using a = await harness();
  await using b = await harness();
  assert.notEqual(a.dashboard.csrfToken, b.dashboard.csrfToken);
});

Deno.test("GET /api/stats: counts per state, oldest pending age, workers, throughput", async () => {
  await using h = await harness();
  const t0 = h.clock.now();
  const first = await add(h.store, h.clock, { command: "echo first" });
  h.clock.advance(60 * SECOND);
  const done = await add(h.store, h.clock, { command: "echo done" });
  await failJob(h.store, h.clock, first); // retry due at t0 + 62 s
  await completeJob(h.store, h.clock, done); // finished at t0 + 60 s
  h.clock.advance(25 * SECOND);
  await add(h.store, h.clock, { command: "echo new" }); // created at t0 + 85 s
  await h.store.registerWorker({
    worker: {
      id: "w1",
      pid: 1,
      host: "h",
      queues: null,
      started_at: h.clock.now(),
      heartbeat_at: h.clock.now(),
      current_job: null,
      stop_requested_at: null,
      supervisor_id: "s1",
    },
  });
  h.clock.advance(5 * SECOND);
  const res = await call(h, "/api/stats");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("cache-control"), "no-store");
  const s = res.body;
  assert.equal(s.now, new Date(t0 + 90 * SECOND).toISOString());
  assert.deepEqual(s.counts, { pending: 1, processing: 0, completed: 1, failed: 1, dead: 0 });
  assert.equal(s.total, 3);
  assert.equal(s.scheduled, 0);
  assert.equal(s.oldest_pending_at, new Date(t0 + 85 * SECOND).toISOString());
  assert.equal(s.oldest_pending_age_seconds, 5);
  assert.equal(s.workers_alive, 1);
  assert.equal(s.database, h.dbPath);
  // 60 buckets of 10 s, aligned, the last one holding "now".
  assert.equal(s.throughput.bucket_seconds, 10);
  assert.equal(s.throughput.since, new Date(t0 + 90 * SECOND - 590 * SECOND).toISOString());
  const expected = new Array(60).fill(0);
  expected[(60 + 500) / 10] = 1;
  assert.deepEqual(s.throughput.completed, expected);
  assert.equal(s.throughput.per_second, 1 / 60);
  assert.equal(s.throughput.rate_window_seconds, 60, "per_second is over the last minute");
  h.clock.advance(60 * SECOND);
  assert.equal((await call(h, "/api/stats")).body.throughput.per_second, 0);
});

Deno.test("GET /api/stats: the chart read every second equals a full count", async () => {
  // Buckets that ended a minute ago are counted once and kept (app/queue.ts throughput): every
  // read must still give what counting the whole window gives, late commits included.
  await using h = await harness();
  const full = async () => {
    const now = h.clock.now();
    const since = Math.floor(now / (10 * SECOND)) * 10 * SECOND - 590 * SECOND;
    const raw = await h.store.completedPerBucket({ since, bucketMs: 10 * SECOND });
    return Array.from({ length: 60 }, (_, i) => raw[i] ?? 0);
  };
  let total = 0;
  for (let step = 0; step < 240; step++) {
    h.clock.advance(step % 17 === 0 ? 13 * SECOND : SECOND);
    if (step % 3 === 0) {
      // Every ninth completion commits late: stamped 50 s back (within the settling minute).
      const late = step % 9 === 0 ? 50 * SECOND : 0;
      const id = await add(h.store, h.clock, { command: `echo ${step}` });
      h.clock.advance(-late);
      await completeJob(h.store, h.clock, id);
      h.clock.advance(late);
      total++;
    }
    const chart = (await call(h, "/api/stats")).body.throughput.completed;
    assert.deepEqual(chart, await full(), `step ${step}`);
  }
  assert.ok(total > 50 && (await full()).some((n) => n > 0), "the chart held completions");
});

Deno.test("GET /api/jobs: newest first, filters, search, pages with a total", async () => {
  await using h = await harness();
  const ids: string[] = [];
  for (let i = 0; i < 7; i++) {
    ids.push(
      await add(h.store, h.clock, {
        id: `job-${i}`,
        command: i % 2 ? `echo Odd ${i}` : `sleep ${i}`,
        queue: i < 3 ? "mail" : "default",
      }),
    );
    h.clock.advance(SECOND);
  }
  const all = await call(h, "/api/jobs");
  assert.equal(all.status, 200);
  assert.deepEqual(all.body.jobs.map((j: { id: string }) => j.id), [...ids].reverse());
  assert.equal(all.body.total, 7);
  assert.equal(all.body.limit, 50);
  assert.equal(all.body.next, null);
  assert.ok(!("offset" in all.body), "paging is by cursor only: no offset in the response");
  assert.equal(all.body.jobs[0].created_at, new Date(h.clock.now() - SECOND).toISOString());

  // Keyset pages: each page's `next` is the cursor of the one after it.
  const page1 = await call(h, "/api/jobs?limit=3");
  assert.deepEqual(page1.body.jobs.map((j: { id: string }) => j.id), ["job-6", "job-5", "job-4"]);
  assert.equal(page1.body.next, "job-4");
  const page2 = await call(h, `/api/jobs?limit=3&after=${page1.body.next}`);
  assert.deepEqual(page2.body.jobs.map((j: { id: string }) => j.id), ["job-3", "job-2", "job-1"]);
  assert.equal(page2.body.total, 7);
  assert.equal(page2.body.next, "job-1");
  const page3 = await call(h, `/api/jobs?limit=3&after=${page2.body.next}`);
  assert.deepEqual(page3.body.jobs.map((j: { id: string }) => j.id), ["job-0"]);
  assert.equal(page3.body.next, null);

  const mail = await call(h, "/api/jobs?queue=mail");
  assert.deepEqual(mail.body.jobs.map((j: { id: string }) => j.id), ["job-2", "job-1", "job-0"]);
  assert.equal(mail.body.total, 3);

  const odd = await call(h, "/api/jobs?search=odd&queue=default");
  assert.deepEqual(odd.body.jobs.map((j: { id: string }) => j.id), ["job-5", "job-3"]);
  const byId = await call(h, "/api/jobs?search=JOB-6");
  assert.deepEqual(byId.body.jobs.map((j: { id: string }) => j.id), ["job-6"]);

  await failJob(h.store, h.clock, "job-0");
  const failed = await call(h, "/api/jobs?state=failed&search=");
  assert.deepEqual(failed.body.jobs.map((j: { id: string }) => j.id), ["job-0"]);
  assert.equal(failed.body.jobs[0].state, "failed");
});

Deno.test("GET /api/jobs refuses bad filters with 400 and a message", async () => {
  await using h = await harness();
  const cases: [string, RegExp][] = [
    ["state=bogus", /Unknown state "bogus": expected one of pending, processing/],
    ["limit=0", /Invalid limit: expected a whole number from 1 to 10000, got 0/],
    ["limit=abc", /Invalid limit: expected a whole number, got "abc"/],
    ["limit=20000", /Invalid limit/],
    [
      "stat=dead",
      /Unknown query parameter "stat": allowed are state, queue, search, limit, after$/,
    ],
  ];
  for (const [query, message] of cases) {
    const res = await call(h, `/api/jobs?${query}`);
    assert.equal(res.status, 400, query);
    assert.match(res.body.error, message, query);
    assert.deepEqual(Object.keys(res.body).filter((k) => k !== "hint"), ["error"]);
  }
  const dlq = await call(h, "/api/dlq?state=pending");
  assert.equal(dlq.status, 400);
  assert.match(dlq.body.error, /Unknown query parameter "state"/);
});

Deno.test("GET /api/jobs and /api/dlq refuse offset with a 400 that names after", async () => {
  await using h = await harness();
  for (let i = 0; i < 3; i++) {
    await add(h.store, h.clock, { id: `job-${i}`, command: "true" });
    h.clock.advance(SECOND);
  }
  for (const path of ["/api/jobs", "/api/dlq"]) {
    for (const query of ["offset=5", "offset=0", "limit=2&offset=", "after=job-2&offset=1"]) {
      const res = await call(h, `${path}?${query}`);
      assert.equal(res.status, 400, `${path}?${query}`);
      assert.deepEqual(res.body, {
        error: "offset was removed: page with after=<the previous page's next, its last job id> " +
          "(keyset paging; a deep page costs what the first does)",
      });
    }
  }
  // The cursor it names works.
  const res = await call(h, "/api/jobs?after=job-2");
  assert.deepEqual(res.body.jobs.map((j: { id: string }) => j.id), ["job-1", "job-0"]);
});

Deno.test("GET /api/jobs/:id of a running job: its output so far (the page tails it)", async () => {
  await using h = await harness();
  const id = await add(h.store, h.clock, { id: "live", command: "make" });
  const job = await claim(h.store, h.clock, id);
  assert.ok(
    await h.store.appendRunOutput({
      jobId: id,
      attempt: job.attempts,
      worker: job.lease_owner!,
      host: "h",
      startedAt: job.started_at,
      stdout: "compiling 1/3\n",
      stderr: "",
      limit: 1000,
      now: h.clock.now(),
    }),
  );
  const res = await call(h, `/api/jobs/${id}`);
  assert.equal(res.status, 200);
  assert.equal(res.body.state, "processing");
  assert.equal(res.body.stdout, "compiling 1/3\n");
  assert.deepEqual(
    res.body.runs.map((r: Record<string, unknown>) => [r.outcome, r.stdout]),
    [["running", "compiling 1/3\n"]],
  );
});

Deno.test("GET /api/jobs/:id: job, output and runs; 404 and 400", async () => {
  await using h = await harness();
  const id = await add(h.store, h.clock, { id: "nightly/report", command: "make report" });
  await failJob(h.store, h.clock, id, {
    exit_code: 3,
    error: "exited with code 3",
    stdout: "half done\n",
    stderr: "disk full\n",
  });
  const res = await call(h, `/api/jobs/${encodeURIComponent(id)}`);
  assert.equal(res.status, 200);
  const job = res.body;
  assert.equal(job.id, "nightly/report");
  assert.equal(job.command, "make report");
  assert.equal(job.state, "failed");
  assert.equal(job.attempts, 1);
  assert.equal(job.exit_code, 3);
  assert.equal(job.error, "exited with code 3");
  assert.equal(job.stdout, "half done\n");
  assert.equal(job.stderr, "disk full\n");
  assert.equal(job.next_retry_at, job.run_at);
  assert.deepEqual(
    job.runs.map((
      r: Record<string, unknown>,
    ) => [r.attempt, r.outcome, r.stderr, r.retry_delay_ms]),
    [[1, "failed", "disk full\n", 2000]],
  );
  assert.equal(job.run_at, new Date(h.clock.now() + 2 * SECOND).toISOString());

  const missing = await call(h, "/api/jobs/no-such-job");
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error, 'No job with id "no-such-job"');
  const bad = await call(h, `/api/jobs/${encodeURIComponent("<bad id>")}`);
  assert.equal(bad.status, 400);
  assert.match(bad.body.error, /^Invalid job id "<bad id>"/);
  const malformed = await call(h, "/api/jobs/%E0%A4%A");
  assert.equal(malformed.status, 400);
});

Deno.test("POST /api/jobs enqueues with the CLI's validation; bad input changes nothing", async () => {
  await using h = await harness();
  const one = await call(h, "/api/jobs", {
    method: "POST",
    body: { command: "echo hi", queue: "mail", priority: 5, max_retries: 1, id: "hello" },
  });
  assert.equal(one.status, 201);
  assert.deepEqual(one.body, { ids: ["hello"] });
  const stored = await h.store.getJob({ id: "hello" });
  assert.equal(stored?.queue, "mail");
  assert.equal(stored?.priority, 5);
  assert.equal(stored?.max_retries, 1);
  assert.equal(stored?.state, "pending");

  const two = await call(h, "/api/jobs", {
    method: "POST",
    body: [{ command: "echo a" }, { command: "echo b", delay: "5m" }],
  });
  assert.equal(two.status, 201);
  assert.equal(two.body.ids.length, 2);
  const delayed = await h.store.getJob({ id: two.body.ids[1] });
  assert.equal(delayed?.run_at, h.clock.now() + 5 * 60 * SECOND);

  const before = await countJobs(h.store);
  const bad: [unknown, number, RegExp][] = [
    [{ queue: "x" }, 400, /^Missing "command"/],
    [{ command: "x", colour: "red" }, 400, /^Unknown job field "colour"/],
    [{ command: "x", priority: "high" }, 400, /^Invalid priority/],
    [{ command: "x", delay: "soon" }, 400, /^Cannot read delay/],
    [[{ command: "ok" }, { command: "" }], 400, /^job 2: Invalid command/],
    [[], 400, /^No jobs to enqueue/],
    ["echo hi", 400, /^A job must be a JSON object/],
    [{ command: "again", id: "hello" }, 409, /^A job with id "hello" already exists/],
    [[{ command: "a", id: "x1" }, { command: "b", id: "x1" }], 409, /appears twice/],
  ];
  for (const [body, status, message] of bad) {
    const res = await call(h, "/api/jobs", { method: "POST", body });
    assert.equal(res.status, status, JSON.stringify(body));
    assert.match(res.body.error, message);
  }
  const notJson = await call(h, "/api/jobs", {
    method: "POST",
    raw: "{command:",
    headers: { "content-type": "application/json" },
  });
  assert.equal(notJson.status, 400);
  assert.match(notJson.body.error, /^Invalid JSON/);
  const form = await call(h, "/api/jobs", {
    method: "POST",
    raw: "command=echo+hi",
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  assert.equal(form.status, 415);
  const huge = await call(h, "/api/jobs", {
    method: "POST",
    body: { command: "x".repeat(1024 * 1024 + 10) },
  });
  assert.equal(huge.status, 413);
  assert.equal(await countJobs(h.store), before);
});

Deno.test("POST retry, cancel, move-to-dlq act through the app layer; 409 and 404", async () => {
  await using h = await harness();
  const id = await add(h.store, h.clock, { command: "false" });
  await failJob(h.store, h.clock, id);

  const moved = await call(h, `/api/jobs/${id}/move-to-dlq`, { method: "POST" });
  assert.equal(moved.status, 200);
  assert.equal(moved.body.state, "dead");
  assert.equal((await h.store.getJob({ id }))?.state, "dead");

  const again = await call(h, `/api/jobs/${id}/move-to-dlq`, { method: "POST" });
  assert.equal(again.status, 409);
  assert.match(again.body.error, /Cannot move job .* to the DLQ: it is dead/);
  assert.equal(again.body.hint, "only failed jobs waiting for a retry can be moved");

  const retried = await call(h, `/api/jobs/${id}/retry`, { method: "POST" });
  assert.equal(retried.status, 200);
  assert.equal(retried.body.state, "pending");
  assert.equal(retried.body.attempts, 0);

  const retryPending = await call(h, `/api/jobs/${id}/retry`, { method: "POST" });
  assert.equal(retryPending.status, 409);
  assert.match(retryPending.body.error, /Cannot retry job .*: it is pending/);

  const cancelled = await call(h, `/api/jobs/${id}/cancel`, { method: "POST" });
  assert.equal(cancelled.status, 200);
  assert.deepEqual(cancelled.body, { id, removed: true, state: "pending" });
  assert.equal(await h.store.getJob({ id }), null);

  const gone = await call(h, `/api/jobs/${id}/cancel`, { method: "POST" });
  assert.equal(gone.status, 404);

  const running = await add(h.store, h.clock, { command: "sleep 60" });
  await claim(h.store, h.clock, running);
  const busy = await call(h, `/api/jobs/${running}/cancel`, { method: "POST" });
  assert.equal(busy.status, 409);
  assert.match(busy.body.error, /Cannot cancel job .*: it is processing/);
  assert.match(busy.body.hint, /use `queuectl kill /);
  assert.equal((await h.store.getJob({ id: running }))?.state, "processing");
});

Deno.test("POST kill records a kill request on a running job; 409 otherwise, 400 on a bad body", async () => {
  await using h = await harness();
  const running = await add(h.store, h.clock, { command: "sleep 60" });
  await claim(h.store, h.clock, running);
  const bad = await call(h, `/api/jobs/${running}/kill`, {
    method: "POST",
    body: { signal: "NOPE" },
  });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error, /Invalid signal "NOPE"/);
  const badRetry = await call(h, `/api/jobs/${running}/kill`, {
    method: "POST",
    body: { retry: "yes" },
  });
  assert.equal(badRetry.status, 400);
  assert.equal((await h.store.getJob({ id: running }))?.kill_signal, null, "nothing changed");

  const killed = await call(h, `/api/jobs/${running}/kill`, { method: "POST" });
  assert.equal(killed.status, 202);
  assert.deepEqual(killed.body, { id: running, signal: "SIGTERM", retry: false });
  const job = (await h.store.getJob({ id: running }))!;
  assert.deepEqual([job.state, job.kill_signal, job.kill_retry], ["processing", "SIGTERM", 0]);
  const withBody = await call(h, `/api/jobs/${running}/kill`, {
    method: "POST",
    body: { signal: "INT", retry: true },
  });
  assert.deepEqual(withBody.body, { id: running, signal: "SIGINT", retry: true });

  const waiting = await add(h.store, h.clock, { command: "true" });
  const notRunning = await call(h, `/api/jobs/${waiting}/kill`, { method: "POST" });
  assert.equal(notRunning.status, 409);
  assert.match(notRunning.body.error, /Cannot kill job .*: it is pending, not running/);
  assert.match(notRunning.body.hint, /queuectl cancel/);

  // retry runs a completed job again.
  const done = await add(h.store, h.clock, { command: "true" });
  await completeJob(h.store, h.clock, done);
  const again = await call(h, `/api/jobs/${done}/retry`, { method: "POST" });
  assert.equal(again.status, 200);
  assert.deepEqual([again.body.state, again.body.attempts], ["pending", 0]);
});

Deno.test("DLQ: list, restore one, restore all, purge", async () => {
  await using h = await harness();
  const dead: string[] = [];
  for (let i = 0; i < 4; i++) {
    dead.push(await deadJob(h.store, h.clock, { command: `exit ${i + 1}` }, { exit_code: i + 1 }));
    h.clock.advance(SECOND);
  }
  await add(h.store, h.clock, { command: "echo alive" });

  const list = await call(h, "/api/dlq?limit=2");
  assert.equal(list.status, 200);
  assert.equal(list.body.total, 4);
  assert.deepEqual(list.body.jobs.map((j: { id: string }) => j.id), [dead[3], dead[2]]);
  const search = await call(h, "/api/dlq?search=exit%202");
  assert.deepEqual(search.body.jobs.map((j: { id: string }) => j.id), [dead[1]]);

  const restored = await call(h, `/api/dlq/${dead[0]}/restore`, { method: "POST" });
  assert.equal(restored.status, 200);
  assert.equal(restored.body.state, "pending");
  assert.equal(restored.body.attempts, 0);
  const notDead = await call(h, `/api/dlq/${dead[0]}/restore`, { method: "POST" });
  assert.equal(notDead.status, 409);
  assert.match(notDead.body.error, /Cannot restore job .*: it is pending/);
  assert.equal((await call(h, "/api/dlq/nope/restore", { method: "POST" })).status, 404);

  const purged = await call(h, "/api/dlq/purge", { method: "POST" });
  assert.equal(purged.status, 200);
  assert.deepEqual([...purged.body.purged].sort(), [dead[1], dead[2], dead[3]].sort());
  assert.equal((await call(h, "/api/dlq")).body.total, 0);
  assert.equal(await countJobs(h.store), 2, "the restored and the pending job are kept");

  await deadJob(h.store, h.clock, { command: "exit 1", id: "d1", queue: "other" });
  await deadJob(h.store, h.clock, { command: "exit 1", id: "d2", queue: "other" });
  const all = await call(h, "/api/dlq/restore-all", { method: "POST" });
  assert.equal(all.status, 200);
  assert.deepEqual([...all.body.restored].sort(), ["d1", "d2"]);
  assert.equal((await h.store.getJob({ id: "d2" }))?.state, "pending");
  assert.equal((await h.store.getJob({ id: dead[0] }))?.state, "pending");
});

Deno.test("GET /api/dlq gives the tail of each job's stderr, cut to 200 characters", async () => {
  await using h = await harness();
  const long = "progress\n".repeat(100) + "Traceback (most recent call last):\nKeyError: 'id'\n";
  const cases: [string, string][] = [
    ["long", long],
    ["short", "\x1b[31mboom\x1b[0m\n"],
    ["silent", ""],
  ];
  for (const [id, stderr] of cases) {
    await deadJob(h.store, h.clock, { id, command: "exit 1" }, { exit_code: 1, stderr });
    h.clock.advance(SECOND);
  }
  const res = await call(h, "/api/dlq");
  assert.equal(res.status, 200);
  assert.equal(res.body.stderr_tail_chars, 200);
  const tails = Object.fromEntries(
    res.body.jobs.map((j: { id: string; stderr_tail: string }) => [j.id, j.stderr_tail]),
  );
  assert.deepEqual(tails, {
    long: long.slice(-200),
    short: "\x1b[31mboom\x1b[0m\n",
    silent: "",
  });
  assert.equal(res.body.jobs[0].stdout, undefined, "no whole outputs in a list");
  // Only the page's jobs are asked for.
  const page = await call(h, "/api/dlq?limit=1");
  assert.deepEqual(page.body.jobs.map((j: { id: string }) => j.id), ["silent"]);
});

Deno.test("GET /api/workers lists workers and supervisors with liveness", async () => {
  await using h = await harness();
  const now = h.clock.now();
  const base = { pid: 10, host: "box", started_at: now - 60 * SECOND, stop_requested_at: null };
  await h.store.registerWorker({
    worker: {
      ...base,
      id: "sup",
      queues: null,
      heartbeat_at: now,
      current_job: null,
      supervisor_id: null,
    },
  });
  await h.store.registerWorker({
    worker: {
      ...base,
      id: "w-live",
      queues: ["mail"],
      heartbeat_at: now - 5 * SECOND,
      current_job: "job-1",
      supervisor_id: "sup",
    },
  });
  await h.store.registerWorker({
    worker: {
      ...base,
      id: "w-stale",
      queues: null,
      heartbeat_at: now - 120 * SECOND,
      current_job: null,
      supervisor_id: "sup",
    },
  });
  const res = await call(h, "/api/workers");
  assert.equal(res.status, 200);
  const byId = Object.fromEntries(
    res.body.workers.map((w: { id: string }) => [w.id, w]),
  );
  assert.equal(byId.sup.role, "supervisor");
  assert.equal(byId["w-live"].role, "worker");
  assert.equal(byId["w-live"].alive, true);
  assert.equal(byId["w-stale"].alive, false);
  assert.deepEqual(byId["w-live"].queues, ["mail"]);
  assert.equal(byId["w-live"].current_job, "job-1");
  assert.equal(byId["w-live"].heartbeat_at, new Date(now - 5 * SECOND).toISOString());
  assert.equal(byId["w-live"].host, "box");
  assert.equal((await call(h, "/api/stats")).body.workers_alive, 1);
});

/** Reads server-sent events from a response body until `predicate` accepts one. */
async function readEvents(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  predicate: (event: string, data: unknown) => boolean,
): Promise<{ event: string; data: unknown }> {
  const decoder = new TextDecoder();
  let buffer = "";
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) throw new Error("event stream ended");
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data && predicate(event, JSON.parse(data))) {
        return { event, data: JSON.parse(data) };
      }
    }
  }
  throw new Error("no matching event before the deadline");
}

Deno.test("GET /api/events streams stats at once and pushes changes", async () => {
  await using h = await harness({ pushIntervalMs: 30 });
  const res = await fetch(new URL("/api/events", h.dashboard.url), {
    headers: { cookie: h.cookie },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
  const reader = res.body!.getReader();
  try {
    const first = await readEvents(reader, (e) => e === "stats");
    assert.equal((first.data as { counts: { pending: number } }).counts.pending, 0);
    await add(h.store, h.clock, { command: "echo live" });
    const next = await readEvents(
      reader,
      (e, d) => e === "stats" && (d as { counts: { pending: number } }).counts.pending === 1,
    );
    assert.equal((next.data as { total: number }).total, 1);
  } finally {
    await reader.cancel();
  }
  const post = await call(h, "/api/events", { method: "POST" });
  assert.equal(post.status, 405);
});

Deno.test("shutdown ends open event streams", async () => {
  const h = await harness({ pushIntervalMs: 30 });
  const res = await fetch(new URL("/api/events", h.dashboard.url), {
    headers: { cookie: h.cookie },
  });
  const reader = res.body!.getReader();
  await readEvents(reader, (e) => e === "stats");
  await h[Symbol.asyncDispose]();
  for (;;) {
    const { done } = await reader.read();
    if (done) break;
  }
});

Deno.test("state-changing requests are refused cross-origin with 403 and change nothing", async () => {
  await using h = await harness();
  const id = await deadJob(h.store, h.clock, { command: "exit 1" });
  const csrf = h.dashboard.csrfToken;
  const refusals: [Record<string, string>, RegExp][] = [
    [{ origin: "http://evil.example", "x-csrf-token": csrf }, /Origin: http:\/\/evil\.example/],
    [{ origin: "null", "x-csrf-token": csrf }, /Origin: null/],
    [{ origin: "http://127.0.0.1:1", "x-csrf-token": csrf }, /cross-origin request refused/],
    [{ "sec-fetch-site": "cross-site", "x-csrf-token": csrf }, /Sec-Fetch-Site: cross-site/],
    [{ "sec-fetch-site": "same-site", "x-csrf-token": csrf }, /Sec-Fetch-Site: same-site/],
    [{ origin: h.origin, "sec-fetch-site": "same-origin" }, /Missing or wrong X-CSRF-Token/],
    [{ origin: h.origin, "x-csrf-token": "guess" }, /Missing or wrong X-CSRF-Token/],
    [{}, /Missing or wrong X-CSRF-Token/],
  ];
  for (const path of ["/api/dlq/purge", `/api/dlq/${id}/restore`, "/api/dlq/restore-all"]) {
    for (const [headers, message] of refusals) {
      const res = await call(h, path, { method: "POST", browser: false, headers });
      assert.equal(res.status, 403, `${path} ${JSON.stringify(headers)}`);
      assert.match(res.body.error, message);
    }
  }
  const enqueue = await call(h, "/api/jobs", {
    method: "POST",
    browser: false,
    raw: "command=rm+-rf",
    headers: { origin: "http://evil.example", "content-type": "text/plain" },
  });
  assert.equal(enqueue.status, 403);
  assert.equal((await h.store.getJob({ id }))?.state, "dead");
  assert.equal(await countJobs(h.store), 1);
  const read = await call(h, "/api/jobs", {
    browser: false,
    headers: { "sec-fetch-site": "cross-site" },
  });
  assert.equal(read.status, 403);
  // A program (no Origin, no Sec-Fetch-Site) with the CSRF token may act.
  const ok = await call(h, "/api/dlq/purge", {
    method: "POST",
    browser: false,
    headers: { "x-csrf-token": csrf },
  });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.body.purged, [id]);
});

Deno.test("wrong methods get 405 with Allow; unknown API routes 404", async () => {
  await using h = await harness();
  await deadJob(h.store, h.clock, { command: "exit 1" });
  const get = await call(h, "/api/dlq/purge");
  assert.equal(get.status, 405);
  assert.equal(get.headers.get("allow"), "POST");
  assert.equal((await call(h, "/api/dlq")).body.total, 1);
  const post = await call(h, "/api/stats", { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET");
  const del = await call(h, "/api/jobs/x", { method: "DELETE" });
  assert.equal(del.status, 405);
  const page = await call(h, "/", { method: "POST" });
  assert.equal(page.status, 405);
  const unknown = await call(h, "/api/nothing/here");
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.error, "No such API route: /api/nothing/here");
});

/** Sends one raw HTTP/1.1 request (fetch will not let us choose the Host header). */
async function rawGet(
  port: number,
  path: string,
  host: string,
  headers: Record<string, string> = {},
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    const request = `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(request));
    return await new Response(conn.readable).text();
  } catch (err) {
    conn.close();
    throw err;
  }
}

Deno.test("on a loopback bind a foreign Host header is refused (DNS rebinding), token or not", async () => {
  await using h = await harness();
  const port = h.dashboard.port;
  const cookie = { cookie: h.cookie };
  const evil = await rawGet(port, "/api/stats", `rebind.evil.example:${port}`, cookie);
  assert.match(evil, /^HTTP\/1\.1 403/);
  assert.match(evil, /Unexpected Host header/);
  assert.match(await rawGet(port, "/", `evil.example:${port}`, cookie), /^HTTP\/1\.1 403/);
  const bearer = { authorization: `Bearer ${h.token}` };
  assert.match(await rawGet(port, "/api/stats", `evil.example:${port}`, bearer), /^HTTP\/1\.1 403/);
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) {
    assert.match(await rawGet(port, "/api/stats", host, cookie), /^HTTP\/1\.1 200/, host);
  }
});

const TOKEN_REFUSAL = /^401 Unauthorized: this queuectl dashboard needs its access token\./;

Deno.test("every path needs the access token: page, assets, API, events; 401 changes nothing", async () => {
  await using h = await harness();
  const dead = await deadJob(h.store, h.clock, { command: "exit 1" });
  const csrf = h.dashboard.csrfToken;
  const pages = [
    "/",
    "/index.html",
    "/assets/app.js",
    "/assets/style.css",
    "/favicon.svg",
    "/nope",
  ];
  for (const path of pages) {
    const res = await call(h, path, { auth: "none" });
    assert.equal(res.status, 401, path);
    assert.match(res.headers.get("content-type")!, /^text\/plain/, path);
    assert.match(res.body, TOKEN_REFUSAL, path);
    assert.match(res.body, /queuectl dashboard --print-url --port \d+\n/, path);
    assert.ok(!res.body.includes(csrf), "no CSRF token without the access token");
    assert.ok(!res.body.includes(h.token) && !res.body.includes(h.dbPath), path);
    assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="queuectl"');
  }
  const wrongs: [string, Record<string, string>][] = [
    ["none", {}],
    ["wrong bearer", { authorization: "Bearer wrong-token-0123456789" }],
    ["bearer with a prefix of the token", { authorization: `Bearer ${h.token.slice(0, -1)}` }],
    ["token as Basic", { authorization: `Basic ${btoa(`x:${h.token}`)}` }],
    ["wrong cookie", { cookie: `queuectl_token_${h.dashboard.port}=wrong-token-0123456789` }],
    ["the cookie of another port", { cookie: `queuectl_token_1=${h.token}` }],
  ];
  const apiCalls: [string, string][] = [
    ["GET", "/api/stats"],
    ["GET", "/api/jobs"],
    ["GET", `/api/jobs/${dead}`],
    ["GET", "/api/dlq"],
    ["GET", "/api/workers"],
    ["GET", "/api/events"],
    ["POST", "/api/jobs"],
    ["POST", "/api/dlq/purge"],
    ["POST", `/api/dlq/${dead}/restore`],
    ["POST", `/api/jobs/${dead}/retry`],
  ];
  for (const [what, headers] of wrongs) {
    for (const [method, path] of apiCalls) {
      // Everything else a page would send, the CSRF token included.
      const res = await call(h, path, {
        method,
        auth: "none",
        headers,
        ...(method === "POST" && path === "/api/jobs" ? { body: { command: "id > /tmp/x" } } : {}),
      });
      assert.equal(res.status, 401, `${what}: ${method} ${path}`);
      assert.equal(res.body.error, "Missing or wrong access token");
    }
    assert.equal((await call(h, "/", { auth: "none", headers })).status, 401, what);
  }
  // ?token= logs a page in; it is no credential for the API (programs send the header).
  assert.equal((await call(h, `/api/stats?token=${h.token}`, { auth: "none" })).status, 401);
  const post = await call(h, `/api/dlq/purge?token=${h.token}`, { method: "POST", auth: "none" });
  assert.equal(post.status, 401);
  const postPage = await call(h, `/?token=${h.token}`, { method: "POST", auth: "none" });
  assert.equal(postPage.status, 401);
  assert.equal(postPage.headers.get("set-cookie"), null);
  assert.equal(await countJobs(h.store), 1, "no job was created");
  assert.equal((await h.store.getJob({ id: dead }))?.state, "dead", "nothing changed");
  // The same calls pass with the token: the refusals above are about the token only.
  assert.equal((await call(h, "/api/stats", { auth: "bearer", browser: false })).status, 200);
  assert.equal((await call(h, "/api/stats")).status, 200);
  assert.equal((await call(h, "/assets/app.js")).status, 200);
});

Deno.test("the login URL sets an HttpOnly SameSite=Strict cookie and moves on without the token", async () => {
  await using h = await harness();
  const login = await call(h, `/?token=${encodeURIComponent(h.token)}`, { auth: "none" });
  assert.equal(login.status, 200);
  assert.equal(login.headers.get("cache-control"), "no-store");
  assert.equal(login.headers.get("referrer-policy"), "no-referrer");
  const cookie = login.headers.get("set-cookie")!;
  assert.equal(
    cookie,
    `queuectl_token_${h.dashboard.port}=${h.token}; Path=/; HttpOnly; SameSite=Strict`,
  );
  // Relative, so that a proxy's path prefix stays (README, "Behind a proxy").
  assert.match(login.body, /<meta http-equiv="refresh" content="0; url=\.\/">/);
  assert.ok(!login.body.includes(h.token), "the page does not carry the token on");
  // The cookie alone now opens the page and the API.
  const pair = cookie.split(";")[0];
  const page = await call(h, "/", { auth: "none", headers: { cookie: pair } });
  assert.equal(page.status, 200);
  assert.match(page.body, /<meta name="csrf-token"/);
  const stats = await call(h, "/api/stats", { auth: "none", headers: { cookie: pair } });
  assert.equal(stats.status, 200);
  // Other pages and query parameters are kept; only the token leaves the URL.
  const deep = await call(h, `/index.html?a=1&token=${h.token}&b=%3C`, { auth: "none" });
  assert.match(deep.body, /url=\.\/index\.html\?a=1&amp;b=%3C"/);
  const head = await fetch(new URL(`/?token=${h.token}`, h.dashboard.url), { method: "HEAD" });
  await head.body?.cancel();
  assert.equal(head.status, 200);
  assert.match(head.headers.get("set-cookie")!, /HttpOnly/);
  // A wrong token sets nothing.
  for (const wrong of ["wrong-token-0123456789", "", h.token + "x"]) {
    const res = await call(h, `/?token=${encodeURIComponent(wrong)}`, { auth: "none" });
    assert.equal(res.status, 401, wrong);
    assert.equal(res.headers.get("set-cookie"), null);
    assert.match(res.body, TOKEN_REFUSAL);
  }
  assert.equal(h.dashboard.loginUrl, `${h.dashboard.url}?token=${h.token}`);
});

Deno.test("the cookie is not enough to change state: CSRF and origin checks still apply", async () => {
  await using h = await harness();
  await deadJob(h.store, h.clock, { command: "exit 1" });
  const noCsrf = await call(h, "/api/dlq/purge", {
    method: "POST",
    browser: false,
    headers: { origin: h.origin },
  });
  assert.equal(noCsrf.status, 403);
  assert.equal((await call(h, "/api/dlq")).body.total, 1);
  const crossSite = await call(h, "/api/dlq/purge", {
    method: "POST",
    browser: false,
    auth: "bearer",
    headers: { origin: "http://evil.example" },
  });
  assert.equal(crossSite.status, 403);
  // A program sending the token in a header needs no CSRF token.
  const program = await call(h, "/api/dlq/purge", {
    method: "POST",
    browser: false,
    auth: "bearer",
  });
  assert.equal(program.status, 200);
  assert.equal(program.body.purged.length, 1);
});

Deno.test("bad token, port and busy port refused; beyond loopback the Host is not restricted", async () => {
  await using h = await harness();
  assert.throws(
    () => startDashboard({ store: h.store, hostname: "127.0.0.1", port: 0, token: "short" }),
    (err: unknown) => err instanceof InvalidInput && /Invalid dashboard token/.test(err.message),
  );
  assert.throws(
    () => startDashboard({ store: h.store, port: 0, token: "" }),
    /Invalid dashboard token/,
  );
  assert.throws(
    () => startDashboard({ store: h.store, port: 70000, token: h.token }),
    /Invalid port: expected a whole number from 0 to 65535, got 70000/,
  );
  assert.throws(
    () => startDashboard({ store: h.store, port: h.dashboard.port, token: h.token }),
    /Port \d+ on 127\.0\.0\.1 is already in use/,
  );
  const token = "another-token-0123456789";
  const open = startDashboard({ store: h.store, hostname: "0.0.0.0", port: 0, token });
  try {
    assert.equal(open.url, `http://localhost:${open.port}/`);
    const res = await fetch(`http://127.0.0.1:${open.port}/api/stats`);
    await res.body?.cancel();
    assert.equal(res.status, 401);
    // Reached by a name (behind a proxy or DNS): the token is the proof, not the Host.
    const bearer = { authorization: `Bearer ${token}` };
    assert.match(
      await rawGet(open.port, "/api/stats", `queue.example:${open.port}`, bearer),
      /^HTTP\/1\.1 200/,
    );
    assert.match(
      await rawGet(open.port, "/api/stats", `queue.example:${open.port}`),
      /^HTTP\/1\.1 401/,
    );
  } finally {
    await open.shutdown();
  }
});

Deno.test("errors: storage problems are 503, bugs are 500 without a stack trace", async () => {
  await using base = await harness();
  let failure: Error = new StorageError("The database /x stayed locked: busy", {
    hint: "try again",
  });
  const broken = new Proxy(base.store, {
    get(target, prop) {
      if (prop === "stats" || prop === "getJob") return () => Promise.reject(failure);
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  await using h = await harness({ store: broken });
  const busy = await call(h, "/api/stats");
  assert.equal(busy.status, 503);
  assert.deepEqual(busy.body, {
    error: "The database /x stayed locked: busy",
    hint: "try again",
  });
  failure = new TypeError("cannot read 'x' of undefined at /secret/path.ts:12");
  const bug = await call(h, "/api/jobs/some-id");
  assert.equal(bug.status, 500);
  assert.deepEqual(bug.body, { error: "internal error (see the dashboard's log)" });
  assert.ok(h.logs.some((l) => l.includes("/secret/path.ts")), "the bug is logged");
});

Deno.test("keeps serving reads while another connection holds the write lock (WAL)", async () => {
  await using h = await harness();
  await add(h.store, h.clock, { command: "echo before" });
  const writer = new DatabaseSync(h.dbPath);
  try {
    writer.exec("BEGIN IMMEDIATE");
    writer.exec(
      "UPDATE jobs SET command = 'echo changed' WHERE command = 'echo before'",
    );
    const started = Date.now();
    const stats = await call(h, "/api/stats");
    const jobs = await call(h, "/api/jobs");
    assert.equal(stats.status, 200);
    assert.equal(stats.body.counts.pending, 1);
    assert.equal(jobs.body.jobs[0].command, "echo before");
    assert.ok(Date.now() - started < 5000, "reads did not wait for the writer");
    writer.exec("COMMIT");
    assert.equal((await call(h, "/api/jobs")).body.jobs[0].command, "echo changed");
  } finally {
    if (writer.isTransaction) writer.exec("ROLLBACK");
    writer.close();
  }
});
