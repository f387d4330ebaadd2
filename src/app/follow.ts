/**
 * `logs ID --follow`: a job's output as it reaches the store (live output, worker/output_tail.ts),
 * until the job is completed or dead; woken by changes (app/watch.ts), never a busy poll. Loaded
 * with import() by the CLI (it loads worker/wake.ts).
 */
import { NotFound } from "../core/errors.ts";
import type { JobState } from "../core/job.ts";
import { getJob } from "./queue.ts";
import type { Ctx } from "./queue.ts";
import { SAFETY_POLL_MS, watchChanges } from "./watch.ts";
import { quote } from "../core/text.ts";

export interface FollowSink {
  stdout(text: string): void;
  stderr(text: string): void;
  /**
   * Output of `stream` may be missing before what comes next: more came between two reads than
   * the database keeps of a running job (`output_limit`, see {@link unseen}).
   */
  gap?(stream: "stdout" | "stderr"): void;
}

/**
 * What of `next` was not shown yet, given that `shown` was (the stored output keeps a tail), and
 * whether output may be missing before it: `next` shares nothing with `shown`, so at least its
 * whole length came between the two reads, and what came before it was cut from the stored tail.
 */
export function unseen(shown: string, next: string): { text: string; gap: boolean } {
  if (next.startsWith(shown)) return { text: next.slice(shown.length), gap: false };
  // The head was cut (output_limit): `next` starts somewhere inside what was shown. Find the
  // earliest place in `shown` from which the rest of it is where `next` starts.
  const probe = next.slice(0, 16);
  if (probe === "") return { text: "", gap: false };
  let at = shown.indexOf(probe, Math.max(0, shown.length - next.length));
  while (at >= 0) {
    if (next.startsWith(shown.slice(at))) {
      return { text: next.slice(shown.length - at), gap: false };
    }
    at = shown.indexOf(probe, at + 1);
  }
  return { text: next, gap: true };
}

/**
 * Writes the output of the job's current run (first what is stored, then what arrives) and, when
 * a new run starts (a retry), that run's output. Resolves to the final state (completed or dead)
 * once it is written out; throws NotFound when the job is deleted meanwhile.
 */
export async function followJob(
  ctx: Ctx,
  id: string,
  sink: FollowSink,
  signal?: AbortSignal,
): Promise<JobState> {
  await getJob(ctx, id);
  const watch = await watchChanges(ctx);
  try {
    // What was shown of each run, by run number: a run's output is never written twice, even
    // when a read lands between a job's settle and its run row (it then looks like the next run
    // has not started yet).
    const shownByRun = new Map<number, { stdout: string; stderr: string }>();
    for (;;) {
      const job = await ctx.store.getJob({ id });
      if (!job) throw new NotFound(`Job ${quote(id)} was deleted while followed`);
      const run = await ctx.store.getLatestRun({ jobId: id });
      // A job just claimed has no output row yet: its latest row is the previous run's, which
      // was shown already or is shown now in full before the new run's output.
      if (run) {
        const shown = shownByRun.get(run.run) ?? { stdout: "", stderr: "" };
        for (const s of ["stdout", "stderr"] as const) {
          const more = unseen(shown[s], run[s]);
          if (more.gap) sink.gap?.(s);
          if (more.text) sink[s](more.text);
          shown[s] = run[s];
        }
        shownByRun.set(run.run, shown);
      }
      if (job.state === "completed" || job.state === "dead") return job.state;
      if (signal?.aborted) return job.state;
      await watch.wait(SAFETY_POLL_MS, signal);
    }
  } finally {
    watch.close();
  }
}
