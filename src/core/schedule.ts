/**
 * Recurring schedules (`queuectl schedule`): the stored record, validation of what a user gives,
 * and when a schedule's slots fall. See docs/architecture.md, "Schedules".
 *
 * Cron expressions are read by croner (npm), loaded with import() only when a schedule is
 * computed, so that no other command pays for it at start-up. It is pure computation (no I/O),
 * which is why core/ may use it.
 */
import { InvalidInput } from "./errors.ts";
import { type JobDefaults, MAX_TIME_MS, type NewJob, parseJobSpec } from "./job.ts";
import { quote } from "./text.ts";

/** A schedule as stored (times are epoch ms). */
export interface Schedule {
  name: string;
  /** A five-field cron expression (or a nickname such as @daily), or null for `every_ms`. */
  cron: string | null;
  /** The interval of `--every`, ms, or null for `cron`. */
  every_ms: number | null;
  /** The IANA time zone the cron expression is read in (recorded at add; UTC when unknown). */
  tz: string;
  /**
   * The job each slot enqueues: a job spec (JSON text) with command, queue, priority, timeout,
   * max_retries (absent = config at the time of the slot), cwd (absolute), env and unique_key
   * (a fixed key: a slot that finds a job with it still active enqueues nothing).
   */
  job: string;
  /** After an outage, the latest missed slot fires once (true) or is skipped (false). */
  catch_up: boolean;
  paused: boolean;
  /** The next slot not yet fired: the maintenance leader fires it once `now` reaches it. */
  next_run_at: number;
  /** When the schedule last enqueued a job (a slot or `schedule run`), or null. */
  last_run_at: number | null;
  /**
   * That job's id; or, when a later slot was skipped because an active job held the template's
   * unique_key, that holder's id (last_run_at stays); or null.
   */
  last_job_id: string | null;
  created_at: number;
  updated_at: number;
}

/** A schedule with the state of its last job (null: none, or the job was deleted). */
export interface ScheduleView extends Schedule {
  last_job_state: string | null;
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;

export function validateScheduleName(name: string): string {
  if (!NAME_PATTERN.test(name)) {
    throw new InvalidInput(
      `Invalid schedule name ${
        quote(name)
      }: use 1-100 letters, digits or . _ : -, starting with a letter or digit`,
    );
  }
  return name;
}

/** The shortest `--every`: the maintenance service looks for due slots about once a second. */
export const MIN_EVERY_MS = 1000;
/** The longest `--every` (rarer runs: a cron expression). */
export const MAX_EVERY_MS = 366 * 86_400_000;

/** Fields of a job spec a schedule keeps (enqueue's options but id and run time). */
export const SCHEDULE_JOB_FIELDS = [
  "command",
  "queue",
  "priority",
  "timeout",
  "max_retries",
  "cwd",
  "env",
  "unique_key",
] as const;

/** The IANA name of `tz`, checked; throws InvalidInput naming it when unknown. */
export function validateTimeZone(tz: string): string {
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    throw new InvalidInput(`Unknown time zone ${quote(tz)}`, {
      hint: "use an IANA name such as Europe/Berlin, America/New_York or UTC",
    });
  }
}

/** This process's time zone (the default of `--tz`), UTC when it cannot be told. */
export function localTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

type CronClass = typeof import("croner").Cron;
let cronClass: Promise<CronClass> | undefined;

/** croner's Cron, loaded on first use. */
function loadCron(): Promise<CronClass> {
  return cronClass ??= import("croner").then((m) => m.Cron);
}

/** When a schedule's slots fall. */
export interface Recurrence {
  /** The first slot strictly after `after`, or null when there is none. */
  next(after: number): number | null;
  /** The last slot at or before `at`, or null when there is none. */
  atOrBefore(at: number): number | null;
}

/** Cron slots in a time zone (croner, standard five fields; DST as in README "Schedules"). */
export async function cronRecurrence(cron: string, tz: string): Promise<Recurrence> {
  validateTimeZone(tz);
  const Cron = await loadCron();
  let rule: InstanceType<CronClass>;
  try {
    rule = new Cron(cron.trim(), { timezone: tz, paused: true, mode: "5-part" });
  } catch (err) {
    // croner's reason may repeat the whole expression: keep the message one short line.
    const reason = (err as Error).message.replace(/^CronPattern: /, "");
    const why = reason.length > 120 ? `${reason.slice(0, 119)}…` : reason;
    throw new InvalidInput(`Invalid cron expression ${quote(cron)}: ${why}`, {
      hint: "five fields: minute hour day-of-month month day-of-week, e.g. '0 4 * * *'",
    });
  }
  return {
    next(after: number): number | null {
      return rule.nextRun(new Date(after))?.getTime() ?? null;
    },
    atOrBefore(at: number): number | null {
      // previousRuns counts a slot in the same second as the reference: at + 1 ms keeps `at`.
      return rule.previousRuns(1, new Date(at + 1))[0]?.getTime() ?? null;
    },
  };
}

/** Slots every `everyMs` from `anchor` (the schedule's creation). */
export function everyRecurrence(everyMs: number, anchor: number): Recurrence {
  return {
    next(after: number): number {
      if (after < anchor) return anchor + everyMs;
      return anchor + (Math.floor((after - anchor) / everyMs) + 1) * everyMs;
    },
    atOrBefore(at: number): number | null {
      if (at < anchor + everyMs) return null;
      return anchor + Math.floor((at - anchor) / everyMs) * everyMs;
    },
  };
}

/** The recurrence of a stored (or about to be stored) schedule. */
export function recurrenceOf(
  s: Pick<Schedule, "cron" | "every_ms" | "tz" | "created_at">,
): Promise<Recurrence> {
  if (s.cron !== null) return cronRecurrence(s.cron, s.tz);
  return Promise.resolve(everyRecurrence(s.every_ms!, s.created_at));
}

/** next_run_at of a schedule whose recurrence has no slot left (it never fires again). */
export const NEVER = MAX_TIME_MS;

/**
 * How many slots {@link planSlot} walks (counting the missed ones) before it jumps to the latest
 * one: about 100 ms of croner on a busy machine, once, after a long outage.
 */
export const MAX_WALK = 1000;

/** What the maintenance leader does with a due schedule (see {@link planSlot}). */
export interface SlotPlan {
  /** The slot to fire now (the latest one due), or null: the missed slots are skipped. */
  fire: number | null;
  /** How many slots were due (1 when on time; more after an outage; at most MAX_WALK). */
  due: number;
  /** The new next_run_at: the first slot after now (null: the recurrence has no more). */
  next: number | null;
}

/**
 * A due schedule (next_run_at <= now): the latest slot at or before `now` fires once, however
 * many were missed (an outage); with catch_up false it fires only if it is at most `lateMs` old,
 * else every missed slot is skipped. Either way next_run_at moves to the first slot after now.
 */
export function planSlot(
  s: Pick<Schedule, "next_run_at" | "catch_up">,
  rule: Recurrence,
  now: number,
  lateMs: number,
): SlotPlan {
  let latest = s.next_run_at;
  let due = 1;
  let next = rule.next(latest);
  while (next !== null && next <= now && due < MAX_WALK) {
    latest = next;
    due++;
    next = rule.next(latest);
  }
  // Walked far enough without passing now (every second for months): jump to the latest slot at
  // or before now, and the first after it.
  if (next !== null && next <= now) {
    latest = Math.max(latest, rule.atOrBefore(now) ?? latest);
    next = rule.next(now);
  }
  const fire = s.catch_up || now - latest <= lateMs ? latest : null;
  return { fire, due, next };
}

/**
 * The job template of a new schedule from a user's job spec (enqueue's fields but id, run_at and
 * delay), validated as enqueue validates it; `cwd` resolved against `defaults.cwd` and kept
 * absolute. Returns the spec to store (JSON text).
 */
export function scheduleJobTemplate(spec: Record<string, unknown>, defaults: JobDefaults): string {
  for (const key of Object.keys(spec)) {
    if (!(SCHEDULE_JOB_FIELDS as readonly string[]).includes(key)) {
      throw new InvalidInput(
        `A schedule's job cannot set ${quote(key)}: allowed are ${SCHEDULE_JOB_FIELDS.join(", ")}`,
      );
    }
  }
  const job = parseJobSpec(spec, defaults);
  const template: Record<string, unknown> = {
    command: job.command,
    queue: job.queue,
    priority: job.priority,
  };
  if (job.timeout !== null) template.timeout = job.timeout;
  // Absent: config max_retries when the slot fires.
  if (spec.max_retries !== undefined) template.max_retries = job.max_retries;
  if (job.cwd !== null) template.cwd = job.cwd;
  if (job.env !== null) template.env = JSON.parse(job.env);
  if (job.unique_key !== null) template.unique_key = job.unique_key;
  return JSON.stringify(template);
}

/** The job one slot (or `schedule run`) of `s` enqueues, due at `now`. */
export function jobFromSchedule(s: Pick<Schedule, "job">, now: number, maxRetries: number): NewJob {
  return parseJobSpec(JSON.parse(s.job), { max_retries: maxRetries, now, cwd: null });
}

/**
 * How late a slot may fire under `--no-catch-up` before it counts as missed (skipped): a minute,
 * or two leases when longer (a new maintenance leader may take one lease to step in).
 */
export function missedAfterMs(leaseSeconds: number): number {
  return Math.max(60_000, 2 * leaseSeconds * 1000);
}

/** The JSON form of a schedule (`schedule list --json`, the dashboard's API). */
export function scheduleToJson(s: ScheduleView): Record<string, unknown> {
  const iso = (ms: number | null) => ms === null ? null : new Date(ms).toISOString();
  return {
    name: s.name,
    cron: s.cron,
    every_seconds: s.every_ms === null ? null : s.every_ms / 1000,
    tz: s.cron === null ? null : s.tz,
    catch_up: s.catch_up,
    paused: s.paused,
    next_run_at: s.paused || s.next_run_at >= MAX_TIME_MS ? null : iso(s.next_run_at),
    last_run_at: iso(s.last_run_at),
    last_job_id: s.last_job_id,
    last_job_state: s.last_job_state,
    job: JSON.parse(s.job),
    created_at: iso(s.created_at),
  };
}
