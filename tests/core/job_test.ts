import assert from "node:assert/strict";
import { InvalidInput } from "../../src/core/errors.ts";
import { formatDuration, parseDuration } from "../../src/core/duration.ts";
import {
  generateJobId,
  jobToJson,
  MAX_COMMAND_BYTES,
  parseJobSpec,
  validateJobId,
} from "../../src/core/job.ts";
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
    cwd: null,
    env: null,
    depends_on: null,
    unique_key: null,
  });
  assert.equal(
    parseJobSpec({ command: "x", after: ["b", "c", "b"] }, defaults).depends_on,
    '["b","c"]',
    "after: ids once each, in order",
  );
  assert.equal(parseJobSpec({ command: "x", after: "b" }, defaults).depends_on, '["b"]');
  assert.equal(parseJobSpec({ command: "x", after: [] }, defaults).depends_on, null);
  const k = parseJobSpec(
    { command: "x", delay: "2m", priority: -5, max_retries: 0, timeout: 1.5 },
    defaults,
  );
  assert.equal(k.run_at, 1_000 + 120_000);
  assert.equal(k.max_retries, 0);
  assert.match(k.id, /^[0-9a-hjkmnp-tv-z]{26}$/);
  assert.equal(
    parseJobSpec({ command: "x", run_at: "2030-01-01T00:00:00Z" }, defaults).run_at,
    Date.UTC(2030, 0, 1),
  );
  // The longest command a shell can be given, in bytes.
  const longest = "é".repeat(65_535) + "x";
  assert.equal(parseJobSpec({ command: longest }, defaults).command, longest);
  // A date alone is local midnight, as a date and time without an offset is local time.
  assert.equal(
    parseJobSpec({ command: "x", run_at: "2030-07-01" }, defaults).run_at,
    new Date(2030, 6, 1).getTime(),
  );
  assert.equal(
    parseJobSpec({ command: "x", run_at: "2030-07-01T10:00:00" }, defaults).run_at,
    new Date(2030, 6, 1, 10).getTime(),
  );
  // A leap day where there is one, and the end of a month's last day.
  assert.equal(
    parseJobSpec({ command: "x", run_at: "2028-02-29T12:00:00Z" }, defaults).run_at,
    Date.UTC(2028, 1, 29, 12),
  );
  assert.equal(
    parseJobSpec({ command: "x", run_at: "2026-04-30T23:59:59Z" }, defaults).run_at,
    Date.UTC(2026, 3, 30, 23, 59, 59),
  );
});

Deno.test("parseJobSpec refuses bad specs with a message naming the problem", () => {
  const bad: [unknown, RegExp][] = [
    [null, /JSON object/],
    [[], /JSON object/],
    [{}, /Missing "command"/],
    [{ command: "" }, /non-empty/],
    [{ command: "a\0b" }, /NUL/],
    [{ command: "x", unique_key: "" }, /Invalid unique_key: expected a non-empty string/],
    [{ command: "x", unique_key: 5 }, /Invalid unique_key/],
    [{ command: "x", unique_key: "a\nb" }, /Invalid unique_key: it contains a control character/],
    [{ command: "x", unique_key: "k".repeat(201) }, /Invalid unique_key: longer than 200/],
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
    // Longer than a shell can be given (MAX_COMMAND_BYTES, in UTF-8 bytes, not characters).
    [{ command: "x".repeat(MAX_COMMAND_BYTES + 1) }, /Invalid command: 131072 bytes, more than/],
    [{ command: "é".repeat(65_536) }, /Invalid command: 131072 bytes/],
    // Days the month does not have: Date.parse would move them into the next month.
    [{ command: "x", run_at: "2026-02-29" }, /Invalid run_at.*"2026-02-29"/],
    [{ command: "x", run_at: "2026-04-31T10:00:00Z" }, /Invalid run_at/],
    [{ command: "x", run_at: "2026-02-30T00:00:00+02:00" }, /Invalid run_at/],
    [{ command: "x", run_at: "2030-01-01", delay: 1 }, /either/],
    [{ command: "x", extra: 1, other: 2 }, /Unknown job fields "extra", "other"/],
    [{ command: "x", after: 5 }, /Invalid after: expected a job id or an array/],
    [{ command: "x", after: ["ok", 1] }, /Invalid after/],
    [{ command: "x", after: ["bad id"] }, /Invalid after: Invalid job id/],
    [{ id: "me", command: "x", after: ["a", "me"] }, /"me" cannot run after itself/],
    [{ command: "x", after: Array.from({ length: 10_001 }, (_, i) => `j${i}`) }, /at most 10000/],
  ];
  for (const [spec, pattern] of bad) {
    assert.throws(
      () => parseJobSpec(spec, defaults),
      (e: Error) => e instanceof InvalidInput && pattern.test(e.message),
      JSON.stringify(spec),
    );
  }
  assert.throws(() => parseJobSpec({}, defaults, "line 7: "), /^InvalidInput: line 7: Missing/);
  // Several problems: the required command is named first, then the others in field order.
  assert.throws(() => parseJobSpec({ id: 7, priority: "x" }, defaults), /Missing "command"/);
  assert.throws(() => parseJobSpec({ command: "x", id: 7, priority: "x" }, defaults), /Invalid id/);
});

Deno.test("cwd: the caller's directory by default; relative paths resolved against it, stored absolute", () => {
  const at = { ...defaults, cwd: "/home/ann/proj" };
  const cwd = (spec: Record<string, unknown>) => parseJobSpec({ command: "x", ...spec }, at).cwd;
  assert.equal(cwd({}), "/home/ann/proj");
  assert.equal(cwd({ cwd: null }), "/home/ann/proj");
  assert.equal(cwd({ cwd: "build" }), "/home/ann/proj/build");
  assert.equal(cwd({ cwd: "./a/../b/" }), "/home/ann/proj/b");
  assert.equal(cwd({ cwd: ".." }), "/home/ann");
  assert.equal(cwd({ cwd: "/srv//data/./x/.." }), "/srv/data");
  assert.equal(cwd({ cwd: "/" }), "/");
  assert.equal(cwd({ cwd: "dir with 'quotes' é" }), "/home/ann/proj/dir with 'quotes' é");
  assert.equal(parseJobSpec({ command: "x", cwd: "/abs" }, defaults).cwd, "/abs");
  assert.equal(parseJobSpec({ command: "x" }, defaults).cwd, null, "no caller directory known");
  const bad: [unknown, RegExp][] = [
    [{ command: "x", cwd: "" }, /Invalid cwd: expected a directory path/],
    [{ command: "x", cwd: 5 }, /Invalid cwd: expected a directory path/],
    [{ command: "x", cwd: ["/a"] }, /Invalid cwd/],
    [{ command: "x", cwd: "/a\0b" }, /Invalid cwd: it contains a NUL/],
    [{ command: "x", cwd: "/" + "a".repeat(5000) }, /Invalid cwd: longer than 4096/],
  ];
  for (const [spec, pattern] of bad) {
    assert.throws(() => parseJobSpec(spec, at), pattern, JSON.stringify(spec).slice(0, 50));
  }
  assert.throws(
    () => parseJobSpec({ command: "x", cwd: "rel" }, defaults),
    /relative path needs the caller's directory/,
  );
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
    kill_signal: null,
    kill_retry: null,
    blocked_by: 0,
  });
  assert.equal(j.created_at, "1970-01-01T00:00:00.000Z");
  assert.deepEqual(j.after, []);
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
  // What formatDuration writes reads back (several units in a row, spaces allowed).
  for (const ms of [850, 2_000, 200_000, 5 * 3_600_000 + 2 * 60_000, 3 * 86_400_000 + 14_400_000]) {
    assert.equal(parseDuration(formatDuration(ms), "x"), ms);
  }
  assert.equal(parseDuration("1h 30m", "x"), 5_400_000);
  assert.equal(parseDuration("1m30.5s", "x"), 90_500);
  for (const bad of ["1h30", "h", "1h-30m", "1h,30m", "30 s 5", ""]) {
    assert.throws(() => parseDuration(bad, "x"), InvalidInput, bad);
  }
});

Deno.test("retry delay: base ^ n, capped, never infinite", () => {
  assert.equal(retryDelaySeconds(1, { backoff_base: 2, backoff_max: 3600 }), 2);
  assert.equal(retryDelaySeconds(3, { backoff_base: 3, backoff_max: 3600 }), 27);
  assert.equal(retryDelaySeconds(5000, { backoff_base: 2, backoff_max: 100 }), 100);
  assert.equal(retryDelaySeconds(4, { backoff_base: 1, backoff_max: 100 }), 1);
});

Deno.test("generated ids are valid job ids, ordered by creation, also within a millisecond", () => {
  const t = Date.UTC(2030, 0, 1);
  const ids = [
    ...Array.from({ length: 5000 }, () => generateJobId(t)), // one millisecond
    generateJobId(t + 1),
    generateJobId(t - 60_000), // the clock stepped back: still after the previous id
    generateJobId(t + 2),
    generateJobId(), // now
  ];
  for (const id of ids) assert.equal(validateJobId(id), id);
  for (let i = 1; i < ids.length; i++) {
    assert.ok(ids[i - 1] < ids[i], `${ids[i - 1]} < ${ids[i]} (id ${i})`);
  }
  assert.equal(new Set(ids).size, ids.length);
  // The first 10 characters are the time: ids of later milliseconds sort later.
  assert.equal(ids[0].slice(0, 10), ids[4999].slice(0, 10));
  assert.ok(ids[5000].slice(0, 10) > ids[0].slice(0, 10));
});
