/**
 * The schedules duty of the maintenance service: due slots of recurring schedules enqueue their
 * job, each slot once (see docs/architecture.md, "Schedules").
 *
 * Only the maintenance leader runs it, and even two leaders at once (a frozen one and its
 * successor) cannot fire a slot twice: Store.fireSchedule inserts the job in the same transaction
 * that moves next_run_at on, guarded by the value this leader read. A restart loses nothing:
 * next_run_at is in the database, so a slot that came while no leader ran is found due by the
 * next one (and fires once, or is skipped with --no-catch-up). A slot whose job's unique key an
 * active job still holds (the previous slot's job running long) enqueues nothing and moves on.
 */
import type { Config } from "../core/config.ts";
import {
  jobFromSchedule,
  MAX_WALK,
  missedAfterMs,
  NEVER,
  planSlot,
  recurrenceOf,
  type Schedule,
} from "../core/schedule.ts";
import { quote } from "../core/text.ts";
import type { Store } from "../store/store.ts";
import type { Duty } from "./maintenance.ts";

/** How often the leader looks for due slots: slots fire within about a second. */
export const SCHEDULE_EVERY_MS = 1000;
/** Due schedules handled per look. */
const BATCH = 100;

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Fires every due slot; returns one log text per schedule that moved on. */
export async function fireDueSchedules(
  store: Store,
  now: number,
  config: Pick<Config, "lease" | "max_retries">,
): Promise<string[]> {
  const lines: string[] = [];
  for (;;) {
    const due = await store.dueSchedules({ now, limit: BATCH });
    let progressed = false;
    for (const s of due) {
      const line = await fireOne(store, s, now, config);
      if (line !== null) {
        progressed = true;
        lines.push(line);
      }
    }
    if (due.length < BATCH || !progressed) return lines;
  }
}

async function fireOne(
  store: Store,
  s: Schedule,
  now: number,
  config: Pick<Config, "lease" | "max_retries">,
): Promise<string | null> {
  let plan;
  let job;
  try {
    plan = planSlot(s, await recurrenceOf(s), now, missedAfterMs(config.lease));
    job = plan.fire === null ? undefined : jobFromSchedule(s, now, config.max_retries);
  } catch (err) {
    // Its rule or its job no longer reads (a time zone gone from this host's tz database, a
    // template another version wrote): pause it rather than retry every second, and go on with
    // the other schedules; `schedule resume` tries again.
    const paused = await store.setSchedulePaused({ name: s.name, paused: true, now });
    return paused
      ? `schedule ${s.name} paused: ${err instanceof Error ? err.message : String(err)}`
      : null;
  }
  const fired = await store.fireSchedule({
    name: s.name,
    expectNextRunAt: s.next_run_at,
    nextRunAt: plan.next ?? NEVER,
    job,
    now,
  });
  if (!fired) return null; // fired meanwhile by another leader, or removed
  if (fired.heldBy !== null) {
    return `schedule ${s.name}: slot ${iso(plan.fire!)} skipped: job ${fired.heldBy} with key ${
      quote(job!.unique_key)
    } still active, next ${plan.next === null ? "never" : iso(plan.next)}`;
  }
  const missed = plan.due - 1;
  const atLeast = plan.due >= MAX_WALK ? "at least " : "";
  if (job === undefined) {
    return `schedule ${s.name}: skipped ${atLeast}${plan.due} missed slot${
      plan.due === 1 ? "" : "s"
    } (no catch-up), next ${plan.next === null ? "never" : iso(plan.next)}`;
  }
  return `schedule ${s.name}: enqueued ${job.id} for ${iso(plan.fire!)}${
    missed > 0 ? ` (${atLeast}${missed} earlier missed slot${missed === 1 ? "" : "s"} not run)` : ""
  }`;
}

/** Due slots of recurring schedules enqueue their job, each slot once. */
export const SCHEDULE_DUTY: Duty = {
  name: "schedules",
  periodMs: () => SCHEDULE_EVERY_MS,
  run: ({ store, now, config }) => fireDueSchedules(store, now, config),
};
