/**
 * The SQLite database file as users meet it: its permissions, and what each storage error says
 * (the real cause and the fix), through the real CLI.
 */
import assert from "node:assert/strict";
import { ExitCodes } from "../../src/core/errors.ts";
import { otherUser, runAs } from "../helpers/other_user.ts";
import { MAIN, PERMISSIONS, runCli } from "../helpers/run_cli.ts";
import { skipAllowedBecause } from "../helpers/services.ts";
import { snapshotDb } from "../helpers/snapshot.ts";
import { tempDir } from "../helpers/temp.ts";

const isUnix = Deno.build.os !== "windows";

function mode(path: string): number {
  return (Deno.statSync(path).mode ?? 0) & 0o777;
}

Deno.test({
  name: "database file: a pre-existing empty file becomes 0600 once queuectl writes its schema",
  ignore: !isUnix,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("touched.db");
    Deno.writeFileSync(db, new Uint8Array(), { mode: 0o644 });
    Deno.chmodSync(db, 0o644); // whatever the umask
    assert.equal(mode(db), 0o644);
    const r = await runCli(["enqueue", '{"id":"a","command":"true"}'], { db });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(mode(db).toString(8), "600");
    for (const side of [`${db}-wal`, `${db}-shm`]) {
      try {
        assert.equal(mode(side).toString(8), "600", side);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
    // A file that already holds a database keeps the mode its owner chose.
    Deno.chmodSync(db, 0o640);
    assert.equal((await runCli(["status"], { db })).code, 0);
    assert.equal(mode(db).toString(8), "640");
  },
});

Deno.test({
  name: "database file: an empty file owned by another user is refused, not filled",
  ignore: !isUnix,
  fn: async (t) => {
    if (Deno.uid() !== 0) {
      const why = skipAllowedBecause("root");
      if (why === null) throw new Error("needs root to give a file to another user");
      console.log(`skipped: needs root to give a file to another user (${why})`);
      return;
    }
    await using dir = await tempDir();
    const db = dir.file("planted.db");
    Deno.writeFileSync(db, new Uint8Array(), { mode: 0o666 });
    Deno.chmodSync(db, 0o666);
    Deno.chownSync(db, 65534, 65534);
    const r = await runCli(["enqueue", '{"id":"a","command":"true"}'], { db });
    assert.equal(r.code, ExitCodes.storage, r.stderr);
    assert.match(r.stderr, /^error: .*owned by another user.*choose another path with --db/);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1);
    assert.equal(Deno.statSync(db).size, 0, "nothing written");
    await t.step("mode untouched", () => assert.equal(mode(db).toString(8), "666"));
  },
});

/** Asserts one error line with `code`, matching every pattern, and no Deno permission text. */
function assertOneError(r: { code: number; stderr: string }, code: number, ...patterns: RegExp[]) {
  assert.equal(r.code, code, r.stderr);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^error: /);
  for (const p of patterns) assert.match(lines[0], p);
  assert.doesNotMatch(r.stderr, /allow-all|run again with|disk I\/O error|\bat .*\.ts:\d+/);
}

Deno.test({
  name: "storage errors name the real cause and the fix (as the database's owner)",
  ignore: !isUnix,
  fn: async (t) => {
    await using dir = await tempDir();
    const asDir = dir.file("adir.db");
    await Deno.mkdir(asDir);
    const cases: [string, string, number, RegExp[]][] = [
      ["a directory", asDir, ExitCodes.storage, [
        /is a directory, not a file/,
        /adir\.db\/queue\.db/,
      ]],
      ["a directory, with a slash", `${asDir}/`, ExitCodes.storage, [/is a directory/]],
      ["/proc/x.db", "/proc/x.db", ExitCodes.storage, [/\/proc holds the kernel's pseudo-files/]],
      ["a file in /proc", "/proc/self/status", ExitCodes.storage, [/pseudo-files/]],
      ["/sys/x.db", "/sys/x.db", ExitCodes.storage, [/\/sys holds/]],
      ["/dev/null", "/dev/null", ExitCodes.storage, [/is a character device, not a file/]],
      ["a new file in /dev", "/dev/queuectl-test.db", ExitCodes.storage, [/choose another path/]],
      [
        "a MySQL URL (the password is not repeated)",
        "mysql://x:s3cret@y/z",
        ExitCodes.invalidInput,
        [/Unsupported database URL scheme "mysql:\/\/"/, /SQLite or PostgreSQL/, /postgres:\/\//],
      ],
    ];
    for (const [name, db, code, patterns] of cases) {
      await t.step(name, async () => {
        for (const args of [["status"], ["enqueue", '{"command":"x"}']]) {
          const r = await runCli([...args, "--db", db]);
          assertOneError(r, code, ...patterns);
          assert.doesNotMatch(r.stderr, /s3cret/);
        }
      });
    }
    assert.deepEqual([...Deno.readDirSync(asDir)], [], "nothing created in the directory");
    assert.throws(() => Deno.statSync("/dev/queuectl-test.db"));
  },
});

Deno.test({
  name: "storage errors as another user: unreadable, read-only file, read-only directory",
  ignore: !isUnix,
  fn: async (t) => {
    const user = otherUser();
    if ("missing" in user) {
      const why = skipAllowedBecause("other-user");
      if (why === null) throw new Error(`needs another user: ${user.missing}`);
      console.log(`skipped: ${user.missing} (${why})`);
      return;
    }
    await using dir = await tempDir();
    Deno.chmodSync(dir.path, 0o755);
    // The bundle: one file nobody can run without the npm cache of root.
    const bundle = dir.file("bundle");
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "deno", "--outdir", bundle, MAIN],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(built.success, new TextDecoder().decode(built.stderr));
    Deno.chmodSync(bundle, 0o755);
    Deno.chmodSync(`${bundle}/main.js`, 0o644);
    const denoDir = dir.file("deno-dir");
    Deno.mkdirSync(denoDir, { mode: 0o777 });
    Deno.chmodSync(denoDir, 0o777);
    const asNobody = (db: string, ...args: string[]) =>
      runAs(
        user,
        [Deno.execPath(), "run", "--quiet", ...PERMISSIONS, `${bundle}/main.js`, ...args],
        {
          QUEUECTL_DB: db,
          DENO_DIR: denoDir,
        },
      );
    const make = async (db: string) => {
      const r = await runCli(["enqueue", '{"id":"j1","command":"true"}'], { db });
      assert.equal(r.code, 0, r.stderr);
    };
    const leftovers = () =>
      [...Deno.readDirSync("/tmp")].filter((e) => e.name.startsWith("queuectl-readonly-")).length;
    const before = leftovers();

    await t.step("a file nobody may read", async () => {
      const db = dir.file("private.db");
      await make(db);
      const r = await asNobody(db, "status");
      assertOneError(
        r,
        ExitCodes.storage,
        /Cannot read the database .*private\.db.*: permission denied \(mode 0600, owner uid 0\)/,
        /owner/,
      );
    });

    await t.step("a file nobody may read but not write: reads work, writes say why", async () => {
      const db = dir.file("readable.db");
      await make(db);
      Deno.chmodSync(db, 0o644);
      const status = await asNobody(db, "status");
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /^pending +1$/m);
      const list = await asNobody(db, "list", "--json");
      assert.equal(list.code, 0, list.stderr);
      assert.deepEqual(JSON.parse(list.stdout).map((j: { id: string }) => j.id), ["j1"]);
      const snapshot = snapshotDb(db);
      const r = await asNobody(db, "enqueue", '{"command":"x"}');
      assertOneError(
        r,
        ExitCodes.storage,
        /Cannot write the database .*readable\.db.*: the file is read-only for you \(mode 0644, owner uid 0\)/,
        /status, list and show still work/,
      );
      assert.equal(snapshotDb(db), snapshot, "database unchanged");
    });

    await t.step("a writable file in a directory nobody may write", async () => {
      const sub = dir.file("ro-dir");
      Deno.mkdirSync(sub);
      const db = `${sub}/q.db`;
      await make(db);
      Deno.chmodSync(db, 0o666);
      Deno.chmodSync(sub, 0o555);
      for (
        const args of [["status"], ["list"], ["show", "j1"], ["dlq", "list"], ["config", "list"]]
      ) {
        const r = await asNobody(db, ...args);
        assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      }
      // The bytes, not snapshotDb: root opening it here would create -wal and -shm (mode 0666,
      // like the file) in the directory, and nobody could then write after all.
      const bytes = Deno.readFileSync(db);
      const r = await asNobody(db, "cancel", "j1");
      assertOneError(
        r,
        ExitCodes.storage,
        /Cannot write the database .*q\.db.*: its directory .*ro-dir is read-only for you \(mode 0555, owner uid 0\)/,
        /make the directory writable/,
      );
      assert.deepEqual(Deno.readFileSync(db), bytes, "database unchanged");
      const files = [...Deno.readDirSync(sub)].map((e) => e.name);
      assert.ok(!files.some((f) => f.startsWith(".queuectl-probe-")), files.join(" "));
    });

    assert.equal(leftovers(), before, "no snapshot left in /tmp");
  },
});
