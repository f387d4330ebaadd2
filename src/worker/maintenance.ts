/**
 * The maintenance service: every periodic duty over the whole database, run by exactly one
 * process per database at a time (see docs/architecture.md, "Maintenance").
 *
 * - Every supervisor runs a candidate, so the service runs wherever workers run. Candidates
 *   compete through Store.tryLead for the lead named {@link MAINTENANCE}: a row lease on SQLite,
 *   a session-level advisory lock on PostgreSQL (see store/store.ts).
 * - Every lease/3 (config `lease`) a candidate takes or renews the lead and, while it leads, runs
 *   each duty whose period has passed. A leader that dies is replaced within one lease; one that
 *   stops resigns, and another candidate takes over at its next try.
 * - Leadership is a lease, not a lock on the data: a leader frozen past its lease may finish a run
 *   while its successor starts one. Every duty must therefore be safe to run twice at once, with
 *   guarded writes (a rescue is a guarded state change, see core/transitions.ts; pruning deletes
 *   only stale records).
 *
 * Adding a duty: write a {@link Duty} (name, period, run) and add it to {@link DUTIES}.
 */
import type { Clock } from "../core/clock.ts";
import { type Config, configFrom } from "../core/config.ts";
import { formatDuration } from "../core/duration.ts";
import { formatError } from "../core/errors.ts";
import { staleBefore } from "../core/liveness.ts";
import type { RetryPolicy } from "../core/retry_policy.ts";
import { loseLease, type StateChange } from "../core/transitions.ts";
import type { Job } from "../core/job.ts";
import type { Store } from "../store/store.ts";
import { describeChange } from "./describe.ts";
import type { FailureNotes } from "./failure_notes.ts";
import { Hooks } from "./hooks.ts";
import { SCHEDULE_DUTY } from "./schedules.ts";

/** The name candidates compete for (Store.tryLead). */
export const MAINTENANCE = "maintenance";

/** Jobs rescued per batch. */
const RESCUE_BATCH = 100;
/** How often stale worker records are pruned. */
const PRUNE_EVERY_MS = 10_000;
/** The shortest step (a very short lease would otherwise spin). */
const MIN_STEP_MS = 50;
/** How long a stopping service waits for its last step and its resign. */
const STOP_WAIT_MS = 5000;

export interface DutyContext {
  store: Store;
  /** The time of this run (epoch ms, from the service's clock). */
  now: number;
  /** The config in force. */
  config: Config;
  /**
   * When this candidate reached the database again after its last failed step (clock time), or
   * null (or absent) when no step of it has failed since it started.
   */
  backSince?: number | null;
  /** Completion hooks of what a duty settles (a rescue that ends in the DLQ: hook_dead). */
  hooks?: Hooks;
}

/** One periodic duty of the maintenance service. */
export interface Duty {
  /** Short name, for log lines. */
  name: string;
  /** Time between two runs while leading, ms, under the config in force. */
  periodMs(config: Config): number;
  /** Does the work once; returns one log text per thing it did (none when there was nothing). */
  run(ctx: DutyContext): Promise<string[]>;
}

/** How often candidates take or renew the lead: a third of the lease, so two tries can fail. */
export function renewMs(config: Config): number {
  return Math.max(MIN_STEP_MS, Math.floor(config.lease * 1000 / 3));
}

/**
 * How long after an outage owners get to renew their leases before a rescue may take them over:
 * one lease, at least 5 s (reconnecting takes a moment whatever the lease). See
 * docs/architecture.md "Rescue rules".
 */
export function reconnectGraceMs(config: Pick<Config, "lease">): number {
  return Math.max(config.lease * 1000, 5000);
}

/**
 * Rescues jobs whose worker stopped renewing its lease: each is counted as a failed run ("worker
 * lost") and retried or moved to the DLQ. Returns one log text per job rescued. `restartGraceMs`:
 * see Store.findExpiredLeases.
 */
export async function rescueExpiredLeases(
  store: Store,
  now: number,
  policy: RetryPolicy,
  restartGraceMs?: number,
  onSettled?: (job: Job, change: StateChange) => void,
): Promise<string[]> {
  const lines: string[] = [];
  for (;;) {
    const expired = await store.findExpiredLeases({ now, limit: RESCUE_BATCH, restartGraceMs });
    let progressed = false;
    for (const job of expired) {
      const change = loseLease(job, now, policy);
      if (await store.applyChange({ change })) {
        progressed = true;
        onSettled?.(job, change);
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

/**
 * Jobs of dead workers go back to the queue once their lease expired; but not within
 * {@link reconnectGraceMs} of this candidate's own return after an outage (the owners were cut off
 * too and renew first), nor, on PostgreSQL, of the server's start.
 */
export const RESCUE_DUTY: Duty = {
  name: "rescue",
  periodMs: renewMs,
  run: ({ store, now, config, backSince, hooks }) => {
    const graceMs = reconnectGraceMs(config);
    if (backSince != null && now - backSince < graceMs) return Promise.resolve([]);
    return rescueExpiredLeases(store, now, config, graceMs, (job, change) => {
      if (change.to !== "dead" || !hooks) return;
      hooks.fire(config, "dead", {
        job,
        state: "dead",
        exit_code: null,
        duration_ms: change.run?.duration_ms ?? null,
        error: change.set.error ?? null,
      });
      hooks.checkDrained(store, config, job.queue);
    });
  },
};

/** Records of workers and supervisors that died without removing them (see core/liveness.ts). */
export const PRUNE_DUTY: Duty = {
  name: "prune",
  periodMs: () => PRUNE_EVERY_MS,
  run: async ({ store, now, config }) => {
    await store.pruneWorkers({ before: staleBefore(now, config.lease) });
    return [];
  },
};

/** How often the retention duty runs. */
const RETENTION_EVERY_MS = 30_000;
/** Jobs deleted per batch (one short transaction each). */
export const RETENTION_BATCH = 500;
/** The most time one run of the retention duty spends; the rest waits for the next run. */
const RETENTION_BUDGET_MS = 2000;
/** The pause between two batches, so that workers' writes go first. */
const RETENTION_PAUSE_MS = 20;

/**
 * Deletes completed jobs older than `retain_completed` and dead ones older than `retain_dead`
 * (by the time they reached that state, `updated_at`), with their runs and output, in batches of
 * {@link RETENTION_BATCH} per transaction with a pause between batches, for at most
 * {@link RETENTION_BUDGET_MS} per run: workers' claims and settles never wait behind a long
 * delete. A value of 0 keeps the jobs. Safe twice at once: a job is deleted once.
 */
export const RETENTION_DUTY: Duty = {
  name: "retention",
  periodMs: () => RETENTION_EVERY_MS,
  run: async ({ store, now, config }) => {
    const lines: string[] = [];
    const started = performance.now();
    const kinds = [
      ["completed", config.retain_completed],
      ["dead", config.retain_dead],
    ] as const;
    for (const [state, keepS] of kinds) {
      if (keepS <= 0) continue;
      let deleted = 0;
      for (;;) {
        const ids = await store.deleteJobs({
          states: [state],
          updatedBefore: now - keepS * 1000,
          limit: RETENTION_BATCH,
        });
        deleted += ids.length;
        if (ids.length < RETENTION_BATCH) break;
        if (performance.now() - started >= RETENTION_BUDGET_MS) break;
        await new Promise((r) => setTimeout(r, RETENTION_PAUSE_MS));
      }
      if (deleted > 0) {
        lines.push(
          `retention: deleted ${deleted} ${state} job${deleted === 1 ? "" : "s"} older than ${
            formatDuration(keepS * 1000)
          }`,
        );
      }
    }
    return lines;
  },
};

/** How often the counters are compacted. */
const COUNTS_EVERY_MS = 60_000;
/** Counters compacted per batch (one short transaction each). */
export const COUNTS_BATCH = 1000;
/** The most time one run of the counters duty spends; the rest waits for the next run. */
const COUNTS_BUDGET_MS = 1000;

/**
 * Keeps the job counters about as small as the queues in use (Store.compactCounts): a queue's
 * counters outlive its jobs, and on PostgreSQL each is split over the shards of the sessions
 * that moved its jobs, so a database whose queue names come and go (one per build, per
 * customer) would otherwise make every `status`, `queue list` and dashboard refresh read a
 * growing table. Batches with a pause between, for at most {@link COUNTS_BUDGET_MS} per run.
 * Safe twice at once: each batch moves counts only between rows it holds locked.
 */
export const COUNTS_DUTY: Duty = {
  name: "counters",
  periodMs: () => COUNTS_EVERY_MS,
  run: async ({ store }) => {
    const started = performance.now();
    for (;;) {
      const { found } = await store.compactCounts({ limit: COUNTS_BATCH });
      if (found < COUNTS_BATCH || performance.now() - started >= COUNTS_BUDGET_MS) return [];
      await new Promise((r) => setTimeout(r, RETENTION_PAUSE_MS));
    }
  },
};

/** Every duty of the service, in the order a step runs them. */
export const DUTIES: readonly Duty[] = [
  RESCUE_DUTY,
  PRUNE_DUTY,
  SCHEDULE_DUTY,
  RETENTION_DUTY,
  COUNTS_DUTY,
];

export interface MaintenanceOptions {
  store: Store;
  clock: Clock;
  /** This candidate's unique id (the supervisor's id). */
  holder: string;
  /** Where log lines go (one call per line, prefixed `[maintenance] `). */
  out: (line: string) => void;
  duties?: readonly Duty[];
  /** Failures already reported by this process (one line per cause, see failure_notes.ts). */
  notes?: FailureNotes;
  /** Where the duties' hooks run (default: hooks of its own, logged to `out`). */
  hooks?: Hooks;
}

/** One candidate of the maintenance service, and the service itself while it leads. */
export class Maintenance {
  readonly #o: MaintenanceOptions;
  readonly #duties: readonly Duty[];
  /** When each duty last ran in this lead (clock time). */
  readonly #lastRun = new Map<Duty, number>();
  #config: Config | null = null;
  #leading = false;
  /** When this candidate last took or renewed the lead (clock time), or null when it does not lead. */
  #leadAt: number | null = null;
  #steps = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<unknown> = Promise.resolve();
  #stopped = false;
  /** Failures already reported (reported once per streak): "lead" or a duty's name. */
  readonly #failing = new Set<string>();
  /** A step failed to reach the database and none has succeeded since. */
  #unreachable = false;
  /** See {@link DutyContext.backSince}. */
  #backSince: number | null = null;

  constructor(opts: MaintenanceOptions) {
    this.#o = opts;
    this.#duties = opts.duties ?? DUTIES;
    this.#hooks = opts.hooks ?? new Hooks({ log: (text) => this.#say(text) });
  }

  readonly #hooks: Hooks;

  /** Waits for the hooks the duties started (each ends within hook_timeout). */
  async settleHooks(): Promise<void> {
    await this.#hooks.settle();
  }

  /** The config the last step read (defaults before the first). */
  get config(): Config {
    return this.#config ?? configFrom({});
  }

  /** True when the last step found this candidate leading. */
  get leading(): boolean {
    return this.#leading;
  }

  #say(text: string): void {
    this.#o.out(`[maintenance] ${text}`);
  }

  #failed(what: string, err: unknown): void {
    if (this.#failing.has(what)) return;
    this.#failing.add(what);
    if (this.#o.notes && !this.#o.notes.fresh(err)) return;
    const text = formatError(err).replace(/^error: /, "");
    this.#say(what === "lead" ? `cannot take the lead: ${text}` : `${what} failed: ${text}`);
  }

  /**
   * One step: take or keep the lead; while leading, run each duty that is due. Returns the time
   * until the next step, ms. Never throws: failures are logged and tried again next step.
   */
  async step(): Promise<number> {
    const { store, clock, holder } = this.#o;
    // A leader whose lead is younger than renewMs runs its due duties without renewing it: duties
    // with a shorter period (schedules, every second) do not make the lead a write per second.
    const leadAt = this.#leadAt;
    if (this.#leading && leadAt !== null && clock.now() - leadAt < renewMs(this.config)) {
      await this.#runDuties(this.config);
      return this.#nextStepMs(this.config);
    }
    let reached = true;
    try {
      this.#config = configFrom(await store.getConfig());
    } catch {
      // keep the config we have (the lead attempt below reports the database's state)
      reached = false;
    }
    const config = this.#config ?? configFrom({});
    const first = this.#steps++ === 0;
    let leading = false;
    try {
      const askedAt = clock.now();
      leading = await store.tryLead({
        name: MAINTENANCE,
        holder,
        now: askedAt,
        leaseMs: config.lease * 1000,
      });
      this.#leadAt = leading ? askedAt : null;
      this.#failing.delete("lead");
    } catch (err) {
      this.#failed("lead", err);
      reached = false;
    }
    if (!reached) this.#unreachable = true;
    else if (this.#unreachable) {
      this.#unreachable = false;
      this.#backSince = clock.now();
    }
    if (leading && !this.#leading && !first) this.#say("took over the maintenance duties");
    if (!leading && this.#leading) this.#say("another process runs the maintenance duties now");
    this.#leading = leading;
    if (!leading) {
      this.#lastRun.clear();
      return renewMs(config);
    }
    await this.#runDuties(config);
    return this.#nextStepMs(config);
  }

  /** Runs each duty whose period has passed (never throws: failures are logged once). */
  async #runDuties(config: Config): Promise<void> {
    const { store, clock } = this.#o;
    for (const duty of this.#duties) {
      const now = clock.now();
      const last = this.#lastRun.get(duty);
      if (last !== undefined && now - last < duty.periodMs(config)) continue;
      this.#lastRun.set(duty, now);
      try {
        const ctx = { store, now, config, backSince: this.#backSince, hooks: this.#hooks };
        for (const line of await duty.run(ctx)) this.#say(line);
        this.#failing.delete(duty.name);
      } catch (err) {
        this.#failed(duty.name, err);
      }
    }
  }

  /** The time until the next step while leading: the shortest period, the lead's renewal at most. */
  #nextStepMs(config: Config): number {
    return Math.max(
      MIN_STEP_MS,
      Math.min(renewMs(config), ...this.#duties.map((d) => d.periodMs(config))),
    );
  }

  /** Takes a first step (awaited: a new leader rescues before workers start), then keeps going. */
  async start(): Promise<void> {
    await this.#next();
  }

  async #next(): Promise<void> {
    if (this.#stopped) return;
    const step = this.step();
    this.#running = step;
    const waitMs = await step;
    if (!this.#stopped) this.#timer = setTimeout(() => this.#next(), waitMs);
  }

  /**
   * Stops stepping and resigns the lead, so that another candidate takes over at once. Waits at
   * most `waitMs` ({@link STOP_WAIT_MS} by default) in all (a database that does not answer must not hold up a
   * supervisor's exit: the lease then runs out on its own).
   */
  async stop(waitMs = STOP_WAIT_MS): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    const deadline = performance.now() + waitMs;
    await atMost(this.#running, waitMs);
    if (!this.#leading) return;
    this.#leading = false;
    const resign = this.#o.store.resign({ name: MAINTENANCE, holder: this.#o.holder });
    await atMost(resign, Math.max(0, deadline - performance.now()));
    // Hooks the duties started run to their end (each within hook_timeout), except on an abort.
    if (waitMs > 0) await this.#hooks.settle();
  }
}

/** Waits for `p` (ignoring its failure) at most `ms`. */
async function atMost(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([p.catch(() => {}), new Promise((r) => timer = setTimeout(r, ms))]);
  } finally {
    clearTimeout(timer);
  }
}
