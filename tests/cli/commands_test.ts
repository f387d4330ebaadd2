/** Every queue command through the real CLI, as a user runs it. */
import assert from "node:assert/strict";
import { ExitCodes } from "../../src/core/errors.ts";
import { DEFAULT_CONFIG } from "../../src/core/config.ts";
import { fail } from "../../src/core/transitions.ts";
import { openSqliteStore } from "../../src/store/sqlite/mod.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";

type JobJson = Record<string, unknown> & { id: string; state: string; runs: unknown[] };

/**
 * Claims the job and fails it `times` times through the store, as a worker would. Jobs under test
 * each have their own queue so that the claim picks exactly this one.
 */
async function failJob(db: string, id: string, times: number): Promise<void> {
  const store = await openSqliteStore(db);
  try {
    const queue = (await store.getJob({ id }))!.queue;
    for (let i = 0; i < times; i++) {
      const now = Date.now() + i * 100_000_000;
      const [job] = await store.claimJobs({
        workerId: "w1",
        queues: [queue],
        now,
        leaseMs: 30_000,
        limit: 1,
      });
      assert.equal(job?.id, id);
      const change = fail(job, { now, workerId: "w1", exit_code: 127, error: "exit code 127" }, {
        ...DEFAULT_CONFIG,
      });
      assert.ok(
        await store.applyChange({
          change,
          output: { stdout: "out line\n", stderr: "sh: idontexist123: not found\n" },
        }),
      );
    }
  } finally {
    await store.close();
  }
}

Deno.test("enqueue: the seed's JSON form, generated ids, the -- form, files and stdin", async (t) => {
  await using dir = await tempDir();
  const db = dir.file("q.db");

  await t.step("seed form prints the id", async () => {
    const r = await runCli(["enqueue", '{"id":"job1","command":"echo Hello"}'], { db });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "job1\n");
    const job = await runCliJson<JobJson>(["show", "job1"], { db });
    assert.equal(job.command, "echo Hello");
    assert.equal(job.state, "pending");
    assert.equal(job.queue, "default");
    assert.equal(job.attempts, 0);
    assert.equal(job.max_retries, 3);
    assert.match(String(job.created_at), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  await t.step("an id is generated when absent", async () => {
    const r = await runCli(["enqueue", '{"command":"true"}'], { db });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^[0-9a-hjkmnp-tv-z]{26}\n$/);
  });

  await t.step("-- form with options", async () => {
    const r = await runCli([
      "enqueue",
      "--id",
      "words",
      "--max-retries",
      "5",
      "--priority",
      "7",
      "--delay",
      "1h",
      "--timeout",
      "30",
      "--queue",
      "mail",
      "--",
      "echo",
      "a",
      "--b",
    ], { db });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "words\n");
    const job = await runCliJson<JobJson>(["show", "words"], { db });
    assert.equal(job.command, "echo a --b");
    assert.equal(job.max_retries, 5);
    assert.equal(job.priority, 7);
    assert.equal(job.timeout, 30);
    assert.equal(job.queue, "mail");
    const delay = Date.parse(String(job.run_at)) - Date.parse(String(job.created_at));
    assert.equal(delay, 3_600_000);
  });

  await t.step("--file with JSON Lines", async () => {
    const file = dir.file("jobs.jsonl");
    await Deno.writeTextFile(
      file,
      '{"id":"f1","command":"echo 1"}\n\n{"id":"f2","command":"echo 2","priority":3}\n',
    );
    const ids = await runCliJson<string[]>(["enqueue", "--file", file], { db });
    assert.deepEqual(ids, ["f1", "f2"]);
  });

  await t.step("--file - reads a JSON array from stdin", async () => {
    const r = await runCli(["enqueue", "--file", "-"], {
      db,
      stdin: '[{"id":"s1","command":"echo s1"},{"id":"s2","command":"echo s2"}]',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "s1\ns2\n");
  });

  await t.step("--file with many jobs prints every id, one per line", async () => {
    const specs = Array.from({ length: 30 }, (_, i) => JSON.stringify({ command: `echo ${i}` }));
    const r = await runCli(["enqueue", "--file", "-"], { db, stdin: specs.join("\n") + "\n" });
    assert.equal(r.code, 0, r.stderr);
    const ids = r.stdout.split("\n");
    assert.equal(ids.pop(), "", "ends with a newline");
    assert.equal(ids.length, 30, r.stdout);
    for (const id of ids) assert.match(id, /^[0-9a-hjkmnp-tv-z]{26}$/);
    const listed = await runCliJson<JobJson[]>(["list", "--limit", "1000"], { db });
    const commandOf = new Map(listed.map((j) => [j.id, j.command]));
    assert.deepEqual(ids.map((id) => commandOf.get(id)), specs.map((_, i) => `echo ${i}`));
  });

  await t.step("config max_retries applies to new jobs; per-job value overrides", async () => {
    assert.equal((await runCli(["config", "set", "max-retries", "1"], { db })).code, 0);
    await runCli(["enqueue", '{"id":"c1","command":"x"}'], { db });
    await runCli(["enqueue", '{"id":"c2","command":"x","max_retries":6}'], { db });
    assert.equal((await runCliJson<JobJson>(["show", "c1"], { db })).max_retries, 1);
    assert.equal((await runCliJson<JobJson>(["show", "c2"], { db })).max_retries, 6);
  });
});

Deno.test("list, show, logs and status", async (t) => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  for (const [id, queue] of [["a", "default"], ["b", "mail"], ["c", "mail"]]) {
    await runCli(["enqueue", JSON.stringify({ id, command: `echo ${id}`, queue: `${queue}` })], {
      db,
    });
  }
  await failJob(db, "a", 1);

  await t.step("list: newest first, filters, limit, JSON array", async () => {
    const all = await runCliJson<JobJson[]>(["list"], { db });
    assert.deepEqual(all.map((j) => j.id), ["c", "b", "a"]);
    const mail = await runCliJson<JobJson[]>(["list", "--queue", "mail", "--limit", "1"], { db });
    assert.deepEqual(mail.map((j) => j.id), ["c"]);
    const failed = await runCliJson<JobJson[]>(["list", "--state", "failed"], { db });
    assert.deepEqual(failed.map((j) => j.id), ["a"]);
    const search = await runCliJson<JobJson[]>(["list", "--search", "ECHO B"], { db });
    assert.deepEqual(search.map((j) => j.id), ["b"]);
    // Pages by keyset: --after the last id of the page before.
    const page2 = await runCliJson<JobJson[]>(["list", "--limit", "1", "--after", "c"], { db });
    assert.deepEqual(page2.map((j) => j.id), ["b"]);
    const page3 = await runCliJson<JobJson[]>(["list", "--limit", "5", "--after", "b"], { db });
    assert.deepEqual(page3.map((j) => j.id), ["a"]);
    const help = await runCli(["list", "--help"], { db });
    assert.match(help.stdout, /--after/);
    assert.doesNotMatch(help.stdout, /--offset/, "the removed flag is not offered");
    const text = await runCli(["list", "--state", "pending"], { db });
    assert.match(text.stdout, /^ID\s+STATE\s+QUEUE/);
    assert.match(text.stdout, /\nc\s+pending\s+mail/);
    assert.ok(!text.stdout.includes("\x1b["), "no colour when not a terminal");
  });

  await t.step("show: text and JSON with output and error", async () => {
    const job = await runCliJson<JobJson>(["show", "a"], { db });
    assert.equal(job.state, "failed");
    assert.equal(job.attempts, 1);
    assert.equal(job.exit_code, 127);
    assert.equal(job.error, "exit code 127");
    assert.equal(job.stdout, "out line\n");
    const text = await runCli(["show", "a"], { db });
    assert.match(text.stdout, /state\s+failed/);
    assert.match(text.stdout, /next retry\s+\S+ \(/);
    assert.match(text.stdout, /\n1\s+1\s+failed\s+.*exit code 127 \(retry in 2s\)\n/);
    assert.equal(job.runs.length, 1);
    assert.match(text.stdout, /idontexist123: not found/);
  });

  await t.step("logs: stdout and stderr to their streams", async () => {
    const r = await runCli(["logs", "a"], { db });
    assert.equal(r.code, 0);
    assert.equal(r.stdout, "out line\n");
    assert.equal(r.stderr, "sh: idontexist123: not found\n");
  });

  await t.step("status: counts per state and oldest pending", async () => {
    const s = await runCliJson<Record<string, unknown>>(["status"], { db });
    assert.deepEqual(s.counts, { pending: 2, processing: 0, completed: 0, failed: 1, dead: 0 });
    assert.equal(s.total, 3);
    assert.equal(s.workers_alive, 0);
    assert.equal(typeof s.oldest_pending_age_seconds, "number");
    const text = await runCli(["status"], { db });
    assert.match(text.stdout, /pending\s+2\n/);
    assert.match(text.stdout, /workers alive: 0/);
  });
});

Deno.test("retry, cancel, dlq list/move/restore/purge and purge", async (t) => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  for (const id of ["d1", "d2", "f1", "p1", "c1"]) {
    const spec = { id, command: "idontexist123", max_retries: 1, queue: `q-${id}` };
    await runCli(["enqueue", JSON.stringify(spec)], { db });
  }
  await failJob(db, "d1", 2);
  await failJob(db, "d2", 2);
  await failJob(db, "f1", 1);

  await t.step("dlq list shows jobs that used every retry", async () => {
    const dead = await runCliJson<JobJson[]>(["dlq", "list"], { db });
    assert.deepEqual(dead.map((j) => j.id).sort(), ["d1", "d2"]);
    assert.ok(dead.every((j) => j.attempts === 2 && j.state === "dead"));
  });

  await t.step("dlq move: failed → dead", async () => {
    const r = await runCli(["dlq", "move", "f1"], { db });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await runCliJson<JobJson>(["show", "f1"], { db })).state, "dead");
  });

  await t.step("dlq restore <id>: dead → pending with a fresh budget", async () => {
    const r = await runCli(["dlq", "restore", "d1"], { db });
    assert.equal(r.code, 0, r.stderr);
    const job = await runCliJson<JobJson>(["show", "d1"], { db });
    assert.equal(job.state, "pending");
    assert.equal(job.attempts, 0);
  });

  await t.step("dlq retry is an alias of restore; retry works on dead jobs too", async () => {
    assert.equal((await runCli(["dlq", "retry", "f1"], { db })).code, 0);
    assert.equal((await runCliJson<JobJson>(["show", "f1"], { db })).state, "pending");
  });

  await t.step("dlq restore --all", async () => {
    await failJob(db, "p1", 2);
    const r = await runCliJson<{ restored: string[] }>(["dlq", "restore", "--all"], { db });
    assert.ok(r.restored.includes("d2"));
    assert.deepEqual(await runCliJson<JobJson[]>(["dlq", "list"], { db }), []);
  });

  await t.step("retry <id>: failed → pending now, attempts kept", async () => {
    await failJob(db, "c1", 1);
    const r = await runCli(["retry", "c1"], { db });
    assert.equal(r.code, 0, r.stderr);
    const job = await runCliJson<JobJson>(["show", "c1"], { db });
    assert.equal(job.state, "pending");
    assert.equal(job.attempts, 1);
    assert.ok(Date.parse(String(job.run_at)) <= Date.now());
  });

  await t.step("cancel removes a pending job and says so", async () => {
    const r = await runCli(["cancel", "c1"], { db });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /removed c1 \(was pending\)/);
    assert.equal((await runCli(["show", "c1"], { db })).code, ExitCodes.notFound);
  });

  await t.step("dlq purge deletes dead jobs", async () => {
    await failJob(db, "d1", 2);
    const r = await runCliJson<{ purged: number }>(["dlq", "purge"], { db });
    assert.equal(r.purged, 1);
    assert.equal((await runCli(["show", "d1"], { db })).code, ExitCodes.notFound);
  });

  await t.step("purge --state completed --older-than", async () => {
    const store = await openSqliteStore(db);
    const [job] = await store.claimJobs({
      workerId: "w",
      queues: ["q-p1"],
      now: Date.now(),
      leaseMs: 1000,
      limit: 1,
    });
    const { complete } = await import("../../src/core/transitions.ts");
    await store.applyChange({
      change: complete(job, { now: Date.now() - 8 * 86_400_000, workerId: "w", exit_code: 0 }),
    });
    await store.close();
    const keep = await runCliJson<{ purged: number }>(["purge", "--older-than", "30d"], { db });
    assert.equal(keep.purged, 0);
    const r = await runCliJson<{ purged: number }>(["purge", "--state", "completed"], { db });
    assert.equal(r.purged, 1);
  });
});

Deno.test("config list, get, set, unset with aliases", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const list = await runCliJson<{ key: string; value: number }[]>(["config", "list"], { db });
  assert.deepEqual(list.map((e) => e.key), [
    "max_retries",
    "backoff_base",
    "backoff_max",
    "job_timeout",
    "poll_interval",
    "lease",
    "output_limit",
    "outage_limit",
    "hook_completed",
    "hook_dead",
    "hook_drained",
    "hook_timeout",
    "retain_completed",
    "retain_dead",
  ]);
  assert.deepEqual(
    list.filter((e) => e.key.startsWith("retain_")).map((e) => e.value),
    [604_800, 2_592_000],
  );
  assert.equal(
    (await runCli(["config", "set", "retain_completed", "12h"], { db })).stdout,
    "retain_completed = 43200\n",
  );
  const bad = await runCli(["config", "set", "retain_dead", "-1d"], { db });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^error: Cannot set 'retain_dead': expected a duration from 0/);
  assert.equal(
    (await runCli(["config", "set", "backoff_base", "3"], { db })).stdout,
    "backoff_base = 3\n",
  );
  assert.equal((await runCli(["config", "get", "backoff-base"], { db })).stdout, "3\n");
  assert.equal((await runCli(["config", "set", "lease", "2m"], { db })).stdout, "lease = 120\n");
  assert.equal(
    (await runCli(["config", "set", "output_limit", "1KiB"], { db })).stdout,
    "output_limit = 1024\n",
  );
  assert.equal((await runCli(["config", "unset", "backoff_base"], { db })).code, 0);
  assert.equal((await runCli(["config", "get", "backoff_base"], { db })).stdout, "2\n");
});

Deno.test("--version, --help and the default database location", async () => {
  await using dir = await tempDir();
  const denoJson = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  );
  const v = await runCli(["--version"]);
  assert.equal(v.stdout.trim(), denoJson.version);
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0);
  for (const cmd of ["enqueue", "list", "show", "logs", "status", "dlq", "config"]) {
    assert.match(help.stdout, new RegExp(`\\n  ${cmd} `));
  }
  const sub = await runCli(["dlq", "--help"]);
  assert.match(sub.stdout, /restore/);
  // Default location: $XDG_DATA_HOME/queuectl/queuectl.db, created with mode 0600.
  const r = await runCli(["enqueue", '{"command":"true"}'], {
    env: { XDG_DATA_HOME: dir.path, QUEUECTL_DB: "" },
  });
  assert.equal(r.code, 0, r.stderr);
  const stat = await Deno.stat(`${dir.path}/queuectl/queuectl.db`);
  if (Deno.build.os !== "windows") assert.equal(stat.mode! & 0o777, 0o600);
  // A relative --db path is relative to the working directory.
  const rel = await runCli(["enqueue", "--db", "rel.db", '{"id":"r","command":"true"}'], {
    cwd: dir.path,
  });
  assert.equal(rel.code, 0, rel.stderr);
  assert.ok((await Deno.stat(dir.file("rel.db"))).isFile);
  // --db wins over QUEUECTL_DB.
  const other = dir.file("other.db");
  await runCli(["enqueue", "--db", other, '{"id":"here","command":"true"}'], {
    env: { QUEUECTL_DB: dir.file("env.db") },
  });
  assert.equal((await runCli(["show", "here"], { db: other })).code, 0);
  assert.equal((await runCli(["show", "here"], { db: dir.file("env.db") })).code, 3);
});

Deno.test({
  name: "output into a closed pipe ends quietly (queuectl status | head -1)",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await using dir = await tempDir();
    const { cliArgv } = await import("../helpers/run_cli.ts");
    // More output than a pipe buffer holds, so the writer is still writing when head exits.
    const jobs = Array.from({ length: 3000 }, (_, i) => JSON.stringify({ command: `echo ${i}` }));
    const seeded = await runCli(["enqueue", "--file", "-"], {
      db: dir.file("q.db"),
      stdin: jobs.join("\n"),
    });
    assert.equal(seeded.code, 0, seeded.stderr);
    const argv = [Deno.execPath(), ...cliArgv(["list", "--limit", "3000"])].map((a) => `'${a}'`)
      .join(" ");
    const out = await new Deno.Command("sh", {
      args: ["-c", `${argv} | head -c 1 >/dev/null`],
      env: { QUEUECTL_DB: dir.file("q.db"), NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(out.stderr), "");
  },
});

Deno.test("run_at without an offset is the enqueuing machine's local time, a date alone too", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  // New York: UTC-5 in winter. A date alone was taken as UTC midnight (19:00 the day before, local)
  // while a date and time were taken as local.
  const env = { TZ: "America/New_York" };
  const cases: [string, string][] = [
    ["2030-01-01", "2030-01-01T05:00:00.000Z"],
    ["2030-01-01T09:30:00", "2030-01-01T14:30:00.000Z"],
    ["2030-01-01T09:30:00Z", "2030-01-01T09:30:00.000Z"],
    ["2030-01-01T09:30:00+01:00", "2030-01-01T08:30:00.000Z"],
  ];
  for (const [i, [runAt, expected]] of cases.entries()) {
    const spec = JSON.stringify({ id: `t${i}`, command: "true", run_at: runAt });
    const r = await runCli(["enqueue", spec], { db, env });
    assert.equal(r.code, 0, r.stderr);
    const job = await runCliJson<{ run_at: string }>(["show", `t${i}`], { db });
    assert.equal(job.run_at, expected, runAt);
  }
  // The flag reads it the same way.
  const r = await runCli(["enqueue", "--id", "flag", "--run-at", "2030-01-01", "--", "true"], {
    db,
    env,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    (await runCliJson<{ run_at: string }>(["show", "flag"], { db })).run_at,
    cases[0][1],
  );
});
