/**
 * `queuectl schedule ...` through the real CLI: what it prints, and bad input (bad cron, unknown
 * time zone, duplicate name...) refused with one error line, a non-zero exit and no change.
 */
import assert from "node:assert/strict";
import { ExitCodes } from "../../src/core/errors.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { snapshotDb } from "../helpers/snapshot.ts";
import { tempDir } from "../helpers/temp.ts";

interface ScheduleJson {
  name: string;
  cron: string | null;
  every_seconds: number | null;
  tz: string | null;
  catch_up: boolean;
  paused: boolean;
  next_run_at: string | null;
  last_run_at: string | null;
  last_job_id: string | null;
  last_job_state: string | null;
  job: Record<string, unknown>;
}

Deno.test("schedule: add, list, run, pause, resume, remove", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const add = await runCli([
    "schedule",
    "add",
    "nightly",
    "--cron",
    "0 4 * * *",
    "--tz",
    "Europe/Berlin",
    "--queue",
    "ops",
    "--priority",
    "5",
    "--timeout",
    "60",
    "--max-retries",
    "2",
    "--env",
    "MODE=full",
    "--",
    "backup.sh",
    "--all",
    "it's",
  ], { db, cwd: dir.path });
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, /^schedule nightly added: 0 4 \* \* \* \(Europe\/Berlin\), next \S+Z/);
  const every = await runCli(
    ["schedule", "add", "tick", "--every", "10m", "--no-catch-up", "--", "echo", "tick"],
    { db },
  );
  assert.equal(every.code, 0, every.stderr);

  const list = await runCliJson<ScheduleJson[]>(["schedule", "list"], { db });
  assert.deepEqual(list.map((s) => s.name), ["nightly", "tick"]);
  const [nightly, tick] = list;
  assert.equal(nightly.tz, "Europe/Berlin");
  assert.equal(nightly.catch_up, true);
  assert.deepEqual(nightly.job, {
    command: "backup.sh --all 'it'\\''s'",
    queue: "ops",
    priority: 5,
    timeout: 60,
    max_retries: 2,
    cwd: dir.path,
    env: { MODE: "full" },
  });
  // The next 04:00 in Berlin is 02:00 or 03:00 UTC.
  assert.match(nightly.next_run_at!, /T0[23]:00:00\.000Z$/);
  assert.equal(tick.every_seconds, 600);
  assert.equal(tick.catch_up, false);
  assert.equal(tick.last_run_at, null);

  const run = await runCli(["schedule", "run", "nightly"], { db });
  assert.equal(run.code, 0, run.stderr);
  const id = run.stdout.trim();
  const job = await runCliJson<Record<string, unknown>>(["show", id], { db });
  assert.equal(job.queue, "ops");
  assert.equal(job.priority, 5);
  assert.equal(job.max_retries, 2);
  const table = await runCli(["schedule", "list"], { db });
  assert.equal(table.code, 0);
  assert.match(table.stdout, /^NAME +RULE +NEXT RUN +LAST RUN +COMMAND/);
  assert.match(table.stdout, new RegExp(`nightly .* ago: ${id} pending +backup\\.sh`));

  const paused = await runCli(["schedule", "pause", "tick"], { db });
  assert.equal(paused.stdout, "schedule tick paused: every 10m, no catch-up, next paused\n");
  const stillNext = (await runCliJson<ScheduleJson[]>(["schedule", "list"], { db }))[1];
  assert.equal(stillNext.paused, true);
  assert.equal(stillNext.next_run_at, null);
  const resumed = await runCli(["schedule", "resume", "tick"], { db });
  assert.match(
    resumed.stdout,
    /^schedule tick resumed: every 10m, no catch-up, next \S+Z \(in 9m\d+s\)\n$/,
  );

  const removed = await runCli(["schedule", "remove", "nightly"], { db });
  assert.equal(removed.code, 0, removed.stderr);
  assert.deepEqual(
    (await runCliJson<ScheduleJson[]>(["schedule", "list"], { db })).map((s) => s.name),
    ["tick"],
  );
  assert.equal((await runCliJson<{ state: string }>(["show", id], { db })).state, "pending");
});

Deno.test("schedule: bad input is one error line, a non-zero exit, and no change", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const seed = await runCli(["schedule", "add", "taken", "--every", "1h", "--", "true"], { db });
  assert.equal(seed.code, 0, seed.stderr);
  const cases: [string[], number, RegExp][] = [
    [["--cron", "61 4 * * *"], ExitCodes.invalidInput, /Invalid cron expression "61 4 \* \* \*"/],
    [["--cron", "0 4 * *"], ExitCodes.invalidInput, /Invalid cron expression/],
    [["--cron", "0 4 30 2 *"], ExitCodes.invalidInput, /never matches/],
    [
      ["--cron", "0 4 * * *", "--tz", "Mars/Olympus"],
      ExitCodes.invalidInput,
      /Unknown time zone "Mars\/Olympus"/,
    ],
    [["--every", "soon"], ExitCodes.invalidInput, /Cannot read --every/],
    [["--every", "500ms"], ExitCodes.invalidInput, /from 1s to 366d/],
    [["--every", "99999999w"], ExitCodes.invalidInput, /from 1s to 366d/],
    [["--every", "1m", "--tz", "UTC"], ExitCodes.invalidInput, /--tz applies only with --cron/],
    [["--every", "1m", "--cron", "* * * * *"], ExitCodes.invalidInput, /either --cron/],
    [[], ExitCodes.invalidInput, /either --cron/],
    [["--every", "1m", "--queue", "a b"], ExitCodes.invalidInput, /Invalid queue name/],
    [["--every", "1m", "--priority", "x"], ExitCodes.invalidInput, /Invalid --priority/],
    [["--every", "1m", "--unique-key", ""], ExitCodes.invalidInput, /Invalid unique_key/],
    [["--every", "1m", "--unique-key", "a\nb"], ExitCodes.invalidInput, /control character/],
    [
      ["--every", "1m", "--unique-key", "k".repeat(201)],
      ExitCodes.invalidInput,
      /longer than 200/,
    ],
  ];
  const refused = async (args: string[], code: number, pattern: RegExp) => {
    const before = snapshotDb(db);
    const r = await runCli(args, { db });
    assert.equal(r.code, code, `exit code of ${args.join(" ")}: ${r.stderr}`);
    const lines = r.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, `one stderr line expected, got: ${r.stderr}`);
    assert.match(lines[0], /^error: /);
    assert.match(lines[0], pattern);
    assert.equal(snapshotDb(db), before, `database unchanged by ${args.join(" ")}`);
  };
  for (const [flags, code, pattern] of cases) {
    await refused(["schedule", "add", "new", ...flags, "--", "true"], code, pattern);
  }
  await refused(
    ["schedule", "add", "taken", "--cron", "0 4 * * *", "--", "true"],
    ExitCodes.conflict,
    /schedule named "taken" already exists/,
  );
  await refused(["schedule", "add", "bad name", "--every", "1m", "--", "true"], 2, /name/);
  await refused(["schedule", "add", "x", "--every", "1m"], 2, /Missing command after --/);
  for (const verb of ["remove", "pause", "resume", "run"]) {
    await refused(["schedule", verb, "nope"], ExitCodes.notFound, /No schedule named "nope"/);
  }
});

Deno.test("schedule: --unique-key is kept in the job template; run while held prints the holder", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const add = await runCli(
    ["schedule", "add", "sync", "--every", "1h", "--unique-key", "sync-all", "--", "sync.sh"],
    { db },
  );
  assert.equal(add.code, 0, add.stderr);
  const [s] = await runCliJson<ScheduleJson[]>(["schedule", "list"], { db });
  assert.equal(s.job.unique_key, "sync-all");
  const first = await runCli(["schedule", "run", "sync"], { db });
  assert.equal(first.code, 0, first.stderr);
  const id = first.stdout.trim();
  assert.equal(
    (await runCliJson<{ unique_key: string }>(["show", id], { db })).unique_key,
    "sync-all",
  );
  // Its job still pending: a second run enqueues nothing and prints the holder's id.
  const second = await runCli(["schedule", "run", "sync"], { db });
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout.trim(), id);
  assert.equal((await runCliJson<unknown[]>(["list"], { db })).length, 1);
  const table = await runCli(["schedule", "list"], { db });
  assert.match(table.stdout, new RegExp(`sync .* ago: ${id} pending +sync\\.sh`));
});
