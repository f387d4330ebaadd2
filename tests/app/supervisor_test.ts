/** How the supervisor re-executes this program, and its small pure helpers. */
import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import {
  currentSelfExec,
  dbArgs,
  defaultLogFile,
  defaultRestartDelayMs,
  EMPTY_CHECK_MIN_MS,
  jobsLeft,
  nextLookMs,
  permissionFlagsFromTask,
  selfArgv,
  type SelfExec,
  workerRunArgs,
} from "../../src/app/supervisor.ts";
import { complete } from "../../src/core/transitions.ts";
import { PERMISSIONS } from "../helpers/run_cli.ts";
import { tempStore } from "../helpers/temp.ts";

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
});

Deno.test("the permission flags are exactly those of deno.json's queuectl task", () => {
  const flags = permissionFlagsFromTask(denoJson.tasks.queuectl);
  assert.deepEqual(flags, PERMISSIONS);
  assert.deepEqual(currentSelfExec().permissionFlags, flags);
  assert.deepEqual(permissionFlagsFromTask("deno run --allow-read=/x -A --deny-net main.ts"), [
    "--allow-read=/x",
    "--deny-net",
  ]);
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

Deno.test("restart delay doubles per quick crash, capped at 5 s", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 10].map(defaultRestartDelayMs), [
    500,
    1000,
    2000,
    4000,
    5000,
    5000,
  ]);
});

Deno.test("--until-empty looks again sooner only when the jobs left would be done before the next look", () => {
  // No earlier look, or no progress since: the regular interval.
  assert.equal(nextLookMs(null, { left: 5, at: 1000 }, 100), 100);
  assert.equal(nextLookMs({ left: 5, at: 900 }, { left: 5, at: 1000 }, 100), 100);
  assert.equal(nextLookMs({ left: 5, at: 900 }, { left: 9, at: 1000 }, 100), 100);
  // 100 jobs done in 100 ms, 1000 left: ~1 s to go, more than the interval.
  assert.equal(nextLookMs({ left: 1100, at: 0 }, { left: 1000, at: 100 }, 100), 100);
  // 100 jobs done in 100 ms, 30 left: done in ~30 ms, look then.
  assert.equal(nextLookMs({ left: 130, at: 0 }, { left: 30, at: 100 }, 100), 30);
  // ...but not more often than EMPTY_CHECK_MIN_MS, nor less often than the interval asked for.
  assert.equal(nextLookMs({ left: 101, at: 0 }, { left: 1, at: 100 }, 100), EMPTY_CHECK_MIN_MS);
  assert.equal(nextLookMs({ left: 101, at: 0 }, { left: 1, at: 100 }, 5), 5);
});

Deno.test("jobsLeft counts pending, processing and failed jobs, in the queues asked for", async () => {
  await using t = await tempStore();
  const { store } = t;
  const now = Date.now();
  await store.insertJobs({
    jobs: ["a", "b", "c", "d"].map((id, i) => ({
      id,
      command: "true",
      queue: i < 3 ? "default" : "other",
      priority: 0,
      max_retries: 0,
      timeout: null,
      run_at: now,
    })),
    now,
  });
  assert.equal(await jobsLeft(store, now, null), 4);
  const [job] = await store.claimJobs({
    workerId: "w",
    queues: ["default"],
    now,
    leaseMs: 1000,
    limit: 1,
  });
  assert.equal(await jobsLeft(store, now, null), 4); // pending 3 + processing 1
  await store.applyChange({ change: complete(job, { now, workerId: "w", exit_code: 0 }) });
  assert.equal(await jobsLeft(store, now, null), 3);
  assert.equal(await jobsLeft(store, now, ["default"]), 2);
  assert.equal(await jobsLeft(store, now, ["other"]), 1);
  assert.equal(await jobsLeft(store, now, ["default", "other"]), 3);
  assert.equal(await jobsLeft(store, now, ["none"]), 0);
});
