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
  h.clock.advance(60 * SECOND);
  assert.equal((await call(h, "/api/stats")).body.throughput.per_second, 0);
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
  assert.equal(all.body.offset, 0);
  assert.equal(all.body.jobs[0].created_at, new Date(h.clock.now() - SECOND).toISOString());

  const page2 = await call(h, "/api/jobs?limit=3&offset=3");
  assert.deepEqual(page2.body.jobs.map((j: { id: string }) => j.id), ["job-3", "job-2", "job-1"]);
  assert.equal(page2.body.total, 7);

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
    ["offset=-1", /Invalid offset: expected a whole number, got "-1"/],
    ["stat=dead", /Unknown query parameter "stat": allowed are state, queue, search, limit/],
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

Deno.test("GET /api/jobs/:id: job, output and retry schedule; 404 and 400", async () => {
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
  assert.deepEqual(job.retry_delays, [2, 4, 8]);
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
  assert.equal((await h.store.getJob({ id: running }))?.state, "processing");
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
  const res = await fetch(new URL("/api/events", h.dashboard.url));
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
  const res = await fetch(new URL("/api/events", h.dashboard.url));
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
async function rawGet(port: number, path: string, host: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const request = `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(request));
    return await new Response(conn.readable).text();
  } catch (err) {
    conn.close();
    throw err;
  }
}

Deno.test("a foreign Host header is refused (DNS rebinding) unless a token is set", async () => {
  await using h = await harness();
  const port = h.dashboard.port;
  const evil = await rawGet(port, "/api/stats", `rebind.evil.example:${port}`);
  assert.match(evil, /^HTTP\/1\.1 403/);
  assert.match(evil, /Unexpected Host header/);
  assert.match(await rawGet(port, "/", `evil.example:${port}`), /^HTTP\/1\.1 403/);
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) {
    assert.match(await rawGet(port, "/api/stats", host), /^HTTP\/1\.1 200/, host);
  }
});

Deno.test("with a token every request needs it: header, cookie from ?token=, or 401", async () => {
  const token = "s3cret-token-0123456789";
  await using h = await harness({ token });
  await deadJob(h.store, h.clock, { command: "exit 1" });
  const bare = await call(h, "/api/stats");
  assert.equal(bare.status, 401);
  assert.equal(bare.body.error, "Missing or wrong access token");
  assert.equal((await call(h, "/")).status, 401);
  assert.equal((await call(h, "/assets/app.js")).status, 401);
  const wrong = await call(h, "/api/stats", { headers: { authorization: "Bearer nope" } });
  assert.equal(wrong.status, 401);

  const bearer = { authorization: `Bearer ${token}` };
  assert.equal((await call(h, "/api/stats", { headers: bearer })).status, 200);
  assert.equal((await call(h, `/api/stats?token=${token}`)).status, 200);

  const login = await call(h, `/?token=${token}#dlq`);
  assert.equal(login.status, 303);
  assert.equal(login.headers.get("location"), "/");
  const cookie = login.headers.get("set-cookie")!;
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  const pair = cookie.split(";")[0];
  assert.equal(pair, `queuectl_token_${h.dashboard.port}=${token}`);
  assert.equal((await call(h, "/", { headers: { cookie: pair } })).status, 200);

  // The cookie rides along automatically, so it is not enough to change state.
  const noCsrf = await call(h, "/api/dlq/purge", {
    method: "POST",
    browser: false,
    headers: { cookie: pair, origin: h.origin },
  });
  assert.equal(noCsrf.status, 403);
  assert.equal((await call(h, "/api/dlq", { headers: bearer })).body.total, 1);
  const crossSite = await call(h, "/api/dlq/purge", {
    method: "POST",
    browser: false,
    headers: { ...bearer, origin: "http://evil.example" },
  });
  assert.equal(crossSite.status, 403);
  // A program sending the token in a header needs no CSRF token.
  const program = await call(h, "/api/dlq/purge", {
    method: "POST",
    browser: false,
    headers: bearer,
  });
  assert.equal(program.status, 200);
  assert.equal(program.body.purged.length, 1);
  // A POST never authenticates with ?token= alone.
  const query = await call(h, `/api/dlq/restore-all?token=${token}`, { method: "POST" });
  assert.equal(query.status, 401);
  // With a token, the Host header is not restricted (the server may sit behind a name).
  const port = h.dashboard.port;
  assert.match(
    await rawGet(port, `/api/stats?token=${token}`, `queue.example:${port}`),
    /^HTTP\/1\.1 200/,
  );
});

Deno.test("binding beyond loopback needs a token; bad token, port and busy port refused", async () => {
  await using h = await harness();
  assert.throws(
    () => startDashboard({ store: h.store, hostname: "0.0.0.0", port: 0 }),
    (err: unknown) =>
      err instanceof InvalidInput &&
      /Refusing to serve the dashboard on 0\.0\.0\.0 without an access token/.test(err.message),
  );
  assert.throws(
    () => startDashboard({ store: h.store, hostname: "127.0.0.1", port: 0, token: "short" }),
    /Invalid dashboard token/,
  );
  assert.throws(
    () => startDashboard({ store: h.store, port: 70000 }),
    /Invalid port: expected a whole number from 0 to 65535, got 70000/,
  );
  assert.throws(
    () => startDashboard({ store: h.store, port: h.dashboard.port }),
    /Port \d+ on 127\.0\.0\.1 is already in use/,
  );
  const open = startDashboard({
    store: h.store,
    hostname: "0.0.0.0",
    port: 0,
    token: "another-token-0123456789",
  });
  try {
    assert.equal(open.url, `http://localhost:${open.port}/`);
    const res = await fetch(`http://127.0.0.1:${open.port}/api/stats`);
    await res.body?.cancel();
    assert.equal(res.status, 401);
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
