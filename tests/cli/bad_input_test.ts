/**
 * Every kind of bad input gets one `error: ...` line on stderr, a documented non-zero exit code,
 * and leaves the database unchanged. Run through the real CLI.
 */
import assert from "node:assert/strict";
import { ExitCodes } from "../../src/core/errors.ts";
import { runCli } from "../helpers/run_cli.ts";
import { snapshotDb } from "../helpers/snapshot.ts";
import { tempDir } from "../helpers/temp.ts";

/** Asserts the command fails with `code`, one error line, and no change to the database. */
async function assertRefused(
  db: string,
  args: string[],
  code: number,
  pattern: RegExp,
  stdin?: string,
): Promise<void> {
  const before = snapshotDb(db);
  const r = await runCli(args, { db, stdin });
  assert.equal(r.code, code, `exit code of ${args.join(" ")}: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one stderr line expected, got: ${r.stderr}`);
  assert.match(lines[0], /^error: /);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+/, "no stack trace");
  assert.equal(snapshotDb(db), before, "database unchanged");
}

Deno.test("bad input: each is refused with one error line and changes nothing", async (t) => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const seed = await runCli(["enqueue", '{"id":"job1","command":"echo Hello"}'], { db });
  assert.equal(seed.code, 0, seed.stderr);
  const fail = await runCli(["config", "set", "max_retries", "4"], { db });
  assert.equal(fail.code, 0);

  const cases: [string, string[], number, RegExp, string?][] = [
    ["invalid JSON", ["enqueue", "{bad"], ExitCodes.invalidInput, /Invalid JSON/],
    ["JSON that is not an object", ["enqueue", "[1,2]"], ExitCodes.invalidInput, /JSON object/],
    ["a JSON string", ["enqueue", '"echo hi"'], ExitCodes.invalidInput, /JSON object/],
    ["missing command", ["enqueue", '{"id":"x"}'], ExitCodes.invalidInput, /Missing "command"/],
    ["empty command", ["enqueue", '{"command":"  "}'], ExitCodes.invalidInput, /non-empty/],
    ["command of wrong type", ["enqueue", '{"command":5}'], ExitCodes.invalidInput, /command/],
    ["id of wrong type", ["enqueue", '{"id":7,"command":"x"}'], ExitCodes.invalidInput, /id/],
    [
      "priority of wrong type",
      ["enqueue", '{"command":"x","priority":"high"}'],
      ExitCodes.invalidInput,
      /priority/,
    ],
    [
      "negative max_retries",
      ["enqueue", '{"command":"x","max_retries":-1}'],
      ExitCodes.invalidInput,
      /max_retries/,
    ],
    [
      "non-integer max_retries",
      ["enqueue", '{"command":"x","max_retries":1.5}'],
      ExitCodes.invalidInput,
      /max_retries/,
    ],
    [
      "unknown field",
      ["enqueue", '{"command":"x","max_retry":2}'],
      ExitCodes.invalidInput,
      /Unknown job field "max_retry"/,
    ],
    [
      "bad run_at",
      ["enqueue", '{"command":"x","run_at":"tomorrow"}'],
      ExitCodes.invalidInput,
      /run_at/,
    ],
    ["bad timeout", ["enqueue", '{"command":"x","timeout":0}'], ExitCodes.invalidInput, /timeout/],
    [
      "duplicate id",
      ["enqueue", '{"id":"job1","command":"echo again"}'],
      ExitCodes.conflict,
      /already exists/,
    ],
    [
      "bad line in a file (all or nothing)",
      ["enqueue", "--file", "-"],
      ExitCodes.invalidInput,
      /line 2/,
      '{"command":"ok 1"}\n{"command":""}\n',
    ],
    [
      "duplicate id in a file (all or nothing)",
      ["enqueue", "--file", "-"],
      ExitCodes.conflict,
      /job1/,
      '{"command":"ok 1"}\n{"id":"job1","command":"dup"}\n',
    ],
    [
      "same id twice in a file",
      ["enqueue", "--file", "-"],
      ExitCodes.conflict,
      /appears twice/,
      '[{"id":"a","command":"x"},{"id":"a","command":"y"}]',
    ],
    [
      "bad JSON after 2,500 good lines (streamed in batches, all rolled back)",
      ["enqueue", "--file", "-"],
      ExitCodes.invalidInput,
      /^error: line 2502: invalid JSON/,
      '{"command":"ok"}\n'.repeat(2500) + "\n" + '{"command":\n',
    ],
    [
      "an invalid job after 2,500 good lines (all rolled back)",
      ["enqueue", "--file", "-"],
      ExitCodes.invalidInput,
      /^error: line 2501: /,
      '{"command":"ok"}\n'.repeat(2500) + '{"command":"x","priority":"high"}',
    ],
    [
      "the same id twice, 2,000 lines apart (all rolled back)",
      ["enqueue", "--file", "-"],
      ExitCodes.conflict,
      /"far" appears twice in the input/,
      '{"id":"far","command":"x"}\n' + '{"command":"ok"}\n'.repeat(2000) +
      '{"id":"far","command":"y"}\n',
    ],
    ["empty file", ["enqueue", "--file", "-"], ExitCodes.invalidInput, /empty/, ""],
    ["blank lines only", ["enqueue", "--file", "-"], ExitCodes.invalidInput, /empty/, "\n \r\n\n"],
    [
      "missing file",
      ["enqueue", "--file", "/nonexistent/jobs.jsonl"],
      ExitCodes.invalidInput,
      /no such file/,
    ],
    ["missing job", ["enqueue"], ExitCodes.invalidInput, /Missing job/],
    [
      "option without --",
      ["enqueue", "--id", "x", '{"command":"x"}'],
      ExitCodes.invalidInput,
      /--id/,
    ],
    ["unknown state", ["list", "--state", "running"], ExitCodes.invalidInput, /Unknown state/],
    ["bad limit", ["list", "--limit", "0"], ExitCodes.invalidInput, /limit/],
    [
      "list --offset (removed: paging is by keyset, --after)",
      ["list", "--offset", "5"],
      ExitCodes.invalidInput,
      /^error: --offset was removed: page with --after <last id of the previous page> \(keyset paging; a deep page costs what the first does\)$/,
    ],
    [
      "list --offset with other flags",
      ["list", "--state", "pending", "--offset", "0", "--json"],
      ExitCodes.invalidInput,
      /^error: --offset was removed: page with --after /,
    ],
    ["dlq list --offset", ["dlq", "list", "--offset", "5"], ExitCodes.invalidInput, /--offset/],
    [
      "unknown config key",
      ["config", "set", "max_tries", "3"],
      ExitCodes.invalidInput,
      /max_tries/,
    ],
    [
      "out-of-range config value",
      ["config", "set", "max_retries", "-1"],
      ExitCodes.invalidInput,
      /Cannot set 'max_retries': expected a whole number/,
    ],
    [
      "non-numeric config value",
      ["config", "set", "backoff_base", "fast"],
      ExitCodes.invalidInput,
      /backoff_base/,
    ],
    ["unknown config key on get", ["config", "get", "nope"], ExitCodes.invalidInput, /nope/],
    ["missing job id", ["show", "nope"], ExitCodes.notFound, /No job with id "nope"/],
    ["missing job id argument", ["show"], ExitCodes.invalidInput, /error/],
    ["retry of a pending job", ["retry", "job1"], ExitCodes.conflict, /pending/],
    ["restore of a pending job", ["dlq", "restore", "job1"], ExitCodes.conflict, /pending/],
    ["dlq move of a pending job", ["dlq", "move", "job1"], ExitCodes.conflict, /pending/],
    ["cancel of a missing job", ["cancel", "nope"], ExitCodes.notFound, /nope/],
    ["purge of pending jobs", ["purge", "--state", "pending"], ExitCodes.invalidInput, /purge/],
    ["bad duration", ["purge", "--older-than", "soon"], ExitCodes.invalidInput, /duration/],
    ["unknown command", ["frobnicate"], ExitCodes.invalidInput, /unknown command/],
    ["unknown flag", ["list", "--colour"], ExitCodes.invalidInput, /error/],
    [
      "wait for an unknown id",
      ["wait", "job1", "nope"],
      ExitCodes.notFound,
      /No job with id "nope"/,
    ],
    ["wait for nothing", ["wait"], ExitCodes.invalidInput, /Nothing to wait for/],
    ["wait for ids and --all", ["wait", "job1", "--all"], ExitCodes.invalidInput, /either/],
    [
      "wait with a bad timeout",
      ["wait", "job1", "--timeout", "soon"],
      ExitCodes.invalidInput,
      /--timeout/,
    ],
    [
      "--wait-timeout without --wait",
      ["enqueue", "--wait-timeout", "5s", "--", "echo", "x"],
      ExitCodes.invalidInput,
      /--wait-timeout applies only with --wait/,
    ],
    [
      "enqueue --wait with a bad timeout",
      ["enqueue", "--wait", "--wait-timeout", "x", "--", "echo", "x"],
      ExitCodes.invalidInput,
      /--wait-timeout/,
    ],
  ];
  for (const [name, args, code, pattern, stdin] of cases) {
    await t.step(name, () => assertRefused(db, args, code, pattern, stdin));
  }
});

Deno.test("bad input: a job file that is not UTF-8 or repeats a key enqueues nothing", async (t) => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  assert.equal((await runCli(["enqueue", '{"id":"job1","command":"true"}'], { db })).code, 0);
  const enc = new TextEncoder();
  const notUtf8 = dir.file("latin1.jsonl");
  await Deno.writeFile(
    notUtf8,
    new Uint8Array([
      ...enc.encode('{"command":"ok 1"}\n{"command":"ok 2"}\n{"command":"caf'),
      0xe9, // "é" in Latin-1: not UTF-8
      ...enc.encode('"}\n'),
    ]),
  );
  const bom = dir.file("bom.jsonl");
  await Deno.writeFile(bom, new Uint8Array([0xff, 0xfe, ...enc.encode('{"command":"x"}\n')]));

  const cases: [string, string[], RegExp, string?][] = [
    [
      "a byte that is not UTF-8 (line 3)",
      ["enqueue", "--file", notUtf8],
      /^error: line 3: invalid UTF-8/,
    ],
    [
      "a UTF-16 byte order mark (line 1)",
      ["enqueue", "--file", bom],
      /^error: line 1: invalid UTF-8/,
    ],
    [
      "a key twice on one line of JSON Lines",
      ["enqueue", "--file", "-"],
      /^error: line 2: duplicate key "command"/,
      '{"command":"ok"}\n{"command":"echo safe","priority":1,"command":"rm -rf ~"}\n',
    ],
    [
      "a key twice in an object of a JSON array (line of the second one)",
      ["enqueue", "--file", "-"],
      /^error: line 4: duplicate key "queue"/,
      '[\n {"command":"ok"},\n {"command":"x","queue":"a",\n  "queue":"b"}\n]',
    ],
    [
      "a key twice, spelt with an escape the second time",
      ["enqueue", "--file", "-"],
      /^error: line 1: duplicate key "id"/,
      '{"id":"a","command":"x","\\u0069d":"b"}\n',
    ],
    [
      "a key twice in the job argument",
      ["enqueue", '{"command":"a","command":"b"}'],
      /^error: Duplicate key "command"/,
    ],
  ];
  for (const [name, args, pattern, stdin] of cases) {
    await t.step(name, () => assertRefused(db, args, ExitCodes.invalidInput, pattern, stdin));
  }

  await t.step("the same key in different objects, and in values, is fine", async () => {
    const r = await runCli(["enqueue", "--file", "-"], {
      db,
      stdin: '[{"command":"echo \\"command\\": 1","queue":"a"},{"command":"y","queue":"a"}]',
    });
    assert.equal(r.code, 0, r.stderr);
  });
});

Deno.test("bad input: error lines stay short and plain, whatever the value", async (t) => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  assert.equal((await runCli(["enqueue", '{"id":"job1","command":"true"}'], { db })).code, 0);
  const big = "q".repeat(5_000_000);
  const long = "x".repeat(100_000); // one argv string may not exceed 128 KiB on Linux
  const cases: [string, string[], number, RegExp, string?][] = [
    [
      "a 5 MB queue name in a file",
      ["enqueue", "--file", "-"],
      ExitCodes.invalidInput,
      /^error: line 1: Invalid queue name "q{60}…" \(5000000 characters\)/,
      JSON.stringify({ command: "x", queue: big }) + "\n",
    ],
    [
      "a 5 MB job argument of the wrong type",
      ["enqueue", "--file", "-"],
      ExitCodes.invalidInput,
      /^error: .*priority.*\(5000000 characters\)/,
      JSON.stringify({ command: "x", priority: big }),
    ],
    [
      "a 100 KB job id",
      ["show", long],
      ExitCodes.invalidInput,
      /^error: Invalid job id "x{60}…" \(100000 characters\)/,
    ],
    [
      "a 200-character job id that is unknown (retry)",
      ["retry", "r".repeat(200)],
      ExitCodes.notFound,
      /^error: No job with id "r{60}…" \(200 characters\)/,
    ],
    [
      "a 100 KB --limit",
      ["list", "--limit", long],
      ExitCodes.invalidInput,
      /^error: .*"x{60}…" \(100000 characters\)/,
    ],
    [
      "a value a flag's parser refused: its own message, whole (it was cut mid-sentence)",
      ["worker", "start", "--count", "0"],
      ExitCodes.invalidInput,
      /^error: Invalid --count: expected a whole number from 1 to \d+, got "0" \(see --help/,
    ],
    [
      "a 100 KB value a flag's parser refused: cut once",
      ["worker", "start", "--queue", long],
      ExitCodes.invalidInput,
      /^error: Invalid queue name "x{60}…" \(100000 characters\): use 1-64 letters/,
    ],
    [
      "a 100 KB value stricli's own parser refused: cut wherever it is named",
      ["completions", long],
      ExitCodes.invalidInput,
      /^error: Failed to parse "x{60}…" \(100000 characters\) for shell: "x{60}…" \(100000 characters\) is not one of/,
    ],
    [
      "dlq list --limit that is not a number (was read as NaN)",
      ["dlq", "list", "--limit", "x"],
      ExitCodes.invalidInput,
      /^error: Invalid --limit: expected a whole number, got "x"/,
    ],
    ["a 100 KB unknown flag", ["list", `--${long}`], ExitCodes.invalidInput, /^error: /],
    ["a 100 KB unknown command", [long], ExitCodes.invalidInput, /^error: unknown command/],
    [
      "escape sequences in a value",
      ["show", "\x1b]0;owned\x07\x1b[2J\u202eexe.txt"],
      ExitCodes.invalidInput,
      /^error: Invalid job id "\\u001b\]0;owned\\u0007\\u001b\[2J\\u202eexe\.txt"/,
    ],
  ];
  for (const [name, args, code, pattern, stdin] of cases) {
    await t.step(name, async () => {
      await assertRefused(db, args, code, pattern, stdin).catch((err) => {
        throw new Error(String(err).slice(0, 2000)); // not the 5 MB value
      });
      const r = await runCli(args, { db, stdin });
      assert.ok(r.stderr.length < 1200, `error line of ${r.stderr.length} characters`);
      // deno-lint-ignore no-control-regex
      assert.doesNotMatch(r.stderr.trimEnd(), /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
    });
  }
});

Deno.test("bad database: missing dir, read-only dir, corrupt, newer version", async (t) => {
  await using dir = await tempDir();

  await t.step("a path in a missing directory", async () => {
    const r = await runCli(["status"], { db: dir.file("no/such/dir/q.db") });
    assert.equal(r.code, ExitCodes.storage);
    assert.match(r.stderr, /^error: Cannot create the database .*: directory .* does not exist/);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1);
  });

  await t.step({
    name: "a path in a read-only directory (skipped as root, who writes anyway, and on Windows)",
    ignore: Deno.build.os === "windows" || Deno.uid?.() === 0,
    fn: async () => {
      const ro = dir.file("ro");
      await Deno.mkdir(ro, { mode: 0o500 });
      const r = await runCli(["status"], { db: `${ro}/q.db` });
      assert.equal(r.code, ExitCodes.storage);
      assert.match(r.stderr, /^error: Cannot create the database/);
    },
  });

  await t.step({
    name: "a read-only database file (skipped as root and on Windows)",
    ignore: Deno.build.os === "windows" || Deno.uid?.() === 0,
    fn: async () => {
      const db = dir.file("ro.db");
      assert.equal((await runCli(["status"], { db })).code, 0);
      await Deno.chmod(db, 0o400);
      const r = await runCli(["enqueue", '{"command":"x"}'], { db });
      assert.equal(r.code, ExitCodes.storage);
    },
  });

  await t.step("a read-only directory, as root: a file that is a directory", async () => {
    // Root ignores permission bits, so the "cannot write" path is exercised with a directory.
    const asDir = dir.file("adir.db");
    await Deno.mkdir(asDir);
    const r = await runCli(["status"], { db: asDir });
    assert.equal(r.code, ExitCodes.storage);
    assert.match(r.stderr, /^error: /);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1);
  });

  await t.step("a corrupt database", async () => {
    const db = dir.file("corrupt.db");
    await Deno.writeTextFile(db, "this is not sqlite, just text ".repeat(200));
    const before = await Deno.readTextFile(db);
    const r = await runCli(["enqueue", '{"command":"x"}'], { db });
    assert.equal(r.code, ExitCodes.storage);
    assert.match(r.stderr, /^error: .*not a queuectl database or is corrupt/);
    assert.equal(await Deno.readTextFile(db), before);
  });

  await t.step("another application's SQLite database", async () => {
    const { DatabaseSync } = await import("node:sqlite");
    const db = dir.file("other.db");
    const other = new DatabaseSync(db);
    other.exec("CREATE TABLE notes (x TEXT)");
    other.close();
    const r = await runCli(["status"], { db });
    assert.equal(r.code, ExitCodes.storage);
    assert.match(r.stderr, /another application/);
  });

  await t.step("a database from a newer queuectl", async () => {
    const { DatabaseSync } = await import("node:sqlite");
    const db = dir.file("newer.db");
    assert.equal((await runCli(["enqueue", '{"id":"a","command":"x"}'], { db })).code, 0);
    const raw = new DatabaseSync(db);
    raw.exec("PRAGMA user_version = 999");
    raw.close();
    const before = snapshotDb(db);
    const r = await runCli(["enqueue", '{"command":"x"}'], { db });
    assert.equal(r.code, ExitCodes.storage);
    assert.match(r.stderr, /schema version 999, newer than this queuectl/);
    assert.equal(snapshotDb(db), before);
  });
});

Deno.test("bad input: list --offset is refused before the database is opened", async () => {
  await using dir = await tempDir();
  const db = dir.file("never.db");
  const r = await runCli(["list", "--offset", "5"], { db });
  assert.equal(r.code, ExitCodes.invalidInput, r.stderr);
  assert.equal(
    r.stderr,
    "error: --offset was removed: page with --after <last id of the previous page> " +
      "(keyset paging; a deep page costs what the first does)\n",
  );
  assert.equal(r.stdout, "");
  assert.deepEqual([...Deno.readDirSync(dir.path)], [], "no database created");
});
