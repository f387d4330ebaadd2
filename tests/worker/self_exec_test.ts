/** How the supervisor re-executes this program: argv, permissions, database and log paths. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import denoJson from "../../deno.json" with { type: "json" };
import {
  currentSelfExec,
  dbArgs,
  defaultLogFile,
  permissionFlagsFromTask,
  selfArgv,
  type SelfExec,
  WORKER_V8_FLAGS,
  workerRunArgs,
  workerTuningEnv,
} from "../../src/worker/self_exec.ts";
import { PERMISSIONS, runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";

const underDeno: SelfExec = {
  standalone: false,
  execPath: "/usr/bin/deno",
  mainModule: "file:///opt/queuectl/src/main.ts",
  configPath: "/opt/queuectl/deno.json",
  permissionFlags: ["--allow-read", "--allow-sys=hostname"],
};

Deno.test("selfArgv under deno run: deno run <permissions> --config <deno.json> <main> args", () => {
  assert.deepEqual(selfArgv(underDeno, ["worker", "run", "--index", "2"]), [
    "/usr/bin/deno",
    "run",
    "--allow-read",
    "--allow-sys=hostname",
    "--config",
    "/opt/queuectl/deno.json",
    "file:///opt/queuectl/src/main.ts",
    "worker",
    "run",
    "--index",
    "2",
  ]);
  // A worker's: out of the code cache (its V8 flags differ from the CLI's).
  assert.deepEqual(
    selfArgv(underDeno, ["worker", "run"], { codeCache: false }).slice(0, 4),
    ["/usr/bin/deno", "run", "--no-code-cache", "--allow-read"],
  );
});

Deno.test("selfArgv in a compiled binary: the binary itself, no deno flags", () => {
  const compiled: SelfExec = {
    ...underDeno,
    standalone: true,
    execPath: "/usr/local/bin/queuectl",
  };
  assert.deepEqual(selfArgv(compiled, ["worker", "run"]), [
    "/usr/local/bin/queuectl",
    "worker",
    "run",
  ]);
  assert.deepEqual(selfArgv(compiled, ["worker", "run"], { codeCache: false }), [
    "/usr/local/bin/queuectl",
    "worker",
    "run",
  ]);
});

Deno.test("the permission flags are exactly those of deno.json's queuectl task", () => {
  const flags = permissionFlagsFromTask(denoJson.tasks.queuectl);
  assert.deepEqual(flags, PERMISSIONS);
  assert.deepEqual(currentSelfExec().permissionFlags, flags);
  assert.deepEqual(permissionFlagsFromTask("deno run --allow-read=/x -A --deny-net main.ts"), [
    "--allow-read=/x",
    "--deny-net",
  ]);
  assert.deepEqual(permissionFlagsFromTask("deno run --v8-flags=--a=1,--b --allow-env m.ts"), [
    "--v8-flags=--a=1,--b",
    "--allow-env",
  ]);
});

Deno.test("workers run with the queuectl task's V8 flags (a small young generation)", () => {
  assert.ok(currentSelfExec().permissionFlags.includes("--v8-flags=--max-semi-space-size=2"));
  const argv = selfArgv(currentSelfExec(), ["worker", "run"]);
  assert.ok(argv.includes("--v8-flags=--max-semi-space-size=2"), argv.join(" "));
});

Deno.test("currentSelfExec points at this checkout's src/main.ts and deno.json", async () => {
  const self = currentSelfExec();
  assert.equal(self.standalone, false);
  assert.equal(self.execPath, Deno.execPath());
  assert.ok((await Deno.stat(new URL(self.mainModule))).isFile);
  assert.ok(self.configPath && (await Deno.stat(self.configPath)).isFile);
});

Deno.test("the argv from currentSelfExec really starts this program, from any directory", async () => {
  const argv = selfArgv(currentSelfExec(), ["--version"]);
  const cwd = await Deno.makeTempDir();
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output().finally(() => Deno.remove(cwd));
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(new TextDecoder().decode(out.stdout), new RegExp(denoJson.version));
});

Deno.test("workerRunArgs: --db for files, QUEUECTL_DB for URLs with a password", () => {
  assert.deepEqual(
    workerRunArgs({
      dbUrl: "/data/q.db",
      supervisorId: "s-1",
      index: 3,
      queues: ["a", "b"],
      logFile: "/data/q.db-worker.log",
    }),
    {
      args: [
        "worker",
        "run",
        "--db",
        "/data/q.db",
        "--supervisor",
        "s-1",
        "--index",
        "3",
        "--queue",
        "a",
        "--queue",
        "b",
        "--log",
        "/data/q.db-worker.log",
      ],
      env: {},
    },
  );
  const secret = "postgres://app:s3cret@db.example/queue";
  const r = workerRunArgs({
    dbUrl: secret,
    supervisorId: "s-1",
    index: 1,
    queues: null,
    logFile: null,
  });
  assert.ok(!r.args.join(" ").includes("s3cret"), "no password in argv");
  assert.deepEqual(r.env, { QUEUECTL_DB: secret });
  assert.deepEqual(dbArgs("postgres://app@db/queue"), {
    args: ["--db", "postgres://app@db/queue"],
    env: {},
  });
});

Deno.test("defaultLogFile: beside an SQLite file, in the data dir for PostgreSQL", () => {
  assert.equal(defaultLogFile("/data/q.db"), "/data/q.db-worker.log");
  assert.equal(defaultLogFile("sqlite:/data/q.db"), "/data/q.db-worker.log");
  if (Deno.build.os !== "windows") {
    assert.equal(
      defaultLogFile("postgres://x@h/db", (n) => (n === "XDG_DATA_HOME" ? "/xdg" : undefined)),
      "/xdg/queuectl/queuectl-worker.log",
    );
  }
});

Deno.test("workerTuningEnv: the mmap threshold on Linux unless the user set it, V8 flags before the user's", () => {
  const none = () => undefined;
  assert.deepEqual(workerTuningEnv(none, "linux"), {
    MALLOC_MMAP_THRESHOLD_: "65536",
    DENO_V8_FLAGS: WORKER_V8_FLAGS,
    QUEUECTL_WORKER_TUNED: "MALLOC_MMAP_THRESHOLD_,DENO_V8_FLAGS",
  });
  const user: Record<string, string> = {
    MALLOC_MMAP_THRESHOLD_: "1048576",
    DENO_V8_FLAGS: "--max-old-space-size=512",
  };
  assert.deepEqual(workerTuningEnv((n) => user[n], "linux"), {
    DENO_V8_FLAGS: `${WORKER_V8_FLAGS},--max-old-space-size=512`,
    QUEUECTL_WORKER_TUNED: "DENO_V8_FLAGS",
  });
  // An empty DENO_V8_FLAGS would make deno fail ("flag ''"): treated as unset.
  assert.deepEqual(workerTuningEnv((n) => (n === "DENO_V8_FLAGS" ? "" : undefined), "darwin"), {
    DENO_V8_FLAGS: WORKER_V8_FLAGS,
    QUEUECTL_WORKER_TUNED: "DENO_V8_FLAGS",
  });
});

Deno.test({
  name:
    "a supervised worker starts with the malloc tuning and V8 flags, its jobs see the environment as it was",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("tuning.db");
    const enq = async (id: string, cmd: string) => {
      const r = await runCli(["enqueue", JSON.stringify({ id, command: cmd })], { db });
      assert.equal(r.code, 0, r.stderr);
    };
    // The job's own environment, and its parent's (the worker's) initial one.
    await enq("env", "env");
    await enq("parent", "tr '\\0' '\\n' < /proc/$PPID/environ");
    await enq("mine", "env");
    const w = await runCli(["worker", "start", "--until-empty"], { db });
    assert.equal(w.code, 0, w.stderr);
    const out = async (id: string) => {
      const r = await runCli(["logs", id], { db });
      assert.equal(r.code, 0, r.stderr);
      return r.stdout;
    };
    const env = await out("env");
    assert.match(env, /^PATH=/m);
    assert.doesNotMatch(env, /^MALLOC_MMAP_THRESHOLD_=/m);
    assert.doesNotMatch(env, /^DENO_V8_FLAGS=/m);
    assert.doesNotMatch(env, /^QUEUECTL_WORKER_TUNED=/m);
    const parent = await out("parent");
    assert.match(parent, /^MALLOC_MMAP_THRESHOLD_=65536$/m);
    assert.match(parent, new RegExp(`^DENO_V8_FLAGS=${WORKER_V8_FLAGS}$`, "m"));
    // A value the user set is theirs: kept for the jobs, never replaced.
    await enq("user", "env");
    await enq("user-parent", "tr '\\0' '\\n' < /proc/$PPID/environ");
    const w2 = await runCli(["worker", "start", "--until-empty"], {
      db,
      env: { MALLOC_MMAP_THRESHOLD_: "131072", DENO_V8_FLAGS: "--max-old-space-size=512" },
    });
    assert.equal(w2.code, 0, w2.stderr);
    const user = await out("user");
    assert.match(user, /^MALLOC_MMAP_THRESHOLD_=131072$/m);
    assert.match(user, /^DENO_V8_FLAGS=--max-old-space-size=512$/m);
    assert.match(
      await out("user-parent"),
      new RegExp(`^DENO_V8_FLAGS=${WORKER_V8_FLAGS},--max-old-space-size=512$`, "m"),
    );
  },
});

Deno.test({
  name: "a worker start leaves deno's code cache valid for the CLI: the next call compiles nothing",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await using dir = await tempDir();
    // A code cache of this test's own (DENO_DIR), the downloaded packages shared.
    const info = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
    const { npmCache } = JSON.parse(new TextDecoder().decode(info.stdout)) as { npmCache: string };
    const denoDir = dir.file("deno_dir");
    await Deno.mkdir(denoDir);
    await Deno.symlink(npmCache, `${denoDir}/npm`);
    const db = dir.file("cache.db");
    const env = { DENO_DIR: denoDir };
    const cli = async (args: string[], extra: Record<string, string> = {}) => {
      const r = await runCli(args, { db, env: { ...env, ...extra } });
      assert.equal(r.code, 0, r.stderr);
    };
    /**
     * What deno's code cache holds (its table in Deno 2.9): a module compiled again is written back
     * with other data. Its files are no measure: a process checkpoints what the last one wrote.
     */
    const cacheState = async () => {
      const file = `${denoDir}/v8_code_cache_v2`;
      if (!(await Deno.stat(file).catch(() => null))) return "none";
      const db = new DatabaseSync(file, { readOnly: true });
      try {
        const hash = createHash("sha256");
        const rows = db.prepare(
          "SELECT specifier, type, CAST(source_hash AS TEXT) AS source_hash, data FROM codecache ORDER BY specifier, type",
        ).all() as { specifier: string; type: number; source_hash: string; data: Uint8Array }[];
        for (const r of rows) {
          hash.update(`${r.specifier} ${r.type} ${r.source_hash} ${r.data.length}\n`);
          hash.update(r.data);
        }
        return `${rows.length} modules, ${hash.digest("hex")}`;
      } finally {
        db.close();
      }
    };
    await cli(["enqueue", "--", "true"]);
    await cli(["status"]);
    await cli(["status"]);
    await cli(["worker", "start", "--count", "2", "--until-empty"]);
    const afterWorkers = await cacheState();
    assert.notEqual(afterWorkers, "none", "deno kept no code cache here");
    // Workers that ran with V8 flags of their own left code the CLI rejected and compiled again.
    await cli(["status"]);
    assert.equal(await cacheState(), afterWorkers, "the status call after the workers wrote code");
    // The check can see it: a process with other V8 flags rejects the cache and writes it back.
    await cli(["status"], { DENO_V8_FLAGS: "--no-opt" });
    assert.notEqual(await cacheState(), afterWorkers, "a rejected cache went unseen");
  },
});
