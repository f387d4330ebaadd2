/**
 * The worker use cases: start workers (a supervisor in the foreground, or in the background),
 * run one worker process (the hidden `worker run`), list them, stop them. The runtime itself is
 * src/worker/. cli/worker.ts loads this module with import(), so that no other command loads the
 * worker runtime at start-up (one chunk of the bundle for all of it).
 */
import { formatDuration } from "../core/duration.ts";
import { Conflict, formatError, InvalidInput, StorageError } from "../core/errors.ts";
import { isAlive, recentlyAlive, staleBefore } from "../core/liveness.ts";
import { isPostgresUrl } from "../store/location.ts";
import type { WorkerRecord } from "../store/store.ts";
import { hostname, processExists } from "../worker/host.ts";
import { fileLines, flushStdoutLines, stdoutLines } from "../worker/log_sink.ts";
import { keepIgnoredSignals } from "../worker/ignored_signals.ts";
import { attachProcessControls } from "../worker/process_controls.ts";
import { Runner } from "../worker/runner.ts";
import {
  currentSelfExec,
  dbArgs,
  defaultLogFile,
  forgetWorkerTuning,
  selfArgv,
} from "../worker/self_exec.ts";
import { Supervisor } from "../worker/supervisor.ts";
import { loadConfig } from "./config.ts";
import type { Ctx } from "./queue.ts";

/** SQLite `:memory:` cannot be shared with worker processes. */
export function checkShareable(dbUrl: string): void {
  if (!isPostgresUrl(dbUrl) && /^(sqlite:)?:memory:$/i.test(dbUrl.trim())) {
    throw new InvalidInput("Workers need a database file or a postgres:// URL, not :memory:", {
      hint: "pass --db <file>",
    });
  }
}

// --- worker start ---------------------------------------------------------------------------------

export interface StartOptions {
  /** The database URL the workers open (as given: a path, or a postgres:// URL). */
  dbUrl: string;
  count: number;
  /** Only jobs from these queues; null = every queue. */
  queues: readonly string[] | null;
  /** Exit once nothing is pending, processing or waiting for a retry. */
  untilEmpty: boolean;
  /** With untilEmpty: jobs due later than this (ms from now) do not count; null = wait for all. */
  horizonMs?: number | null;
  /** Append every line to this file instead of stdout. */
  logFile: string | null;
}

/**
 * `worker start`: a supervisor and its workers in this process's foreground, until they stop.
 * Resolves to the exit code (see Supervisor.run).
 */
export async function startWorkers(ctx: Ctx, opts: StartOptions): Promise<number> {
  checkShareable(opts.dbUrl);
  // stdoutLines, not the CLI's output: a closed stdout (`| head`) must not crash the supervisor.
  const sink = opts.logFile ? fileLines(opts.logFile) : stdoutLines();
  try {
    const supervisor = new Supervisor({
      store: ctx.store,
      clock: ctx.clock,
      dbUrl: opts.dbUrl,
      count: opts.count,
      queues: opts.queues,
      untilEmpty: opts.untilEmpty,
      horizonMs: opts.horizonMs ?? null,
      logFile: opts.logFile,
      out: sink,
    });
    const code = await supervisor.run();
    if (supervisor.gaveUp) await exitWorker(ctx, code, 1000);
    // Its last lines; a reader that stopped reading would keep the process alive forever.
    if (!await flushStdoutLines(STDOUT_FLUSH_MS)) await exitWorker(ctx, code, 1000, 0);
    return code;
  } catch (err) {
    // In the background nobody sees stderr: the error goes to the log too.
    if (opts.logFile) sink(formatError(err));
    throw err;
  }
}

export interface DetachedWorkers {
  supervisorId: string;
  supervisorPid: number;
  /** Worker processes registered when this returned. */
  workers: number;
  /** Where the background supervisor and its workers write. */
  logFile: string;
}

/** How long `worker start --detach` waits for the background workers to register. */
const DETACH_WAIT_MS = 15_000;

/**
 * `worker start --detach`: starts `worker start` in the background (a new session: it survives
 * this terminal), then waits until its supervisor and every worker registered. The log goes to
 * `logFile`, by default beside the database ({@link defaultLogFile}).
 */
export async function startWorkersDetached(
  ctx: Ctx,
  opts: Omit<StartOptions, "logFile"> & { logFile?: string | null },
): Promise<DetachedWorkers> {
  checkShareable(opts.dbUrl);
  const absolute = isPostgresUrl(opts.dbUrl) ? opts.dbUrl : absolutePath(opts.dbUrl);
  const logFile = absolutePath(opts.logFile ?? defaultLogFile(absolute));
  const db = dbArgs(absolute);
  const args = [
    "worker",
    "start",
    ...db.args,
    "--count",
    String(opts.count),
    ...(opts.queues ?? []).flatMap((q) => ["--queue", q]),
    ...(opts.untilEmpty ? ["--until-empty"] : []),
    ...(opts.horizonMs != null ? ["--horizon", `${opts.horizonMs / 1000}s`] : []),
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

  const deadline = performance.now() + DETACH_WAIT_MS;
  for (;;) {
    const records = await ctx.store.listWorkers();
    const sup = records.find((r) => r.pid === child.pid && r.supervisor_id === null);
    const workers = sup ? records.filter((r) => r.supervisor_id === sup.id).length : 0;
    if (sup && workers >= opts.count) {
      return { supervisorId: sup.id, supervisorPid: child.pid, workers, logFile };
    }
    const status = exited as Deno.CommandStatus | null;
    if (status !== null) {
      throw new StorageError(
        `The background supervisor exited at once (exit code ${status.code})`,
        { hint: `see ${logFile}` },
      );
    }
    if (performance.now() > deadline) {
      throw new StorageError(
        `The background workers did not start within ${formatDuration(DETACH_WAIT_MS)}`,
        { hint: `see ${logFile}` },
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A database or log path made absolute against the working directory (for the background). */
function absolutePath(path: string): string {
  const p = path.replace(/^sqlite:(\/\/)?/i, "");
  if (p.startsWith("/") || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith("\\\\")) return p;
  const sep = Deno.build.os === "windows" ? "\\" : "/";
  return `${Deno.cwd()}${sep}${p}`;
}

// --- worker run (one worker process) -------------------------------------------------------------

export interface RunWorkerOptions {
  /** The number shown in log lines. */
  index: number;
  queues: readonly string[] | null;
  /** The supervisor that spawned this process (its stdin is the control pipe), or null. */
  supervisorId: string | null;
  /** Append lines to this file instead of stdout. */
  logFile: string | null;
  /** The start marker its supervisor reads after its death (worker/start_marker.ts). */
  startMarker?: string | null;
}

/**
 * The hidden `worker run`: this process becomes one worker, obeying signals and (when supervised)
 * its supervisor's pipe, until it stops. Resolves to the exit code.
 */
export async function runWorker(ctx: Ctx, opts: RunWorkerOptions): Promise<never> {
  // Before any job starts: jobs inherit this environment (see self_exec.ts, workerTuningEnv).
  forgetWorkerTuning();
  const runner = new Runner({
    store: ctx.store,
    clock: ctx.clock,
    index: opts.index,
    queues: opts.queues?.length ? opts.queues : null,
    supervisorId: opts.supervisorId,
    log: opts.logFile ? fileLines(opts.logFile) : stdoutLines(),
    startMarker: opts.startMarker ?? undefined,
  });
  const supervised = opts.supervisorId !== null;
  const detach = attachProcessControls(runner, {
    supervised,
    ignored: supervised ? undefined : await keepIgnoredSignals(),
  });
  let code: number;
  try {
    code = await runner.run();
  } finally {
    detach();
  }
  // A worker process ends when its runner does, explicitly: after a cut link a socket of the
  // driver can keep the event loop alive for minutes (a SIGTERMed worker never exited in
  // postgres_workers_test). Its log lines are written first (exitWorker).
  return await exitWorker(ctx, code, runner.gaveUp ? 1000 : 5000);
}

/**
 * Ends this worker process: the store gets `graceMs` to close what it can (after an outage
 * nothing more is to be written, so a second), its lines `flushMs` to reach stdout, then the
 * process exits with `code`.
 */
async function exitWorker(
  ctx: Ctx,
  code: number,
  graceMs: number,
  flushMs = STDOUT_FLUSH_MS,
): Promise<never> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    ctx.store.close().catch(() => {}),
    new Promise((r) => (timer = setTimeout(r, graceMs))),
  ]);
  clearTimeout(timer);
  await flushStdoutLines(flushMs);
  Deno.exit(code);
}

/** How long an exiting worker or supervisor waits for its log lines to reach stdout. */
const STDOUT_FLUSH_MS = 2000;

// --- worker list ---------------------------------------------------------------------------------

export interface WorkerInfo {
  id: string;
  pid: number;
  host: string;
  queues: string[] | null;
  started_at: number;
  heartbeat_at: number;
  current_job: string | null;
  supervisor_id: string | null;
  /** Heartbeat within one lease. */
  alive: boolean;
}

/** `worker list`: every worker process (not supervisors), with the job it holds right now. */
export async function listWorkerInfo(ctx: Ctx): Promise<WorkerInfo[]> {
  const now = ctx.clock.now();
  const [records, config, processing] = await Promise.all([
    ctx.store.listWorkers(),
    loadConfig(ctx.store),
    ctx.store.listJobs({ state: "processing", limit: 10_000, order: "oldest" }),
  ]);
  const holding = new Map<string, string>();
  for (const job of processing) if (job.lease_owner) holding.set(job.lease_owner, job.id);
  return records.filter((r) => r.supervisor_id !== null).map((r) => ({
    id: r.id,
    pid: r.pid,
    host: r.host,
    queues: r.queues,
    started_at: r.started_at,
    heartbeat_at: r.heartbeat_at,
    current_job: holding.get(r.id) ?? null,
    supervisor_id: r.supervisor_id,
    alive: isAlive(r.heartbeat_at, now, config.lease),
  }));
}

export function workerInfoToJson(w: WorkerInfo): Record<string, unknown> {
  return {
    id: w.id,
    pid: w.pid,
    host: w.host,
    queues: w.queues,
    started_at: new Date(w.started_at).toISOString(),
    heartbeat_at: new Date(w.heartbeat_at).toISOString(),
    current_job: w.current_job,
    supervisor_id: w.supervisor_id,
    alive: w.alive,
  };
}

// --- worker stop -----------------------------------------------------------------------------------

export interface StopOptions {
  /** Give up waiting after this long. */
  timeoutMs: number;
  /** Terminate running jobs (released to pending) instead of letting them finish; SIGKILL what is
   * still alive at the timeout. */
  force: boolean;
  /** Progress lines for people. */
  note?: (text: string) => void;
  /** How often to look at the records while waiting. Default 100 ms. */
  pollMs?: number;
}

export interface StopReport {
  /** Worker processes (not supervisors) that were running when the stop began. */
  workers: number;
  /** Processes killed with SIGKILL after the timeout (--force). */
  killed: number;
}

/**
 * `worker stop`: records a stop request for every worker and supervisor (seen on their next
 * heartbeat, on any host), signals the ones on this machine so they act at once, and waits until
 * every record is gone. Records of processes that died without cleaning up are removed (a
 * process that was only away finds the stop recorded when it comes back).
 */
export async function stopWorkers(ctx: Ctx, opts: StopOptions): Promise<StopReport> {
  const { store, clock } = ctx;
  const config = await loadConfig(store);
  const host = hostname();
  const started = performance.now();
  const pollMs = opts.pollMs ?? 100;

  const isGone = (r: WorkerRecord, now: number): boolean =>
    r.heartbeat_at < staleBefore(now, config.lease) ||
    (r.host === host && Deno.build.os !== "windows" && !processExists(r.pid));
  let removed = 0;
  const live = async (): Promise<WorkerRecord[]> => {
    const now = clock.now();
    const records = await store.listWorkers();
    const alive: WorkerRecord[] = [];
    for (const r of records) {
      if (isGone(r, now)) {
        await store.removeWorker({ id: r.id });
        removed++;
      } else alive.push(r);
    }
    return alive;
  };

  const initial = await live();
  const report: StopReport = {
    workers: initial.filter((r) => r.supervisor_id !== null).length,
    killed: 0,
  };
  // Records removed as stale may belong to a host that is only away (cut off, frozen): the stop
  // is recorded for it too (Store.lastStopRequest), so that it stops when it comes back.
  if (initial.length === 0) {
    if (removed > 0) await store.requestStop({ now: clock.now() });
    return report;
  }
  await store.requestStop({ now: clock.now() });

  // Signal local processes: supervisors relay to their workers; orphan workers get it directly.
  const supervisors = new Set(initial.filter((r) => r.supervisor_id === null).map((r) => r.id));
  const signalledAt = clock.now();
  const targets = initial.filter((r) =>
    r.host === host && (r.supervisor_id === null || !supervisors.has(r.supervisor_id)) &&
    recentlyAlive(r.heartbeat_at, signalledAt, config.lease, r.supervisor_id === null)
  );
  const signal = (sig: Deno.Signal) => {
    for (const r of targets) {
      try {
        Deno.kill(r.pid, sig);
      } catch {
        // already gone
      }
    }
  };
  if (Deno.build.os !== "windows") {
    signal("SIGTERM");
    if (opts.force) {
      // A second, distinct signal: "terminate the running jobs" (two SIGTERMs may coalesce).
      await new Promise((r) => setTimeout(r, 100));
      signal("SIGINT");
    }
  }
  opts.note?.(
    `asked ${report.workers} worker${report.workers === 1 ? "" : "s"} to ${
      opts.force ? "stop now" : "finish their jobs and stop"
    }`,
  );

  for (;;) {
    const alive = await live();
    if (alive.length === 0) return report;
    if (performance.now() - started >= opts.timeoutMs) {
      if (!opts.force) {
        const jobs = alive.filter((r) => r.current_job).length;
        throw new Conflict(
          `${alive.length} worker process${
            alive.length === 1 ? " is" : "es are"
          } still running after ${formatDuration(opts.timeoutMs)}${
            jobs ? ` (${jobs} finishing a job)` : ""
          }`,
          {
            hint:
              "they stop once their jobs finish; wait with a longer --timeout, or use --force to terminate the jobs",
          },
        );
      }
      const now = clock.now();
      for (const r of alive) {
        if (
          r.host !== host ||
          !recentlyAlive(r.heartbeat_at, now, config.lease, r.supervisor_id === null)
        ) continue;
        try {
          Deno.kill(r.pid, "SIGKILL");
          report.killed++;
        } catch {
          // gone meanwhile
        }
        await store.removeWorker({ id: r.id });
      }
      const remote = alive.filter((r) => r.host !== host).length;
      if (remote > 0) {
        throw new Conflict(
          `${remote} worker process${
            remote === 1 ? " is" : "es are"
          } on other hosts and still running`,
          { hint: "they stop at their next heartbeat; run `queuectl worker list` to see them" },
        );
      }
      return report;
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
