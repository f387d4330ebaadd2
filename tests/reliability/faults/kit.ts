/**
 * What every fault test does at its end: read the jobs' records and the logs, count with the
 * ledger, print the figures as one `[reliability]` line, and only then assert, so that a failing
 * run still leaves its figures (RELIABILITY.md quotes them).
 */
import assert from "node:assert/strict";
import type { QueueHost } from "../../helpers/faults/host.ts";
import { jobRecords } from "../../helpers/faults/queue.ts";
import {
  brokenPromises,
  type Death,
  type JobRecord,
  type Ledger,
  ledger,
  ledgerFigures,
  type LogLine,
} from "../ledger.ts";
import { report } from "../profile.ts";

export interface Outcome {
  ledger: Ledger;
  records: JobRecord[];
  logs: LogLine[];
}

/** Reads the final state through the CLI and counts. */
export async function tally(opts: {
  db: string;
  ids: readonly string[];
  runsFile: string;
  hosts: readonly QueueHost[];
  deaths?: readonly Death[];
  liveOwners?: ReadonlySet<string>;
}): Promise<Outcome> {
  const records = await jobRecords(opts.db);
  let runsText = "";
  try {
    runsText = await Deno.readTextFile(opts.runsFile);
  } catch {
    // no run reached its end
  }
  const logs = opts.hosts.flatMap((h) => h.lines());
  return {
    ledger: ledger({
      ids: opts.ids,
      records,
      runsText,
      logs,
      deaths: opts.deaths,
      liveOwners: opts.liveOwners,
    }),
    records,
    logs,
  };
}

/** Seconds with one decimal, for figures. */
export function secs(ms: number | null | undefined): number | null {
  return ms === null || ms === undefined || !Number.isFinite(ms) ? null : Math.round(ms / 100) / 10;
}

/**
 * Prints the test's figures (the ledger's and `extra`), then fails with every broken promise:
 * the ledger's and the test's own `failures` (each a sentence saying what should have held).
 */
export function verdict(
  test: string,
  outcome: Outcome | null,
  extra: Record<string, unknown>,
  failures: string[],
): void {
  const broken = [...(outcome ? brokenPromises(outcome.ledger) : []), ...failures];
  report(test, {
    ...(outcome ? ledgerFigures(outcome.ledger) : {}),
    ...extra,
    promise: broken.length === 0 ? "held" : "broken",
  });
  assert.deepEqual(broken, [], `${test}: the promise broke`);
}

/** A check for {@link verdict}: the sentence when `ok` is false. */
export function expect(failures: string[], ok: boolean, sentence: string): void {
  if (!ok) failures.push(sentence);
}

/** Polls until `condition` holds or `ms` pass; true when it held (no throw: a figure, not a wait). */
export async function within(
  ms: number,
  condition: () => boolean | Promise<boolean>,
  intervalMs = 100,
): Promise<boolean> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (await condition()) return true;
    if (performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** True when `status` (a process's) settles within `ms`. */
export async function exitedWithin(status: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([status.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}
