/**
 * One worker process: claim → execute → settle, one job at a time.
 *
 * 1. Register a worker record.
 * 2. Loop: claim one due job (one guarded UPDATE ... RETURNING), run it through the executor,
 *    settle it with one guarded write (transitions.complete / fail / release). A settle the store
 *    refuses means the lease was taken over meanwhile: the result is dropped and logged, never
 *    written over the newer outcome; except an exit 0 while no other run has started, which
 *    completes the job (transitions.completeLate). While not stopping, the settle also claims the next job
 *    (store.settleAndClaim: one SQLite transaction per job instead of two); a job so claimed that
 *    the worker does not start because it was asked to stop is released, attempt not counted.
 * 3. When nothing is due, wait for a wake-up hint (wake file watch or LISTEN/NOTIFY, see wake.ts),
 *    the next scheduled run_at, or `poll_interval`, whichever comes first.
 * 4. A heartbeat every lease/3 renews the lease of the job in hand, records the worker's liveness
 *    and reads a stop request (`worker stop`). Jobs of dead workers are rescued by the maintenance
 *    service (maintenance.ts), not here.
 * 5. Stop: "graceful" stops claiming and lets the job in hand finish; "abort" also terminates the
 *    job's process group and releases the job to pending without consuming a retry.
 *
 * Config is read at start and re-read every few seconds, never per job.
 */
import { type Clock, systemClock } from "../core/clock.ts";
import { type Config, configFrom } from "../core/config.ts";
import { formatDuration } from "../core/duration.ts";
import { exitCodeOf, ExitCodes, formatError, isTransient, StorageError } from "../core/errors.ts";
import { storeCallLimitMs } from "../core/liveness.ts";
import { type Job, parseJobEnv, signalNumber } from "../core/job.ts";
import {
  complete,
  completeLate,
  fail,
  killed,
  release,
  type StateChange,
} from "../core/transitions.ts";
import type { Store } from "../store/store.ts";
import { describeChange, failureReason, oneLine, seconds, workerLabel } from "./describe.ts";
import { type ExecOptions, type ExecResult, execute, leadsOwnSession } from "./executor.ts";
import { FailureNotes } from "./failure_notes.ts";
import { Hooks, MAX_RUNNING_HOOKS } from "./hooks.ts";
import { hostname, randomSuffix } from "./host.ts";
import { LiveOutput } from "./output_tail.ts";
import { StartMarker } from "./start_marker.ts";
import { sleep, type Waker, wakerFor } from "./wake.ts";

export type StopMode = "graceful" | "abort";

export interface RunnerOptions {
  store: Store;
  clock?: Clock;
  /** The worker's number under its supervisor: `[worker 3fa2c1.2] ...` in log lines. */
  index?: number;
  /**
   * QUEUECTL_WORKER_SLOT of its jobs: stable per worker within its supervisor (0..count-1, kept
   * across restarts), to map jobs to GPUs or ports. Default index - 1.
   */
  slot?: number;
  /** Only claim jobs from these queues; null or empty = every queue. */
  queues?: readonly string[] | null;
  /** The supervisor that spawned this worker (recorded in the workers table). */
  supervisorId?: string | null;
  /** Worker id; default `w<index>-<random>` (unique per process: leases are keyed by it). */
  id?: string;
  /** Where event lines go (one call per line, no trailing newline). */
  log?: (line: string) => void;
  /** Wake-up source for idle waits; default {@link wakerFor}(store). */
  waker?: Waker;
  host?: string;
  pid?: number;
  /**
   * How long the database may stay unreachable (a write keeps failing with a transient error, or
   * heartbeats fail) before the worker gives up; default config `outage_limit`.
   */
  storeRetryLimitMs?: number;
  /** Grace between SIGTERM and SIGKILL of a job's process group (timeout, abort). */
  graceMs?: number;
  /** Working directory of jobs without a `cwd` of their own; default the worker's. */
  cwd?: string;
  /**
   * How jobs' processes are kept together (see {@link ExecOptions.groupVia}). Default: run()
   * picks `"session"` when this process leads its own session (the supervisor starts workers
   * that way; {@link leadsOwnSession} reads it from /proc on Linux, with one `cat`), which spares
   * every job an extra exec of `setsid`; else the executor's default.
   */
  groupVia?: ExecOptions["groupVia"];
  /**
   * Where to record each job right before its spawn (start_marker.ts), for the supervisor to tell
   * after this worker's death whether the job it held had started. Created by the supervisor.
   */
  startMarker?: string;
  /** Claim a job ahead after a job shorter than this; default {@link AHEAD_AFTER_MS}, 0: never. */
  aheadAfterMs?: number;
}

/** How often config is re-read while working. */
const CONFIG_RELOAD_MS = 5000;
/**
 * A worker claims a job ahead (docs/architecture.md, "Claimed ahead") only after a job that took
 * less than this: only there do the settle and claim (about half a millisecond on SQLite, a round
 * trip on PostgreSQL) weigh on the time from one job to the next.
 */
export const AHEAD_AFTER_MS = 20;
/**
 * A job claimed ahead is released (back to pending, the attempt not counted, the other workers
 * woken) once the job it waits for has run this long: another worker may be idle, and the held
 * job must not wait for a long job to end.
 */
export const AHEAD_HOLD_MS = 50;

/** A job whose process was spawned (or refused to start), not yet settled. */
interface Running {
  job: Job;
  result: Promise<ExecResult>;
}
/**
 * At most one idle claim attempt per this many ms after waits that no hint ended (a due job this
 * worker cannot claim, e.g. in a paused queue, would otherwise spin the idle loop).
 */
const MIN_IDLE_GAP_MS = 10;
/**
 * Claims on hints allowed per {@link MIN_IDLE_GAP_MS} before the gap paces them too: a burst of
 * enqueues wakes every idle worker for each job, and all but one find nothing each time, yet the
 * next job must not wait for the gap; a storm of hints that bring nothing claimable (enqueues
 * into a paused queue) costs each idle worker at most this many claims per gap.
 */
const HINT_CLAIMS_PER_GAP = 4;
/** Longest command text shown in a `started` line. */
const COMMAND_SHOWN = 200;

/** Signals a service manager stops a service with (see Runner.#endedByShutdown). */
const SHUTDOWN_SIGNALS: readonly string[] = ["SIGTERM", "SIGINT", "SIGHUP"];
/**
 * How long a worker that is not stopping waits, after a job ended by one of those signals, for
 * the supervisor's stop order before it settles the job as failed: the service manager signals
 * every process at once, and the order goes through the supervisor.
 */
const SHUTDOWN_NOTICE_MS = 1000;

export class Runner {
  readonly id: string;
  readonly index: number;
  readonly store: Store;
  readonly clock: Clock;
  readonly queues: readonly string[] | null;
  config!: Config;

  #log: (line: string) => void;
  /** Completion hooks started by this worker (worker/hooks.ts), awaited before it exits. */
  readonly #hooks: Hooks;
  /** The worker said once that its hooks held its next job back. */
  #saidHooksFull = false;
  #waker: Waker | null;
  #opts: RunnerOptions;
  #stopMode: StopMode | null = null;
  #stopCtl = new AbortController();
  #jobAbort: AbortController | null = null;
  #current: Job | null = null;
  #heartbeatTimer: ReturnType<typeof setTimeout> | undefined;
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  #configLoadedAt = 0;
  #exitCode: number = ExitCodes.ok;
  #heartbeatFailing = false;
  #lastIdleClaim = -Infinity;
  #jobsDone = 0;
  #waiting = false;
  #groupVia: ExecOptions["groupVia"];
  readonly #slot: string;
  /** Claimed by the last settle, to run next (released unstarted if the worker stops first). */
  #next: Job | null = null;
  /**
   * Claimed ahead while a job runs, spawned the moment that job ends, before its settle (see
   * {@link AHEAD_AFTER_MS}); released after {@link AHEAD_HOLD_MS}, or unstarted on a stop.
   */
  #ahead: Job | null = null;
  /** A job spawned before the settle of the one before it: the next to finish. */
  #begun: Running | null = null;
  /**
   * Jobs claimed ahead whose release failed (the database away): tried again at each heartbeat
   * and at the stop, never forgotten (on SQLite nothing rescues a live worker's job).
   */
  #toRelease: Job[] = [];
  /** Since when (performance time) heartbeats have failed; null while they succeed. */
  #unreachableSince: number | null = null;
  /** Aborted (and replaced) when a heartbeat succeeds after failing: retries go at once. */
  #backOnline = new AbortController();
  /**
   * Gave up on an unreachable database (outage limit): no more writes are tried, and the worker
   * exits without cleaning up (its records go stale, its lease runs out). See {@link giveUp}.
   */
  #gaveUp = false;
  /** The stop-everything requests recorded when this worker registered (Store.lastStopRequest). */
  #stopsSeen = 0;
  readonly #lostLease = new Set<string>();
  /** Store errors already reported (one line per cause, see failure_notes.ts). */
  readonly #notes = new FailureNotes();
  /** The job whose result is being recorded: its settle, not a heartbeat, tells what happened. */
  #settling: Job | null = null;
  /** `queuectl kill` requests read for jobs this worker holds (the job in hand or the next). */
  readonly #killRequests = new Map<string, { signal: string; retry: boolean }>();
  /** Aborted (reason: the signal) to kill the job in hand. */
  #jobKill: AbortController | null = null;
  #stopKillWatch: (() => void) | null = null;
  #killCheck: Promise<void> | null = null;
  #killCheckAgain = false;

  constructor(opts: RunnerOptions) {
    this.#opts = opts;
    this.store = opts.store;
    this.clock = opts.clock ?? systemClock;
    this.index = opts.index ?? 1;
    this.id = opts.id ?? `w${this.index}-${randomSuffix()}`;
    this.queues = opts.queues && opts.queues.length > 0 ? [...opts.queues] : null;
    this.#log = opts.log ?? ((line) => console.log(line));
    this.#hooks = new Hooks({ log: (text) => this.log(text), cwd: opts.cwd });
    this.#waker = opts.waker ?? null;
    this.#groupVia = opts.groupVia;
    this.#slot = String(opts.slot ?? Math.max(0, this.index - 1));
  }

  /** Jobs this runner settled (any outcome) so far. */
  get jobsDone(): number {
    return this.#jobsDone;
  }

  get stopMode(): StopMode | null {
    return this.#stopMode;
  }

  /** True while waiting for work (nothing was due at the last look). */
  get idle(): boolean {
    return this.#waiting;
  }

  /**
   * How many times this worker has looked for a job with a claim of its own (not counting the
   * claim that comes with a settle): a debug counter, e.g. to check that a wake-up was for work.
   */
  get claimAttempts(): number {
    return this.#claimAttempts;
  }
  #claimAttempts = 0;

  /**
   * How many idle waits were followed by the idle gap (a sleep before the next claim): a debug
   * counter, e.g. to check that a wake-up by a hint is never delayed by it.
   */
  get idleGaps(): number {
    return this.#idleGaps;
  }
  #idleGaps = 0;
  /** When the latest claims on hints were (performance.now()), within the last gap. */
  #hintClaims: number[] = [];

  /** True once the worker gave up on an unreachable database (see {@link giveUp}). */
  get gaveUp(): boolean {
    return this.#gaveUp;
  }

  /** The job in hand, or null. */
  get currentJob(): Job | null {
    return this.#current;
  }

  /** `[worker <label>] text`: the label names the supervisor too (see workerLabel). */
  log(text: string): void {
    this.#log(`[worker ${workerLabel(this.#opts.supervisorId ?? null, this.index)}] ${text}`);
  }

  get #leaseMs(): number {
    return this.config.lease * 1000;
  }

  /** Heartbeat period: a third of the lease, so two can be missed before the lease expires. */
  get heartbeatMs(): number {
    return Math.max(50, Math.floor(this.#leaseMs / 3));
  }

  /**
   * Asks the worker to stop. graceful: stop claiming, finish the job in hand. abort: also
   * terminate the running job and give it back to pending. Safe to call many times.
   */
  requestStop(mode: StopMode, reason: string): void {
    if (mode === "graceful") {
      if (this.#stopMode !== null) return;
      this.#stopMode = "graceful";
      this.log(
        `stopping (${reason})${this.#current ? `: finishing ${this.#current.id} first` : ""}`,
      );
    } else {
      if (this.#stopMode === "abort") return;
      this.#stopMode = "abort";
      this.log(
        `stopping now (${reason})${
          this.#current ? `: terminating ${this.#current.id} and releasing it` : ""
        }`,
      );
      this.#jobAbort?.abort();
    }
    this.#stopCtl.abort();
  }

  /**
   * The supervisor is gone (killed): stop claiming, let the job in hand finish within one lease,
   * then terminate and release it, so no orphan runs on for longer than a lease.
   */
  supervisorGone(): void {
    if (this.#deadlineTimer !== undefined || this.#stopMode === "abort") return;
    const leaseMs = this.config ? this.#leaseMs : 30_000;
    this.requestStop("graceful", "the supervisor is gone");
    const timer = setTimeout(
      () =>
        this.requestStop("abort", `the supervisor is gone and ${formatDuration(leaseMs)} passed`),
      leaseMs,
    );
    Deno.unrefTimer(timer);
    this.#deadlineTimer = timer;
  }

  get #outageLimitMs(): number {
    return this.#opts.storeRetryLimitMs ?? this.config.outage_limit * 1000;
  }

  /**
   * Gives up on a database it could not reach for `forMs` (the outage limit, or the supervisor's
   * order): terminates the job in hand without writing anything (it could not be written), logs
   * one line saying what it could not write and what happens to the job, and ends the worker
   * with exit code 5. Safe to call many times.
   */
  giveUp(why: string): void {
    if (this.#gaveUp) return;
    this.#gaveUp = true;
    this.#exitCode = ExitCodes.storage;
    const held = this.#current;
    this.log(
      `fatal: ${why}${
        held
          ? `; could not renew the lease on ${held.id} or record its result: terminating it, it will run again once its lease expires`
          : ""
      }`,
    );
    this.#stopMode = "abort";
    this.#jobAbort?.abort();
    this.#stopCtl.abort();
  }

  /** Registers, works until stopped, unregisters. Resolves to the process exit code. */
  async run(): Promise<number> {
    // Before the first claim: a death from now on leaves a marker naming this worker.
    if (this.#opts.startMarker) this.#marker = StartMarker.open(this.#opts.startMarker, this.id);
    // Asked while the registration runs: both spawn a `cat` of this process's /proc entry (a few
    // ms each on a busy machine, before the first claim).
    const ownSession = this.#groupVia === undefined ? leadsOwnSession() : null;
    try {
      await this.#reloadConfig();
      this.#startedAt = this.clock.now();
      // Retried like any write: a disk full at start is an outage, not a reason to exit (and to
      // be restarted in a loop by the supervisor).
      await this.#retrying("register this worker", () => this.#register());
    } catch (err) {
      this.log(`cannot start: ${formatError(err).replace(/^error: /, "")}`);
      return exitCodeOf(err);
    }
    this.#waker ??= wakerFor(this.store);
    this.#stopKillWatch = this.store.watchKillRequests?.(() => void this.checkKills()) ?? null;
    if (ownSession !== null && await ownSession) this.#groupVia = "session";
    this.#scheduleHeartbeat();
    try {
      const waker = this.#waker;
      // A job already spawned (claimed ahead) is finished whatever the stop.
      while (this.#stopMode === null || this.#begun !== null) {
        if (await this.runOne()) {
          waker.busy();
          continue;
        }
        // Nothing due. A wake-up source that starts now missed what came since that look:
        // look once more before waiting on it.
        if (waker.idle()) continue;
        await this.#idle();
      }
    } catch (err) {
      if (!(err instanceof GaveUp)) {
        // A database gone is said once (the heartbeat may have said it already).
        if (!(err instanceof StorageError && err.gone) || this.#notes.fresh(err)) {
          this.log(`fatal: ${formatError(err).replace(/^error: /, "")}`);
        }
        this.#exitCode = exitCodeOf(err);
      }
    } finally {
      this.#stopKillWatch?.();
      clearTimeout(this.#heartbeatTimer);
      clearTimeout(this.#deadlineTimer);
      this.#heartbeatTimer = undefined;
      this.#waker.close();
      const begun = this.#begun;
      if (begun !== null) {
        // Only after a fatal error: the job spawned while the one before was settling is ended
        // unrecorded (its start marker names it: the lease rescue counts it).
        this.#begun = null;
        this.#jobAbort?.abort();
        await begun.result.catch(() => {});
        if (this.#current === begun.job) this.#current = null;
      }
      // After giving up on the database nothing more is written: the record goes stale and is
      // pruned by others, a job claimed ahead is rescued once its lease expires.
      // Hooks started: each ends within hook_timeout.
      await this.#hooks.settle();
      if (!this.#gaveUp) {
        await this.#releaseNext();
        try {
          await this.store.removeWorker({ id: this.id });
        } catch {
          // the record goes stale and is pruned by others
        }
      }
    }
    return this.#exitCode;
  }

  #startedAt = 0;
  #marker: StartMarker | null = null;

  #hostName: string | null = null;
  /** This worker's host (recorded with the worker and each run), looked up once. */
  get #host(): string {
    return this.#hostName ??= this.#opts.host ?? hostname();
  }

  async #register(): Promise<void> {
    const now = this.clock.now();
    this.#stopsSeen = await this.store.lastStopRequest();
    await this.store.registerWorker({
      worker: {
        id: this.id,
        pid: this.#opts.pid ?? Deno.pid,
        host: this.#host,
        queues: this.queues ? [...this.queues] : null,
        started_at: this.#startedAt || now,
        heartbeat_at: now,
        current_job: this.#current?.id ?? null,
        stop_requested_at: null,
        supervisor_id: this.#opts.supervisorId ?? null,
      },
    });
  }

  /**
   * Runs the job the last settle claimed, else claims one due job, and runs it to its settle.
   * False when nothing was due (or stopping).
   */
  async runOne(): Promise<boolean> {
    const begun = this.#begun;
    if (begun !== null) {
      this.#begun = null;
      // A chain of jobs each spawned ahead must not keep the config from being read again.
      if (this.#stopMode === null && performance.now() - this.#configLoadedAt > CONFIG_RELOAD_MS) {
        await this.#reloadConfig();
      }
      await this.#finish(begun);
      return true;
    }
    if (this.#stopMode !== null) {
      await this.#releaseNext();
      return false;
    }
    if (!this.config || performance.now() - this.#configLoadedAt > CONFIG_RELOAD_MS) {
      await this.#reloadConfig();
    }
    const next = this.#next;
    if (next !== null) {
      this.#next = null;
      await this.#runJob(next);
      return true;
    }
    if (this.#hooks.full) {
      // A slow hook slows the worker down rather than piling up hook processes (hooks.ts).
      if (!this.#saidHooksFull) {
        this.#saidHooksFull = true;
        this.log(
          `${MAX_RUNNING_HOOKS} hooks running, the most a worker runs at once: ` +
            `the next job waits for one of them to end`,
        );
      }
      // Not cut short by a stop: a stopping worker waits for its hooks anyway, and the claim
      // below takes nothing once it stops (#checkedIn).
      await this.#hooks.roomFor();
    }
    this.#waker?.arm();
    this.#claimAttempts++;
    // `now` is read in each attempt: a claim retried through an outage starts its lease when it
    // succeeds, not when the first attempt began (on PostgreSQL the lease is the server's clock).
    const claimed = await this.#retrying(
      "claim a job",
      async () => {
        if (!await this.#checkedIn()) return [];
        return await this.store.claimJobs({
          workerId: this.id,
          queues: this.queues,
          now: this.clock.now(),
          leaseMs: this.#leaseMs,
          limit: 1,
        });
      },
    );
    if (!claimed || claimed.length === 0) return false;
    await this.#runJob(claimed[0]);
    return true;
  }

  /** One heartbeat: renew the lease in hand, record liveness, read the stop request. */
  async heartbeat(): Promise<void> {
    if (this.#gaveUp) return;
    const now = this.clock.now();
    const startedAt = performance.now();
    try {
      const held = this.#current;
      if (held) {
        // Only the job in hand: a job leased to this worker that it does not hold (a claim
        // whose reply was lost with the connection) must expire and be rescued, not linger.
        const renewed = await this.store.renewLeases({
          workerId: this.id,
          now,
          leaseMs: this.#leaseMs,
          jobIds: [held.id],
        });
        // No renewal because the job's own settle landed meanwhile is no loss: only a renewal
        // refused while no settle was under way means the lease was taken over (and then the
        // settle is refused too and says "result dropped").
        if (
          renewed === 0 && this.#current === held && this.#settling !== held &&
          !this.#lostLease.has(held.id)
        ) {
          this.#lostLease.add(held.id);
          this.log(
            `lost the lease on ${held.id} (taken over as lost); its result is recorded only if it ` +
              `completes before another run starts`,
          );
        }
      }
      // The other jobs this worker holds: the one it is settling while the next runs, the ones
      // claimed to run next or ahead. Their leases must not run out under a slow settle.
      const others = [this.#settling, this.#next, this.#ahead, ...this.#toRelease]
        .filter((j): j is Job => j !== null && j !== held).map((j) => j.id);
      if (others.length > 0) {
        await this.store.renewLeases({
          workerId: this.id,
          now,
          leaseMs: this.#leaseMs,
          jobIds: others,
        });
      }
      if (this.#toRelease.length > 0) await this.#releaseHeld();
      // A kill request whose hint was lost (or came before the job started) is read here.
      if (held || this.#next || this.#ahead) await this.checkKills();
      const stop = await this.store.heartbeatWorker({
        id: this.id,
        now,
        currentJob: this.#current?.id ?? null,
      });
      if (stop === undefined) {
        if (await this.store.lastStopRequest() > this.#stopsSeen) {
          // Removed by a `worker stop` issued while this worker was away (cut off, frozen):
          // honour it rather than register again and resume.
          this.requestStop("graceful", "a stop was requested while this worker was away");
        } else {
          // Pruned as stale (this process was stalled for two leases): `worker stop` never
          // removes a live worker's record, so come back rather than quietly lose a worker.
          this.log("worker record was pruned as stale; registering again");
          await this.#register();
        }
      } else if (stop !== null) this.requestStop("graceful", "stop requested");
      if (this.#heartbeatFailing) {
        this.log("database reachable again");
        this.#backOnline.abort();
        this.#backOnline = new AbortController();
      }
      this.#heartbeatFailing = false;
      this.#unreachableSince = null;
    } catch (err) {
      if (err instanceof StorageError && err.gone) {
        // The database file was deleted or replaced: whatever runs now runs for nobody.
        if (this.#notes.fresh(err)) this.log(`fatal: ${formatError(err).replace(/^error: /, "")}`);
        this.#exitCode = exitCodeOf(err);
        this.requestStop("abort", "the database is gone");
        return;
      }
      if (!this.#heartbeatFailing && this.#notes.fresh(err)) {
        this.log(`heartbeat failed: ${formatError(err).replace(/^error: /, "")}`);
      }
      this.#heartbeatFailing = true;
      if (isTransient(err)) {
        this.#unreachableSince ??= startedAt;
        const outMs = performance.now() - this.#unreachableSince;
        // A settle under way gives up by itself at the limit, saying what it could not record.
        if (outMs >= this.#outageLimitMs && this.#settling === null) {
          this.giveUp(
            `could not reach the database for ${formatDuration(outMs)} (outage_limit ${
              formatDuration(this.#outageLimitMs)
            }): ${(err as Error).message}`,
          );
        }
      }
    }
  }

  /**
   * Reads the kill requests (`queuectl kill`) of the jobs this worker holds: the job in hand is
   * killed at once, the job claimed ahead is recorded as killed without being started. Calls that
   * come while one is under way are folded into one more round.
   */
  checkKills(): Promise<void> {
    if (this.#killCheck !== null) {
      this.#killCheckAgain = true;
      return this.#killCheck;
    }
    this.#killCheck = (async () => {
      do {
        this.#killCheckAgain = false;
        for (const held of [this.#current, this.#next, this.#ahead]) {
          if (held === null || this.#killRequests.has(held.id)) continue;
          let job: Job | null;
          try {
            job = await this.store.getJob({ id: held.id });
          } catch {
            continue; // the next heartbeat looks again
          }
          if (
            job === null || job.state !== "processing" || job.lease_owner !== this.id ||
            job.kill_signal === null
          ) continue;
          this.#killRequests.set(job.id, { signal: job.kill_signal, retry: job.kill_retry === 1 });
          if (this.#current?.id === job.id) {
            this.log(`killing ${job.id} with ${job.kill_signal} (queuectl kill)`);
            this.#jobKill?.abort(job.kill_signal);
          }
        }
      } while (this.#killCheckAgain);
    })().finally(() => {
      this.#killCheck = null;
    });
    return this.#killCheck;
  }

  /**
   * The signal that ended a job as part of a shutdown of the whole service, or null. A service
   * manager that stops every process of the service at once (systemd's default
   * KillMode=control-group, `kill` of a whole cgroup) sends SIGTERM to the job as well as to the
   * supervisor, which then tells this worker to stop: the job's death is the stop's doing, not a
   * failure of the job, and must not use up an attempt (nor send a job on its last one to the
   * DLQ). So a job that the shell reports ended by SIGTERM, SIGINT or SIGHUP (or exiting 128 + its
   * number, as a shell reports a child so ended) while this worker is stopping, or within
   * {@link SHUTDOWN_NOTICE_MS} after (the supervisor's order may come after the job's exit), is
   * released like an aborted one. Outside a stop such a signal stays the job's failure.
   */
  async #endedByShutdown(result: ExecResult): Promise<string | null> {
    if (result.killed !== null || result.timed_out || result.aborted) return null;
    const signal = SHUTDOWN_SIGNALS.find((s) =>
      result.signal === s || result.exit_code === 128 + signalNumber(s)!
    );
    if (signal === undefined) return null;
    if (this.#stopMode === null) await sleep(SHUTDOWN_NOTICE_MS, this.#stopCtl.signal);
    return this.#stopMode === null ? null : signal;
  }

  #scheduleHeartbeat(): void {
    this.#heartbeatTimer = setTimeout(async () => {
      await this.heartbeat();
      if (this.#heartbeatTimer !== undefined) this.#scheduleHeartbeat();
    }, this.heartbeatMs);
  }

  async #reloadConfig(): Promise<void> {
    try {
      this.config = configFrom(await this.store.getConfig());
      this.#configLoadedAt = performance.now();
      this.store.setCallTimeout?.(storeCallLimitMs(this.config.lease));
    } catch (err) {
      if (!this.config) throw err;
      // keep the config we have; the store error shows up on the next write
    }
  }

  async #runJob(job: Job): Promise<void> {
    await this.#finish(this.#begin(job));
  }

  /**
   * Spawns `job` (synchronously: the spawn call is made before this returns) and makes it the job
   * in hand. `unsettled`: the job before it, ended but not settled yet (its start marker names
   * both, see start_marker.ts).
   */
  #begin(job: Job, unsettled: Job | null = null): Running {
    this.#current = job;
    const attempt = job.attempts > 1 ? ` (attempt ${job.attempts}/${job.max_retries + 1})` : "";
    const timeoutS = job.timeout ?? this.config.job_timeout;
    const abort = new AbortController();
    this.#jobAbort = abort;
    if (this.#stopMode === "abort") abort.abort();
    const kill = new AbortController();
    this.#jobKill = kill;
    const asked = this.#killRequests.get(job.id);
    if (asked) kill.abort(asked.signal);
    // The output reaches the store while the job runs (logs --follow); none written if it prints
    // nothing. The settle replaces it with the whole captured output.
    const limit = this.config.output_limit;
    const live = new LiveOutput(limit, async (chunk) => {
      await this.store.appendRunOutput({
        jobId: job.id,
        attempt: job.attempts,
        worker: this.id,
        host: this.#host,
        startedAt: job.started_at,
        stdout: chunk.stdout,
        stderr: chunk.stderr,
        limit,
        now: this.clock.now(),
      });
    });
    const result = execute({
      command: job.command,
      // The job's own variables, then queuectl's (README: "What a job gets").
      env: {
        ...parseJobEnv(job.env),
        QUEUECTL_JOB_ID: job.id,
        QUEUECTL_ATTEMPT: String(job.attempts),
        QUEUECTL_QUEUE: job.queue,
        QUEUECTL_WORKER_SLOT: this.#slot,
      },
      timeoutMs: timeoutS > 0 ? Math.round(timeoutS * 1000) : null,
      graceMs: this.#opts.graceMs,
      outputLimit: this.config.output_limit,
      signal: abort.signal,
      kill: kill.signal,
      cwd: job.cwd ?? this.#opts.cwd,
      groupVia: this.#groupVia,
      onOutput: (stream, chunk) => live.push(stream, chunk),
      // Right before the spawn: the start marker, then the "started" line, so that the line is
      // never written for a job whose worker died before this point (its supervisor releases
      // it, see docs/architecture.md, "Claimed, not started"), nor for one ended before it.
      beforeSpawn: () => {
        this.#marker?.record(job, unsettled);
        this.log(`started ${job.id}${attempt}: ${oneLine(job.command, COMMAND_SHOWN)}`);
      },
    }).finally(async () => {
      if (this.#jobAbort === abort) this.#jobAbort = null;
      if (this.#jobKill === kill) this.#jobKill = null;
      await live.close();
    });
    this.#currentBeganAt = performance.now();
    if (this.#ahead !== null) this.#holdAheadAtMost();
    return { job, result };
  }

  /** When the job in hand was spawned (performance.now()). */
  #currentBeganAt = 0;
  /** See {@link #holdAheadAtMost}. */
  #holdTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * While a job claimed ahead waits: gives it back once the job in hand has run
   * {@link AHEAD_HOLD_MS} (the timer is cleared when that job ends).
   */
  #holdAheadAtMost(): void {
    clearTimeout(this.#holdTimer);
    const job = this.#current;
    if (job === null || this.#ahead === null) return;
    const ms = Math.max(0, AHEAD_HOLD_MS - (performance.now() - this.#currentBeganAt));
    this.#holdTimer = setTimeout(() => {
      this.#holdTimer = undefined;
      if (this.#current !== job || this.#ahead === null) return;
      void this.#releaseAhead();
    }, ms);
    Deno.unrefTimer(this.#holdTimer);
  }

  /**
   * Whether the job `result` ended lets the job claimed ahead start before its settle: it
   * completed, and nothing (a stop, failing heartbeats, busy hooks) asks to wait.
   */
  #mayStartAhead(result: ExecResult): boolean {
    return this.#ahead !== null && this.#aheadAllowed() && !this.#heartbeatFailing &&
      !this.#gaveUp && result.exit_code === 0 && !result.timed_out && result.killed === null &&
      !result.aborted;
  }

  /**
   * Whether jobs may be claimed and started ahead now: not while stopping, nor with completion
   * hooks configured (each job then starts a hook process of its own, which a spawn before the
   * settle would let pile up past the hooks' limit; and the half millisecond saved is nothing
   * beside a hook's spawn).
   */
  #aheadAllowed(): boolean {
    const c = this.config;
    return this.#stopMode === null && !this.#hooks.full && c.hook_completed === "" &&
      c.hook_dead === "" && c.hook_drained === "";
  }

  /** Settles the job `running` ran, once it ended; may start the job claimed ahead first. */
  async #finish(running: Running): Promise<void> {
    const { job } = running;
    const result = await running.result;
    clearTimeout(this.#holdTimer);
    const killRequest = this.#killRequests.get(job.id);
    this.#killRequests.delete(job.id);
    const shutdown = result.exit_code === 0 ? null : await this.#endedByShutdown(result);
    const now = this.clock.now();
    const run = {
      now,
      workerId: this.id,
      exit_code: result.exit_code,
      error: result.error,
      signal: result.signal,
      host: this.#host,
      duration_ms: result.duration_ms,
    };
    let change: StateChange;
    let reason: string;
    if (result.killed !== null) {
      change = killed(job, run, this.config, killRequest?.retry ?? false);
      reason = result.error ?? `killed by ${result.killed}`;
    } else if (result.exit_code === 0 && !result.timed_out) {
      change = complete(job, run);
      reason = seconds(result.duration_ms);
    } else if (result.aborted && !result.timed_out) {
      // Recorded as an interrupted run, with its output; the attempt is not counted.
      change = release(job, now, this.id, { ...run, error: `interrupted: ${result.error}` });
      reason = "the worker was stopped before it finished";
    } else if (shutdown !== null) {
      // Not the job's failure: the stop of the whole service reached it (see #endedByShutdown).
      change = release(job, now, this.id, {
        ...run,
        error: `interrupted: ${result.error} while the worker was stopping`,
      });
      reason = `${shutdown} reached it while the worker was stopping (a service manager ` +
        `stopping every process at once?); the attempt is not counted`;
    } else {
      change = fail(job, run, this.config);
      reason = failureReason(result);
    }
    // The run's output goes with its record (core/runs.ts), in the settle's transaction.
    const output = { stdout: result.stdout, stderr: result.stderr };
    // The job claimed ahead starts now, its settle after (docs/architecture.md, "Claimed ahead").
    let begun: Running | null = null;
    if (this.#mayStartAhead(result)) {
      const ahead = this.#ahead!;
      this.#ahead = null;
      begun = this.#begin(ahead, job);
      // Finished by the next runOne (or, after a fatal error, ended by run()).
      this.#begun = begun;
    } else if (this.#ahead !== null && this.#next === null) {
      this.#next = this.#ahead;
      this.#ahead = null;
    }
    // Claimed along with the settle: the job to run next (unless one is), and one ahead after a
    // short job.
    const wantAhead = this.#ahead === null && this.#aheadAllowed() &&
      result.duration_ms < (this.#opts.aheadAfterMs ?? AHEAD_AFTER_MS);
    const firm = begun !== null || this.#next !== null ? 0 : 1;
    const limit = firm + (wantAhead ? 1 : 0);
    this.#settling = job;
    // No claim along with a settle that had to be retried or while heartbeats fail: the worker
    // checks in first (a stop may have been recorded while it was away). Nor while its hooks are
    // all busy: the next claim waits for one to end (runOne).
    let tries = 0;
    const settled = await this.#retrying(
      `record the result of ${job.id}`,
      () =>
        this.#stopMode !== null || this.#heartbeatFailing || tries++ > 0 || this.#hooks.full ||
          limit === 0
          ? this.store.applyChange({ change, output }).then((applied) => ({ applied, claimed: [] }))
          : this.store.settleAndClaim({
            change,
            output,
            claim: {
              workerId: this.id,
              queues: this.queues,
              now: this.clock.now(),
              leaseMs: this.#leaseMs,
              limit,
              ahead: limit - firm,
            },
          }),
      true,
    );
    let applied = settled?.applied ?? false;
    const claimed = [...settled?.claimed ?? []];
    if (firm === 1) this.#next = claimed.shift() ?? null;
    if (claimed.length > 0) {
      this.#ahead = claimed.shift()!;
      // Held while the job spawned ahead runs (else from the spawn of the next one, #begin).
      if (begun !== null) this.#holdAheadAtMost();
    }
    let late = false;
    if (!applied && settled && change.to === "completed") {
      // Refused because a rescue took the job over while this worker was cut off: the run did
      // end with exit 0, so it is recorded as completed while no other run has started.
      const lateChange = completeLate(job, run);
      late = (await this.#retrying(
        `record the result of ${job.id}`,
        () => this.store.applyChange({ change: lateChange, output }),
        true,
      )) ?? false;
      applied = late;
    }
    if (this.#current === job) this.#current = null;
    this.#settling = null;
    this.#lostLease.delete(job.id);
    this.#jobsDone++;
    if (!applied) {
      this.log(
        `${job.id}: result dropped (${
          change.to === "completed" ? "completed" : reason
        }): its lease expired and the job was taken over`,
      );
    } else if (late) {
      this.log(
        `completed ${job.id} (${reason}; recorded late: the job had been taken over as lost, ` +
          `and no other run had started)`,
      );
    } else if (change.to === "completed") {
      this.log(`completed ${job.id} (${reason})`);
    } else {
      this.log(describeChange(job, change, reason));
    }
    if (applied) this.#afterOutcome(job, change, result);
  }

  /** Hooks of a committed outcome (worker/hooks.ts): they run in the background. */
  #afterOutcome(job: Job, change: StateChange, result: ExecResult): void {
    if (change.to !== "completed" && change.to !== "dead") return;
    this.#hooks.fire(this.config, change.to, {
      job,
      state: change.to,
      exit_code: result.exit_code,
      duration_ms: result.duration_ms,
      error: result.error,
    });
    // A job in hand or held from the same queue: it is not empty.
    const held = [this.#current, this.#next, this.#ahead];
    if (!held.some((j) => j !== null && j !== job && j.queue === job.queue)) {
      this.#hooks.checkDrained(this.store, this.config, job.queue);
    }
  }

  /**
   * Before claiming after heartbeats failed (the database was away): one heartbeat first, so that
   * a stop recorded meanwhile is seen before any new job is taken. False when the worker is to
   * stop; throws a transient error while the database is still unreachable (the caller retries).
   */
  async #checkedIn(): Promise<boolean> {
    if (this.#heartbeatFailing) {
      await this.heartbeat();
      if (this.#heartbeatFailing) {
        throw new StorageError("the database is still unreachable (heartbeat failed)", {
          transient: true,
        });
      }
    }
    return this.#stopMode === null;
  }

  /**
   * Gives back the jobs claimed but not started (to run next, ahead) when they will not be run:
   * pending, attempt not counted, no run recorded.
   */
  async #releaseNext(): Promise<void> {
    if (this.#next !== null) this.#toRelease.push(this.#next);
    this.#next = null;
    await this.#releaseAhead();
  }

  /** Gives the job claimed ahead back (pending, the attempt not counted; idle workers woken). */
  async #releaseAhead(): Promise<void> {
    if (this.#ahead !== null) this.#toRelease.push(this.#ahead);
    this.#ahead = null;
    await this.#releaseHeld();
  }

  /**
   * Releases the jobs in {@link #toRelease}; one that fails stays for the next try (heartbeat,
   * stop). A release is guarded by the lease: tried again after a write whose fate was unknown, it
   * changes nothing. Left over when the worker exits: its supervisor releases them (start marker),
   * else their lease runs out and the maintenance service rescues them.
   */
  async #releaseHeld(): Promise<void> {
    for (const job of this.#toRelease.splice(0)) {
      try {
        await this.store.applyChange({ change: release(job, this.clock.now(), this.id, null) });
      } catch {
        this.#toRelease.push(job);
      }
    }
  }

  async #idle(): Promise<void> {
    if (this.#stopMode !== null) return;
    const now = this.clock.now();
    let waitMs = this.config.poll_interval * 1000;
    const next = await this.#retrying(
      "read the next run time",
      // Paused and full queues left out: their due jobs would end every wait at once until a
      // resume, or the end of a job that frees a slot, which wake the workers anyway.
      () => this.store.nextRunAt({ queues: this.queues, open: true }),
    );
    if (next !== null && next !== undefined) waitMs = Math.min(waitMs, Math.max(0, next - now));
    this.#lastIdleClaim = performance.now();
    this.#waiting = true;
    let hinted: boolean;
    try {
      hinted = await (this.#waker ?? wakerFor(this.store)).wait(waitMs, this.#stopCtl.signal);
    } finally {
      this.#waiting = false;
    }
    // A hint comes only from a commit that made a job claimable (docs/architecture.md "Wake-ups"):
    // claim at once, even right after a claim that found nothing (another worker took the job a
    // previous hint was for), up to HINT_CLAIMS_PER_GAP per gap. A wait its timer ended is paced:
    // claim at most once per gap (a due job this worker cannot claim would spin the loop).
    let gap: number;
    if (hinted) {
      const now = performance.now();
      this.#hintClaims = this.#hintClaims.filter((t) => now - t < MIN_IDLE_GAP_MS);
      gap = this.#hintClaims.length < HINT_CLAIMS_PER_GAP
        ? 0
        : MIN_IDLE_GAP_MS - (now - this.#hintClaims[0]);
    } else {
      gap = MIN_IDLE_GAP_MS - (performance.now() - this.#lastIdleClaim);
    }
    // Stopping: no claim follows, so no gap either (and none counted).
    if (gap > 0 && !this.#stopCtl.signal.aborted) {
      this.#idleGaps++;
      await sleep(gap, this.#stopCtl.signal);
    }
    if (hinted) this.#hintClaims.push(performance.now());
  }

  /**
   * Runs a store call, retrying transient errors (lost connection, lock) with backoff for up to
   * `storeRetryLimitMs`. `mustFinish`: keep retrying even while stopping (a job's outcome must
   * be recorded); otherwise a stop request ends the retries with undefined.
   */
  async #retrying<T>(
    what: string,
    fn: () => Promise<T>,
    mustFinish = false,
  ): Promise<T | undefined> {
    const limit = this.#outageLimitMs;
    const started = performance.now();
    let delay = 100;
    let warned = false;
    for (;;) {
      if (this.#gaveUp) throw new GaveUp();
      try {
        const value = await fn();
        if (warned) this.log(`database reachable again`);
        return value;
      } catch (err) {
        if (!isTransient(err)) throw err;
        const elapsed = performance.now() - started;
        if (elapsed >= limit) {
          // Nothing more is written (see giveUp); this error's line says what was not.
          this.#gaveUp = true;
          this.#exitCode = ExitCodes.storage;
          throw new StorageError(
            `Could not ${what} for ${formatDuration(elapsed)}: ${(err as Error).message}`,
            {
              hint: mustFinish
                ? "the job will run again once its lease expires"
                : "check the database connection",
              cause: err,
            },
          );
        }
        if (!warned) {
          warned = true;
          if (this.#notes.fresh(err)) {
            const hint = err instanceof StorageError && err.hint ? `; ${err.hint}` : "";
            this.log(`cannot ${what} (${(err as Error).message}); retrying${hint}`);
          }
        }
        if (!mustFinish && this.#stopMode !== null) return undefined;
        // A heartbeat that gets through again ends the wait: the result goes in at once.
        const back = this.#backOnline.signal;
        await sleep(
          Math.min(delay, limit - elapsed),
          mustFinish ? back : AbortSignal.any([back, this.#stopCtl.signal]),
        );
        delay = Math.min(delay * 2, 5000);
      }
    }
  }
}

/** Thrown by a store call after the worker gave up (see Runner.giveUp, which said why). */
class GaveUp extends Error {
  constructor() {
    super("gave up on the database");
  }
}
