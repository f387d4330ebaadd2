/**
 * The command tree. One file per command group; each command parses its flags, calls src/app/
 * and renders the result.
 */
import { buildApplication, buildRouteMap, text_en } from "@stricli/core";
import denoJson from "../../deno.json" with { type: "json" };
import type { CliContext } from "./context.ts";
import { configRoutes } from "./config.ts";
import { completeCommand, completionsCommand } from "./completions.ts";
import { dashboardCommand } from "./dashboard.ts";
import { dlqRoutes } from "./dlq.ts";
import { enqueueCommand } from "./enqueue.ts";
import {
  cancelCommand,
  listCommand,
  logsCommand,
  purgeCommand,
  retryCommand,
  showCommand,
  statusCommand,
} from "./jobs.ts";
import { workerRoutes } from "./worker.ts";

export const VERSION: string = denoJson.version;

const root = buildRouteMap({
  routes: {
    enqueue: enqueueCommand,
    list: listCommand,
    show: showCommand,
    logs: logsCommand,
    status: statusCommand,
    retry: retryCommand,
    cancel: cancelCommand,
    purge: purgeCommand,
    dlq: dlqRoutes,
    worker: workerRoutes,
    dashboard: dashboardCommand,
    config: configRoutes,
    completions: completionsCommand,
    __complete: completeCommand,
  },
  aliases: { ls: "list" },
  docs: {
    brief: "queuectl: a job queue for shell commands with retries, backoff and a DLQ",
    hideRoute: { __complete: true },
  },
});

function firstLine(exc: unknown): string {
  const message = exc instanceof Error ? exc.message : String(exc);
  return message.split("\n")[0];
}

export const app = buildApplication<CliContext>(root, {
  name: "queuectl",
  versionInfo: { currentVersion: VERSION },
  scanner: { caseStyle: "allow-kebab-for-camel", allowArgumentEscapeSequence: true },
  documentation: { caseStyle: "convert-camel-to-kebab", disableAnsiColor: true },
  localization: {
    loadText: () => ({
      ...text_en,
      exceptionWhileParsingArguments: (exc: unknown) =>
        `error: ${firstLine(exc)} (see --help for usage)`,
      noCommandRegisteredForInput: ({ input, corrections }) =>
        `error: unknown command ${JSON.stringify(input)}${
          corrections.length ? ` (did you mean ${corrections.join(" or ")}?)` : " (see --help)"
        }`,
      exceptionWhileRunningCommand: (exc: unknown) => `error: internal error: ${firstLine(exc)}`,
    }),
  },
});
