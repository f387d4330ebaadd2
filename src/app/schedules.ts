/**
 * Recurring schedules: what `queuectl schedule ...` and the dashboard's schedules tab do. The
 * maintenance leader fires the slots (worker/schedules.ts); see docs/architecture.md "Schedules".
 */
import { InvalidInput, NotFound } from "../core/errors.ts";
import { parseDuration } from "../core/duration.ts";
import {
  jobFromSchedule,
  localTimeZone,
  MAX_EVERY_MS,
  MIN_EVERY_MS,
  NEVER,
  recurrenceOf,
  type Schedule,
  scheduleJobTemplate,
  type ScheduleView,
  validateScheduleName,
  validateTimeZone,
} from "../core/schedule.ts";
import { quote } from "../core/text.ts";
import { loadConfig } from "./config.ts";
import type { Ctx } from "./queue.ts";

export interface AddScheduleParams {
  name: string;
  /** A five-field cron expression; or `every`. */
  cron?: string;
  /** A duration (`10m`, `1h`); or `cron`. */
  every?: string;
  /** IANA time zone of `cron` (default: this process's). */
  tz?: string;
  /** Run the latest missed slot once after an outage (default true). */
  catchUp?: boolean;
  /** Add it paused. */
  paused?: boolean;
  /**
   * The job: enqueue's fields command, queue, priority, timeout, max_retries, cwd, env,
   * unique_key (a fixed key; a slot finding a job with it active enqueues nothing).
   */
  job: Record<string, unknown>;
  /** The caller's directory: the job's default cwd, base of a relative one. */
  cwd?: string | null;
}

/**
 * Validates everything first (name, rule, time zone, job), then adds the schedule in one write:
 * a bad input or a duplicate name changes nothing.
 */
export async function addSchedule(ctx: Ctx, p: AddScheduleParams): Promise<ScheduleView> {
  const name = validateScheduleName(p.name);
  if ((p.cron === undefined) === (p.every === undefined)) {
    throw new InvalidInput("Give either --cron EXPR or --every DURATION", {
      hint: "e.g. --cron '0 4 * * *' or --every 10m",
    });
  }
  let everyMs: number | null = null;
  if (p.every !== undefined) {
    if (p.tz !== undefined) throw new InvalidInput("--tz applies only with --cron");
    everyMs = parseDuration(p.every, "--every");
    if (everyMs < MIN_EVERY_MS || everyMs > MAX_EVERY_MS) {
      throw new InvalidInput(
        `Invalid --every ${quote(p.every)}: use an interval from 1s to 366d`,
        { hint: "for rarer runs use --cron, e.g. '0 4 1 1 *' (every 1 January)" },
      );
    }
  }
  const tz = p.tz !== undefined ? validateTimeZone(p.tz) : localTimeZone();
  const now = ctx.clock.now();
  const config = await loadConfig(ctx.store);
  const job = scheduleJobTemplate(p.job, {
    max_retries: config.max_retries,
    now,
    cwd: p.cwd ?? null,
  });
  const base = { cron: p.cron?.trim() ?? null, every_ms: everyMs, tz, created_at: now };
  const next = (await recurrenceOf(base)).next(now);
  if (next === null) {
    throw new InvalidInput(`The cron expression ${quote(p.cron ?? "")} never matches a time`);
  }
  const schedule: Schedule = {
    name,
    ...base,
    job,
    catch_up: p.catchUp ?? true,
    paused: p.paused ?? false,
    next_run_at: next,
    last_run_at: null,
    last_job_id: null,
    updated_at: now,
  };
  await ctx.store.insertSchedule({ schedule });
  return { ...schedule, last_job_state: null };
}

export function listSchedules(ctx: Ctx): Promise<ScheduleView[]> {
  return ctx.store.listSchedules();
}

export async function getSchedule(ctx: Ctx, name: string): Promise<ScheduleView> {
  const s = await ctx.store.getSchedule({ name });
  if (!s) throw noSuchSchedule(name);
  return s;
}

function noSuchSchedule(name: string): NotFound {
  return new NotFound(`No schedule named ${quote(name)}`, { hint: "see queuectl schedule list" });
}

/** Removes a schedule; the jobs it enqueued stay. */
export async function removeSchedule(ctx: Ctx, name: string): Promise<void> {
  if (!(await ctx.store.deleteSchedule({ name }))) throw noSuchSchedule(name);
}

/** Pauses a schedule: no slot fires until it is resumed (a paused schedule's slots are lost). */
export async function pauseSchedule(ctx: Ctx, name: string): Promise<ScheduleView> {
  const now = ctx.clock.now();
  if (!(await ctx.store.setSchedulePaused({ name, paused: true, now }))) {
    throw noSuchSchedule(name);
  }
  return await getSchedule(ctx, name);
}

/**
 * Resumes a schedule from its next slot after now: slots that fell while it was paused do not
 * fire (a pause is a choice, not an outage).
 */
export async function resumeSchedule(ctx: Ctx, name: string): Promise<ScheduleView> {
  const s = await getSchedule(ctx, name);
  // Not paused: nothing to do (a slot due but not yet fired must not be skipped).
  if (!s.paused) return s;
  const now = ctx.clock.now();
  const next = (await recurrenceOf(s)).next(now) ?? NEVER;
  await ctx.store.setSchedulePaused({ name, paused: false, nextRunAt: next, now });
  return await getSchedule(ctx, name);
}

/**
 * `schedule run NAME`: enqueues the schedule's job once, now, whether or not it is paused; its
 * slots stay as they are. Returns the job's id; or, when an active job holds the template's
 * unique key, that job's id and nothing is enqueued (as `enqueue --unique-key` does).
 */
export async function runScheduleNow(ctx: Ctx, name: string): Promise<string> {
  const s = await getSchedule(ctx, name);
  const now = ctx.clock.now();
  const config = await loadConfig(ctx.store);
  const job = jobFromSchedule(s, now, config.max_retries);
  const fired = await ctx.store.fireSchedule({ name, expectNextRunAt: null, job, now });
  if (!fired) throw noSuchSchedule(name);
  return fired.heldBy ?? job.id;
}
