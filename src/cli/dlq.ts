/** `queuectl dlq list | restore <id>|--all | move <id> | purge` */
import { buildCommand, buildRouteMap } from "@stricli/core";
import { InvalidInput } from "../core/errors.ts";
import { jobToJson } from "../core/job.ts";
import { listJobs, moveJobToDlq, purgeDlq, restoreAll, restoreJob } from "../app/queue.ts";
import { type CliContext, type GlobalFlags, globalFlags, withStore } from "./context.ts";
import { limitParser } from "./jobs.ts";
import { safe } from "./render.ts";

interface DlqListFlags extends GlobalFlags {
  limit?: number;
}

const listCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: DlqListFlags) {
      await withStore(this, flags, async (app, out) => {
        const jobs = await listJobs(app, { state: "dead", limit: flags.limit ?? 100 });
        if (out.json) return out.printJson(jobs.map((j) => jobToJson(j)));
        if (jobs.length === 0) return out.note("the DLQ is empty");
        out.table(
          ["ID", "ATTEMPTS", "EXIT", "LAST ERROR", "COMMAND"],
          jobs.map((j) => [
            j.id,
            String(j.attempts),
            j.exit_code === null ? "-" : String(j.exit_code),
            (j.error ?? "-").slice(0, 50),
            j.command.slice(0, 60),
          ]),
        );
      });
    },
    parameters: {
      flags: {
        ...globalFlags,
        limit: {
          kind: "parsed",
          parse: limitParser,
          brief: "At most this many jobs (default 100)",
          optional: true,
          placeholder: "n",
        },
      },
    },
    docs: { brief: "List jobs in the dead letter queue" },
  });

interface RestoreFlags extends GlobalFlags {
  all: boolean;
}

const restoreCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: RestoreFlags, id?: string) {
      await withStore(this, flags, async (app, out) => {
        if (flags.all === (id !== undefined)) {
          throw new InvalidInput("Give a job id or --all", { hint: "queuectl dlq restore <id>" });
        }
        if (id !== undefined) {
          const job = await restoreJob(app, id);
          if (out.json) out.printJson(jobToJson(job));
          else out.line(`${job.id} restored to pending`);
          return;
        }
        const kept: string[] = [];
        const ids = await restoreAll(app, (id, reason) => {
          kept.push(id);
          out.note(`kept ${safe(id)} in the DLQ: ${safe(reason)}`);
        });
        if (out.json) out.printJson({ restored: ids, kept });
        else out.line(`restored ${ids.length} job${ids.length === 1 ? "" : "s"} to pending`);
      });
    },
    parameters: {
      flags: {
        ...globalFlags,
        all: { kind: "boolean", brief: "Restore every job in the DLQ", default: false },
      },
      positional: {
        kind: "tuple",
        parameters: [{ brief: "Job id", parse: String, optional: true, placeholder: "id" }],
      },
    },
    docs: { brief: "Move a dead job (or --all) back to pending with a fresh retry budget" },
  });

const moveCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags, id: string) {
      await withStore(this, flags, async (app, out) => {
        const job = await moveJobToDlq(app, id);
        if (out.json) out.printJson(jobToJson(job));
        else out.line(`${job.id} moved to the DLQ`);
      });
    },
    parameters: {
      flags: globalFlags,
      positional: {
        kind: "tuple",
        parameters: [{ brief: "Job id", parse: String, placeholder: "id" }],
      },
    },
    docs: { brief: "Move a failed job (waiting for its retry) to the DLQ now" },
  });

const purgeCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags) {
      await withStore(this, flags, async (app, out) => {
        const ids = await purgeDlq(app);
        if (out.json) out.printJson({ purged: ids.length });
        else out.line(`purged ${ids.length} dead job${ids.length === 1 ? "" : "s"}`);
      });
    },
    parameters: { flags: globalFlags },
    docs: { brief: "Delete every job in the DLQ" },
  });

export const dlqRoutes = () =>
  buildRouteMap({
    routes: {
      list: listCommand(),
      restore: restoreCommand(),
      move: moveCommand(),
      purge: purgeCommand(),
    },
    aliases: { retry: "restore", ls: "list" },
    docs: {
      brief:
        "Dead letter queue: jobs that used all their retries, were killed, or were moved there",
    },
  });
