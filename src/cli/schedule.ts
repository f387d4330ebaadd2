/** `queuectl schedule add | list | remove | pause | resume | run`: recurring jobs. */
import { buildCommand, buildRouteMap } from "@stricli/core";
import { InvalidInput } from "../core/errors.ts";
import { NEVER, scheduleToJson, type ScheduleView } from "../core/schedule.ts";
import { commandFromWords } from "../core/shell_words.ts";
import { formatDuration } from "../core/duration.ts";
import { quote } from "../core/text.ts";
import { callerDirectory } from "../app/queue.ts";
import {
  addSchedule,
  listSchedules,
  pauseSchedule,
  removeSchedule,
  resumeSchedule,
  runScheduleNow,
} from "../app/schedules.ts";
import { type CliContext, type GlobalFlags, globalFlags, withStore } from "./context.ts";
import { envFromFlags } from "./enqueue.ts";
import { oneLine, type Output, relative } from "./render.ts";

interface AddFlags extends GlobalFlags {
  cron?: string;
  every?: string;
  tz?: string;
  catchUp: boolean;
  paused: boolean;
  maxRetries?: string;
  priority?: string;
  timeout?: string;
  queue?: string;
  cwd?: string;
  env?: string[];
  uniqueKey?: string;
}

function num(text: string, what: string): number {
  const n = Number(text);
  if (text.trim() === "" || Number.isNaN(n)) {
    throw new InvalidInput(`Invalid ${what}: expected a number, got ${quote(text)}`);
  }
  return n;
}

/** "0 4 * * * (Europe/Berlin)" or "every 10m". */
function ruleText(s: ScheduleView): string {
  const rule = s.cron !== null ? `${s.cron} (${s.tz})` : `every ${formatDuration(s.every_ms!)}`;
  return s.catch_up ? rule : `${rule}, no catch-up`;
}

function nextText(s: ScheduleView, now: number): string {
  if (s.paused) return "paused";
  if (s.next_run_at >= NEVER) return "never";
  return `${new Date(s.next_run_at).toISOString()} (${relative(s.next_run_at, now)})`;
}

/**
 * "4m ago: <id> running": the last job enqueued, or the active job holding the unique key when a
 * slot was skipped since (possibly enqueued by someone else: then no time, if it never ran).
 */
function lastText(s: ScheduleView, out: Output, now: number): string {
  if (s.last_job_id === null) return "-";
  const outcome = s.last_job_state === null
    ? "job deleted"
    : out.state(s.last_job_state as Parameters<Output["state"]>[0]);
  const when = s.last_run_at === null ? "" : `${relative(s.last_run_at, now)}: `;
  return `${when}${s.last_job_id} ${outcome}`;
}

function printOne(out: Output, s: ScheduleView, now: number, verb: string): void {
  if (out.json) return out.printJson(scheduleToJson(s));
  out.line(`schedule ${s.name} ${verb}: ${ruleText(s)}, next ${nextText(s, now)}`);
}

async function addRun(this: CliContext, flags: AddFlags, ...positional: string[]) {
  await withStore(this, flags, async (app, out) => {
    const dashdash = this.args.indexOf("--");
    const words = dashdash < 0 ? [] : this.args.slice(dashdash + 1);
    if (words.length === 0) {
      throw new InvalidInput("Missing command after --", {
        hint: "queuectl schedule add NAME --cron '0 4 * * *' -- command words...",
      });
    }
    const names = positional.slice(0, positional.length - words.length);
    if (names.length !== 1) {
      throw new InvalidInput(
        names.length === 0 ? "Missing schedule name" : "Give one schedule name before --",
        { hint: "queuectl schedule add NAME --every 10m -- command words..." },
      );
    }
    const job: Record<string, unknown> = { command: commandFromWords(words) };
    if (flags.maxRetries !== undefined) job.max_retries = num(flags.maxRetries, "--max-retries");
    if (flags.priority !== undefined) job.priority = num(flags.priority, "--priority");
    if (flags.timeout !== undefined) job.timeout = num(flags.timeout, "--timeout");
    if (flags.queue !== undefined) job.queue = flags.queue;
    if (flags.cwd !== undefined) job.cwd = flags.cwd;
    if (flags.env !== undefined) job.env = envFromFlags(flags.env, this.env);
    if (flags.uniqueKey !== undefined) job.unique_key = flags.uniqueKey;
    const s = await addSchedule(app, {
      name: names[0],
      cron: flags.cron,
      every: flags.every,
      tz: flags.tz,
      catchUp: flags.catchUp,
      paused: flags.paused,
      job,
      cwd: callerDirectory(this.env),
    });
    printOne(out, s, app.clock.now(), "added");
  });
}

const addCommand = () =>
  buildCommand({
    func: addRun,
    parameters: {
      flags: {
        ...globalFlags,
        cron: {
          kind: "parsed",
          parse: String,
          brief: "Five-field cron expression, e.g. '0 4 * * *' (or @daily, @hourly...)",
          optional: true,
          placeholder: "expr",
        },
        every: {
          kind: "parsed",
          parse: String,
          brief: "Or: every this long from now, e.g. 30s, 10m, 2h",
          optional: true,
          placeholder: "duration",
        },
        tz: {
          kind: "parsed",
          parse: String,
          brief: "Time zone of --cron, e.g. Europe/Berlin (default: this machine's)",
          optional: true,
          placeholder: "zone",
        },
        catchUp: {
          kind: "boolean",
          brief:
            "After downtime, run the latest missed slot once (default; --no-catch-up skips it)",
          default: true,
        },
        paused: { kind: "boolean", brief: "Add it paused", default: false },
        maxRetries: {
          kind: "parsed",
          parse: String,
          brief: "Retries after the first failure",
          optional: true,
          placeholder: "n",
        },
        priority: {
          kind: "parsed",
          parse: String,
          brief: "Higher runs first",
          optional: true,
          placeholder: "n",
        },
        timeout: {
          kind: "parsed",
          parse: String,
          brief: "Kill the job after this many seconds",
          optional: true,
          placeholder: "s",
        },
        queue: {
          kind: "parsed",
          parse: String,
          brief: "Queue name",
          optional: true,
          placeholder: "name",
        },
        cwd: {
          kind: "parsed",
          parse: String,
          brief: "Run in this directory (default: the current directory)",
          optional: true,
          placeholder: "dir",
        },
        env: {
          kind: "parsed",
          parse: String,
          brief: "Set KEY=VALUE, or KEY to pass your value now, for the job (repeatable)",
          optional: true,
          variadic: true,
          placeholder: "KEY[=VALUE]",
        },
        uniqueKey: {
          kind: "parsed",
          parse: String,
          brief:
            "Give each slot's job this unique key: a slot finding a job with it still active enqueues nothing",
          optional: true,
          placeholder: "key",
        },
      },
      positional: {
        kind: "array",
        parameter: { brief: "Schedule name, then -- and the command words", parse: String },
      },
    },
    docs: {
      brief: "Add a recurring schedule: a job enqueued at every slot, once across all workers",
      customUsage: [
        "NAME --cron '0 4 * * *' [--tz Europe/Berlin] [job options] -- program args...",
        "NAME --every 10m [--no-catch-up] [--queue Q] [--priority N] [--timeout S] -- program args...",
        "NAME --every 5m --unique-key K -- program args...  (a slot finding K still active is skipped)",
      ],
    },
  });

const listCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags) {
      await withStore(this, flags, async (app, out) => {
        const all = await listSchedules(app);
        if (out.json) return out.printJson(all.map(scheduleToJson));
        if (all.length === 0) return out.note("no schedules");
        const now = app.clock.now();
        out.table(
          ["NAME", "RULE", "NEXT RUN", "LAST RUN", "COMMAND"],
          all.map((s) => [
            s.name,
            ruleText(s),
            nextText(s, now),
            lastText(s, out, now),
            oneLine(JSON.parse(s.job).command as string, 60),
          ]),
        );
      });
    },
    parameters: { flags: globalFlags },
    docs: { brief: "List schedules: rule, next run, last run and its outcome" },
  });

const NAME_PARAM = {
  kind: "tuple",
  parameters: [{ brief: "Schedule name", parse: String, placeholder: "name" }],
} as const;

const removeCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags, name: string) {
      await withStore(this, flags, async (app, out) => {
        await removeSchedule(app, name);
        if (out.json) out.printJson({ removed: name });
        else out.line(`schedule ${name} removed (the jobs it enqueued stay)`);
      });
    },
    parameters: { flags: globalFlags, positional: NAME_PARAM },
    docs: { brief: "Remove a schedule (the jobs it enqueued stay)" },
  });

const pauseCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags, name: string) {
      await withStore(this, flags, async (app, out) => {
        printOne(out, await pauseSchedule(app, name), app.clock.now(), "paused");
      });
    },
    parameters: { flags: globalFlags, positional: NAME_PARAM },
    docs: { brief: "Pause a schedule: no slot fires until it is resumed" },
  });

const resumeCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags, name: string) {
      await withStore(this, flags, async (app, out) => {
        printOne(out, await resumeSchedule(app, name), app.clock.now(), "resumed");
      });
    },
    parameters: { flags: globalFlags, positional: NAME_PARAM },
    docs: { brief: "Resume a schedule from its next slot (slots while paused do not fire)" },
  });

const runCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags, name: string) {
      await withStore(this, flags, async (app, out) => {
        const id = await runScheduleNow(app, name);
        if (out.json) out.printJson({ id });
        else out.line(id);
      });
    },
    parameters: { flags: globalFlags, positional: NAME_PARAM },
    docs: { brief: "Enqueue the schedule's job once, now; prints its id" },
  });

export const scheduleRoutes = () =>
  buildRouteMap({
    routes: {
      add: addCommand(),
      list: listCommand(),
      remove: removeCommand(),
      pause: pauseCommand(),
      resume: resumeCommand(),
      run: runCommand(),
    },
    aliases: { ls: "list", rm: "remove" },
    docs: { brief: "Recurring schedules: cron or --every, each slot enqueued once" },
  });
