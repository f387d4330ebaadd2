/**
 * Completion hooks (config `hook_completed`, `hook_dead`, `hook_drained`; docs/architecture.md
 * "Flow control"): a shell command run after a job's outcome is committed, or after a queue
 * emptied, like pueue's `callback` and task-spooler's `TS_ONFINISH`.
 *
 * - Run by the process that committed the outcome (a worker; the maintenance service for a rescue
 *   that ended in the DLQ), in the background: the worker goes on with its next job meanwhile.
 * - Through the executor, as jobs are: the worker's environment without queuectl's credentials
 *   (HIDDEN_VARIABLES), plus QUEUECTL_* variables describing the job; a process group of its own
 *   (never the worker's session, whose members are taken for a job's leftovers); terminated after
 *   `hook_timeout`.
 * - A hook never changes the job's outcome (it is committed before the hook starts); a failure
 *   (non-zero exit, timeout, could not start) is logged with the end of its stderr.
 * - `hook_drained`: after a job of a queue finished, when the queue has no pending, processing or
 *   failed job left. At least once per emptying; two workers finishing a queue's last jobs at the
 *   same moment may both see it empty and both run it.
 * - At most {@link MAX_RUNNING_HOOKS} run at once per process; more wait in order. A worker whose
 *   hooks are all busy claims no job until one ends (`Hooks.roomFor`), so a slow hook slows the
 *   worker down instead of piling up processes: one per job, 600 `sleep 3` at once for 600 fast
 *   jobs, before.
 */
import type { Config } from "../core/config.ts";
import type { Job } from "../core/job.ts";
import type { Store } from "../store/store.ts";
import { execute } from "./executor.ts";
import { oneLine } from "./describe.ts";

export type HookEvent = "completed" | "dead" | "drained";

/** A job's command as given to a hook: at most this many characters (an environment value). */
const COMMAND_CHARS = 8192;
/** How much of a failed hook's stderr its log line shows. */
const STDERR_SHOWN = 200;
/** Hooks one process runs at once; the next wait for one of them to end. */
export const MAX_RUNNING_HOOKS = 16;

/** What a hook is told of the job whose outcome it follows (QUEUECTL_* variables). */
export interface HookJob {
  job: Pick<Job, "id" | "command" | "queue" | "attempts">;
  state: string;
  exit_code: number | null;
  duration_ms: number | null;
  error: string | null;
}

/** The environment a hook gets on top of the worker's (credentials removed by the executor). */
export function hookEnv(event: HookEvent, p: HookJob | { queue: string }): Record<string, string> {
  if (!("job" in p)) return { QUEUECTL_EVENT: event, QUEUECTL_QUEUE: p.queue };
  return {
    QUEUECTL_EVENT: event,
    QUEUECTL_JOB_ID: p.job.id,
    QUEUECTL_COMMAND: p.job.command.slice(0, COMMAND_CHARS),
    QUEUECTL_QUEUE: p.job.queue,
    QUEUECTL_STATE: p.state,
    QUEUECTL_EXIT_CODE: p.exit_code === null ? "" : String(p.exit_code),
    QUEUECTL_ATTEMPTS: String(p.job.attempts),
    QUEUECTL_DURATION_MS: p.duration_ms === null ? "" : String(Math.round(p.duration_ms)),
    QUEUECTL_ERROR: (p.error ?? "").slice(0, COMMAND_CHARS),
  };
}

/** The hooks one process runs: started in the background, awaited when it stops. */
export class Hooks {
  /** Hooks running now, and the drained checks under way. */
  readonly #running = new Set<Promise<void>>();
  /** Hooks waiting for room, in the order they were fired. */
  readonly #waiting: (() => Promise<void>)[] = [];
  readonly #log: (text: string) => void;
  readonly #cwd: string | undefined;

  constructor(o: { log: (text: string) => void; cwd?: string }) {
    this.#log = o.log;
    this.#cwd = o.cwd;
  }

  /** True while {@link MAX_RUNNING_HOOKS} run (a hook fired now would wait). */
  get full(): boolean {
    return this.#running.size >= MAX_RUNNING_HOOKS;
  }

  /** Resolves once fewer than {@link MAX_RUNNING_HOOKS} hooks run. */
  async roomFor(): Promise<void> {
    // A hook's promise settles after it left #running (and a waiting one took its place).
    while (this.full) await Promise.race(this.#running);
  }

  /** Starts `task` now when there is room, else once a running one ends. */
  #start(task: () => Promise<void>): void {
    if (this.#running.size >= MAX_RUNNING_HOOKS) {
      this.#waiting.push(task);
      return;
    }
    const tracked: Promise<void> = task().finally(() => {
      this.#running.delete(tracked);
      const next = this.#waiting.shift();
      if (next) this.#start(next);
    });
    this.#running.add(tracked);
  }

  /** Runs the hook of `event` (when one is set) in the background; never throws. */
  fire(config: Config, event: HookEvent, p: HookJob | { queue: string }): void {
    const command = config[`hook_${event}`];
    if (!command) return;
    const subject = "job" in p ? `for ${p.job.id}` : `for queue ${p.queue}`;
    const env = hookEnv(event, p);
    const timeoutMs = Math.round(config.hook_timeout * 1000);
    this.#start(() =>
      execute({ command, env, timeoutMs, graceMs: 1000, outputLimit: 4096, cwd: this.#cwd })
        .then((r) => {
          if (r.error === null) return;
          const stderr = r.stderr.trim();
          this.#log(
            `hook_${event} ${subject} failed: ${r.error}${
              stderr ? `: ${oneLine(stderr.slice(-STDERR_SHOWN), STDERR_SHOWN)}` : ""
            } (the job's outcome stands)`,
          );
        }, (err) => {
          this.#log(`hook_${event} ${subject} failed: ${err instanceof Error ? err.message : err}`);
        })
    );
  }

  /**
   * After a job of `queue` finished: runs hook_drained (when set) if the queue has no pending,
   * processing or failed job left. In the background; never throws.
   */
  checkDrained(store: Store, config: Config, queue: string): void {
    if (!config.hook_drained) return;
    this.#start(async () => {
      try {
        for (const state of ["processing", "pending", "failed"] as const) {
          if (await store.countJobs({ state, queue, cap: 1 }) > 0) return;
        }
        this.fire(config, "drained", { queue });
      } catch (err) {
        this.#log(
          `hook_drained for queue ${queue}: could not look at the queue: ${
            err instanceof Error ? err.message : err
          }`,
        );
      }
    });
  }

  /** Waits for the hooks running and waiting now (each ends by its timeout at the latest). */
  async settle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }
}
