import assert from "node:assert/strict";
import { InvalidInput } from "../../src/core/errors.ts";
import { formatDuration, parseDuration } from "../../src/core/duration.ts";
import { jobToJson, parseJobSpec } from "../../src/core/job.ts";
import { retryDelaySeconds } from "../../src/core/retry_policy.ts";

const defaults = { max_retries: 3, now: 1_000 };

Deno.test("parseJobSpec fills defaults and keeps given values", () => {
  const j = parseJobSpec({ id: "a", command: "echo hi" }, defaults);
  assert.deepEqual(j, {
    id: "a",
    command: "echo hi",
    queue: "default",
    priority: 0,
    max_retries: 3,
    timeout: null,
    run_at: 1_000,
  });
  const k = parseJobSpec(
    { command: "x", delay: "2m", priority: -5, max_retries: 0, timeout: 1.5 },
    defaults,
  );
  assert.equal(k.run_at, 1_000 + 120_000);
  assert.equal(k.max_retries, 0);
  assert.match(k.id, /^[0-9a-f]{16}$/);
  assert.equal(
    parseJobSpec({ command: "x", run_at: "2030-01-01T00:00:00Z" }, defaults).run_at,
    Date.UTC(2030, 0, 1),
  );
});

Deno.test("parseJobSpec refuses bad specs with a message naming the problem", () => {
  const bad: [unknown, RegExp][] = [
    [null, /JSON object/],
    [[], /JSON object/],
    [{}, /Missing "command"/],
    [{ command: "" }, /non-empty/],
    [{ command: "a\0b" }, /NUL/],
    [{ command: "x", id: "" }, /Invalid job id/],
    [{ command: "x", id: "has space" }, /Invalid job id/],
    [{ command: "x", queue: "a b" }, /queue/],
    [{ command: "x", max_retries: "3" }, /max_retries/],
    [{ command: "x", max_retries: 1001 }, /max_retries/],
    [{ command: "x", priority: 1.5 }, /priority/],
    [{ command: "x", timeout: -1 }, /timeout/],
    [{ command: "x", delay: -1 }, /delay/],
    [{ command: "x", delay: "soon" }, /delay/],
    [{ command: "x", run_at: 5 }, /run_at/],
    [{ command: "x", run_at: "2030-01-01", delay: 1 }, /either/],
    [{ command: "x", extra: 1, other: 2 }, /Unknown job fields "extra", "other"/],
  ];
  for (const [spec, pattern] of bad) {
    assert.throws(
      () => parseJobSpec(spec, defaults),
      (e: Error) => e instanceof InvalidInput && pattern.test(e.message),
      JSON.stringify(spec),
    );
  }
  assert.throws(() => parseJobSpec({}, defaults, "line 7: "), /^InvalidInput: line 7: Missing/);
});

Deno.test("jobToJson uses ISO-8601 times and the documented field names", () => {
  const j = jobToJson({
    ...parseJobSpec({ id: "a", command: "x" }, defaults),
    state: "pending",
    attempts: 0,
    created_at: 0,
    updated_at: 0,
    started_at: null,
    finished_at: null,
    exit_code: null,
    error: null,
    lease_owner: null,
    lease_expires_at: null,
  });
  assert.equal(j.created_at, "1970-01-01T00:00:00.000Z");
  assert.equal(j.started_at, null);
  assert.ok(!("stdout" in j));
});

Deno.test("durations parse and format", () => {
  assert.equal(parseDuration("7d", "x"), 7 * 86_400_000);
  assert.equal(parseDuration("500ms", "x"), 500);
  assert.equal(parseDuration("30", "x"), 30_000);
  assert.equal(parseDuration("1.5h", "x"), 5_400_000);
  assert.throws(() => parseDuration("-1s", "x"), InvalidInput);
  assert.throws(() => parseDuration("1y", "x"), InvalidInput);
  assert.equal(formatDuration(850), "850ms");
  assert.equal(formatDuration(2_000), "2s");
  assert.equal(formatDuration(200_000), "3m20s");
  assert.equal(formatDuration(3 * 86_400_000 + 4 * 3_600_000), "3d4h");
});

Deno.test("retry delay: base ^ n, capped, never infinite", () => {
  assert.equal(retryDelaySeconds(1, { backoff_base: 2, backoff_max: 3600 }), 2);
  assert.equal(retryDelaySeconds(3, { backoff_base: 3, backoff_max: 3600 }), 27);
  assert.equal(retryDelaySeconds(5000, { backoff_base: 2, backoff_max: 100 }), 100);
  assert.equal(retryDelaySeconds(4, { backoff_base: 1, backoff_max: 100 }), 1);
});
