/** `queuectl wait ID... | --queue Q | --all [--timeout D]` and the rendering `enqueue --wait` shares. */
import { buildCommand } from "@stricli/core";
import { formatDuration, parseDuration } from "../core/duration.ts";
import { ExitCodes } from "../core/errors.ts";
import type { Ctx } from "../app/queue.ts";
import type { WaitOutcome } from "../app/wait.ts";
import { type CliContext, type GlobalFlags, globalFlags, withStore } from "./context.ts";
import type { Output } from "./render.ts";

/** The use case, loaded when a wait starts (it loads the file watch of worker/wake.ts). */
const waitModule = () => import("../app/wait.ts");

/** Exit code of a wait: 0 all completed, 6 any dead or deleted, 124 the time ran out. */
export function waitExitCode(o: WaitOutcome): number {
  if (o.timed_out) return ExitCodes.waitTimeout;
  return o.dead > 0 || o.removed > 0 ? ExitCodes.jobsDead : ExitCodes.ok;
}

/** `--timeout D` of a wait, or null without one. */
export function parseWaitTimeout(text: string | undefined, flag: string): number | null {
  return text === undefined ? null : parseDuration(text, flag);
}

/**
 * `app` for a long wait: its reads ride out a database outage of up to `outage_limit` (and not
 * past `timeoutMs` from now), saying so on stderr (app/outage.ts).
 */
export async function patientCtx(app: Ctx, out: Output, timeoutMs: number | null): Promise<Ctx> {
  const [{ ridingOutages }, { loadConfig }] = await Promise.all([
    import("../app/outage.ts"),
    import("../app/config.ts"),
  ]);
  const config = await loadConfig(app.store);
  return ridingOutages(app, {
    limitMs: config.outage_limit * 1000,
    ...(timeoutMs === null ? {} : { deadline: performance.now() + timeoutMs }),
    say: (line) => out.note(`queuectl: ${line}`),
  });
}

/** Waits for `ids` and prints the outcome (one line, or JSON); returns the exit code. */
export async function waitAndReport(
  app: Ctx,
  out: Output,
  ids: readonly string[],
  timeoutMs: number | null,
): Promise<number> {
  const { waitForJobs } = await waitModule();
  const outcome = await waitForJobs(await patientCtx(app, out, timeoutMs), { ids, timeoutMs });
  if (out.json) out.printJson({ ...outcome, exit_code: waitExitCode(outcome) });
  else out.line(summary(outcome));
  return waitExitCode(outcome);
}

/** One line: what became of the jobs waited for. */
export function summary(o: WaitOutcome): string {
  const n = (k: number, what: string) => `${k} ${what}${k === 1 ? "" : "s"}`;
  const parts = [`${o.completed} completed`];
  const some = (ids: string[], total: number) =>
    ids.length === 0 ? "" : ` (${ids.slice(0, 5).join(", ")}${total > 5 ? ", …" : ""})`;
  if (o.dead > 0) parts.push(`${o.dead} dead${some(o.dead_ids, o.dead)}`);
  if (o.removed > 0) parts.push(`${o.removed} deleted${some(o.removed_ids, o.removed)}`);
  const took = formatDuration(o.elapsed_ms);
  if (o.total === 0) return "nothing to wait for: no job is pending, processing or failed";
  if (o.timed_out) {
    return `timed out after ${took}: ${o.unfinished} of ${n(o.total, "job")} unfinished${
      some(o.unfinished_ids, o.unfinished)
    }; ${parts.join(", ")}`;
  }
  return `${n(o.total, "job")} finished in ${took}: ${parts.join(", ")}`;
}

interface WaitFlags extends GlobalFlags {
  queue?: string;
  all: boolean;
  timeout?: string;
}

export const waitCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: WaitFlags, ...ids: string[]) {
      await withStore(this, flags, async (app, out) => {
        const timeoutMs = parseWaitTimeout(flags.timeout, "--timeout");
        const { selectJobs } = await waitModule();
        const chosen = await selectJobs(app, { ids, queue: flags.queue, all: flags.all });
        return await waitAndReport(app, out, chosen, timeoutMs);
      });
    },
    parameters: {
      flags: {
        ...globalFlags,
        queue: {
          kind: "parsed",
          parse: String,
          brief: "Every job of this queue not finished yet",
          optional: true,
          placeholder: "name",
        },
        all: {
          kind: "boolean",
          brief: "Every job not finished yet (pending, processing, failed)",
          default: false,
        },
        timeout: {
          kind: "parsed",
          parse: String,
          brief: "Give up after this long, e.g. 30s, 10m (exit 124)",
          optional: true,
          placeholder: "duration",
        },
      },
      positional: {
        kind: "array",
        parameter: { brief: "Job ids", parse: String, placeholder: "id" },
      },
    },
    docs: {
      brief: "Wait until jobs are finished; exit 0 all completed, 6 any dead, 124 timed out",
      customUsage: ["ID...", "--queue Q", "--all", "--timeout 10m ID..."],
    },
  });
