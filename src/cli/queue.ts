/** `queuectl queue list | pause NAME|--all | resume NAME|--all | limit NAME N` */
import { buildCommand, buildRouteMap } from "@stricli/core";
import { InvalidInput } from "../core/errors.ts";
import { JOB_STATES } from "../core/job.ts";
import {
  limitQueue,
  listQueues,
  parseQueueLimit,
  pauseAll,
  pauseQueue,
  type QueueControl,
  resumeAll,
  resumeQueue,
} from "../app/queues.ts";
import { type CliContext, type GlobalFlags, globalFlags, withStore } from "./context.ts";
import type { Output } from "./render.ts";

const nameArg = {
  kind: "tuple",
  parameters: [{ brief: "Queue name", parse: String, optional: true, placeholder: "name" }],
} as const;

function controlJson(q: QueueControl) {
  return { name: q.name, paused: q.paused, limit: q.max_running };
}

function limitText(n: number): string {
  return n === 0 ? "none" : String(n);
}

const listCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags) {
      await withStore(this, flags, async (app, out) => {
        const queues = await listQueues(app);
        if (out.json) {
          return out.printJson(queues.map((q) => ({
            ...controlJson(q),
            counts: q.counts,
            waiting: q.blocked,
          })));
        }
        if (queues.length === 0) return out.note("no queues (no jobs, nothing paused or limited)");
        out.table(
          ["QUEUE", "PAUSED", "LIMIT", ...JOB_STATES.map((s) => s.toUpperCase()), "WAITING"],
          queues.map((q) => [
            q.name,
            q.paused ? "paused" : "-",
            limitText(q.max_running),
            ...JOB_STATES.map((s) => String(q.counts[s])),
            String(q.blocked),
          ]),
        );
      });
    },
    parameters: { flags: globalFlags },
    docs: {
      brief: "Every queue: paused, limit, jobs per state, waiting (blocked on dependencies)",
    },
  });

interface AllFlags extends GlobalFlags {
  all: boolean;
}

function oneOrAll(flags: AllFlags, name: string | undefined, verb: string): void {
  if (flags.all === (name !== undefined)) {
    throw new InvalidInput("Give a queue name or --all", { hint: `queuectl queue ${verb} <name>` });
  }
}

function report(out: Output, changed: QueueControl[], done: string): void {
  if (out.json) return out.printJson(changed.map(controlJson));
  if (changed.length === 0) return out.note(`no queue ${done}`);
  for (const q of changed) out.line(`${q.name} ${done}`);
}

const pauseCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: AllFlags, name?: string) {
      await withStore(this, flags, async (app, out) => {
        oneOrAll(flags, name, "pause");
        const changed = name !== undefined ? [await pauseQueue(app, name)] : await pauseAll(app);
        report(out, changed, "paused (running jobs finish; no new job starts)");
      });
    },
    parameters: {
      flags: {
        ...globalFlags,
        all: { kind: "boolean", brief: "Pause every queue that has jobs now", default: false },
      },
      positional: nameArg,
    },
    docs: { brief: "Stop starting jobs of a queue (or --all); running jobs finish" },
  });

const resumeCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: AllFlags, name?: string) {
      await withStore(this, flags, async (app, out) => {
        oneOrAll(flags, name, "resume");
        const changed = name !== undefined ? [await resumeQueue(app, name)] : await resumeAll(app);
        report(out, changed, "resumed");
      });
    },
    parameters: {
      flags: {
        ...globalFlags,
        all: { kind: "boolean", brief: "Resume every paused queue", default: false },
      },
      positional: nameArg,
    },
    docs: { brief: "Start jobs of a paused queue (or --all) again" },
  });

const limitCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags, name: string, limit: string) {
      await withStore(this, flags, async (app, out) => {
        const q = await limitQueue(app, name, parseQueueLimit(limit));
        if (out.json) return out.printJson(controlJson(q));
        out.line(
          q.max_running === 0
            ? `${q.name}: no limit`
            : `${q.name}: at most ${q.max_running} job${
              q.max_running === 1 ? "" : "s"
            } running at once`,
        );
      });
    },
    parameters: {
      flags: globalFlags,
      positional: {
        kind: "tuple",
        parameters: [
          { brief: "Queue name", parse: String, placeholder: "name" },
          {
            brief: "Jobs running at once, across all workers and hosts (0 = no limit)",
            parse: String,
            placeholder: "n",
          },
        ],
      },
    },
    docs: { brief: "Cap how many jobs of a queue run at once across all workers and hosts" },
  });

export const queueRoutes = () =>
  buildRouteMap({
    routes: {
      list: listCommand(),
      pause: pauseCommand(),
      resume: resumeCommand(),
      limit: limitCommand(),
    },
    aliases: { ls: "list" },
    docs: { brief: "Queues: list them, pause and resume, limit jobs running at once" },
  });
