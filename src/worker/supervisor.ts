/**
 * Worker supervision: `worker start` runs a supervisor that spawns N worker subprocesses
 * (this same program, hidden `worker run` command), restarts the ones that die, and stops them
 * on a signal, a stop request in the database, or (with --until-empty) when the queue is empty.
 * It also runs a candidate of the maintenance service (maintenance.ts), which rescues the jobs of
 * dead workers and prunes stale records while it leads.
 *
 * Control flows one way, supervisor → worker, over each worker's stdin pipe: a line `stop`
 * (finish the job in hand, exit), a line `abort` (terminate the job, release it, exit). When the
 * supervisor dies, even by SIGKILL, the kernel closes the pipes and the workers stop on their own
 * (within one lease). On Unix each worker leads its own session, so Ctrl-C (SIGINT to the
 * terminal's foreground process group) reaches the supervisor alone; elsewhere it reaches every
 * process, and workers ignore SIGINT and wait for the supervisor's order. Either way one Ctrl-C is
 * one graceful stop.
 */
import type { Clock } from "../core/clock.ts";
import { formatDuration } from "../core/duration.ts";
import { ExitCodes, formatError, InvalidInput, StorageError } from "../core/errors.ts";
import type { JobState } from "../core/job.ts";
import { storeCallLimitMs, SUPERVISOR_HEARTBEAT_MS } from "../core/liveness.ts";
import type { Store } from "../store/store.ts";
import { hostname, randomSuffix } from "./host.ts";
import { FailureNotes } from "./failure_notes.ts";
import { workerLabel } from "./describe.ts";
import { Maintenance } from "./maintenance.ts";
import { MarkerDirectory, readStartMarker, releaseUnstarted } from "./start_marker.ts";
import { DEFAULT_GRACE_MS, terminateSession } from "./job_processes.ts";
import {
  currentSelfExec,
  selfArgv,
  type SelfExec,
  workerRunArgs,
  workerTuningEnv,
} from "./self_exec.ts";
import { keepIgnoredSignals } from "./ignored_signals.ts";

/**
 * Said once at start by a supervisor that is PID 1 (a container's command without an init): the
 * kernel gives PID 1 every orphaned process (what a job left behind: `cmd &`, a daemon), and only
 * PID 1 can reap them once they exit. Deno waits for its own children only, so they would pile up
 * as zombies, one per leftover, until the pid space runs out. See README, "Containers".
 */
export const PID1_WARNING =
  "warning: this supervisor is PID 1 (a container without an init): processes that jobs leave " +
  "behind are never reaped once they exit and pile up as zombies; start the container with an " +
  "init (`docker run --init`, tini, dumb-init)";

export interface SupervisorOptions {
  store: Store;
  clock: Clock;
  dbUrl: string;
  count: number;
  queues: readonly string[] | null;
  /** Exit once nothing is pending, processing or waiting for a retry. */
  untilEmpty: boolean;
  /**
   * With untilEmpty: jobs due later than this many ms from now (delayed jobs, scheduled
   * retries) do not count as left; null = wait for every job, however far off.
   */
  horizonMs?: number | null;
  /** Workers append their lines to this file instead of the inherited stdout (--detach). */
  logFile: string | null;
  /** The supervisor's own lines. */
  out: (line: string) => void;
  self?: SelfExec;
  /** Restart delay after the n-th quick crash in a row (n >= 1). Default 0.5s doubling, max 5s. */
  restartDelayMs?: (crashes: number) => number;
  /**
   * How often --until-empty looks at the queue. Default 100 ms, and up to
   * {@link EMPTY_CHECK_FAR_MS} apart while the queue is far from running dry at the pace seen;
   * sooner when it is about to (see {@link nextLookMs}). Given, it is also the longest gap.
   */
  emptyCheckMs?: number;
  /** Listen to SIGINT/SIGTERM (default true). */
  handleSignals?: boolean;
}

export const MAX_WORKERS = 64;

const encoder = new TextEncoder();

interface Slot {
  index: number;
  child: Deno.ChildProcess | null;
  writer: WritableStreamDefaultWriter<Uint8Array> | null;
  startedAt: number;
  quickCrashes: number;
  restartTimer: ReturnType<typeof setTimeout> | undefined;
  /** Will not run again (stopped on its own, or supervisor stopping). */
  done: boolean;
  /** Its exit with a database error was followed by a look at the database (see #onExit). */
  checked?: boolean;
  /** Exited for want of the database: restarted once the supervisor reaches it again. */
  waitingForDb: boolean;
  /** The running worker's start marker (start_marker.ts) and its directory, or null. */
  marker: { path: string; dir: MarkerDirectory } | null;
}

/** A worker that lived at least this long before dying resets its restart backoff. */
const STABLE_MS = 10_000;

const EMPTY_CHECK_MS = 100;
/**
 * The longest gap between two looks at the queue (--until-empty, default cadence) while the jobs
 * left would take far longer than that to run at the pace seen: each look is a few reads (about
 * 0.7 ms of the supervisor's CPU on a busy 2-core machine, every worker's commit having emptied
 * its page cache), and every 100 ms that was about 60% of the supervisor's CPU per job.
 */
export const EMPTY_CHECK_FAR_MS = 1000;
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
  readonly #maintenance: Maintenance;
  #runStart = 0;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #finished = false;
  /** Store errors already reported by this process (its heartbeat and the maintenance service). */
  readonly #notes = new FailureNotes();
  /** Set when the database this supervisor opened was deleted or replaced: it stops. */
  #gone: StorageError | null = null;
  /** Gave up on an unreachable database (outage_limit): nothing more is written. */
  #gaveUp = false;
  /** Since when (performance time) heartbeats have failed; null while they succeed. */
  #unreachableSince: number | null = null;
  /** See Runner: the stops of everything recorded when this supervisor registered. */
  #stopsSeen = 0;
  /**
   * Private directory of the workers' start markers; undefined until the next worker's start
   * makes one (at first, after it was gone or replaced, and after it could not be made).
   */
  #markerDir: MarkerDirectory | undefined = undefined;
  /** The last worker start could not make the marker directory (said once until one is made). */
  #markerDirFailed = false;
  #spawns = 0;
  /** Releases of jobs that dead workers claimed and never started, still being written. */
  readonly #releasing = new Set<Promise<void>>();

  constructor(opts: SupervisorOptions) {
    if (!Number.isInteger(opts.count) || opts.count < 1 || opts.count > MAX_WORKERS) {
      throw new InvalidInput(
        `Invalid --count: expected a whole number from 1 to ${MAX_WORKERS}, got ${opts.count}`,
      );
    }
    this.#o = opts;
    this.#self = opts.self ?? currentSelfExec();
    this.#maintenance = new Maintenance({
      store: opts.store,
      clock: opts.clock,
      holder: this.id,
      out: opts.out,
      notes: this.#notes,
    });
  }

  /**
   * This supervisor's name in log lines, unique among the supervisors sharing a database: the
   * random part of its id. Its workers are `<label>.<n>` (see {@link workerLabel}).
   */
  get label(): string {
    return this.id.replace(/^s-/, "");
  }

  #say(text: string): void {
    this.#o.out(`[supervisor ${this.label}] ${text}`);
  }

  #worker(slot: Slot): string {
    return `worker ${workerLabel(this.id, slot.index)}`;
  }

  /** True once it gave up on an unreachable database (outage_limit). */
  get gaveUp(): boolean {
    return this.#gaveUp;
  }

  /** Pids of the running workers (for tests and `worker list`). */
  get workerPids(): number[] {
    return this.#slots.flatMap((s) => (s.child ? [s.child.pid] : []));
  }

  /** Runs until stopped; resolves to the exit code. */
  async run(): Promise<number> {
    const { store, clock } = this.#o;
    this.#runStart = clock.now();
    await this.#register(this.#runStart);
    const detachSignals = this.#o.handleSignals === false
      ? () => {}
      : this.#listenToSignals(await keepIgnoredSignals());
    try {
      // The first maintenance step runs while the workers start (a worker takes tens of ms to
      // load, a step a few ms; but a retention backlog can take a step seconds, which must not
      // hold the workers back): when this supervisor leads, jobs of dead workers are rescued.
      const firstStep = this.#maintenance.start();
      const queues = this.#o.queues?.length
        ? ` on queue${this.#o.queues.length > 1 ? "s" : ""} ${this.#o.queues.join(", ")}`
        : "";
      this.#say(
        `starting ${this.#o.count} worker${
          this.#o.count === 1 ? "" : "s"
        }${queues} (pid ${Deno.pid})`,
      );
      if (Deno.pid === 1 && Deno.build.os !== "windows") this.#say(PID1_WARNING);
      for (let i = 1; i <= this.#o.count; i++) {
        const slot: Slot = {
          index: i,
          child: null,
          writer: null,
          startedAt: 0,
          quickCrashes: 0,
          restartTimer: undefined,
          done: false,
          waitingForDb: false,
          marker: null,
        };
        this.#slots.push(slot);
        this.#spawn(slot);
      }
      await firstStep;
      this.#every(SUPERVISOR_HEARTBEAT_MS, () => this.#heartbeat());
      if (this.#o.untilEmpty) this.#checkEmptyIn(this.#o.emptyCheckMs ?? EMPTY_CHECK_MS);
      await this.#allDonePromise;
    } finally {
      this.#finished = true;
      for (const t of this.#timers) clearTimeout(t);
      detachSignals();
      await Promise.allSettled(this.#releasing);
      this.#markerDir?.remove();
      if (this.#gaveUp) {
        // Nothing more is written: the lead and the record run out on their own.
        await this.#maintenance.stop(0);
      } else {
        // Resigns the lead: a candidate of another supervisor takes over at once.
        await this.#maintenance.stop();
        try {
          await store.removeWorker({ id: this.id });
        } catch {
          // pruned later as stale
        }
      }
    }
    this.#say("all workers stopped");
    if (this.#gone !== null || this.#gaveUp) return ExitCodes.storage;
    if (this.#stopMode === "abort") return 130;
    if (this.#o.untilEmpty) {
      // Dead jobs of the queues served that reached the DLQ during this run: one count.
      const dead = await store.countDeadSince({ since: this.#runStart, queues: this.#o.queues });
      if (dead > 0) {
        this.#say(`${dead} job${dead === 1 ? "" : "s"} moved to the DLQ during this run`);
        return ExitCodes.jobsDead;
      }
    }
    return ExitCodes.ok;
  }

  async #register(now: number): Promise<void> {
    this.#stopsSeen = await this.#o.store.lastStopRequest();
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
        ? `stopping (${reason}): ${
          running === 1 ? "1 worker finishing its job" : `${running} workers finishing their jobs`
        }`
        : `stopping now (${reason}): terminating running jobs and returning them to pending`,
    );
    for (const slot of this.#slots) {
      if (slot.restartTimer !== undefined) {
        clearTimeout(slot.restartTimer);
        slot.restartTimer = undefined;
      }
      slot.waitingForDb = false;
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
    slot.waitingForDb = false;
    if (this.#stopMode !== null) {
      slot.done = true;
      this.#checkAllDone();
      return;
    }
    slot.marker = this.#newMarkerPath(slot);
    const { args, env } = workerRunArgs({
      dbUrl: this.#o.dbUrl,
      supervisorId: this.id,
      index: slot.index,
      queues: this.#o.queues,
      logFile: this.#o.logFile,
      startMarker: slot.marker?.path ?? null,
    });
    // Workers run with V8 flags of their own: they keep out of the code cache (self_exec.ts).
    const argv = selfArgv(this.#self, args, { codeCache: false });
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(argv[0], {
        args: argv.slice(1),
        env: { ...workerTuningEnv(), ...env },
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
      this.#say(`cannot start ${this.#worker(slot)}: ${formatError(err).replace(/^error: /, "")}`);
      this.#scheduleRestart(slot);
      return;
    }
    slot.child = child;
    slot.writer = child.stdin.getWriter();
    slot.startedAt = performance.now();
    child.status.then((status) => this.#onExit(slot, child, status));
  }

  /** A fresh marker file name for the worker about to start in `slot` (not created here). */
  #newMarkerPath(slot: Slot): { path: string; dir: MarkerDirectory } | null {
    if (this.#markerDir && !this.#markerDir.isOurs()) this.#markerDirLost(this.#markerDir);
    if (this.#markerDir === undefined) {
      try {
        this.#markerDir = MarkerDirectory.make();
        this.#markerDirFailed = false;
      } catch (err) {
        // Tried again at the next worker's start (a full or missing temporary directory).
        if (!this.#markerDirFailed) {
          const why = (err instanceof Error ? err.message : String(err)).replace(/: tmpdir$/, "");
          this.#say(
            `start markers: cannot make a directory for them in ${temporaryDirectory()} (${why}); ` +
              "until one can be made, a job held by a worker that dies is rescued by its lease, " +
              "its attempt counted, even if it never started",
          );
        }
        this.#markerDirFailed = true;
        return null;
      }
    }
    const dir = this.#markerDir;
    return { path: `${dir.path}/${slot.index}-${++this.#spawns}`, dir };
  }

  /** Every heartbeat: the marker directory still ours, kept fresh (see MarkerDirectory). */
  #lookAtMarkers(): void {
    const dir = this.#markerDir;
    if (!dir) return;
    const live = this.#slots.flatMap((s) => (s.marker?.dir === dir ? [s.marker.path] : []));
    if (!dir.look(live)) this.#markerDirLost(dir);
  }

  /** The marker directory is gone or replaced: the next worker started gets a new one. */
  #markerDirLost(dir: MarkerDirectory): void {
    if (this.#markerDir !== dir) return;
    this.#markerDir = undefined;
    this.#say(
      `start markers: ${dir.path} is gone or is no longer this supervisor's directory (a cleaner ` +
        "of the temporary directory?); workers started from now on get a new one, and a job " +
        "held by a worker started before is rescued by its lease if that worker dies",
    );
  }

  /**
   * After a worker's exit: whatever still runs in its session (it led one, see #spawn) is its
   * job's, left behind when the worker was killed (SIGKILL, the OOM killer). It is terminated
   * (SIGTERM, SIGKILL after the grace period), so that it does not run on unsupervised beside the
   * run that the job's rescue starts (docs/architecture.md, "A worker killed under its job").
   */
  #endLeftovers(slot: Slot, pid: number, stoppedCleanly: boolean): void {
    const work = (async () => {
      const n = await terminateSession(pid, DEFAULT_GRACE_MS);
      if (n > 0) {
        this.#say(
          `${this.#worker(slot)} (pid ${pid}) left ${n} process${n === 1 ? "" : "es"} running: ${
            stoppedCleanly ? "terminated" : "terminated (its job is rescued when its lease expires)"
          }`,
        );
      }
    })();
    this.#releasing.add(work);
    work.finally(() => this.#releasing.delete(work));
  }

  /**
   * After a worker's exit: a job it claimed but never started (its start marker names another
   * job, or none) goes back to pending without counting an attempt. A job it may have started is
   * left to the lease rescue, which counts it (docs/architecture.md, "Claimed, not started").
   */
  #releaseUnstarted(slot: Slot, marker: { path: string; dir: MarkerDirectory }): void {
    const work = (async () => {
      if (!marker.dir.isOurs()) {
        // Whatever is at that path now is not this supervisor's: it is not read (nor removed).
        this.#markerDirLost(marker.dir);
        return;
      }
      const record = readStartMarker(marker.path);
      try {
        Deno.removeSync(marker.path);
      } catch {
        // never created (the worker died first), or already gone
      }
      if (record === null || this.#gaveUp) return;
      try {
        const { store, clock } = this.#o;
        for (const job of await releaseUnstarted(store, clock.now(), record)) {
          this.#say(
            `released ${job.id}: ${this.#worker(slot)} (${record.worker}) claimed it and died ` +
              "before starting it; back to pending, the attempt not counted",
          );
        }
      } catch (err) {
        this.#say(
          `could not look for jobs ${this.#worker(slot)} claimed and never started (${
            formatError(err).replace(/^error: /, "")
          }); they are rescued when their lease expires`,
        );
      }
    })();
    this.#releasing.add(work);
    work.finally(() => this.#releasing.delete(work));
  }

  #onExit(slot: Slot, child: Deno.ChildProcess, status: Deno.CommandStatus): void {
    if (slot.marker !== null) {
      this.#releaseUnstarted(slot, slot.marker);
      slot.marker = null;
    }
    if (Deno.build.os !== "windows") this.#endLeftovers(slot, child.pid, status.success);
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
      this.#say(`${this.#worker(slot)} (pid ${child.pid}) stopped`);
      slot.done = true;
      this.#checkAllDone();
      return;
    }
    if (status.code === ExitCodes.storage && !slot.checked) {
      // A database error ended it: when the database itself is gone (deleted or replaced), a
      // restart would work on whatever is at the path now. Look first (the heartbeat stops this
      // supervisor then), and restart only if still running.
      slot.checked = true;
      this.#heartbeat().finally(() => this.#onExit(slot, child, status));
      return;
    }
    slot.checked = false;
    if (status.code === ExitCodes.storage && this.#unreachableSince !== null) {
      // It gave up on the database, which this supervisor cannot reach either: a new worker
      // could not start now. Started again once the supervisor reaches the database.
      this.#say(
        `${
          this.#worker(slot)
        } (pid ${child.pid}) gave up on the database; restarting it once the database is reachable`,
      );
      slot.waitingForDb = true;
      return;
    }
    const how = status.signal
      ? `was killed by ${status.signal}`
      : `exited with code ${status.code}`;
    const lived = performance.now() - slot.startedAt;
    slot.quickCrashes = lived >= STABLE_MS ? 1 : slot.quickCrashes + 1;
    const delay = (this.#o.restartDelayMs ?? defaultRestartDelayMs)(slot.quickCrashes);
    this.#say(
      `${this.#worker(slot)} (pid ${child.pid}) ${how} unexpectedly; restarting in ${
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

  async #heartbeat(): Promise<void> {
    if (this.#gaveUp) return;
    this.#lookAtMarkers();
    const { store, clock } = this.#o;
    const config = this.#maintenance.config;
    store.setCallTimeout?.(storeCallLimitMs(config.lease));
    const now = clock.now();
    const startedAt = performance.now();
    try {
      const stop = await store.heartbeatWorker({ id: this.id, now, currentJob: null });
      if (stop === undefined) {
        if (await store.lastStopRequest() > this.#stopsSeen) {
          // Removed by a `worker stop` issued while this host was away: honour it.
          this.stop("graceful", "a stop was requested while this supervisor was away");
        } else {
          // Pruned as stale after a stall: `worker stop` never removes a live record.
          this.#say("supervisor record was pruned as stale; registering again");
          await this.#register(now);
        }
      } else if (stop !== null) this.stop("graceful", "stop requested");
      if (this.#heartbeatFailing) this.#say("database reachable again");
      this.#heartbeatFailing = false;
      this.#unreachableSince = null;
      for (const slot of this.#slots) if (slot.waitingForDb) this.#spawn(slot);
    } catch (err) {
      if (err instanceof StorageError && err.gone) {
        if (this.#gone === null) {
          this.#gone = err;
          this.#say(`fatal: ${formatError(err).replace(/^error: /, "")}`);
          this.stop("abort", "the database is gone");
        }
        return;
      }
      if (!this.#heartbeatFailing && this.#notes.fresh(err)) {
        this.#say(`heartbeat failed: ${formatError(err).replace(/^error: /, "")}`);
      }
      this.#heartbeatFailing = true;
      this.#unreachableSince ??= startedAt;
      const outMs = performance.now() - this.#unreachableSince;
      if (outMs >= config.outage_limit * 1000) this.#giveUp(outMs, config.outage_limit);
    }
  }

  /**
   * The database was unreachable for `outage_limit`: orders every worker to give up (terminate
   * its job without writing anything) and exits with code 5, writing nothing more.
   */
  #giveUp(outMs: number, limitS: number): void {
    if (this.#gaveUp) return;
    this.#gaveUp = true;
    const why = `could not reach the database for ${formatDuration(outMs)} (outage_limit ${
      formatDuration(limitS * 1000)
    })`;
    this.#say(
      `giving up: ${why}; terminating the workers' jobs without recording them: they run again once their leases expire`,
    );
    this.#stopMode = "abort";
    for (const slot of this.#slots) {
      if (slot.restartTimer !== undefined) clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
      slot.waitingForDb = false;
      if (!slot.child) slot.done = true;
      else this.#tell(slot, `giveup ${why}`);
    }
    this.#checkAllDone();
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
    let waitMs = maxMs;
    try {
      const now = this.#o.clock.now();
      const look = await lookAtQueue(this.#o.store, now, this.#o.queues);
      left = look.left;
      if (left > 0 && look.processing === 0 && look.nextRunAt !== null && look.nextRunAt > now) {
        // Nothing runs and nothing is due: every job left waits for its run_at.
        const horizon = this.#o.horizonMs ?? null;
        if (horizon !== null && look.nextRunAt > now + horizon) {
          this.stop(
            "graceful",
            `nothing is due within --horizon ${formatDuration(horizon)}: ${left} job${
              left === 1 ? "" : "s"
            } scheduled from ${new Date(look.nextRunAt).toISOString()} left in the queue`,
          );
          return null;
        }
        this.#noteWaiting(left, look.nextRunAt, now);
        waitMs = Math.max(maxMs, Math.min(look.nextRunAt - now, 1000));
      }
    } catch {
      return maxMs; // the database is unreachable: try again later
    }
    if (left === 0) {
      this.stop("graceful", "the queue is empty");
      return null;
    }
    if (waitMs > maxMs) return waitMs;
    const look = { left, at: performance.now() };
    const next = nextLookMs(
      this.#lastLook,
      look,
      maxMs,
      this.#o.emptyCheckMs === undefined ? EMPTY_CHECK_FAR_MS : maxMs,
    );
    this.#lastLook = look;
    return next;
  }

  /** The last "waiting for scheduled jobs" line (--until-empty), to say it once per change. */
  #waitingNote = "";

  /** --until-empty: says what it waits for and until when, once per change. */
  #noteWaiting(left: number, nextRunAt: number, now: number): void {
    const key = `${left}@${nextRunAt}`;
    if (key === this.#waitingNote) return;
    this.#waitingNote = key;
    this.#say(
      `--until-empty: waiting for ${left} scheduled job${left === 1 ? "" : "s"} ` +
        `(delayed, or retries waiting for their time); the next is due at ${
          new Date(nextRunAt).toISOString()
        } (in ${formatDuration(nextRunAt - now)}). --horizon DURATION stops at jobs due later`,
    );
  }

  /** SIGINT, SIGTERM and SIGHUP stop it, but those ignored since its start (keepIgnoredSignals). */
  #listenToSignals(ignored: ReadonlySet<Deno.Signal>): () => void {
    let count = 0;
    const handler = (name: string) => () => {
      count++;
      if (count === 1) this.stop("graceful", `${name} received; ${abortHint(name)}`);
      else this.stop("abort", `${name} received again`);
    };
    const removers: (() => void)[] = [];
    const signals: Deno.Signal[] = Deno.build.os === "windows"
      ? ["SIGINT", "SIGBREAK"]
      : ["SIGINT", "SIGTERM", "SIGHUP"];
    for (const sig of signals) {
      if (ignored.has(sig)) continue;
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

/**
 * How to turn the graceful stop a signal started into an abort. "Press Ctrl-C again" only where
 * that means something: SIGINT with a terminal on stdin. A SIGTERM comes from `worker stop`, a
 * service manager or kill, and a detached supervisor has no terminal.
 */
function abortHint(signal: string): string {
  let terminal = false;
  try {
    terminal = Deno.stdin.isTerminal();
  } catch {
    // no stdin
  }
  return signal === "SIGINT" && terminal
    ? "press Ctrl-C again to terminate running jobs"
    : "`queuectl worker stop --force` terminates running jobs";
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
 * {@link EMPTY_CHECK_MIN_MS}. While the jobs left would take longer than `maxMs` at that pace,
 * after a quarter of that time, at most `farMs` (default `maxMs`): the looks come closer as the
 * end nears, and a pace that quadruples makes the end seen at most `farMs` late.
 */
export function nextLookMs(
  prev: QueueLook | null,
  look: QueueLook,
  maxMs: number,
  farMs = maxMs,
): number {
  if (prev === null || look.left >= prev.left || look.at <= prev.at) return maxMs;
  const msToEmpty = look.left * (look.at - prev.at) / (prev.left - look.left);
  if (msToEmpty > maxMs) return Math.max(maxMs, Math.min(farMs, msToEmpty / 4));
  return Math.max(Math.min(EMPTY_CHECK_MIN_MS, maxMs), msToEmpty);
}

/**
 * One look at the queue for --until-empty (in `queues`, or any): jobs left (pending, processing,
 * failed awaiting a retry), how many run now, and the earliest run_at of the claimable ones.
 */
export async function lookAtQueue(
  store: Store,
  now: number,
  queues: readonly string[] | null,
): Promise<{ left: number; processing: number; nextRunAt: number | null }> {
  let left = 0;
  let processing = 0;
  if (!queues || queues.length === 0) {
    const { counts } = await store.stats({ now });
    left = counts.pending + counts.processing + counts.failed;
    processing = counts.processing;
  } else {
    for (const queue of queues) {
      for (const state of ["pending", "failed"] as const) {
        left += await store.countJobs({ state, queue });
      }
      const running = await store.countJobs({ state: "processing", queue });
      left += running;
      processing += running;
    }
  }
  const nextRunAt = left > 0 && processing === 0 ? await store.nextRunAt({ queues }) : null;
  return { left, processing, nextRunAt };
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

/** Where Deno.makeTempDirSync makes directories (on Unix: $TMPDIR, else /tmp). */
function temporaryDirectory(): string {
  try {
    return Deno.env.get(Deno.build.os === "windows" ? "TEMP" : "TMPDIR") ||
      (Deno.build.os === "windows" ? "the temporary directory" : "/tmp");
  } catch {
    return "the temporary directory";
  }
}
