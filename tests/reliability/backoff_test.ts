/**
 * Clock and backoff: a failing job is retried after backoff_base ^ n seconds, measured from the
 * real timestamps of the worker log (`failed` line → next `started` line), and lands in the DLQ
 * after exactly 1 + max_retries runs.
 */
import assert from "node:assert/strict";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { parseLog, report, size, UNIX } from "./profile.ts";

const MAX_RETRIES = size(2, 3);
const BASE = size(1.5, 2);
const JOBS = size(2, 3);
/** A retry may start this much before its time (log stamps are written after the settle). */
const EARLY_MS = 100;
/** ... and at most this much after it (wake-up, process scheduling under load). */
const LATE_MS = 1000;

Deno.test({
  name: `backoff: retries after ${BASE}^n s (n = 1..${MAX_RETRIES}) on real clocks, then the DLQ`,
  ignore: !UNIX,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const log = dir.file("workers.log");
    for (const [k, v] of [["max_retries", MAX_RETRIES], ["backoff_base", BASE]]) {
      const r = await runCli(["config", "set", String(k), String(v)], { db });
      assert.equal(r.code, 0, r.stderr);
    }
    const ids = Array.from({ length: JOBS }, (_, i) => `flaky${i + 1}`);
    for (const id of ids) {
      const r = await runCli(["enqueue", JSON.stringify({ id, command: "exit 1" })], { db });
      assert.equal(r.code, 0, r.stderr);
    }
    const run = await runCli(
      ["worker", "start", "--count", String(JOBS), "--until-empty", "--log", log],
      { db },
    );
    assert.equal(run.code, 6, `--until-empty exits 6 when jobs reach the DLQ: ${run.stderr}`);
    const lines = parseLog(await Deno.readTextFile(log));

    const errors: number[] = [];
    for (const id of ids) {
      const job = await runCliJson<{ state: string; attempts: number }>(["show", id], { db });
      assert.equal(job.state, "dead");
      assert.equal(job.attempts, 1 + MAX_RETRIES, "exactly 1 + max_retries runs");
      const mine = lines.filter((l) => l.text.includes(` ${id}`) || l.text.includes(` ${id}:`));
      const starts = mine.filter((l) => new RegExp(`\\] started ${id}\\b`).test(l.text));
      const fails = mine.filter((l) => new RegExp(`\\] failed ${id} \\(exit 1\\)`).test(l.text));
      assert.equal(starts.length, 1 + MAX_RETRIES, mine.map((l) => l.text).join("\n"));
      assert.equal(fails.length, MAX_RETRIES);
      assert.ok(mine.some((l) => new RegExp(`\\] ${id} moved to DLQ`).test(l.text)));
      for (let n = 1; n <= MAX_RETRIES; n++) {
        const expected = BASE ** n * 1000;
        assert.match(fails[n - 1].text, new RegExp(`retry ${n}/${MAX_RETRIES} in `));
        const observed = starts[n].at - fails[n - 1].at;
        assert.ok(
          observed >= expected - EARLY_MS && observed <= expected + LATE_MS,
          `${id} retry ${n}: expected ${expected} ms after the failure, observed ${observed} ms`,
        );
        errors.push(observed - expected);
      }
    }
    report("backoff", {
      jobs: JOBS,
      max_retries: MAX_RETRIES,
      backoff_base: BASE,
      expected_delays_s: Array.from({ length: MAX_RETRIES }, (_, i) => BASE ** (i + 1)),
      error_ms_min: Math.min(...errors),
      error_ms_max: Math.max(...errors),
      error_ms_mean: Math.round(errors.reduce((a, b) => a + b, 0) / errors.length),
    });
  },
});
