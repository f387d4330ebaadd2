/** Commands that read or act on single jobs: list, show, logs, status, retry, cancel, purge. */
import { buildCommand } from "@stricli/core";
import { formatDuration, parseDuration } from "../core/duration.ts";
import { InvalidInput } from "../core/errors.ts";
import { JOB_STATES, type JobState, jobToJson, parseJobState } from "../core/job.ts";
import { retryDelaySeconds } from "../core/retry_policy.ts";
import { retriesExhausted } from "../core/transitions.ts";
import { loadConfig } from "../app/config.ts";
import {
  cancelJob,
  getJobWithOutput,
  listJobs,
  purgeJobs,
  retryJob,
  status,
} from "../app/queue.ts";
import { type CliContext, type GlobalFlags, globalFlags, withStore } from "./context.ts";
import { iso, relative } from "./render.ts";

const idArg = {
  kind: "tuple",
  parameters: [{ brief: "Job id", parse: String, placeholder: "id" }],
} as const;

function limitParser(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim())) {
    throw new InvalidInput(`Invalid --limit: expected a whole number, got ${JSON.stringify(text)}`);
  }
  return n;
}

interface ListFlags extends GlobalFlags {
  state?: string;
  queue?: string;
  search?: string;
  limit?: number;
  offset?: number;
}

export const listCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: ListFlags) {
      await withStore(this, flags, async (app, out) => {
        const state = flags.state === undefined ? undefined : parseJobState(flags.state);
        const jobs = await listJobs(app, {
          state,
          queue: flags.queue,
          search: flags.search,
          limit: flags.limit,
          offset: flags.offset,
        });
        out.jobs(jobs, app.clock.now());
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
          brief: "Only jobs whose id or command contains this text",
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
          parse: limitParser,
          brief: "Skip this many jobs",
          optional: true,
          placeholder: "n",
        },
      },
    },
    docs: { brief: "List jobs, newest first" },
  });

export const showCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags, id: string) {
      await withStore(this, flags, async (app, out) => {
        const { job, output } = await getJobWithOutput(app, id);
        if (out.json) return out.printJson(jobToJson(job, output));
        const now = app.clock.now();
        const config = await loadConfig(app.store);
        const rows: [string, string][] = [
          ["id", job.id],
          ["state", out.state(job.state)],
          ["command", job.command],
          ["queue", job.queue],
          ["priority", String(job.priority)],
          [
            "attempts",
            `${job.attempts} of ${job.max_retries + 1} (max_retries ${job.max_retries})`,
          ],
          [
            "timeout",
            job.timeout === null ? `config (${config.job_timeout || "none"})` : `${job.timeout}s`,
          ],
          ["created", `${iso(job.created_at)} (${relative(job.created_at, now)})`],
          ["updated", `${iso(job.updated_at)} (${relative(job.updated_at, now)})`],
          ["run at", `${iso(job.run_at)} (${relative(job.run_at, now)})`],
          ["started", iso(job.started_at)],
          ["finished", iso(job.finished_at)],
          ["exit code", job.exit_code === null ? "-" : String(job.exit_code)],
          ["error", job.error ?? "-"],
        ];
        if (job.lease_owner) {
          rows.push([
            "worker",
            `${job.lease_owner} (lease ${relative(job.lease_expires_at, now)})`,
          ]);
        }
        if (job.state !== "completed" && job.state !== "dead" && !retriesExhausted(job)) {
          const next: string[] = [];
          for (let n = Math.max(1, job.attempts); n <= job.max_retries && next.length < 5; n++) {
            next.push(`${formatDuration(retryDelaySeconds(n, config) * 1000)}`);
          }
          if (next.length) rows.push(["retry delays", next.join(", ")]);
        }
        for (const [k, v] of rows) out.line(`${out.bold(k.padEnd(13))}${v}`);
        const tail = (s: string) => s.length > 2000 ? "…" + s.slice(-2000) : s;
        if (output.stdout) out.line(`${out.bold("stdout")}\n${tail(output.stdout).trimEnd()}`);
        if (output.stderr) out.line(`${out.bold("stderr")}\n${tail(output.stderr).trimEnd()}`);
      });
    },
    parameters: { flags: globalFlags, positional: idArg },
    docs: { brief: "Show one job: state, attempts, times, last error, output" },
  });

export const logsCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags, id: string) {
      await withStore(this, flags, async (app, out) => {
        const { output } = await getJobWithOutput(app, id);
        if (out.json) return out.printJson(output);
        this.process.stdout.write(output.stdout);
        this.process.stderr.write(output.stderr);
      });
    },
    parameters: { flags: globalFlags, positional: idArg },
    docs: {
      brief: "Print the captured output of a job's last run (stdout to stdout, stderr to stderr)",
    },
  });

export const statusCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags) {
      await withStore(this, flags, async (app, out) => {
        const report = await status(app);
        if (out.json) {
          return out.printJson({
            counts: report.counts,
            total: report.total,
            scheduled: report.scheduled,
            oldest_pending_at: report.oldest_pending_at === null
              ? null
              : new Date(report.oldest_pending_at).toISOString(),
            oldest_pending_age_seconds: report.oldest_pending_age_ms === null
              ? null
              : report.oldest_pending_age_ms / 1000,
            workers_alive: report.workers_alive,
            database: report.database,
          });
        }
        for (const s of JOB_STATES) {
          out.line(`${out.state(s)}${" ".repeat(12 - s.length)}${report.counts[s]}`);
        }
        out.line(`${"total".padEnd(12)}${report.total}`);
        out.line(
          `oldest pending: ${
            report.oldest_pending_age_ms === null
              ? "-"
              : formatDuration(report.oldest_pending_age_ms)
          }`,
        );
        out.line(`workers alive: ${report.workers_alive}`);
        out.line(out.dim(`database: ${report.database}`));
      });
    },
    parameters: { flags: globalFlags },
    docs: { brief: "Counts per state, oldest pending job, workers alive" },
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
    docs: { brief: "Run a failed or dead job again now" },
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
    docs: { brief: "Remove a pending or failed job from the queue (it is deleted)" },
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
