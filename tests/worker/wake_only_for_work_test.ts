/**
 * Idle workers wake up only for new work (issue 15.3): CLI reads (`status`, `list`, `show`) must not
 * wake them, on SQLite (as root SQLite fchowns the -wal/-shm files whenever any process opens the
 * database; workers watch the store's wake file instead) and on PostgreSQL (reads send no NOTIFY).
 *
 * Counted, not timed: the runner's claim attempts. An enqueue through the CLI costs a fixed number
 * of them (the wake-up's claim, then the looks that end the busy spell); the same enqueue after a
 * round of reads must cost the same number. A read that woke the worker would add a claim of its
 * own before the enqueue, since inotify events and NOTIFYs arrive in order and the reads finished
 * before the enqueue started.
 */
import assert from "node:assert/strict";
import { openStore } from "../../src/store/mod.ts";
import type { Store } from "../../src/store/store.ts";
import { Runner } from "../../src/worker/runner.ts";
import { admin, PG_URL, postgresAvailability } from "../helpers/postgres.ts";
import { runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

const { ignore: noPg } = await postgresAvailability("wake-ups only for work");

async function ok(args: string[], db: string): Promise<string> {
  const r = await runCli(args, { db });
  assert.equal(r.code, 0, `queuectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** Runs `fn` with the URL of a fresh PostgreSQL schema, dropped afterwards. */
async function inFreshSchema(fn: (url: string) => Promise<void>): Promise<void> {
  const schema = `qwake_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  try {
    await fn(`${PG_URL}${PG_URL.includes("?") ? "&" : "?"}schema=${schema}`);
  } finally {
    const sql = admin();
    await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => sql.end());
  }
}

async function claimsPerEnqueueBeforeAndAfterReads(db: string): Promise<[number, number]> {
  await ok(["config", "set", "poll_interval", "600"], db);
  const store: Store = await openStore(db);
  const lines: string[] = [];
  const runner = new Runner({ store, log: (l) => lines.push(l), graceMs: 200 });
  const exit = runner.run();
  try {
    const enqueueAndSettle = async (id: string): Promise<number> => {
      await waitFor(() => runner.idle, { what: "the worker to be idle" });
      const before = runner.claimAttempts;
      await ok(["enqueue", JSON.stringify({ id, command: "true" })], db);
      await waitFor(() => lines.some((l) => l.includes(`completed ${id}`)), {
        what: `${id} to complete`,
      });
      await waitFor(() => runner.idle, { what: "the worker to be idle again" });
      return runner.claimAttempts - before;
    };
    const plain = await enqueueAndSettle("first");
    await ok(["status"], db);
    await ok(["list"], db);
    await ok(["show", "first"], db);
    await ok(["status", "--json"], db);
    const afterReads = await enqueueAndSettle("second");
    return [plain, afterReads];
  } finally {
    runner.requestStop("graceful", "test");
    await exit;
    await store.close();
  }
}

Deno.test("sqlite: CLI reads do not wake an idle worker; an enqueue does", async () => {
  await using dir = await tempDir();
  const [plain, afterReads] = await claimsPerEnqueueBeforeAndAfterReads(dir.file("q.db"));
  assert.ok(plain >= 1, "the enqueue woke the worker");
  assert.equal(afterReads, plain, "no extra claim: the reads woke nobody");
});

Deno.test({
  name: "postgres: CLI reads do not wake an idle worker; an enqueue does",
  ignore: noPg,
  fn: () =>
    inFreshSchema(async (url) => {
      const [plain, afterReads] = await claimsPerEnqueueBeforeAndAfterReads(url);
      assert.ok(plain >= 1, "the enqueue woke the worker");
      assert.equal(afterReads, plain, "no extra claim: the reads woke nobody");
    }),
});

/**
 * An idle worker's wait leaves paused queues' due jobs out (it would otherwise end at once and
 * claim every idle gap), so it relies on `queue resume` waking it: with a 600 s poll, a resumed
 * queue's job must start at once, and the paused job must not be claimed over and over meanwhile.
 */
async function resumeWakes(db: string): Promise<[number, number]> {
  await ok(["config", "set", "poll_interval", "600"], db);
  await ok(["queue", "pause", "held"], db);
  await ok(["enqueue", JSON.stringify({ id: "held-1", command: "true", queue: "held" })], db);
  const store: Store = await openStore(db);
  const lines: string[] = [];
  const runner = new Runner({ store, log: (l) => lines.push(l), graceMs: 200 });
  const exit = runner.run();
  try {
    await waitFor(() => runner.idle, { what: "the worker to be idle" });
    const idleClaims = runner.claimAttempts;
    // Two CLI calls (tens of ms): a worker whose wait ended on the paused job would claim again
    // every 10 ms meanwhile; reads wake nobody.
    await ok(["status"], db);
    await ok(["queue", "list"], db);
    const beforeResume = runner.claimAttempts;
    await ok(["queue", "resume", "held"], db);
    await waitFor(() => lines.some((l) => l.includes("completed held-1")), {
      timeoutMs: 20_000,
      what: "the resumed queue's job to run well before the 600 s poll",
    });
    return [idleClaims, beforeResume];
  } finally {
    runner.requestStop("graceful", "test");
    await exit;
    await store.close();
  }
}

Deno.test("sqlite: a paused queue's due job leaves an idle worker idle; queue resume wakes it", async () => {
  await using dir = await tempDir();
  const [idle, beforeResume] = await resumeWakes(dir.file("q.db"));
  assert.equal(beforeResume, idle, "no claim while the queue was paused");
});

Deno.test({
  name: "postgres: a paused queue's due job leaves an idle worker idle; queue resume wakes it",
  ignore: noPg,
  fn: () =>
    inFreshSchema(async (url) => {
      const [idle, beforeResume] = await resumeWakes(url);
      assert.equal(beforeResume, idle, "no claim while the queue was paused");
    }),
});

/**
 * An idle worker's wait leaves full queues' due jobs out too, so it relies on the end of the job
 * that filled the queue waking it: worker `a` runs the one job a limit of 1 allows and stops after
 * it (so it cannot take the next itself), worker `b` idles with a 600 s poll. `b` must not claim
 * over and over while the queue is full, and must start the next job at once when `a`'s ends.
 */
async function freedSlotWakes(db: string, dir: string): Promise<[number, number]> {
  const go = `${dir}/go`;
  await ok(["config", "set", "poll_interval", "600"], db);
  await ok(["queue", "limit", "lim", "1"], db);
  const wait = `while [ ! -e '${go}' ]; do sleep 0.02; done`;
  await ok(["enqueue", JSON.stringify({ id: "lim-1", command: wait, queue: "lim" })], db);
  const stores: Store[] = [await openStore(db), await openStore(db)];
  const lines: string[] = [];
  const [a, b] = stores.map((store) =>
    new Runner({ store, log: (l) => lines.push(l), graceMs: 200 })
  );
  const exits = [a.run()];
  try {
    await waitFor(() => lines.some((l) => l.includes("started lim-1")), {
      what: "worker a to start lim-1",
    });
    // a finishes the job in hand, then stops: it claims nothing after it.
    a.requestStop("graceful", "test");
    exits.push(b.run());
    await waitFor(() => b.idle, { what: "worker b to be idle" });
    const beforeEnqueue = b.claimAttempts;
    await ok(["enqueue", JSON.stringify({ id: "lim-2", command: "true", queue: "lim" })], db);
    // The enqueue wakes b; it finds lim full and goes back to its wait.
    await waitFor(() => b.idle && b.claimAttempts > beforeEnqueue, {
      what: "b to look and idle again",
    });
    const idleClaims = b.claimAttempts;
    await ok(["status"], db);
    await ok(["queue", "list"], db);
    const beforeEnd = b.claimAttempts;
    await Deno.writeTextFile(go, "");
    await waitFor(() => lines.some((l) => l.includes("completed lim-2")), {
      timeoutMs: 20_000,
      what: "lim-2 to run once lim-1 ended, well before the 600 s poll",
    });
    return [idleClaims, beforeEnd];
  } finally {
    a.requestStop("graceful", "test");
    b.requestStop("graceful", "test");
    await Promise.all(exits);
    for (const store of stores) await store.close();
  }
}

Deno.test("sqlite: a full queue's due job leaves an idle worker idle; the end of its running job wakes it", async () => {
  await using dir = await tempDir();
  const [idle, beforeEnd] = await freedSlotWakes(dir.file("q.db"), dir.path);
  assert.equal(beforeEnd, idle, "no claim while the queue was full");
});

Deno.test({
  name:
    "postgres: a full queue's due job leaves an idle worker idle; the end of its running job wakes it",
  ignore: noPg,
  fn: () =>
    inFreshSchema(async (url) => {
      await using dir = await tempDir();
      const [idle, beforeEnd] = await freedSlotWakes(url, dir.path);
      assert.equal(beforeEnd, idle, "no claim while the queue was full");
    }),
});
