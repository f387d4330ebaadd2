/** `queuectl worker start | stop | list` and the hidden `worker run` (one worker process). */
import { buildCommand, buildRouteMap } from "@stricli/core";
import { parseDuration } from "../core/duration.ts";
import { ExitCodes, formatError, InvalidInput, StorageError } from "../core/errors.ts";
import { validateQueueName } from "../core/job.ts";
import type { Store } from "../store/store.ts";
import { isPostgresUrl } from "../store/mod.ts";
import { type CliContext, type GlobalFlags, globalFlags, withStore } from "./context.ts";
import { type Output, relative } from "./render.ts";

/** Loaded only when a worker command runs: other commands do not pay for it at start-up. */
const supervisorModule = () => import("../app/supervisor.ts");
const runnerModule = () => import("../worker/runner.ts");

function wholeNumber(what: string, min: number, max: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\s*\d+\s*$/.test(text) || n < min || n > max) {
      throw new InvalidInput(
        `Invalid ${what}: expected a whole number from ${min} to ${max}, got ${
          JSON.stringify(text)
        }`,
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

/** SQLite `:memory:` cannot be shared with worker processes. */
function checkShareable(dbUrl: string): void {
  if (!isPostgresUrl(dbUrl) && /^(sqlite:)?:memory:$/i.test(dbUrl.trim())) {
    throw new InvalidInput("Workers need a database file or a postgres:// URL, not :memory:", {
      hint: "pass --db <file>",
    });
  }
}

// --- worker start ---------------------------------------------------------------------------------

interface StartFlags extends GlobalFlags {
  count: number;
  queue?: readonly string[];
  detach: boolean;
  untilEmpty: boolean;
  log?: string;
}

const startCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: StartFlags) {
      await withStore(this, flags, async (app, out, dbUrl) => {
        checkShareable(dbUrl);
        const queues = flags.queue?.length ? [...flags.queue] : null;
        if (flags.detach) return await startDetached(app.store, dbUrl, flags, queues, out);
        const { fileLines, stdoutLines, Supervisor } = await supervisorModule();
        const logFile = flags.log ?? null;
        // stdoutLines, not out.line: a closed stdout (`| head`) must not crash the supervisor.
        const sink = logFile ? fileLines(logFile) : stdoutLines();
        try {
          const supervisor = new Supervisor({
            store: app.store,
            clock: app.clock,
            dbUrl,
            count: flags.count,
            queues,
            untilEmpty: flags.untilEmpty,
            logFile,
            out: sink,
          });
          return await supervisor.run();
        } catch (err) {
          // In the background nobody sees stderr: the error goes to the log too.
          if (logFile) sink(formatError(err));
          throw err;
        }
      });
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
            "Exit when no job is pending, processing or waiting for a retry (exit 6 if any job reached the DLQ)",
          default: false,
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

async function startDetached(
  store: Store,
  dbUrl: string,
  flags: StartFlags,
  queues: string[] | null,
  out: Output,
): Promise<number> {
  const { currentSelfExec, dbArgs, defaultLogFile, selfArgv } = await supervisorModule();
  const absolute = isPostgresUrl(dbUrl) ? dbUrl : absolutePath(dbUrl);
  const logFile = absolutePath(flags.log ?? defaultLogFile(absolute));
  const db = dbArgs(absolute);
  const args = [
    "worker",
    "start",
    ...db.args,
    "--count",
    String(flags.count),
    ...(queues ?? []).flatMap((q) => ["--queue", q]),
    ...(flags.untilEmpty ? ["--until-empty"] : []),
    "--log",
    logFile,
  ];
  const argv = selfArgv(currentSelfExec(), args);
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: db.env,
    stdin: "null",
    stdout: "null",
    stderr: "null",
    // A new session: the supervisor survives this terminal closing.
    detached: Deno.build.os !== "windows",
  }).spawn();
  child.unref();
  let exited: Deno.CommandStatus | null = null;
  child.status.then((s) => (exited = s));

  const deadline = performance.now() + 15_000;
  for (;;) {
    const records = await store.listWorkers();
    const sup = records.find((r) => r.pid === child.pid && r.supervisor_id === null);
    const workers = sup ? records.filter((r) => r.supervisor_id === sup.id).length : 0;
    if (sup && workers >= flags.count) {
      if (out.json) {
        out.printJson({
          supervisor_id: sup.id,
          supervisor_pid: child.pid,
          workers,
          log: logFile,
        });
      } else {
        out.line(
          `started ${workers} worker${
            workers === 1 ? "" : "s"
          } in the background (supervisor pid ${child.pid})`,
        );
        out.line(`log: ${logFile}`);
        out.note("stop them with `queuectl worker stop`");
      }
      return ExitCodes.ok;
    }
    const status = exited as Deno.CommandStatus | null;
    if (status !== null) {
      throw new StorageError(
        `The background supervisor exited at once (exit code ${status.code})`,
        { hint: `see ${logFile}` },
      );
    }
    if (performance.now() > deadline) {
      throw new StorageError("The background workers did not start within 15s", {
        hint: `see ${logFile}`,
      });
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

function absolutePath(path: string): string {
  const p = path.replace(/^sqlite:(\/\/)?/i, "");
  if (p.startsWith("/") || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith("\\\\")) return p;
  const sep = Deno.build.os === "windows" ? "\\" : "/";
  return `${Deno.cwd()}${sep}${p}`;
}

// --- worker run (hidden) ------------------------------------------------------------------------------

interface RunFlags extends GlobalFlags {
  supervisor?: string;
  index: number;
  queue?: readonly string[];
  log?: string;
}

const runCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: RunFlags) {
      await withStore(this, flags, async (app) => {
        const { fileLines, stdoutLines } = await supervisorModule();
        const { attachProcessControls, Runner } = await runnerModule();
        const log = flags.log ? fileLines(flags.log) : stdoutLines();
        const runner = new Runner({
          store: app.store,
          clock: app.clock,
          index: flags.index,
          queues: flags.queue?.length ? flags.queue : null,
          supervisorId: flags.supervisor ?? null,
          log,
        });
        const detach = attachProcessControls(runner, {
          supervised: flags.supervisor !== undefined,
        });
        try {
          return await runner.run();
        } finally {
          detach();
        }
      });
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
        const { stopWorkers } = await supervisorModule();
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
        const { listWorkerInfo, workerInfoToJson } = await supervisorModule();
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
