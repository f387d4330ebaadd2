/**
 * Worker supervision: `worker start` runs a supervisor that spawns N worker subprocesses
 * (this same program, hidden `worker run` command), restarts the ones that die, and stops them
 * on a signal, a stop request in the database, or (with --until-empty) when the queue is empty.
 * Also the `worker stop` and `worker list` use cases.
 *
 * Control flows one way, supervisor → worker, over each worker's stdin pipe: a line `stop`
 * (finish the job in hand, exit), a line `abort` (terminate the job, release it, exit). When the
 * supervisor dies, even by SIGKILL, the kernel closes the pipes and the workers stop on their own
 * (within one lease). On Unix each worker leads its own session, so Ctrl-C (SIGINT to the
 * terminal's foreground process group) reaches the supervisor alone; elsewhere it reaches every
 * process, and workers ignore SIGINT and wait for the supervisor's order. Either way one Ctrl-C is
 * one graceful stop.
 */
import denoJson from "../../deno.json" with { type: "json" };
import type { Clock } from "../core/clock.ts";
import { formatDuration } from "../core/duration.ts";
import { Conflict, ExitCodes, formatError, InvalidInput } from "../core/errors.ts";
import type { JobState } from "../core/job.ts";
import { defaultDbPath, isPostgresUrl } from "../store/mod.ts";
import type { Store, WorkerRecord } from "../store/store.ts";
import { randomSuffix, rescueExpiredLeases } from "../worker/runner.ts";
import { type Config, loadConfig } from "./config.ts";
import type { Ctx } from "./queue.ts";

// --- how to re-execute this program --------------------------------------------------------------

/** What is needed to start this program again as a subprocess. */
export interface SelfExec {
  /** True in a `deno compile`d binary: the executable is the program. */
  standalone: boolean;
  /** Deno.execPath(): the deno binary, or the compiled program. */
  execPath: string;
  /** The entry module (src/main.ts) as a URL, for `deno run`. */
  mainModule: string;
  /** deno.json to pass with --config (import map, lock file), when it is a local file. */
  configPath: string | null;
  /** The explicit permission flags of deno.json's `queuectl` task. */
  permissionFlags: readonly string[];
}

/** The `--allow-*` / `--deny-*` flags of a deno task command line. */
export function permissionFlagsFromTask(task: string): string[] {
  return task.split(/\s+/).filter((t) => /^--(allow|deny)-[a-z-]+(=.*)?$/.test(t));
}

/** How this process itself runs. */
export function currentSelfExec(): SelfExec {
  // From source this module is src/app/supervisor.ts: the entry is src/main.ts and deno.json
  // (import map, lock file) is two levels up. From the bundle (`deno task build`) every module is
  // a chunk beside the entry, the main module, and needs no deno.json (dependencies are inlined).
  const fromSource = import.meta.url.endsWith("/src/app/supervisor.ts");
  const main = fromSource ? new URL("../main.ts", import.meta.url) : new URL(Deno.mainModule);
  const config = fromSource ? new URL("../../deno.json", import.meta.url) : null;
  return {
    standalone: Deno.build.standalone,
    execPath: Deno.execPath(),
    mainModule: main.href,
    // A file URL's pathname is "/C:/..." on Windows: drop that first slash to get a usable path.
    configPath: config?.protocol === "file:"
      ? decodeURIComponent(config.pathname).replace(/^\/([A-Za-z]:)/, "$1")
      : null,
    permissionFlags: permissionFlagsFromTask(denoJson.tasks.queuectl),
  };
}

/**
 * The argv that runs this program with `args`: `[deno, "run", <permissions>, --config <deno.json>,
 * <src/main.ts>, ...args]` under `deno run`, `[<binary>, ...args]` in a compiled binary.
 */
export function selfArgv(self: SelfExec, args: readonly string[]): string[] {
  if (self.standalone) return [self.execPath, ...args];
  return [
    self.execPath,
    "run",
    ...self.permissionFlags,
    ...(self.configPath ? ["--config", self.configPath] : []),
    self.mainModule,
    ...args,
  ];
}

export interface WorkerRunSpec {
  dbUrl: string;
  supervisorId: string;
  index: number;
  queues: readonly string[] | null;
  logFile: string | null;
}

/**
 * How a child process gets the database: `--db <url>`, or QUEUECTL_DB in its environment when
 * the URL holds a password (argv is visible to every user in `ps`).
 */
export function dbArgs(dbUrl: string): { args: string[]; env: Record<string, string> } {
  const secret = isPostgresUrl(dbUrl) && /^[a-z]+:\/\/[^/@]*:[^/@]*@/i.test(dbUrl);
  return secret ? { args: [], env: { QUEUECTL_DB: dbUrl } } : { args: ["--db", dbUrl], env: {} };
}

/** Arguments of the hidden `worker run` command, and the environment to add. */
export function workerRunArgs(
  spec: WorkerRunSpec,
): { args: string[]; env: Record<string, string> } {
  const db = dbArgs(spec.dbUrl);
  const args = [
    "worker",
    "run",
    ...db.args,
    "--supervisor",
    spec.supervisorId,
    "--index",
    String(spec.index),
  ];
  for (const q of spec.queues ?? []) args.push("--queue", q);
  if (spec.logFile) args.push("--log", spec.logFile);
  return { args, env: db.env };
}

/** Where `worker start --detach` writes the log: beside the database file, or in the data dir. */
export function defaultLogFile(
  dbUrl: string,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): string {
  if (isPostgresUrl(dbUrl)) {
    return defaultDbPath(env).replace(/[\\/][^\\/]*$/, "") +
      (Deno.build.os === "windows" ? "\\" : "/") + "queuectl-worker.log";
  }
  return `${dbUrl.replace(/^sqlite:(\/\/)?/i, "")}-worker.log`;
}

// --- log sinks -------------------------------------------------------------------------------------

const encoder = new TextEncoder();

/** Writes whole lines to stdout in one write each (lines from several processes never mix). */
export function stdoutLines(): (line: string) => void {
  return (line) => writeAll(Deno.stdout, line + "\n");
}

/** Appends timestamped lines to a file (O_APPEND: several processes may share it). */
export function fileLines(path: string): (line: string) => void {
  const file = Deno.openSync(path, { append: true, create: true, mode: 0o600 });
  return (line) => writeAll(file, `${new Date().toISOString()} ${line}\n`);
}

function writeAll(w: { writeSync(p: Uint8Array): number }, text: string): void {
  try {
    const bytes = encoder.encode(text);
    let off = 0;
    while (off < bytes.length) off += w.writeSync(bytes.subarray(off));
  } catch {
    // stdout closed (pipe reader gone): logging must never kill a worker
  }
}

// --- the supervisor ----------------------------------------------------------------------------------

export interface SupervisorOptions {
  store: Store;
  clock: Clock;
  dbUrl: string;
  count: number;
  queues: readonly string[] | null;
  /** Exit once nothing is pending, processing or waiting for a retry. */
  untilEmpty: boolean;
  /** Workers append their lines to this file instead of the inherited stdout (--detach). */
  logFile: string | null;
  /** The supervisor's own lines. */
  out: (line: string) => void;
  self?: SelfExec;
  /** Restart delay after the n-th quick crash in a row (n >= 1). Default 0.5s doubling, max 5s. */
  restartDelayMs?: (crashes: number) => number;
  /**
   * How often --until-empty looks at the queue. Default 100 ms; sooner when the queue is about to
   * run dry (see {@link nextLookMs}).
   */
  emptyCheckMs?: number;
  /** Listen to SIGINT/SIGTERM (default true). */
  handleSignals?: boolean;
}

export const MAX_WORKERS = 64;

interface Slot {
  index: number;
  child: Deno.ChildProcess | null;
  writer: WritableStreamDefaultWriter<Uint8Array> | null;
  startedAt: number;
  quickCrashes: number;
  restartTimer: ReturnType<typeof setTimeout> | undefined;
  /** Will not run again (stopped on its own, or supervisor stopping). */
  done: boolean;
}

/** A worker that lived at least this long before dying resets its restart backoff. */
const STABLE_MS = 10_000;
const HEARTBEAT_MS = 1000;
const EMPTY_CHECK_MS = 100;
/** The shortest wait between two looks at the queue (--until-empty). */
export const EMPTY_CHECK_MIN_MS = 10;

export function defaultRestartDelayMs(crashes: number): number {
  return Math.min(500 * 2 ** Math.max(0, crashes - 1), 5000);
}

export class Supervisor {
  readonly id = `s-${randomSuffix()}`;
  readonly #o: SupervisorOptions;
  readonly #self: SelfExec;
  readonly #slots: Slot[] = [];
  #stopMode: "graceful" | "abort" | null = null;
  #allDone!: () => void;
  readonly #allDonePromise = new Promise<void>((resolve) => (this.#allDone = resolve));
  #config!: Config;
  #runStart = 0;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #finished = false;

  constructor(opts: SupervisorOptions) {
    if (!Number.isInteger(opts.count) || opts.count < 1 || opts.count > MAX_WORKERS) {
      throw new InvalidInput(
        `Invalid --count: expected a whole number from 1 to ${MAX_WORKERS}, got ${opts.count}`,
      );
    }
    this.#o = opts;
    this.#self = opts.self ?? currentSelfExec();
  }

  #say(text: string): void {
    this.#o.out(`[supervisor] ${text}`);
  }

  /** Pids of the running workers (for tests and `worker list`). */
  get workerPids(): number[] {
    return this.#slots.flatMap((s) => (s.child ? [s.child.pid] : []));
  }

  /** Runs until stopped; resolves to the exit code. */
  async run(): Promise<number> {
    const { store, clock } = this.#o;
    this.#config = await loadConfig(store);
    this.#runStart = clock.now();
    const now = this.#runStart;
    await this.#register(now);
    const detachSignals = this.#o.handleSignals === false ? () => {} : this.#listenToSignals();
    try {
      await pruneStaleWorkers(store, now, this.#config);
      for (const line of await rescueExpiredLeases(store, now, this.#config)) this.#say(line);
      const queues = this.#o.queues?.length
        ? ` on queue${this.#o.queues.length > 1 ? "s" : ""} ${this.#o.queues.join(", ")}`
        : "";
      this.#say(
        `starting ${this.#o.count} worker${
          this.#o.count === 1 ? "" : "s"
        }${queues} (pid ${Deno.pid})`,
      );
      for (let i = 1; i <= this.#o.count; i++) {
        const slot: Slot = {
          index: i,
          child: null,
          writer: null,
          startedAt: 0,
          quickCrashes: 0,
          restartTimer: undefined,
          done: false,
        };
        this.#slots.push(slot);
        this.#spawn(slot);
      }
      this.#every(HEARTBEAT_MS, () => this.#heartbeat());
      if (this.#o.untilEmpty) this.#checkEmptyIn(this.#o.emptyCheckMs ?? EMPTY_CHECK_MS);
      await this.#allDonePromise;
    } finally {
      this.#finished = true;
      for (const t of this.#timers) clearTimeout(t);
      detachSignals();
      try {
        await store.removeWorker({ id: this.id });
      } catch {
        // pruned later as stale
      }
    }
    this.#say("all workers stopped");
    if (this.#stopMode === "abort") return 130;
    if (this.#o.untilEmpty) {
      const dead = await deadSince(store, this.#runStart, this.#o.queues);
      if (dead > 0) {
        this.#say(`${dead} job${dead === 1 ? "" : "s"} moved to the DLQ during this run`);
        return ExitCodes.jobsDead;
      }
    }
    return ExitCodes.ok;
  }

  async #register(now: number): Promise<void> {
    await this.#o.store.registerWorker({
      worker: {
        id: this.id,
        pid: Deno.pid,
        host: hostname(),
        queues: this.#o.queues && this.#o.queues.length ? [...this.#o.queues] : null,
        started_at: this.#runStart,
        heartbeat_at: now,
        current_job: null,
        stop_requested_at: null,
        supervisor_id: null,
      },
    });
  }

  /** Graceful: workers finish their jobs and exit. Abort: jobs are terminated and released. */
  stop(mode: "graceful" | "abort", reason: string): void {
    if (this.#stopMode === "abort" || this.#stopMode === mode) return;
    this.#stopMode = mode;
    const running = this.#slots.filter((s) => s.child).length;
    this.#say(
      mode === "graceful"
        ? `stopping (${reason}): ${running} worker${running === 1 ? "" : "s"} finishing their jobs`
        : `stopping now (${reason}): terminating running jobs and returning them to pending`,
    );
    for (const slot of this.#slots) {
      if (slot.restartTimer !== undefined) {
        clearTimeout(slot.restartTimer);
        slot.restartTimer = undefined;
      }
      if (!slot.child) slot.done = true;
      else this.#tell(slot, mode === "graceful" ? "stop" : "abort");
    }
    this.#checkAllDone();
  }

  #tell(slot: Slot, order: string): void {
    slot.writer?.write(encoder.encode(order + "\n")).catch(() => {});
  }

  #spawn(slot: Slot): void {
    slot.restartTimer = undefined;
    if (this.#stopMode !== null) {
      slot.done = true;
      this.#checkAllDone();
      return;
    }
    const { args, env } = workerRunArgs({
      dbUrl: this.#o.dbUrl,
      supervisorId: this.id,
      index: slot.index,
      queues: this.#o.queues,
      logFile: this.#o.logFile,
    });
    const argv = selfArgv(this.#self, args);
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(argv[0], {
        args: argv.slice(1),
        env,
        stdin: "piped",
        stdout: "inherit",
        stderr: "inherit",
        // Each worker leads a session of its own (setsid; a one-time fork per worker): a signal to
        // the supervisor's process group (Ctrl-C, a closed terminal) reaches only the supervisor,
        // which relays it, and a worker can spawn its jobs plainly, without a per-job setsid,
        // because everything else in its session is its job (see executor.ts, "session").
        // Not on Windows, where detached means a process without a console.
        detached: Deno.build.os !== "windows",
      }).spawn();
    } catch (err) {
      this.#say(`cannot start worker ${slot.index}: ${formatError(err).replace(/^error: /, "")}`);
      this.#scheduleRestart(slot);
      return;
    }
    slot.child = child;
    slot.writer = child.stdin.getWriter();
    slot.startedAt = performance.now();
    child.status.then((status) => this.#onExit(slot, child, status));
  }

  #onExit(slot: Slot, child: Deno.ChildProcess, status: Deno.CommandStatus): void {
    slot.child = null;
    slot.writer?.close().catch(() => {});
    slot.writer = null;
    if (this.#stopMode !== null) {
      slot.done = true;
      this.#checkAllDone();
      return;
    }
    if (status.success) {
      // A worker exits 0 on its own only when asked to (stop request in the database).
      this.#say(`worker ${slot.index} (pid ${child.pid}) stopped`);
      slot.done = true;
      this.#checkAllDone();
      return;
    }
    const how = status.signal
      ? `was killed by ${status.signal}`
      : `exited with code ${status.code}`;
    const lived = performance.now() - slot.startedAt;
    slot.quickCrashes = lived >= STABLE_MS ? 1 : slot.quickCrashes + 1;
    const delay = (this.#o.restartDelayMs ?? defaultRestartDelayMs)(slot.quickCrashes);
    this.#say(
      `worker ${slot.index} (pid ${child.pid}) ${how} unexpectedly; restarting in ${
        formatDuration(delay)
      }`,
    );
    this.#scheduleRestart(slot, delay);
  }

  #scheduleRestart(slot: Slot, delay = 1000): void {
    slot.restartTimer = setTimeout(() => this.#spawn(slot), delay);
  }

  #checkAllDone(): void {
    if (this.#slots.length > 0 && this.#slots.every((s) => s.done && !s.child)) this.#allDone();
  }

  /** Runs `fn` every `ms` (never two at once) until the supervisor finishes. */
  #every(ms: number, fn: () => Promise<void>): void {
    const tick = async () => {
      this.#timers.delete(timer);
      try {
        await fn();
      } catch {
        // reported by the callee; try again next tick
      }
      if (!this.#finished) {
        timer = setTimeout(tick, ms);
        this.#timers.add(timer);
      }
    };
    let timer = setTimeout(tick, ms);
    this.#timers.add(timer);
  }

  #heartbeatFailing = false;
  #beats = 0;

  async #heartbeat(): Promise<void> {
    const { store, clock } = this.#o;
    const now = clock.now();
    try {
      const stop = await store.heartbeatWorker({ id: this.id, now, currentJob: null });
      if (stop === undefined) {
        // Pruned as stale after a stall: `worker stop` never removes a live record.
        this.#say("supervisor record was pruned as stale; registering again");
        await this.#register(now);
      } else if (stop !== null) this.stop("graceful", "stop requested");
      if (++this.#beats % 10 === 0) {
        this.#config = await loadConfig(store);
        await pruneStaleWorkers(store, now, this.#config);
      }
      if (this.#heartbeatFailing) this.#say("database reachable again");
      this.#heartbeatFailing = false;
    } catch (err) {
      if (!this.#heartbeatFailing) {
        this.#say(`heartbeat failed: ${formatError(err).replace(/^error: /, "")}`);
      }
      this.#heartbeatFailing = true;
    }
  }

  /** The last look at the queue (--until-empty). */
  #lastLook: QueueLook | null = null;

  #checkEmptyIn(ms: number): void {
    const timer = setTimeout(async () => {
      this.#timers.delete(timer);
      const next = await this.#checkEmpty();
      if (next !== null && !this.#finished) this.#checkEmptyIn(next);
    }, ms);
    this.#timers.add(timer);
  }

  /**
   * --until-empty: stops once nothing is left to run, else returns when to look again (see
   * {@link nextLookMs}); null once stopping.
   */
  async #checkEmpty(): Promise<number | null> {
    const maxMs = this.#o.emptyCheckMs ?? EMPTY_CHECK_MS;
    if (this.#stopMode !== null) return null;
    let left: number;
    try {
      left = await jobsLeft(this.#o.store, this.#o.clock.now(), this.#o.queues);
    } catch {
      return maxMs; // the database is unreachable: try again later
    }
    if (left === 0) {
      this.stop("graceful", "the queue is empty");
      return null;
    }
    const look = { left, at: performance.now() };
    const next = nextLookMs(this.#lastLook, look, maxMs);
    this.#lastLook = look;
    return next;
  }

  #listenToSignals(): () => void {
    let count = 0;
    const handler = (name: string) => () => {
      count++;
      if (count === 1) {
        this.stop("graceful", `${name} received; press Ctrl-C again to terminate running jobs`);
      } else this.stop("abort", `${name} received again`);
    };
    const removers: (() => void)[] = [];
    const signals: Deno.Signal[] = Deno.build.os === "windows"
      ? ["SIGINT", "SIGBREAK"]
      : ["SIGINT", "SIGTERM", "SIGHUP"];
    for (const sig of signals) {
      const h = handler(sig);
      try {
        Deno.addSignalListener(sig, h);
        removers.push(() => Deno.removeSignalListener(sig, h));
      } catch {
        // not supported here
      }
    }
    return () => removers.forEach((r) => r());
  }
}

/** One look at the queue by --until-empty: jobs left, at a time in ms. */
export interface QueueLook {
  left: number;
  at: number;
}

/**
 * When --until-empty looks at the queue again: after `maxMs`, or sooner when the jobs left would
 * be done by then at the pace seen since the previous look, so that the end of a run does not
 * wait up to `maxMs` (half of it on average) for the last look. Never sooner than
 * {@link EMPTY_CHECK_MIN_MS}.
 */
export function nextLookMs(prev: QueueLook | null, look: QueueLook, maxMs: number): number {
  if (prev === null || look.left >= prev.left || look.at <= prev.at) return maxMs;
  const msToEmpty = look.left * (look.at - prev.at) / (prev.left - look.left);
  return Math.max(Math.min(EMPTY_CHECK_MIN_MS, maxMs), Math.min(maxMs, msToEmpty));
}

/** How many jobs (in `queues`, or any) are pending, processing or failed awaiting their retry. */
export async function jobsLeft(
  store: Store,
  now: number,
  queues: readonly string[] | null,
): Promise<number> {
  const busy: JobState[] = ["pending", "processing", "failed"];
  if (!queues || queues.length === 0) {
    const { counts } = await store.stats({ now });
    return busy.reduce((n, s) => n + counts[s], 0);
  }
  let n = 0;
  for (const queue of queues) {
    for (const state of busy) n += await store.countJobs({ state, queue });
  }
  return n;
}

/** Dead jobs (in `queues`, or any) that reached the DLQ at or after `since`. */
export async function deadSince(
  store: Store,
  since: number,
  queues: readonly string[] | null,
): Promise<number> {
  let n = 0;
  const page = 1000;
  for (let offset = 0;; offset += page) {
    const jobs = await store.listJobs({ state: "dead", limit: page, offset, order: "oldest" });
    n += jobs.filter((j) =>
      (j.finished_at ?? j.updated_at) >= since && (!queues?.length || queues.includes(j.queue))
    ).length;
    if (jobs.length < page) {
      return n;
    }
  }
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

/** A record whose heartbeat is older than two leases belongs to a dead process. */
function staleBefore(now: number, config: Config): number {
  return now - Math.max(2 * config.lease * 1000, 5000);
}

async function pruneStaleWorkers(store: Store, now: number, config: Config): Promise<string[]> {
  return await store.pruneWorkers({ before: staleBefore(now, config) });
}

/** True if a process with this pid exists on this machine (kill with signal 0; Unix only). */
export function processExists(pid: number): boolean {
  try {
    Deno.kill(pid, 0 as unknown as Deno.Signal);
    return true;
  } catch (err) {
    return !(err instanceof Deno.errors.NotFound);
  }
}

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
    alive: now - r.heartbeat_at <= config.lease * 1000,
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
 * every record is gone. Records of processes that died without cleaning up are removed.
 */
export async function stopWorkers(ctx: Ctx, opts: StopOptions): Promise<StopReport> {
  const { store, clock } = ctx;
  const config = await loadConfig(store);
  const host = hostname();
  const started = performance.now();
  const pollMs = opts.pollMs ?? 100;

  const isGone = (r: WorkerRecord, now: number): boolean =>
    r.heartbeat_at < staleBefore(now, config) ||
    (r.host === host && Deno.build.os !== "windows" && !processExists(r.pid));
  const live = async (): Promise<WorkerRecord[]> => {
    const now = clock.now();
    const records = await store.listWorkers();
    const alive: WorkerRecord[] = [];
    for (const r of records) {
      if (isGone(r, now)) await store.removeWorker({ id: r.id });
      else alive.push(r);
    }
    return alive;
  };

  const initial = await live();
  const report: StopReport = {
    workers: initial.filter((r) => r.supervisor_id !== null).length,
    killed: 0,
  };
  if (initial.length === 0) return report;
  await store.requestStop({ now: clock.now() });

  // Signal local processes: supervisors relay to their workers; orphan workers get it directly.
  const supervisors = new Set(initial.filter((r) => r.supervisor_id === null).map((r) => r.id));
  const signalledAt = clock.now();
  const targets = initial.filter((r) =>
    r.host === host && (r.supervisor_id === null || !supervisors.has(r.supervisor_id)) &&
    recentlyAlive(r, signalledAt, config)
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
        if (r.host !== host || !recentlyAlive(r, now, config)) continue;
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

/**
 * Guards against signalling a recycled pid: only a process whose record was refreshed recently
 * (within a few heartbeats) is signalled. (Reading /proc/<pid>/cmdline would need --allow-all.)
 */
function recentlyAlive(r: WorkerRecord, now: number, config: Config): boolean {
  const beat = r.supervisor_id === null ? HEARTBEAT_MS : config.lease * 1000 / 3;
  return now - r.heartbeat_at <= 3 * beat + 1000;
}
