/**
 * One worker process: claim → execute → settle, one job at a time.
 *
 * 1. Register a worker record; rescue jobs whose lease expired (their worker died).
 * 2. Loop: claim one due job (one guarded UPDATE ... RETURNING), run it through the executor,
 *    settle it with one guarded write (transitions.complete / fail / release). A settle the store
 *    refuses means the lease was taken over meanwhile: the result is dropped and logged, never
 *    written over the newer outcome. While not stopping, the settle also claims the next job
 *    (store.settleAndClaim: one SQLite transaction per job instead of two); a job so claimed that
 *    the worker does not start because it was asked to stop is released, attempt not counted.
 * 3. When nothing is due, wait for a wake-up hint (WAL file watch or LISTEN/NOTIFY, see wake.ts),
 *    the next scheduled run_at, or `poll_interval`, whichever comes first.
 * 4. A heartbeat every lease/3 renews the lease of the job in hand, records the worker's liveness,
 *    reads a stop request (`worker stop`) and rescues expired leases of other workers.
 * 5. Stop: "graceful" stops claiming and lets the job in hand finish; "abort" also terminates the
 *    job's process group and releases the job to pending without consuming a retry.
 *
 * Config is read at start and re-read every few seconds, never per job.
 */
import { type Clock, systemClock } from "../core/clock.ts";
import { formatDuration } from "../core/duration.ts";
import { exitCodeOf, ExitCodes, formatError, StorageError } from "../core/errors.ts";
import type { Job } from "../core/job.ts";
import type { RetryPolicy } from "../core/retry_policy.ts";
import { complete, fail, loseLease, release, type StateChange } from "../core/transitions.ts";
import { type Config, loadConfig } from "../app/config.ts";
import type { Store } from "../store/store.ts";
import { type ExecOptions, type ExecResult, execute, leadsOwnSession } from "./executor.ts";
import { sleep, type Waker, wakerFor } from "./wake.ts";

export type StopMode = "graceful" | "abort";

export interface RunnerOptions {
  store: Store;
  clock?: Clock;
  /** The number shown in log lines: `[worker 2] ...`. */
  index?: number;
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
  /** How long a write may keep failing with a transient error before the worker gives up. */
  storeRetryLimitMs?: number;
  /** Grace between SIGTERM and SIGKILL of a job's process group (timeout, abort). */
  graceMs?: number;
  /** Working directory of jobs; default the worker's. */
  cwd?: string;
  /**
   * How jobs' processes are kept together (see {@link ExecOptions.groupVia}). Default: run()
   * picks `"session"` when this process leads its own session (the supervisor starts workers
   * that way), which spares every job an extra exec of `setsid`; else the executor's default.
   */
  groupVia?: ExecOptions["groupVia"];
}

/** How often config is re-read while working. */
const CONFIG_RELOAD_MS = 5000;
/** At most one idle claim attempt per this many ms when hints arrive in a burst. */
const MIN_IDLE_GAP_MS = 10;
/** Jobs rescued per rescue pass. */
const RESCUE_BATCH = 100;
/** Longest command text shown in a `started` line. */
const COMMAND_SHOWN = 200;
const DEFAULT_STORE_RETRY_LIMIT_MS = 60_000;

export function randomSuffix(bytes = 3): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** A write error that may go away if retried: lost connection, lock held too long. */
export function isTransient(err: unknown): boolean {
  return err instanceof StorageError &&
    (err.transient === true || /\b(locked|busy)\b/i.test(err.message));
}

/** Short reason a run failed, for log lines: `exit 127`, `timed out after 5s`, `killed by SIGKILL`. */
export function failureReason(r: Pick<ExecResult, "exit_code" | "timed_out" | "error">): string {
  if (r.timed_out) return (r.error ?? "timed out").replace(/\s*\(.*\)$/, "");
  if (r.exit_code !== null) return `exit ${r.exit_code}`;
  return r.error ?? "failed";
}

function oneLine(text: string, max: number): string {
  const first = text.replace(/\s*[\r\n][\s\S]*/, " …");
  return first.length > max ? first.slice(0, max - 1) + "…" : first;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)}s`;
}

/** What a settle or rescue did, in the words of the log line (without the `[worker N]` prefix). */
export function describeChange(job: Job, change: StateChange, reason: string): string {
  if (change.to === "dead") {
    return `${job.id} moved to DLQ (${reason}, ${job.attempts} attempt${
      job.attempts === 1 ? "" : "s"
    })`;
  }
  if (change.to === "failed") {
    const delay = (change.set.run_at ?? change.updated_at) - change.updated_at;
    return `failed ${job.id} (${reason}), retry ${job.attempts}/${job.max_retries} in ${
      formatDuration(delay)
    }`;
  }
  if (change.to === "pending") return `released ${job.id} back to pending (${reason})`;
  return `${change.to} ${job.id} (${reason})`;
}

/**
 * Rescues jobs whose worker stopped renewing its lease: each is counted as a failed run
 * ("worker lost") and retried or moved to the DLQ. The job `skipJob` (the caller's job in hand)
 * is left alone; any other expired job, even one leased to the caller (a claim whose reply it
 * never got), is rescued. Returns one log text per job rescued.
 */
export async function rescueExpiredLeases(
  store: Store,
  now: number,
  policy: RetryPolicy,
  skipJob?: string,
): Promise<string[]> {
  const lines: string[] = [];
  for (;;) {
    const expired = (await store.findExpiredLeases({ now, limit: RESCUE_BATCH }))
      .filter((j) => j.id !== skipJob);
    let progressed = false;
    for (const job of expired) {
      const change = loseLease(job, now, policy);
      if (await store.applyChange({ change })) {
        progressed = true;
        lines.push(
          `rescued ${job.id} from lost worker ${job.lease_owner}: ${
            describeChange(job, change, "worker lost").replace(/^failed \S+ \(worker lost\), /, "")
          }`,
        );
      }
    }
    if (expired.length < RESCUE_BATCH || !progressed) return lines;
  }
}

export class Runner {
  readonly id: string;
  readonly index: number;
  readonly store: Store;
  readonly clock: Clock;
  readonly queues: readonly string[] | null;
  config!: Config;

  #log: (line: string) => void;
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
  /** Claimed by the last settle, to run next (released unstarted if the worker stops first). */
  #next: Job | null = null;
  readonly #lostLease = new Set<string>();

  constructor(opts: RunnerOptions) {
    this.#opts = opts;
    this.store = opts.store;
    this.clock = opts.clock ?? systemClock;
    this.index = opts.index ?? 1;
    this.id = opts.id ?? `w${this.index}-${randomSuffix()}`;
    this.queues = opts.queues && opts.queues.length > 0 ? [...opts.queues] : null;
    this.#log = opts.log ?? ((line) => console.log(line));
    this.#waker = opts.waker ?? null;
    this.#groupVia = opts.groupVia;
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

  /** The job in hand, or null. */
  get currentJob(): Job | null {
    return this.#current;
  }

  log(text: string): void {
    this.#log(`[worker ${this.index}] ${text}`);
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

  /** Registers, works until stopped, unregisters. Resolves to the process exit code. */
  async run(): Promise<number> {
    try {
      await this.#reloadConfig();
      this.#startedAt = this.clock.now();
      await this.#register();
    } catch (err) {
      this.log(`cannot start: ${formatError(err).replace(/^error: /, "")}`);
      return exitCodeOf(err);
    }
    this.#waker ??= wakerFor(this.store);
    if (this.#groupVia === undefined && await leadsOwnSession()) this.#groupVia = "session";
    this.#scheduleHeartbeat();
    try {
      await this.rescue();
      const waker = this.#waker;
      while (this.#stopMode === null) {
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
      this.log(`fatal: ${formatError(err).replace(/^error: /, "")}`);
      this.#exitCode = exitCodeOf(err);
    } finally {
      await this.#releaseNext();
      clearTimeout(this.#heartbeatTimer);
      clearTimeout(this.#deadlineTimer);
      this.#heartbeatTimer = undefined;
      this.#waker.close();
      try {
        await this.store.removeWorker({ id: this.id });
      } catch {
        // the record goes stale and is pruned by others
      }
    }
    return this.#exitCode;
  }

  #startedAt = 0;

  async #register(): Promise<void> {
    const now = this.clock.now();
    await this.store.registerWorker({
      worker: {
        id: this.id,
        pid: this.#opts.pid ?? Deno.pid,
        host: this.#opts.host ?? hostname(),
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
    this.#waker?.arm();
    const now = this.clock.now();
    const claimed = await this.#retrying(
      "claim a job",
      () =>
        this.store.claimJobs({
          workerId: this.id,
          queues: this.queues,
          now,
          leaseMs: this.#leaseMs,
          limit: 1,
        }),
    );
    if (!claimed || claimed.length === 0) return false;
    await this.#runJob(claimed[0]);
    return true;
  }

  /** One rescue pass over expired leases (all but the job in hand); logs each job rescued. */
  async rescue(): Promise<number> {
    if (!this.config) await this.#reloadConfig();
    const lines = await rescueExpiredLeases(
      this.store,
      this.clock.now(),
      this.config,
      this.#current?.id,
    );
    for (const line of lines) this.log(line);
    return lines.length;
  }

  /** One heartbeat: renew the lease in hand, record liveness, read the stop request, rescue. */
  async heartbeat(): Promise<void> {
    const now = this.clock.now();
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
        if (renewed === 0 && this.#current === held && !this.#lostLease.has(held.id)) {
          this.#lostLease.add(held.id);
          this.log(
            `lost the lease on ${held.id} (another worker took it over); its result will be dropped`,
          );
        }
      }
      const stop = await this.store.heartbeatWorker({
        id: this.id,
        now,
        currentJob: this.#current?.id ?? null,
      });
      if (stop === undefined) {
        // Pruned as stale (this process was stalled for two leases): `worker stop` never
        // removes a live worker's record, so come back rather than quietly lose a worker.
        this.log("worker record was pruned as stale; registering again");
        await this.#register();
      } else if (stop !== null) this.requestStop("graceful", "stop requested");
      if (this.#heartbeatFailing) this.log("database reachable again");
      this.#heartbeatFailing = false;
      if (this.#stopMode === null) await this.rescue();
    } catch (err) {
      if (!this.#heartbeatFailing) {
        this.log(`heartbeat failed: ${formatError(err).replace(/^error: /, "")}`);
      }
      this.#heartbeatFailing = true;
    }
  }

  #scheduleHeartbeat(): void {
    this.#heartbeatTimer = setTimeout(async () => {
      await this.heartbeat();
      if (this.#heartbeatTimer !== undefined) this.#scheduleHeartbeat();
    }, this.heartbeatMs);
  }

  async #reloadConfig(): Promise<void> {
    try {
      this.config = await loadConfig(this.store);
      this.#configLoadedAt = performance.now();
    } catch (err) {
      if (!this.config) throw err;
      // keep the config we have; the store error shows up on the next write
    }
  }

  async #runJob(job: Job): Promise<void> {
    this.#current = job;
    const attempt = job.attempts > 1 ? ` (attempt ${job.attempts}/${job.max_retries + 1})` : "";
    this.log(`started ${job.id}${attempt}: ${oneLine(job.command, COMMAND_SHOWN)}`);
    const timeoutS = job.timeout ?? this.config.job_timeout;
    const abort = new AbortController();
    this.#jobAbort = abort;
    if (this.#stopMode === "abort") abort.abort();
    let result: ExecResult;
    try {
      result = await execute({
        command: job.command,
        env: {
          QUEUECTL_JOB_ID: job.id,
          QUEUECTL_ATTEMPT: String(job.attempts),
          QUEUECTL_QUEUE: job.queue,
        },
        timeoutMs: timeoutS > 0 ? Math.round(timeoutS * 1000) : null,
        graceMs: this.#opts.graceMs,
        outputLimit: this.config.output_limit,
        signal: abort.signal,
        cwd: this.#opts.cwd,
        groupVia: this.#groupVia,
      });
    } finally {
      this.#jobAbort = null;
    }
    const now = this.clock.now();
    const run = { now, workerId: this.id, exit_code: result.exit_code, error: result.error };
    let change: StateChange;
    let reason: string;
    if (result.exit_code === 0 && !result.timed_out) {
      change = complete(job, run);
      reason = seconds(result.duration_ms);
    } else if (result.aborted && !result.timed_out) {
      change = release(job, now, this.id);
      reason = "the worker was stopped before it finished";
    } else {
      change = fail(job, run, this.config);
      reason = failureReason(result);
    }
    // Output of the run, except: a released run is incomplete (the last finished run's output
    // stays); an empty output of a job that never finished before has nothing to overwrite
    // (output is only written by settles that set finished_at), which saves a write per job.
    const output = change.to === "pending" ||
        (result.stdout === "" && result.stderr === "" && job.finished_at === null)
      ? undefined
      : { stdout: result.stdout, stderr: result.stderr };
    const settled = await this.#retrying(
      `record the result of ${job.id}`,
      () =>
        this.#stopMode !== null
          ? this.store.applyChange({ change, output }).then((applied) => ({ applied, claimed: [] }))
          : this.store.settleAndClaim({
            change,
            output,
            claim: {
              workerId: this.id,
              queues: this.queues,
              now: this.clock.now(),
              leaseMs: this.#leaseMs,
              limit: 1,
            },
          }),
      true,
    );
    const applied = settled?.applied ?? false;
    this.#next = settled?.claimed[0] ?? null;
    this.#current = null;
    this.#lostLease.delete(job.id);
    this.#jobsDone++;
    if (!applied) {
      this.log(
        `${job.id}: result dropped (${
          change.to === "completed" ? "completed" : reason
        }): its lease expired and the job was taken over`,
      );
    } else if (change.to === "completed") {
      this.log(`completed ${job.id} (${reason})`);
    } else {
      this.log(describeChange(job, change, reason));
    }
  }

  /** Gives the job claimed ahead back (pending, attempt not counted) when it will not be run. */
  async #releaseNext(): Promise<void> {
    const job = this.#next;
    if (job === null) return;
    this.#next = null;
    try {
      await this.store.applyChange({ change: release(job, this.clock.now(), this.id) });
    } catch {
      // Its lease runs out and a live worker rescues it.
    }
  }

  async #idle(): Promise<void> {
    if (this.#stopMode !== null) return;
    const now = this.clock.now();
    let waitMs = this.config.poll_interval * 1000;
    const next = await this.#retrying(
      "read the next run time",
      () => this.store.nextRunAt({ queues: this.queues }),
    );
    if (next !== null && next !== undefined) waitMs = Math.min(waitMs, Math.max(0, next - now));
    this.#lastIdleClaim = performance.now();
    this.#waiting = true;
    try {
      await (this.#waker ?? wakerFor(this.store)).wait(waitMs, this.#stopCtl.signal);
    } finally {
      this.#waiting = false;
    }
    // Hints come in bursts while other workers are busy: claim at most once per gap.
    const gap = MIN_IDLE_GAP_MS - (performance.now() - this.#lastIdleClaim);
    if (gap > 0) await sleep(gap, this.#stopCtl.signal);
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
    const limit = this.#opts.storeRetryLimitMs ?? DEFAULT_STORE_RETRY_LIMIT_MS;
    const started = performance.now();
    let delay = 100;
    let warned = false;
    for (;;) {
      try {
        const value = await fn();
        if (warned) this.log(`database reachable again`);
        return value;
      } catch (err) {
        if (!isTransient(err)) throw err;
        const elapsed = performance.now() - started;
        if (elapsed >= limit) {
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
          this.log(`cannot ${what} (${(err as Error).message}); retrying`);
          warned = true;
        }
        if (!mustFinish && this.#stopMode !== null) return undefined;
        await sleep(
          Math.min(delay, limit - elapsed),
          mustFinish ? undefined : this.#stopCtl.signal,
        );
        delay = Math.min(delay * 2, 5000);
      }
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

export interface ProcessControlOptions {
  /** Spawned by a supervisor: stdin carries its commands and its end means it is gone. */
  supervised: boolean;
}

/**
 * Connects a runner to its process: signals, and (when supervised) the supervisor's stdin pipe.
 *
 * - Supervised: stdin lines `stop` / `abort` are the supervisor's orders; end of stdin means the
 *   supervisor died (even by SIGKILL: the kernel closes the pipe). SIGINT, SIGHUP and SIGTERM are
 *   ignored: Ctrl-C and a closed terminal reach the whole process group where a worker shares it
 *   with the supervisor (Windows), and the supervisor relays them; and a worker in session mode
 *   shares its process group with its job (see executor.ts), so a job's `kill 0` (as in the
 *   idiom `trap 'kill 0' EXIT`) reaches the worker too, and must not stop it. The trade-off: a
 *   SIGTERM sent to a supervised worker's pid by hand does nothing; stop workers through their
 *   supervisor or `worker stop`.
 * - Unsupervised: SIGTERM, SIGINT and SIGHUP: first graceful, second abort.
 * - Supervised: the parent pid is also checked on each heartbeat as a second line of defence.
 *
 * Returns a function that detaches everything.
 */
export function attachProcessControls(
  runner: Runner,
  opts: ProcessControlOptions,
): () => void {
  const cleanups: (() => void)[] = [];
  let signals = 0;
  const onSignal = (name: string) => () => {
    signals++;
    runner.requestStop(signals === 1 ? "graceful" : "abort", `${name} received`);
  };
  const listen = (sig: Deno.Signal, handler: () => void) => {
    try {
      Deno.addSignalListener(sig, handler);
      cleanups.push(() => Deno.removeSignalListener(sig, handler));
    } catch {
      // signal not supported on this platform
    }
  };
  // Supervised: a listener that does nothing keeps the signal from killing the process.
  const ignoreIfSupervised = (name: string) => opts.supervised ? () => {} : onSignal(name);
  if (Deno.build.os !== "windows") {
    listen("SIGTERM", ignoreIfSupervised("SIGTERM"));
    listen("SIGHUP", ignoreIfSupervised("SIGHUP"));
  }
  listen("SIGINT", ignoreIfSupervised("SIGINT"));

  if (opts.supervised) {
    const reader = Deno.stdin.readable.getReader();
    let detached = false;
    (async () => {
      const decoder = new TextDecoder();
      let buffer = "";
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let nl: number;
          while ((nl = buffer.indexOf("\n")) >= 0) {
            const order = buffer.slice(0, nl).trim();
            buffer = buffer.slice(nl + 1);
            if (order === "stop") runner.requestStop("graceful", "asked by the supervisor");
            else if (order === "abort") runner.requestStop("abort", "asked by the supervisor");
          }
        }
      } catch {
        // stdin broken: same as closed
      }
      if (!detached) runner.supervisorGone();
    })();
    cleanups.push(() => {
      detached = true;
      reader.cancel().catch(() => {});
    });

    if (Deno.build.os !== "windows") {
      const parent = Deno.ppid;
      const timer = setInterval(() => {
        if (Deno.ppid !== parent) runner.supervisorGone();
      }, 1000);
      Deno.unrefTimer(timer);
      cleanups.push(() => clearInterval(timer));
    }
  }
  return () => {
    for (const c of cleanups.splice(0)) c();
  };
}
