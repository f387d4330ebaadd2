/** GET /metrics: the Prometheus text, behind the dashboard's access token (issue 17.4). */
import assert from "node:assert/strict";
import { complete, fail } from "../../src/core/transitions.ts";
import { harness } from "./harness.ts";

Deno.test("GET /metrics: jobs per queue and state, oldest due age, run totals, histogram, workers; token required", async () => {
  await using h = await harness();
  const now = h.clock.now();
  await h.store.insertJobs({
    jobs: [
      { id: "a", command: "true", queue: "default", priority: 0, max_retries: 0, run_at: now },
      { id: "b", command: "false", queue: "mail", priority: 0, max_retries: 0, run_at: now },
      {
        id: "w",
        command: "true",
        queue: "mail",
        priority: 0,
        max_retries: 0,
        run_at: now - 90_000,
      },
    ],
    now: now - 120_000,
  });
  const claimed = await h.store.claimJobs({
    workerId: "w1",
    queues: ["default"],
    now,
    leaseMs: 30_000,
    limit: 1,
  });
  const b = (await h.store.claimJobs({
    workerId: "w1",
    queues: ["mail"],
    now,
    leaseMs: 30_000,
    limit: 2,
  })).find((j) => j.id === "b")!;
  // "w" (due 90 s ago) was claimed too; give it back as "b" dies.
  await h.store.applyChange({
    change: complete(claimed[0], { now: now + 300, workerId: "w1", exit_code: 0 }),
  });
  await h.store.applyChange({
    change: fail(b, { now: now + 20_000, workerId: "w1", exit_code: 1 }, {
      backoff_base: 2,
      backoff_max: 60,
    }),
  });
  await h.store.registerWorker({
    worker: {
      id: "sup",
      pid: 1,
      host: "h",
      queues: null,
      started_at: now,
      heartbeat_at: now,
      current_job: null,
      stop_requested_at: null,
      supervisor_id: null,
    },
  });
  await h.store.registerWorker({
    worker: {
      id: "w1",
      pid: 2,
      host: "h",
      queues: null,
      started_at: now,
      heartbeat_at: now,
      current_job: "w",
      stop_requested_at: null,
      supervisor_id: "sup",
    },
  });
  const url = new URL("/metrics", h.dashboard.url);

  // No token, a wrong one: 401, no metrics.
  const noHeaders: Record<string, string>[] = [{}, { authorization: "Bearer nope" }];
  for (const headers of noHeaders) {
    const res = await fetch(url, { headers });
    const text = await res.text();
    assert.equal(res.status, 401);
    assert.doesNotMatch(text, /queuectl_jobs/);
  }
  // The token as Prometheus sends it (and the login cookie of a browser).
  const good: Record<string, string>[] = [
    { authorization: `Bearer ${h.token}` },
    { cookie: h.cookie },
  ];
  for (const headers of good) {
    const res = await fetch(url, { headers });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const lines = text.trimEnd().split("\n");
    for (const line of lines) {
      assert.match(
        line,
        /^(# (HELP|TYPE) \w+ .+|\w+(\{(\w+="[^"]*",?)+\})? (\d+(\.\d+)?|\+Inf))$/,
        line,
      );
    }
    const has = (l: string) => assert.ok(lines.includes(l), `missing ${l} in\n${text}`);
    has("# TYPE queuectl_jobs gauge");
    has('queuectl_jobs{queue="default",state="completed"} 1');
    has('queuectl_jobs{queue="default",state="pending"} 0');
    has('queuectl_jobs{queue="mail",state="dead"} 1');
    has('queuectl_jobs{queue="mail",state="processing"} 1');
    has('queuectl_oldest_pending_age_seconds{queue="mail"} 0');
    has("# TYPE queuectl_runs_total counter");
    has('queuectl_runs_total{outcome="completed"} 1');
    has('queuectl_runs_total{outcome="dead"} 1');
    has('queuectl_runs_total{outcome="failed"} 0');
    has("# TYPE queuectl_run_duration_seconds histogram");
    has('queuectl_run_duration_seconds_bucket{le="0.1"} 0');
    has('queuectl_run_duration_seconds_bucket{le="0.5"} 1');
    has('queuectl_run_duration_seconds_bucket{le="10"} 1');
    has('queuectl_run_duration_seconds_bucket{le="30"} 2');
    has('queuectl_run_duration_seconds_bucket{le="+Inf"} 2');
    has("queuectl_run_duration_seconds_sum 20.3");
    has("queuectl_run_duration_seconds_count 2");
    has("queuectl_workers_alive 1");
    has("queuectl_supervisors_alive 1");
  }
  // A job due and waiting: its age since it became due.
  await h.store.insertJobs({
    jobs: [{
      id: "late",
      command: "true",
      queue: "mail",
      priority: 0,
      max_retries: 0,
      run_at: now - 45_500,
    }],
    now: now - 60_000,
  });
  const text = await (await fetch(url, { headers: { authorization: `Bearer ${h.token}` } }))
    .text();
  assert.match(text, /^queuectl_oldest_pending_age_seconds\{queue="mail"\} 45\.5$/m);
  assert.doesNotMatch(text, /^queuectl_schedule_lag_seconds\{/m);
  // Schedules: an overdue one shows how late its slot is; one not due yet 0; a paused one none.
  const schedule = (name: string, next: number, paused = false) => ({
    name,
    cron: null,
    every_ms: 60_000,
    tz: "UTC",
    job: JSON.stringify({ command: "true" }),
    catch_up: true,
    paused,
    next_run_at: next,
    last_run_at: null,
    last_job_id: null,
    created_at: now - 600_000,
    updated_at: now - 600_000,
  });
  await h.store.insertSchedule({ schedule: schedule("late", now - 12_250) });
  await h.store.insertSchedule({ schedule: schedule("soon", now + 30_000) });
  await h.store.insertSchedule({ schedule: schedule("held", now - 99_000, true) });
  const withSchedules = await (await fetch(url, {
    headers: { authorization: `Bearer ${h.token}` },
  })).text();
  assert.match(withSchedules, /^# TYPE queuectl_schedule_lag_seconds gauge$/m);
  assert.match(withSchedules, /^queuectl_schedule_lag_seconds\{schedule="late"\} 12\.25$/m);
  assert.match(withSchedules, /^queuectl_schedule_lag_seconds\{schedule="soon"\} 0$/m);
  assert.doesNotMatch(withSchedules, /schedule="held"/);
});
