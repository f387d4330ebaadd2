/** The dashboard's schedules API (the schedules tab): list, pause/resume, run now, and defences. */
import assert from "node:assert/strict";
import { addSchedule } from "../../src/app/schedules.ts";
import { call, harness } from "./harness.ts";

Deno.test("GET /api/schedules lists schedules; pause, resume and run act on one", async () => {
  await using h = await harness();
  const app = { store: h.store, clock: h.clock };
  await addSchedule(app, {
    name: "nightly",
    cron: "0 4 * * *",
    tz: "Europe/Berlin",
    job: { command: "backup.sh", queue: "ops" },
  });
  await addSchedule(app, { name: "tick", every: "10m", catchUp: false, job: { command: "true" } });

  const list = await call(h, "/api/schedules");
  assert.equal(list.status, 200);
  assert.equal(list.body.now, "2026-01-01T12:00:00.000Z");
  assert.deepEqual(list.body.schedules.map((s: { name: string }) => s.name), ["nightly", "tick"]);
  const [nightly, tick] = list.body.schedules;
  assert.equal(nightly.next_run_at, "2026-01-02T03:00:00.000Z", "04:00 in Berlin (CET)");
  assert.equal(nightly.tz, "Europe/Berlin");
  assert.equal(nightly.job.queue, "ops");
  assert.equal(tick.every_seconds, 600);
  assert.equal(tick.catch_up, false);
  assert.equal(tick.next_run_at, "2026-01-01T12:10:00.000Z");

  const paused = await call(h, "/api/schedules/tick/pause", { method: "POST" });
  assert.equal(paused.status, 200);
  assert.equal(paused.body.paused, true);
  assert.equal(paused.body.next_run_at, null);
  h.clock.advance(25 * 60_000);
  const resumed = await call(h, "/api/schedules/tick/resume", { method: "POST" });
  assert.equal(resumed.body.paused, false);
  assert.equal(resumed.body.next_run_at, "2026-01-01T12:30:00.000Z", "from the next slot");

  const run = await call(h, "/api/schedules/nightly/run", { method: "POST" });
  assert.equal(run.status, 201);
  const job = await h.store.getJob({ id: run.body.id });
  assert.equal(job?.command, "backup.sh");
  assert.equal(job?.queue, "ops");
  const after = (await call(h, "/api/schedules")).body.schedules[0];
  assert.equal(after.last_job_id, run.body.id);
  assert.equal(after.last_job_state, "pending");
  assert.equal(after.next_run_at, nightly.next_run_at, "a run now leaves the slots alone");

  const missing = await call(h, "/api/schedules/nope/run", { method: "POST" });
  assert.equal(missing.status, 404);
  assert.match(missing.body.error, /No schedule named "nope"/);
  assert.equal((await call(h, "/api/schedules/tick/pause")).status, 405, "GET does not act");
});

Deno.test("schedule actions need the access token and the page's CSRF token", async () => {
  await using h = await harness();
  await addSchedule({ store: h.store, clock: h.clock }, {
    name: "s",
    every: "1h",
    job: { command: "true" },
  });
  const noToken = await call(h, "/api/schedules/s/run", { method: "POST", auth: "none" });
  assert.equal(noToken.status, 401);
  const noCsrf = await call(h, "/api/schedules/s/pause", {
    method: "POST",
    browser: false,
    headers: { origin: h.origin },
  });
  assert.equal(noCsrf.status, 403);
  const crossSite = await call(h, "/api/schedules/s/run", {
    method: "POST",
    headers: { origin: "http://evil.example" },
  });
  assert.equal(crossSite.status, 403);
  assert.equal((await call(h, "/api/schedules", { auth: "none" })).status, 401);
  assert.equal(await h.store.countJobs({}), 0, "nothing ran");
  assert.equal((await h.store.getSchedule({ name: "s" }))?.paused, false, "nothing paused");
});
