/**
 * Issue 12, fault 7: the timeout decides. A job with `timeout` 2 whose descendant leaves its
 * session (`setsid sleep 45 &`) and keeps the output pipes open must still be decided when its
 * shell exits or its timeout fires, whichever is first, plus a short drain: it cannot hold the
 * worker (or its outcome) beyond that.
 *
 * Injects: three jobs with timeout 2 on one worker, `max_retries` 0:
 * - `escape-exit0`: starts `setsid sleep 45 &` and exits 0 at once → completed, decided within
 *   the drain after the shell's exit;
 * - `escape-hang`: starts `setsid sleep 45 &`, then sleeps 30 s → the timeout fires at 2 s: dead
 *   ("timed out"), decided within the timeout plus the drain;
 * - `plain`: no escapee, exits 0 → completed at once (the control).
 * Measures each job's started→finished time from `show --json`/`list --json`, the worker's log,
 * and the ledger. The escaped sleeps are killed by pid afterwards.
 */
import { alive, signal } from "../../helpers/faults/procs.ts";
import { faultNeeds } from "../../helpers/faults/requirements.ts";
import { startHost } from "../../helpers/faults/host.ts";
import { configure, enqueueAll, recordRun } from "../../helpers/faults/queue.ts";
import { tempDir } from "../../helpers/temp.ts";
import { shq } from "../profile.ts";
import { exitedWithin, expect, tally, verdict } from "./kit.ts";

const needs = await faultNeeds("fault 7 (timeout with an escaped descendant)", ["linux"]);

const TIMEOUT_S = 2;
/** The "short drain" after the shell's exit or the timeout, during which output is still read. */
const DRAIN_MS = 1000;
/** Slack for the clocks of the record (ms resolution, the worker's event loop). */
const SLACK_MS = 500;

Deno.test({
  name: "fault 7: a job's timeout decides its outcome even when a descendant escaped its session",
  ignore: needs.ignore,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const runs = dir.file("runs.txt");
    const pidFile = (id: string) => dir.file(`${id}.escapee`);
    await configure(db, { max_retries: 0, lease: 5 });
    const escape = (id: string) => `setsid sleep 45 & echo $! > ${shq(pidFile(id))}`;
    const jobs = [
      { id: "escape-exit0", command: `${escape("escape-exit0")}; ${recordRun(runs)}` },
      { id: "escape-hang", command: `${escape("escape-hang")}; sleep 30; ${recordRun(runs)}` },
      { id: "plain", command: `sleep 0.1; ${recordRun(runs)}` },
    ].map((j, i) => ({ ...j, timeout: TIMEOUT_S, priority: 10 - i }));
    const ids = await enqueueAll(db, jobs, dir.file("jobs.jsonl"));

    const escapees: number[] = [];
    const readEscapees = () =>
      ["escape-exit0", "escape-hang"].flatMap((id) => {
        try {
          return [Number(Deno.readTextFileSync(pidFile(id)).trim())];
        } catch {
          return []; // never started
        }
      });
    try {
      await using host = startHost({
        name: "host",
        db,
        count: 1,
        logFile: dir.file("worker.log"),
        untilEmpty: true,
      });
      const done = await exitedWithin(host.proc.status, 60_000);
      escapees.push(...readEscapees());
      const outcome = await tally({ db, ids, runsFile: runs, hosts: [host] });
      const byId = new Map(outcome.records.map((r) => [r.id, r]));
      const took = (id: string) => {
        const r = byId.get(id) as unknown as { started_at?: string; finished_at?: string };
        return r?.started_at && r?.finished_at
          ? Date.parse(r.finished_at) - Date.parse(r.started_at)
          : null;
      };
      const failures: string[] = [];
      expect(failures, done, "worker start --until-empty finished within 60 s");
      const exit0 = byId.get("escape-exit0");
      const hang = byId.get("escape-hang");
      const plain = byId.get("plain");
      expect(failures, exit0?.state === "completed", `escape-exit0 completed (is ${exit0?.state})`);
      expect(
        failures,
        (took("escape-exit0") ?? Infinity) <= DRAIN_MS + SLACK_MS,
        `escape-exit0 decided within the drain (${DRAIN_MS} ms) after its shell exited, took ${
          took("escape-exit0")
        } ms`,
      );
      expect(
        failures,
        hang?.state === "dead" && /timed out/.test(hang?.error ?? ""),
        `escape-hang dead by its timeout (is ${hang?.state}: ${hang?.error})`,
      );
      expect(
        failures,
        (took("escape-hang") ?? Infinity) <= TIMEOUT_S * 1000 + DRAIN_MS + SLACK_MS,
        `escape-hang decided within timeout + drain (${TIMEOUT_S * 1000 + DRAIN_MS} ms), took ${
          took("escape-hang")
        } ms`,
      );
      expect(failures, plain?.state === "completed", `plain completed (is ${plain?.state})`);
      verdict("fault 7: timeout with an escaped descendant", outcome, {
        timeout_s: TIMEOUT_S,
        drain_limit_ms: DRAIN_MS,
        escape_exit0_ms: took("escape-exit0"),
        escape_exit0_state: exit0?.state,
        escape_hang_ms: took("escape-hang"),
        escape_hang_state: hang?.state,
        escape_hang_error: hang?.error,
        plain_ms: took("plain"),
        escapees_still_alive: escapees.filter(alive).length,
      }, failures);
    } finally {
      for (const pid of [...escapees, ...readEscapees()]) signal(pid, "SIGKILL");
    }
  },
});
