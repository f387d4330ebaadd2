/**
 * The command tree. One file per command group; each command parses its flags, calls src/app/
 * and renders the result.
 *
 * Every command and route map is built on demand: building all of them (flag tables, stricli's
 * conflict checks) costs about 2 ms, a tenth of a start. `appFor(args)` builds only the route that
 * the first argument names, and the whole tree for anything else (`--help`, `--version`, a typo
 * that needs "did you mean", completions); what stricli prints for that route is the same either
 * way (tests/cli/mod_test.ts).
 */
import {
  type Application,
  ArgumentParseError,
  buildApplication,
  buildRouteMap,
  type Command,
  type RouteMap,
  run,
  text_en,
} from "@stricli/core";
import denoJson from "../../deno.json" with { type: "json" };
import type { CliContext } from "./context.ts";
import { configRoutes } from "./config.ts";
import { completeCommand, completionsCommand } from "./completions.ts";
import { dashboardCommand } from "./dashboard.ts";
import { dlqRoutes } from "./dlq.ts";
import { enqueueCommand } from "./enqueue.ts";
import { killCommand } from "./kill.ts";
import {
  cancelCommand,
  listCommand,
  logsCommand,
  purgeCommand,
  retryCommand,
  showCommand,
  statusCommand,
} from "./jobs.ts";
import { queueRoutes } from "./queue.ts";
import { scheduleRoutes } from "./schedule.ts";
import { waitCommand } from "./wait.ts";
import { workerRoutes } from "./worker.ts";
import { QueueError } from "../core/errors.ts";
import { oneSafeLine, quote, QUOTE_MAX } from "../core/text.ts";

type RoutingTarget<C extends CliContext> = Command<C> | RouteMap<C>;

export const VERSION: string = denoJson.version;

/** Top-level routes, each a builder. */
const ROUTES = {
  enqueue: enqueueCommand,
  list: listCommand,
  show: showCommand,
  logs: logsCommand,
  status: statusCommand,
  retry: retryCommand,
  cancel: cancelCommand,
  kill: killCommand,
  purge: purgeCommand,
  wait: waitCommand,
  dlq: dlqRoutes,
  queue: queueRoutes,
  schedule: scheduleRoutes,
  worker: workerRoutes,
  dashboard: dashboardCommand,
  config: configRoutes,
  completions: completionsCommand,
  __complete: completeCommand,
} satisfies Record<string, () => RoutingTarget<CliContext>>;
type RouteName = keyof typeof ROUTES;
const ROUTE_NAMES = Object.keys(ROUTES) as RouteName[];
const ALIASES = { ls: "list" } as const satisfies Record<string, RouteName>;
const HIDDEN: readonly RouteName[] = ["__complete"];

function isRouteName(name: string): name is RouteName {
  return Object.hasOwn(ROUTES, name);
}

/**
 * The first line of an error from the argument parser, which quotes the input whole
 * (`Failed to parse "<100 KB>"`). A value a flag's parser refused: our parsers' own message (it
 * names the flag and the value, cut by `quote()`), else stricli's with the value cut by `quote()`.
 * Any other error: each long quoted value cut the same way, then escaped.
 */
function firstLine(exc: unknown): string {
  if (exc instanceof ArgumentParseError) {
    const inner = exc.exception;
    if (inner instanceof QueueError) return oneSafeLine(inner.message.split("\n")[0]);
    let why = (inner instanceof Error ? inner.message : String(inner)).split("\n")[0];
    // A long value in stricli's own message (`<value> is not one of ...`): cut as quote() cuts.
    if (exc.input.length > QUOTE_MAX) why = why.replaceAll(exc.input, quote(exc.input));
    return oneSafeLine(
      `Failed to parse ${quote(exc.input)} for ${exc.externalFlagNameOrPlaceholder}: ${why}`,
    );
  }
  const message = exc instanceof Error ? exc.message : String(exc);
  return oneSafeLine(
    message.split("\n")[0].replace(/"([^"]{61,})"/g, (_, inner: string) => quote(inner)),
  );
}

/** The application with the given top-level routes (and their aliases) only. */
function buildApp(names: readonly RouteName[]): Application<CliContext> {
  const routes: Partial<Record<RouteName, RoutingTarget<CliContext>>> = {};
  for (const name of names) routes[name] = ROUTES[name]();
  const aliases = Object.fromEntries(
    Object.entries(ALIASES).filter(([, to]) => names.includes(to)),
  );
  const hideRoute = Object.fromEntries(
    HIDDEN.filter((name) => names.includes(name)).map((name) => [name, true]),
  );
  const root = buildRouteMap({
    routes: routes as Record<RouteName, RoutingTarget<CliContext>>,
    aliases,
    docs: {
      brief: "queuectl: a job queue for shell commands with retries, backoff and a DLQ",
      hideRoute,
    },
  });
  return buildApplication<CliContext>(root, {
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
          `error: unknown command ${quote(input)}${
            corrections.length ? ` (did you mean ${corrections.join(" or ")}?)` : " (see --help)"
          }`,
        exceptionWhileRunningCommand: (exc: unknown) => `error: internal error: ${firstLine(exc)}`,
      }),
    },
  });
}

let full: Application<CliContext> | undefined;

/** The whole command tree (help, completions, anything `appFor` does not narrow down). */
export function fullApp(): Application<CliContext> {
  return full ??= buildApp(ROUTE_NAMES);
}

/**
 * `--version` (or `-v`) alone: stricli prints the version at the root before it looks at any
 * route, so one cheap route stands in for the tree (building all of them is most of what
 * `--version` cost; docs/architecture.md, "Import rules").
 */
const VERSION_ONLY_ROUTE: RouteName = "kill";

/**
 * The application for one command line: when the first argument names a top-level route (or an
 * alias of one), an application with that route only; `--version` or `-v` alone, an application
 * with one route; otherwise the whole tree.
 */
export function appFor(args: readonly string[]): Application<CliContext> {
  const first = args[0] ?? "";
  if (args.length === 1 && (first === "--version" || first === "-v")) {
    return buildApp([VERSION_ONLY_ROUTE]);
  }
  const name = Object.hasOwn(ALIASES, first) ? ALIASES[first as keyof typeof ALIASES] : first;
  return isRouteName(name) ? buildApp([name]) : fullApp();
}

/** Runs one command line in `context` (the command sets `context.process.exitCode`). */
export async function runCommandLine(args: readonly string[], context: CliContext): Promise<void> {
  await run(appFor(args), args, context);
}
