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
    ["empty file", ["enqueue", "--file", "-"], ExitCodes.invalidInput, /empty/, ""],
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
  ];
  for (const [name, args, code, pattern, stdin] of cases) {
    await t.step(name, () => assertRefused(db, args, code, pattern, stdin));
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
