/** Commands that read or act on single jobs: list, show, logs, status, retry, cancel, purge. */
import { buildCommand } from "@stricli/core";
import { formatDuration, parseDuration } from "../core/duration.ts";
import { ExitCodes, formatError, InvalidInput, QueueError } from "../core/errors.ts";
import { JOB_STATES, type JobState, jobToJson, parseJobEnv, parseJobState } from "../core/job.ts";
import { quotePosixWord } from "../core/shell_words.ts";
import { runToJson, type StoredRun } from "../core/runs.ts";
import {
  blockersOf,
  cancelJob,
  type Ctx,
  DEPENDENTS_SHOWN,
  getAttemptOutput,
  getJobDetail,
  getJobWithOutput,
  listJobsSearched,
  purgeJobs,
  retryJob,
  SEARCH_INDEX_MIN_CHARS,
  status,
  type StatusReport,
} from "../app/queue.ts";
import {
  type CliContext,
  type GlobalFlags,
  globalFlags,
  REMOVED_FLAG_BRIEF,
  withoutStore,
  withStore,
} from "./context.ts";
import { iso, type Output, relative, safe, safeLines } from "./render.ts";
import { jsonSafe, quote } from "../core/text.ts";

const idArg = {
  kind: "tuple",
  parameters: [{ brief: "Job id", parse: String, placeholder: "id" }],
} as const;

export function limitParser(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim())) {
    throw new InvalidInput(`Invalid --limit: expected a whole number, got ${quote(text)}`);
  }
  return n;
}

interface ListFlags extends GlobalFlags {
  state?: string;
  queue?: string;
  search?: string;
  limit?: number;
  /** Removed (paging is by keyset, --after); kept hidden only to say so. */
  offset?: string;
  after?: string;
}

/** The one-line error of the removed `list --offset`. */
const OFFSET_REMOVED = "--offset was removed: page with --after <last id of the previous page> " +
  "(keyset paging; a deep page costs what the first does)";

export const listCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: ListFlags) {
      if (flags.offset !== undefined) {
        // Refused before the database is opened (or created).
        return await withoutStore(this, flags, () => {
          throw new InvalidInput(OFFSET_REMOVED);
        });
      }
      await withStore(this, flags, async (app, out) => {
        const state = flags.state === undefined ? undefined : parseJobState(flags.state);
        const { jobs, incomplete } = await listJobsSearched(app, {
          state,
          queue: flags.queue,
          search: flags.search,
          limit: flags.limit,
          after: flags.after,
        });
        // An incomplete search that found nothing does not say "no jobs": older ones are untested.
        if (out.json || jobs.length > 0 || !incomplete) {
          out.jobs(jobs, app.clock.now(), out.json ? undefined : await blockersOf(app, jobs));
        }
        if (incomplete) {
          // docs/architecture.md, "Short searches": said on stderr, so --json output stays a list.
          out.note(
            `search incomplete: a text shorter than ${SEARCH_INDEX_MIN_CHARS} characters has no ` +
              `index, so it tests at most ${incomplete.scanned.toLocaleString("en")} jobs per ` +
              `call; found ${jobs.length} among them, older jobs not searched. Continue with ` +
              `--after ${incomplete.through}`,
          );
        }
      });
    },
    parameters: {
      flags: {
        ...globalFlags,
        state: {
          kind: "parsed",
          parse: String,
          brief: `Only jobs in this state (${JOB_STATES.join(", ")})`,
          optional: true,
          placeholder: "state",
        },
        queue: { kind: "parsed", parse: String, brief: "Only this queue", optional: true },
        search: {
          kind: "parsed",
          parse: String,
          brief:
            "Only jobs whose id or command contains this text (1-2 characters: 10,000 jobs tested per call)",
          optional: true,
          placeholder: "text",
        },
        limit: {
          kind: "parsed",
          parse: limitParser,
          brief: "At most this many jobs (default 50)",
          optional: true,
          placeholder: "n",
        },
        offset: {
          kind: "parsed",
          parse: String,
          brief: `${REMOVED_FLAG_BRIEF}page with --after`,
          optional: true,
          hidden: true,
          placeholder: "n",
        },
        after: {
          kind: "parsed",
          parse: String,
          brief: "Only jobs listed after this job id (the next page: the last id of this one)",
          optional: true,
          placeholder: "id",
        },
      },
    },
    docs: { brief: "List jobs, newest first" },
  });

export const showCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags, id: string) {
      await withStore(this, flags, async (app, out) => {
        const { job, output, runs, next_retry_at, default_timeout, dependencies } =
          await getJobDetail(app, id);
        if (out.json) {
          return out.printJson({
            ...jobToJson(job, output),
            runs: runs.map(runToJson),
            dependencies: dependencies.dependencies,
            dependents: dependencies.dependents,
          });
        }
        const now = app.clock.now();
        const rows: [string, string][] = [
          ["id", safe(job.id)],
          ["state", out.state(job.state)],
          ["command", safe(job.command)],
          ["directory", safe(job.cwd ?? "- (the worker's)")],
          ["environment", safe(envText(job.env))],
          ["queue", safe(job.queue)],
          ["priority", String(job.priority)],
          [
            "attempts",
            `${job.attempts} of ${job.max_retries + 1} (max_retries ${job.max_retries})`,
          ],
          [
            "timeout",
            job.timeout === null ? `config (${default_timeout || "none"})` : `${job.timeout}s`,
          ],
          ["created", `${iso(job.created_at)} (${relative(job.created_at, now)})`],
          ["updated", `${iso(job.updated_at)} (${relative(job.updated_at, now)})`],
          ["run at", `${iso(job.run_at)} (${relative(job.run_at, now)})`],
          ["started", iso(job.started_at)],
          ["finished", iso(job.finished_at)],
          ["exit code", job.exit_code === null ? "-" : String(job.exit_code)],
          ["error", safe(job.error ?? "-")],
        ];
        if (job.unique_key !== null) rows.push(["unique key", safe(job.unique_key)]);
        if (job.kill_signal) {
          rows.push([
            "kill",
            `${job.kill_signal} requested (queuectl kill${job.kill_retry ? " --retry" : ""})`,
          ]);
        }
        if (job.lease_owner) {
          rows.push([
            "worker",
            `${safe(job.lease_owner)} (lease ${relative(job.lease_expires_at, now)})`,
          ]);
        }
        if (next_retry_at !== null) {
          rows.push(["next retry", `${iso(next_retry_at)} (${relative(next_retry_at, now)})`]);
        }
        const graph = (list: { id: string; state: string | null }[]) =>
          list.map((d) => `${d.id} (${d.state ?? "deleted"})`).join(", ");
        if (dependencies.dependencies.length > 0) {
          const waiting = job.blocked_by > 0 && (job.state === "pending" || job.state === "failed");
          rows.push([
            "runs after",
            `${safe(graph(dependencies.dependencies))}${
              waiting ? ` — waiting, ${job.blocked_by} not completed` : ""
            }`,
          ]);
        }
        if (dependencies.dependents.length > 0) {
          const more = dependencies.dependents.length >= DEPENDENTS_SHOWN ? ", …" : "";
          rows.push(["runs before", `${safe(graph(dependencies.dependents))}${more}`]);
        }
        for (const [k, v] of rows) out.line(`${out.bold(k.padEnd(13))}${v}`);
        out.line(`${out.bold("runs")}${runs.length === 0 ? `${" ".repeat(9)}none yet` : ""}`);
        if (runs.length > 0) out.table(RUN_HEADERS, runs.map((r) => runRow(r)));
        const tail = (s: string) => s.length > 2000 ? "…" + s.slice(-2000) : s;
        if (output.stdout) {
          out.line(`${out.bold("stdout")}\n${safeLines(tail(output.stdout).trimEnd())}`);
        }
        if (output.stderr) {
          out.line(`${out.bold("stderr")}\n${safeLines(tail(output.stderr).trimEnd())}`);
        }
      });
    },
    parameters: { flags: globalFlags, positional: idArg },
    docs: { brief: "Show one job: state, attempts, times, last error, runs, output" },
  });

/** A job's own variables as `KEY=value` words (values shell-quoted), or "-". */
function envText(env: string | null): string {
  const vars = Object.entries(parseJobEnv(env));
  if (vars.length === 0) return "-";
  return vars.map(([k, v]) => `${k}=${quotePosixWord(v)}`).join(" ");
}

const RUN_HEADERS = ["run", "attempt", "outcome", "started", "took", "exit", "worker", "error"];

/** One line of the runs table of `show`. */
export function runRow(r: StoredRun): string[] {
  const exit = r.exit_code !== null ? String(r.exit_code) : r.signal ?? "-";
  const worker = r.worker === null ? "-" : safe(r.host ? `${r.worker}@${r.host}` : r.worker);
  const retry = r.retry_delay_ms !== null ? ` (retry in ${formatDuration(r.retry_delay_ms)})` : "";
  return [
    String(r.run),
    String(r.attempt),
    r.outcome,
    iso(r.started_at),
    r.duration_ms === null ? "-" : formatDuration(r.duration_ms),
    exit,
    worker,
    `${safe(r.error ?? "-")}${retry}`,
  ];
}

interface LogsFlags extends GlobalFlags {
  attempt?: number;
  follow: boolean;
}

/** The use case of `logs --follow`, loaded when used (it loads the file watch of worker/). */
const followModule = () => import("../app/follow.ts");

export const logsCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: LogsFlags, id: string) {
      await withStore(this, flags, async (app, out) => {
        if (flags.follow) {
          if (flags.attempt !== undefined || flags.json) {
            throw new InvalidInput("--follow streams the output as text: no --attempt or --json");
          }
          const { followJob } = await followModule();
          const { patientCtx } = await import("./wait.ts");
          const state = await followJob(await patientCtx(app, out, null), id, {
            stdout: (t) => this.process.stdout.write(this.isTerminal ? safeLines(t) : t),
            stderr: (t) => this.process.stderr.write(this.stderrIsTerminal ? safeLines(t) : t),
            gap: (stream) =>
              this.process.stderr.write(
                `queuectl: ${id}'s ${stream} may be missing a part here: it printed more between ` +
                  `two reads than the database keeps of a running job (output_limit)\n`,
              ),
          });
          // The job's outcome as exit code, as `wait` gives it.
          return state === "completed" ? ExitCodes.ok : ExitCodes.jobsDead;
        }
        const output = flags.attempt === undefined
          ? (await getJobWithOutput(app, id)).output
          : await getAttemptOutput(app, id, flags.attempt);
        if (out.json) return out.printJson(output);
        // Raw bytes for a pipe or a file (`logs job1 > out.txt` keeps the output as it was); on a
        // terminal the job's escape sequences are shown, not obeyed.
        this.process.stdout.write(this.isTerminal ? safeLines(output.stdout) : output.stdout);
        this.process.stderr.write(
          this.stderrIsTerminal ? safeLines(output.stderr) : output.stderr,
        );
      });
    },
    parameters: {
      flags: {
        ...globalFlags,
        attempt: {
          kind: "parsed",
          parse: attemptParser,
          brief: "The output of this attempt's run instead of the last run (see `show`)",
          optional: true,
          placeholder: "n",
        },
        follow: {
          kind: "boolean",
          brief:
            "Stream the output while the job runs (any host), until it is completed (exit 0) or dead (exit 6)",
          default: false,
        },
      },
      positional: idArg,
    },
    docs: {
      brief: "Print the captured output of a job's last run (stdout to stdout, stderr to stderr)",
      fullDescription:
        "Print the captured output of a job's last run: its stdout to stdout, its stderr to " +
        "stderr. Piped or redirected, the output is passed on unchanged. On a terminal, control " +
        "and bidi characters (escape sequences, carriage returns, U+202E...) are shown as " +
        "visible escapes such as \\x1b and \\u202e instead of being obeyed; newlines and " +
        "tabs are kept. Pipe through cat (`queuectl logs ID | cat`) for the raw bytes.",
    },
  });

function attemptParser(text: string): number {
  if (!/^\s*[1-9]\d*\s*$/.test(text)) {
    throw new InvalidInput(
      `Invalid --attempt: expected a whole number from 1, got ${quote(text)}`,
    );
  }
  return Number(text);
}

/** The JSON of `status --json` (one object; `--watch --json`: one line per second). */
function statusJson(report: StatusReport): Record<string, unknown> {
  return {
    counts: report.counts,
    total: report.total,
    scheduled: report.scheduled,
    next_scheduled_at: report.next_scheduled_at === null
      ? null
      : new Date(report.next_scheduled_at).toISOString(),
    oldest_pending_at: report.oldest_pending_at === null
      ? null
      : new Date(report.oldest_pending_at).toISOString(),
    oldest_pending_age_seconds: report.oldest_pending_age_ms === null
      ? null
      : report.oldest_pending_age_ms / 1000,
    workers_alive: report.workers_alive,
    waiting: report.blocked,
    queues: report.controls.map((q) => ({
      name: q.name,
      paused: q.paused,
      limit: q.max_running,
    })),
    database: report.database,
  };
}

/** The text of `status`, line by line. */
function statusLines(out: Output, report: StatusReport, now: number): string[] {
  const lines: string[] = [];
  for (const s of JOB_STATES) {
    lines.push(`${out.state(s)}${" ".repeat(12 - s.length)}${report.counts[s]}`);
  }
  lines.push(`${"total".padEnd(12)}${report.total}`);
  lines.push(
    `scheduled: ${report.scheduled}${
      report.next_scheduled_at === null
        ? ""
        : ` (pending or failed, not due yet; the next at ${iso(report.next_scheduled_at)}, ${
          relative(report.next_scheduled_at, now)
        })`
    }`,
  );
  lines.push(
    `oldest pending: ${
      report.oldest_pending_age_ms === null ? "-" : formatDuration(report.oldest_pending_age_ms)
    }`,
  );
  lines.push(`waiting: ${report.blocked} (blocked on dependencies)`);
  const paused = report.controls.filter((q) => q.paused).map((q) => q.name);
  const limited = report.controls.filter((q) => q.max_running > 0)
    .map((q) => `${q.name} ${q.max_running}`);
  if (paused.length > 0) lines.push(`paused queues: ${safe(paused.join(", "))}`);
  if (limited.length > 0) lines.push(`queue limits: ${safe(limited.join(", "))}`);
  lines.push(`workers alive: ${report.workers_alive}`);
  lines.push(out.dim(`database: ${report.database}`)); // dim() shows it through safe()
  return lines;
}

/** How often `status --watch` redraws. */
const WATCH_EVERY_MS = 1000;

/**
 * Resolves on the first SIGINT (Ctrl-C) or SIGTERM; the returned `stop` removes the listeners.
 * While listening, these signals do not end the process: the caller ends cleanly.
 */
function onStopSignal(): { stopped: Promise<void>; stop: () => void } {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  let resolve = () => {};
  const stopped = new Promise<void>((r) => resolve = r);
  const handler = () => resolve();
  for (const s of signals) Deno.addSignalListener(s, handler);
  return {
    stopped,
    stop: () => signals.forEach((s) => Deno.removeSignalListener(s, handler)),
  };
}

function checkWatch(json: boolean, isTerminal: boolean): void {
  if (!json && !isTerminal) {
    throw new InvalidInput("status --watch redraws a terminal, and stdout is not one", {
      hint: "use `status --watch --json` for one JSON line per second, or `status` once",
    });
  }
}

/**
 * `status --watch`: the status redrawn every second until Ctrl-C. On a terminal each frame
 * replaces the last (cursor home, clear below; the cursor hidden meanwhile and shown again at
 * the end, the last frame left on the screen). With --json: one JSON object per line per
 * second (no terminal needed). A read that fails shows its error in the frame; the next tries
 * again. Text output to a non-terminal is refused: redraws would fill a file with escapes.
 */
async function watchStatus(app: Ctx, out: Output): Promise<void> {
  const { stopped, stop } = onStopSignal();
  let done = false;
  stopped.then(() => done = true);
  if (!out.json) out.stdout.write("\x1b[?25l");
  try {
    while (!done) {
      const started = performance.now();
      let lines: string[];
      try {
        // Ctrl-C during a slow read (a database far away) ends the watch at once.
        const report = await Promise.race([status(app), stopped.then(() => null)]);
        if (report === null) break;
        if (out.json) {
          out.stdout.write(
            jsonSafe(JSON.stringify({ at: iso(app.clock.now()), ...statusJson(report) })) + "\n",
          );
          lines = [];
        } else {
          lines = statusLines(out, report, app.clock.now());
        }
      } catch (err) {
        if (!(err instanceof QueueError) || err instanceof InvalidInput) throw err;
        lines = [formatError(err)];
        if (out.json) out.error(formatError(err));
      }
      if (!out.json) {
        const head = out.dim(
          `every ${WATCH_EVERY_MS / 1000}s, ${iso(app.clock.now())} (Ctrl-C to quit)`,
        );
        // Home, then each line cleared to its end, then everything below cleared.
        out.stdout.write(
          "\x1b[H" + [head, "", ...lines].map((l) => l + "\x1b[K\n").join("") + "\x1b[J",
        );
      }
      const wait = Math.max(0, WATCH_EVERY_MS - (performance.now() - started));
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([stopped, new Promise((r) => timer = setTimeout(r, wait))]);
      clearTimeout(timer);
    }
  } finally {
    stop();
    if (!out.json) out.stdout.write("\x1b[?25h");
  }
}

interface StatusFlags extends GlobalFlags {
  watch: boolean;
}

export const statusCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: StatusFlags) {
      if (flags.watch && !flags.json && !this.isTerminal) {
        // Refused before the database is opened (or created).
        return await withoutStore(this, flags, () => {
          checkWatch(flags.json, this.isTerminal);
          return Promise.resolve();
        });
      }
      await withStore(this, flags, async (app, out) => {
        if (flags.watch) return await watchStatus(app, out);
        const report = await status(app);
        if (out.json) return out.printJson(statusJson(report));
        // One write (the same text): each line of its own was an encode and a write(2).
        out.line(statusLines(out, report, app.clock.now()).join("\n"));
      });
    },
    parameters: {
      flags: {
        ...globalFlags,
        watch: {
          kind: "boolean",
          brief: "Redraw every second on a terminal until Ctrl-C (--json: a JSON line a second)",
          default: false,
        },
      },
    },
    docs: {
      brief:
        "Counts per state, oldest pending job, waiting jobs, paused or limited queues, workers alive",
    },
  });

export const retryCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags, id: string) {
      await withStore(this, flags, async (app, out) => {
        const job = await retryJob(app, id);
        if (out.json) out.printJson(jobToJson(job));
        else out.line(`${job.id} is pending again`);
      });
    },
    parameters: { flags: globalFlags, positional: idArg },
    docs: { brief: "Run a failed, dead or completed job again now" },
  });

export const cancelCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags, id: string) {
      await withStore(this, flags, async (app, out) => {
        const job = await cancelJob(app, id);
        if (out.json) out.printJson({ id: job.id, removed: true, state: job.state });
        else out.line(`removed ${job.id} (was ${job.state})`);
      });
    },
    parameters: { flags: globalFlags, positional: idArg },
    docs: {
      brief:
        "Remove a pending or failed job from the queue (it is deleted; `kill` stops a running one)",
    },
  });

interface PurgeFlags extends GlobalFlags {
  state: string[];
  olderThan: string;
}

export const purgeCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: PurgeFlags) {
      await withStore(this, flags, async (app, out) => {
        const states: JobState[] = flags.state.map(parseJobState);
        const olderThanMs = parseDuration(flags.olderThan, "--older-than");
        const ids = await purgeJobs(app, { states, olderThanMs });
        if (out.json) out.printJson({ purged: ids.length });
        else out.line(`purged ${ids.length} job${ids.length === 1 ? "" : "s"}`);
      });
    },
    parameters: {
      flags: {
        ...globalFlags,
        state: {
          kind: "parsed",
          parse: String,
          brief: "completed or dead (repeatable)",
          variadic: true,
          default: ["completed"],
          placeholder: "state",
        },
        olderThan: {
          kind: "parsed",
          parse: String,
          brief: "Only jobs finished longer ago than this, e.g. 7d, 12h, 0s",
          default: "7d",
          placeholder: "duration",
        },
      },
    },
    docs: { brief: "Delete finished jobs older than a duration (default: completed, 7d)" },
  });
