/**
 * Unique jobs through the real CLI (issue 17.2): `--unique-key`, `"unique_key"` in JSON and in
 * `--file`, `--on-duplicate`, and 8 enqueuers racing for one key on each backend: one job.
 */
import assert from "node:assert/strict";
import { runCli } from "../helpers/run_cli.ts";
import { tempDir, tempStore } from "../helpers/temp.ts";
import { ManualClock } from "../../src/core/clock.ts";
import { DEFAULT_CONFIG } from "../../src/core/config.ts";
import { fail } from "../../src/core/transitions.ts";
import { restoreAll } from "../../src/app/queue.ts";
import { admin, PG_URL, postgresAvailability } from "../helpers/postgres.ts";

const { ignore: noPg } = await postgresAvailability("unique jobs CLI");

async function ok(args: string[], db: string, stdin?: string): Promise<string> {
  const r = await runCli(args, { db, stdin });
  assert.equal(r.code, 0, `queuectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

/** 8 processes enqueue the same key at once: all print one id, and one job exists. */
async function race(db: string): Promise<void> {
  await ok(["status"], db); // created and migrated before the race
  const results = await Promise.all(
    Array.from(
      { length: 8 },
      (_, i) => runCli(["enqueue", "--unique-key", "nightly", "--", "echo", `run ${i}`], { db }),
    ),
  );
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const printed = new Set(results.map((r) => r.stdout.trim()));
  assert.equal(printed.size, 1, `every enqueuer prints the one job's id: ${[...printed]}`);
  const list = JSON.parse(await ok(["list", "--json"], db)) as { id: string }[];
  assert.deepEqual(list.map((j) => j.id), [...printed]);
}

Deno.test("unique jobs CLI: 8 concurrent enqueuers of one key make one job (SQLite)", async () => {
  await using dir = await tempDir();
  await race(`${dir.path}/q.db`);
});

Deno.test({
  name: "unique jobs CLI: 8 concurrent enqueuers of one key make one job (PostgreSQL)",
  ignore: noPg,
  fn: async () => {
    const schema = `qu_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
    const sep = PG_URL.includes("?") ? "&" : "?";
    try {
      await race(`${PG_URL}${sep}schema=${schema}`);
    } finally {
      const sql = admin();
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => sql.end());
    }
  },
});

Deno.test("unique jobs CLI: existing id, error, replace, JSON and --file forms", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/q.db`;
  const first = await ok(["enqueue", "--unique-key", "k", "--", "echo", "one"], db);
  // Default: the existing job's id, exit 0, nothing added; the JSON form too.
  assert.equal(await ok(["enqueue", "--unique-key", "k", "--", "echo", "two"], db), first);
  assert.equal(await ok(["enqueue", '{"command":"echo three","unique_key":"k"}'], db), first);
  // error: exit 3 (Conflict), one line, nothing changed.
  const refused = await runCli(
    ["enqueue", "--unique-key", "k", "--on-duplicate", "error", "--", "echo", "four"],
    { db },
  );
  assert.equal(refused.code, 4, refused.stderr);
  assert.match(
    refused.stderr,
    new RegExp(`^error: A job with unique key "k" is pending: "${first}"`),
  );
  // A file: lines with keys, one held already, one twice in the file.
  const file = `${dir.path}/jobs.jsonl`;
  await Deno.writeTextFile(
    file,
    [
      '{"command":"echo a","unique_key":"k"}',
      '{"command":"echo b","unique_key":"f"}',
      '{"command":"echo c","unique_key":"f"}',
      '{"command":"echo d"}',
    ].join("\n") + "\n",
  );
  const ids = (await ok(["enqueue", "--file", file], db)).split("\n");
  assert.equal(ids.length, 4);
  assert.equal(ids[0], first);
  assert.equal(ids[2], ids[1]);
  assert.notEqual(ids[3], ids[1]);
  // replace: the waiting job goes, the new one comes with its own command.
  const replaced = await ok(
    ["enqueue", "--unique-key", "k", "--on-duplicate", "replace", "--", "echo", "five"],
    db,
  );
  assert.notEqual(replaced, first);
  const gone = await runCli(["show", first], { db });
  assert.equal(gone.code, 3, gone.stderr);
  assert.match(await ok(["show", replaced], db), /^unique key +k$/m);
  const job = JSON.parse(await ok(["show", replaced, "--json"], db));
  assert.equal(job.unique_key, "k");
  assert.equal(job.command, "echo five");
  const list = JSON.parse(await ok(["list", "--json"], db)) as unknown[];
  assert.equal(list.length, 3);
  // --on-duplicate with --file: `error` refuses the whole file (exit 4, nothing enqueued).
  const held = `${dir.path}/held.jsonl`;
  await Deno.writeTextFile(
    held,
    '{"command":"echo new"}\n{"command":"echo x","unique_key":"k"}\n',
  );
  const fileRefused = await runCli(["enqueue", "--file", held, "--on-duplicate", "error"], {
    db,
  });
  assert.equal(fileRefused.code, 4, fileRefused.stderr);
  assert.equal(fileRefused.stdout, "");
  assert.equal((JSON.parse(await ok(["list", "--json"], db)) as unknown[]).length, 3);
  // Bad input: one line, nothing changed.
  for (
    const args of [
      ["enqueue", "--on-duplicate", "skip", "--", "true"],
      ["enqueue", "--unique-key", "", "--", "true"],
      ["enqueue", '{"command":"true","unique_key":7}'],
      ["enqueue", "--unique-key", "x", '{"command":"true"}'],
    ]
  ) {
    const r = await runCli(args, { db });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length <= 2, true, r.stderr);
    assert.match(r.stderr, /^error: /);
  }
  assert.equal((JSON.parse(await ok(["list", "--json"], db)) as unknown[]).length, 3);
});

Deno.test("dlq restore --all keeps a dead job whose unique key another job holds, and says so", async () => {
  await using t = await tempStore();
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const ctx = { store: t.store, clock };
  const job = (id: string, unique_key: string | null) => ({
    id,
    command: "false",
    queue: "default",
    priority: 0,
    max_retries: 0,
    run_at: clock.now(),
    unique_key,
  });
  // Two dead jobs with one key (each enqueued while the other was finished), one without.
  for (const [id, key] of [["k1", "k"], ["k2", "k"], ["plain", null]] as const) {
    await t.store.insertJobs({ jobs: [job(id, key)], now: clock.now() });
    const [held] = await t.store.claimJobs({
      workerId: "w",
      queues: null,
      now: clock.now(),
      leaseMs: 60_000,
      limit: 1,
    });
    const r = { now: clock.now(), workerId: "w", exit_code: 1 };
    assert.ok(await t.store.applyChange({ change: fail(held, r, DEFAULT_CONFIG) }));
    clock.advance(1000);
  }
  const kept: [string, string][] = [];
  const restored = await restoreAll(ctx, (id, reason) => kept.push([id, reason]));
  assert.deepEqual(restored, ["k1", "plain"]);
  assert.deepEqual(kept.map(([id]) => id), ["k2"]);
  assert.match(
    kept[0][1],
    /^Job "k2" cannot be queued again: job "k1" \(pending\) holds its unique key "k"$/,
  );
  assert.equal((await t.store.getJob({ id: "k2" }))?.state, "dead");
});
