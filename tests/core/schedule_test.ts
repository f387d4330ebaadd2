/** When schedules' slots fall (croner through core/schedule.ts): DST, month ends, catch-up. */
import assert from "node:assert/strict";
import { InvalidInput } from "../../src/core/errors.ts";
import {
  cronRecurrence,
  everyRecurrence,
  jobFromSchedule,
  missedAfterMs,
  planSlot,
  type Recurrence,
  scheduleJobTemplate,
  validateScheduleName,
  validateTimeZone,
} from "../../src/core/schedule.ts";

const iso = (ms: number | null) => ms === null ? null : new Date(ms).toISOString();

/** The next `n` slots after `from`. */
function slots(rule: Recurrence, from: string, n: number): (string | null)[] {
  const out: (string | null)[] = [];
  let t = Date.parse(from);
  for (let i = 0; i < n; i++) {
    const next = rule.next(t);
    out.push(iso(next));
    if (next === null) break;
    t = next;
  }
  return out;
}

Deno.test("cron: a daily slot in a time zone follows its UTC offset across DST", async () => {
  const rule = await cronRecurrence("0 4 * * *", "Europe/Berlin");
  // Berlin: CET (UTC+1) until 2026-03-29 02:00, CEST (UTC+2) until 2026-10-25 03:00.
  assert.deepEqual(slots(rule, "2026-03-27T12:00:00Z", 3), [
    "2026-03-28T03:00:00.000Z",
    "2026-03-29T02:00:00.000Z",
    "2026-03-30T02:00:00.000Z",
  ]);
  assert.deepEqual(slots(rule, "2026-10-24T12:00:00Z", 2), [
    "2026-10-25T03:00:00.000Z",
    "2026-10-26T03:00:00.000Z",
  ]);
});

Deno.test("cron: a slot in the spring-forward gap runs once, right after the gap", async () => {
  // 02:30 does not exist in Berlin on 2026-03-29 (02:00 -> 03:00 CEST): it runs at 03:00 CEST.
  const rule = await cronRecurrence("30 2 * * *", "Europe/Berlin");
  assert.deepEqual(slots(rule, "2026-03-28T12:00:00Z", 2), [
    "2026-03-29T01:00:00.000Z",
    "2026-03-30T00:30:00.000Z",
  ]);
});

Deno.test("cron: a slot in the fall-back hour runs once, not twice", async () => {
  // 02:30 happens twice in Berlin on 2026-10-25 (CEST, then CET): one run, at the first.
  const rule = await cronRecurrence("30 2 * * *", "Europe/Berlin");
  assert.deepEqual(slots(rule, "2026-10-24T12:00:00Z", 2), [
    "2026-10-25T00:30:00.000Z",
    "2026-10-26T01:30:00.000Z",
  ]);
});

Deno.test("cron: an interval pattern keeps its real interval through both DST changes", async () => {
  const rule = await cronRecurrence("*/30 * * * *", "Europe/Berlin");
  // Fall back: the repeated hour's slots all run (every 30 real minutes).
  assert.deepEqual(slots(rule, "2026-10-25T00:10:00Z", 4), [
    "2026-10-25T00:30:00.000Z",
    "2026-10-25T01:00:00.000Z",
    "2026-10-25T01:30:00.000Z",
    "2026-10-25T02:00:00.000Z",
  ]);
  // Spring forward: the missing hour has no slots, the others are 30 real minutes apart.
  assert.deepEqual(slots(rule, "2026-03-29T00:10:00Z", 3), [
    "2026-03-29T00:30:00.000Z",
    "2026-03-29T01:00:00.000Z",
    "2026-03-29T01:30:00.000Z",
  ]);
});

Deno.test("cron: month ends: day 31 skips short months, L is the last day (leap years too)", async () => {
  assert.deepEqual(slots(await cronRecurrence("0 0 31 * *", "UTC"), "2026-01-31T12:00:00Z", 3), [
    "2026-03-31T00:00:00.000Z",
    "2026-05-31T00:00:00.000Z",
    "2026-07-31T00:00:00.000Z",
  ]);
  assert.deepEqual(slots(await cronRecurrence("0 0 L * *", "UTC"), "2028-01-31T12:00:00Z", 3), [
    "2028-02-29T00:00:00.000Z",
    "2028-03-31T00:00:00.000Z",
    "2028-04-30T00:00:00.000Z",
  ]);
  assert.deepEqual(slots(await cronRecurrence("0 0 29 2 *", "UTC"), "2026-01-01T00:00:00Z", 2), [
    "2028-02-29T00:00:00.000Z",
    "2032-02-29T00:00:00.000Z",
  ]);
  // The last day of the month in a zone ahead of UTC: the previous day in UTC.
  assert.deepEqual(slots(await cronRecurrence("0 1 L * *", "Asia/Tokyo"), "2026-02-01T00:00Z", 1), [
    "2026-02-27T16:00:00.000Z",
  ]);
});

Deno.test("cron: bad expressions and unknown zones are one-line InvalidInput errors", async () => {
  for (const bad of ["61 4 * * *", "0 4 * *", "0 4 * * * *", "nonsense", ""]) {
    await assert.rejects(
      cronRecurrence(bad, "UTC"),
      (err) =>
        err instanceof InvalidInput && err.message.startsWith("Invalid cron expression") &&
        !err.message.includes("\n"),
      bad,
    );
  }
  await assert.rejects(
    cronRecurrence("1 ".repeat(50_000), "UTC"),
    (err) => err instanceof InvalidInput && err.message.length < 300,
    "a huge expression gives a short message",
  );
  assert.throws(() => validateTimeZone("Mars/Olympus"), /Unknown time zone "Mars\/Olympus"/);
  assert.equal(validateTimeZone("Europe/Berlin"), "Europe/Berlin");
  assert.throws(() => validateScheduleName("a b"), InvalidInput);
  assert.throws(() => validateScheduleName(""), InvalidInput);
  assert.equal(validateScheduleName("nightly.backup-1"), "nightly.backup-1");
});

Deno.test("every: slots are whole intervals from the schedule's creation", () => {
  const rule = everyRecurrence(600_000, 1_000);
  assert.equal(rule.next(0), 601_000);
  assert.equal(rule.atOrBefore(601_000), 601_000);
  assert.equal(rule.atOrBefore(600_999), null, "none before the first");
  assert.equal(rule.next(601_000), 1_201_000, "strictly after");
  assert.equal(rule.next(601_001), 1_201_000);
});

Deno.test("planSlot: on time fires the slot; after downtime the latest missed slot fires once", async () => {
  const rule = everyRecurrence(60_000, 0);
  const late = missedAfterMs(30);
  assert.equal(late, 60_000);
  // On time (a second late).
  assert.deepEqual(planSlot({ next_run_at: 60_000, catch_up: true }, rule, 61_000, late), {
    fire: 60_000,
    due: 1,
    next: 120_000,
  });
  // Ten slots missed: one fire (the latest), next after now.
  assert.deepEqual(planSlot({ next_run_at: 60_000, catch_up: true }, rule, 630_000, late), {
    fire: 600_000,
    due: 10,
    next: 660_000,
  });
  // --no-catch-up: the latest slot is 30 s old (within the minute): it fires.
  assert.equal(
    planSlot({ next_run_at: 60_000, catch_up: false }, rule, 630_000, late).fire,
    600_000,
  );
  // --no-catch-up and a daily slot missed by hours: nothing fires, next is tomorrow.
  const daily = everyRecurrence(86_400_000, 0);
  assert.deepEqual(
    planSlot({ next_run_at: 86_400_000, catch_up: false }, daily, 86_400_000 + 3 * 3_600_000, late),
    { fire: null, due: 1, next: 2 * 86_400_000 },
  );
  // A very long outage of an every-second schedule: the walk stops, next is still after now.
  const often = everyRecurrence(1000, 0);
  const plan = planSlot({ next_run_at: 1000, catch_up: true }, often, 90 * 86_400_000, late);
  assert.deepEqual(plan, { fire: 90 * 86_400_000, due: 1000, next: 90 * 86_400_000 + 1000 });
  // Without catch-up too, the slot of now is on time.
  assert.equal(
    planSlot({ next_run_at: 1000, catch_up: false }, often, 90 * 86_400_000 + 500, late).fire,
    90 * 86_400_000,
  );
  // A cron every minute down for a month: the latest slot (croner's previous run) fires.
  const minutely = await cronRecurrence("* * * * *", "UTC");
  const t0 = Date.parse("2026-01-01T00:00:00Z");
  const t1 = Date.parse("2026-02-01T10:30:20Z");
  assert.deepEqual(
    planSlot({ next_run_at: t0, catch_up: false }, minutely, t1, late),
    { fire: Date.parse("2026-02-01T10:30:00Z"), due: 1000, next: t1 + 40_000 },
  );
});

Deno.test("the job template keeps enqueue's options, validated; id and run times are refused", () => {
  const defaults = { max_retries: 3, now: 0, cwd: "/srv" };
  const template = JSON.parse(
    scheduleJobTemplate(
      { command: "backup", queue: "ops", cwd: "data", env: { A: "1" } },
      defaults,
    ),
  );
  assert.deepEqual(template, {
    command: "backup",
    queue: "ops",
    priority: 0,
    cwd: "/srv/data",
    env: { A: "1" },
  });
  const job = jobFromSchedule({ job: JSON.stringify(template) }, 5000, 7);
  assert.equal(job.max_retries, 7, "config max_retries when the slot fires");
  assert.equal(job.run_at, 5000);
  assert.equal(job.cwd, "/srv/data");
  assert.throws(() => scheduleJobTemplate({ command: "x", id: "a" }, defaults), /cannot set "id"/);
  assert.throws(() => scheduleJobTemplate({ command: "x", delay: "1m" }, defaults), InvalidInput);
  assert.throws(() => scheduleJobTemplate({ command: "x", queue: "a b" }, defaults), InvalidInput);
});
