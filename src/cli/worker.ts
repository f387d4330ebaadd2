/** `queuectl worker start | stop | list` and the hidden `worker run` (one worker process). */
import { buildCommand, buildRouteMap } from "@stricli/core";
import { parseDuration } from "../core/duration.ts";
import { ExitCodes, InvalidInput } from "../core/errors.ts";
import { validateQueueName } from "../core/job.ts";
import { type CliContext, type GlobalFlags, globalFlags, withStore } from "./context.ts";
import { relative, safe } from "./render.ts";
import { quote } from "../core/text.ts";

/** Loaded only when a worker command runs: other commands do not pay for it at start-up. */
const workersModule = () => import("../app/workers.ts");

function wholeNumber(what: string, min: number, max: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\s*\d+\s*$/.test(text) || n < min || n > max) {
      throw new InvalidInput(
        `Invalid ${what}: expected a whole number from ${min} to ${max}, got ${quote(text)}`,
      );
    }
    return n;
  };
}

const queueFlag = {
  kind: "parsed",
  parse: validateQueueName,
  brief: "Only take jobs from this queue (repeat for several; default: every queue)",
  optional: true,
  variadic: true,
  placeholder: "queue",
} as const;

// --- worker start ---------------------------------------------------------------------------------

interface StartFlags extends GlobalFlags {
  count: number;
  queue?: readonly string[];
  detach: boolean;
  untilEmpty: boolean;
  horizon?: string;
  log?: string;
}

const startCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: StartFlags) {
      await withStore(this, flags, async (app, out, dbUrl) => {
        if (flags.horizon !== undefined && !flags.untilEmpty) {
          throw new InvalidInput("--horizon applies only with --until-empty");
        }
        const horizonMs = flags.horizon === undefined
          ? null
          : parseDuration(flags.horizon, "--horizon");
        const { startWorkers, startWorkersDetached } = await workersModule();
        const start = {
          dbUrl,
          count: flags.count,
          queues: flags.queue?.length ? [...flags.queue] : null,
          untilEmpty: flags.untilEmpty,
          horizonMs,
          logFile: flags.log ?? null,
        };
        if (!flags.detach) return await startWorkers(app, start);
        const started = await startWorkersDetached(app, start);
        if (out.json) {
          return out.printJson({
            supervisor_id: started.supervisorId,
            supervisor_pid: started.supervisorPid,
            workers: started.workers,
            log: started.logFile,
          });
        }
        out.line(
          `started ${started.workers} worker${
            started.workers === 1 ? "" : "s"
          } in the background (supervisor pid ${started.supervisorPid})`,
        );
        out.line(`log: ${safe(started.logFile)}`);
        out.note("stop them with `queuectl worker stop`");
        return ExitCodes.ok;
      }, { longRunning: true });
    },
    parameters: {
      flags: {
        ...globalFlags,
        count: {
          kind: "parsed",
          // The upper bound (MAX_WORKERS) is checked by the supervisor.
          parse: wholeNumber("--count", 1, 1_000_000),
          brief: "Number of worker processes",
          default: "1",
          placeholder: "n",
        },
        queue: queueFlag,
        detach: {
          kind: "boolean",
          brief: "Run in the background; output goes to a log file beside the database",
          default: false,
        },
        untilEmpty: {
          kind: "boolean",
          brief:
            "Exit when no job is pending, processing or waiting for a retry, however far off its run time (says what it waits for; exit 6 if any job reached the DLQ)",
          default: false,
        },
        horizon: {
          kind: "parsed",
          parse: String,
          brief:
            "With --until-empty: do not wait for jobs due later than this from now (delayed jobs, retries), e.g. 10s; 0 = only what is due now",
          optional: true,
          placeholder: "duration",
        },
        log: {
          kind: "parsed",
          parse: String,
          brief: "Append output to this file (default with --detach: <db>-worker.log)",
          optional: true,
          placeholder: "file",
        },
      },
      aliases: { n: "count", q: "queue", d: "detach" },
    },
    docs: {
      brief: "Start worker processes (foreground, or --detach); Ctrl-C stops them gracefully",
    },
  });

// --- worker run (hidden) ------------------------------------------------------------------------------

interface RunFlags extends GlobalFlags {
  supervisor?: string;
  index: number;
  queue?: readonly string[];
  log?: string;
  startMarker?: string;
}

const runCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: RunFlags) {
      await withStore(this, flags, async (app) => {
        const { runWorker } = await workersModule();
        return await runWorker(app, {
          index: flags.index,
          queues: flags.queue?.length ? flags.queue : null,
          supervisorId: flags.supervisor ?? null,
          logFile: flags.log ?? null,
          startMarker: flags.startMarker ?? null,
        });
      }, { longRunning: true });
    },
    parameters: {
      flags: {
        ...globalFlags,
        supervisor: {
          kind: "parsed",
          parse: String,
          brief: "Id of the supervisor that spawned this worker (its stdin is the control pipe)",
          optional: true,
        },
        index: {
          kind: "parsed",
          parse: wholeNumber("--index", 0, 1_000_000),
          brief: "Worker number shown in log lines",
          default: "1",
        },
        queue: queueFlag,
        log: {
          kind: "parsed",
          parse: String,
          brief: "Append output to this file",
          optional: true,
          placeholder: "file",
        },
        startMarker: {
          kind: "parsed",
          parse: String,
          brief: "Record each job here right before it starts (read by the supervisor)",
          optional: true,
          placeholder: "file",
        },
      },
    },
    docs: { brief: "Run one worker process in the foreground (used by `worker start`)" },
  });

// --- worker stop ----------------------------------------------------------------------------------

interface StopFlags extends GlobalFlags {
  timeout?: string;
  force: boolean;
}

const stopCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: StopFlags) {
      await withStore(this, flags, async (app, out) => {
        const timeoutMs = flags.timeout === undefined
          ? (flags.force ? 10_000 : 60_000)
          : parseDuration(flags.timeout, "--timeout");
        const { stopWorkers } = await workersModule();
        const report = await stopWorkers(app, {
          timeoutMs,
          force: flags.force,
          note: out.json ? undefined : (t) => out.note(t),
        });
        if (out.json) return out.printJson({ stopped: report.workers, killed: report.killed });
        if (report.workers === 0) return out.line("no workers running");
        out.line(
          `stopped ${report.workers} worker${report.workers === 1 ? "" : "s"}${
            report.killed
              ? ` (${report.killed} process${report.killed === 1 ? "" : "es"} killed)`
              : ""
          }`,
        );
      });
    },
    parameters: {
      flags: {
        ...globalFlags,
        timeout: {
          kind: "parsed",
          parse: String,
          brief: "Give up waiting after this long (default 60s, 10s with --force), e.g. 30 or 2m",
          optional: true,
          placeholder: "duration",
        },
        force: {
          kind: "boolean",
          brief:
            "Terminate running jobs now (they return to pending); kill what is left at the timeout",
          default: false,
        },
      },
    },
    docs: { brief: "Stop every running worker: each finishes its job in hand, then exits" },
  });

// --- worker list ----------------------------------------------------------------------------------

const listCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags) {
      await withStore(this, flags, async (app, out) => {
        const { listWorkerInfo, workerInfoToJson } = await workersModule();
        const workers = await listWorkerInfo(app);
        if (out.json) return out.printJson(workers.map(workerInfoToJson));
        if (workers.length === 0) return out.note("no workers running");
        const now = app.clock.now();
        out.table(
          ["ID", "PID", "HOST", "QUEUES", "STARTED", "HEARTBEAT", "JOB"],
          workers.map((w) => [
            w.id,
            String(w.pid),
            w.host,
            w.queues?.join(",") ?? "*",
            relative(w.started_at, now),
            w.alive ? relative(w.heartbeat_at, now) : out.paint(31, relative(w.heartbeat_at, now)),
            w.current_job ?? "-",
          ]),
        );
      });
    },
    parameters: { flags: globalFlags },
    docs: { brief: "List worker processes: pid, host, queues, heartbeat, job in hand" },
  });

export const workerRoutes = () =>
  buildRouteMap({
    routes: { start: startCommand(), stop: stopCommand(), list: listCommand(), run: runCommand() },
    aliases: { ls: "list" },
    docs: {
      brief: "Start, stop and list worker processes",
      hideRoute: { run: true },
    },
  });
