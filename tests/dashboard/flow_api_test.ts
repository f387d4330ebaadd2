/** Issue 16 in the dashboard's API: waiting jobs, dependencies of a job, queues with pause/resume. */
import assert from "node:assert/strict";
import { call, harness } from "./harness.ts";

Deno.test("dashboard API: waiting jobs say what blocks them; a job lists its graph", async () => {
  await using h = await harness();
  const enq = await call(h, "/api/jobs", {
    method: "POST",
    body: [
      { id: "a", command: "true" },
      { id: "b", command: "true", after: ["a"] },
    ],
  });
  assert.equal(enq.status, 201, JSON.stringify(enq.body));
  const list = await call(h, "/api/jobs");
  const byId = new Map(list.body.jobs.map((j: { id: string }) => [j.id, j]));
  assert.deepEqual((byId.get("b") as Record<string, unknown>).blocked_on, ["a"]);
  assert.equal((byId.get("a") as Record<string, unknown>).blocked_on, undefined);
  const b = await call(h, "/api/jobs/b");
  assert.deepEqual(b.body.after, ["a"]);
  assert.deepEqual(b.body.dependencies, [{ id: "a", state: "pending" }]);
  const a = await call(h, "/api/jobs/a");
  assert.deepEqual(a.body.dependents, [{ id: "b", state: "pending" }]);
  const stats = await call(h, "/api/stats");
  assert.equal(stats.body.waiting, 1);
  const bad = await call(h, "/api/jobs", {
    method: "POST",
    body: { id: "c", command: "true", after: ["nope"] },
  });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error, /"c" runs after "nope", which does not exist/);
  assert.equal(await h.store.getJob({ id: "c" }), null);
});

Deno.test("dashboard API: queues are listed, paused and resumed", async () => {
  await using h = await harness();
  await call(h, "/api/jobs", { method: "POST", body: { command: "true", queue: "gpu" } });
  const paused = await call(h, "/api/queues/gpu/pause", { method: "POST" });
  assert.equal(paused.status, 200);
  assert.deepEqual(paused.body, { name: "gpu", paused: true, limit: 0 });
  const queues = await call(h, "/api/queues");
  assert.deepEqual(
    queues.body.queues.map((q: Record<string, unknown>) => [q.name, q.paused, q.waiting]),
    [["gpu", true, 0]],
  );
  assert.equal(queues.body.queues[0].counts.pending, 1);
  const stats = await call(h, "/api/stats");
  assert.deepEqual(stats.body.queues, [{ name: "gpu", paused: true, limit: 0 }]);
  // A page of another origin cannot pause (the CSRF rules of every POST).
  const forged = await call(h, "/api/queues/gpu/resume", {
    method: "POST",
    headers: { origin: "http://evil.example", "sec-fetch-site": "cross-site" },
  });
  assert.equal(forged.status, 403);
  assert.deepEqual(await h.store.listQueueControls(), [
    { name: "gpu", paused: true, max_running: 0 },
  ]);
  const resumed = await call(h, "/api/queues/gpu/resume", { method: "POST" });
  assert.deepEqual(resumed.body, { name: "gpu", paused: false, limit: 0 });
  const unknown = await call(h, "/api/queues/nope/resume", { method: "POST" });
  assert.equal(unknown.status, 404);
  const badName = await call(h, "/api/queues/a%20b/pause", { method: "POST" });
  assert.equal(badName.status, 400);
  assert.deepEqual(await h.store.listQueueControls(), []);
});
