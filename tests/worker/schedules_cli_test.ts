/**
 * Schedules with real supervisors (`worker start`), several at once on one database, one stopped
 * and another started meanwhile: every slot of an `--every 1s` schedule is accounted for exactly
 * once (fired, or counted as missed by the fire that followed), and each fired slot has one job.
 * On SQLite and on PostgreSQL (fresh schema; fails in CI without a server, skipped otherwise).
 */
import assert from "node:assert/strict";
import type postgres from "postgres";
import { type CliProcess, startCli } from "../helpers/cli_process.ts";
import { admin, PG_URL, postgresAvailability } from "../helpers/postgres.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";

const { ignore: noPg } = await postgresAvailability("schedules with supervisors");

const FIRED =
  /\[maintenance\] schedule tick: enqueued (\S+) for (\S+?)(?: \((\d+) earlier missed slots? not run\))?$/gm;

interface Fire {
  id: string;
  slot: string;
  missed: number;
}

function fires(procs: readonly CliProcess[]): Fire[] {
  return procs.flatMap((p) =>
    [...p.stdout().matchAll(FIRED)].map((m) => ({
      id: m[1],
      slot: m[2],
      missed: Number(m[3] ?? 0),
    }))
  );
}

async function waitForFires(procs: readonly CliProcess[], n: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (fires(procs).length < n) {
    if (Date.now() > deadline) {
      throw new Error(
        `${fires(procs).length} fires, expected ${n}:\n${procs.map((p) => p.stdout()).join("\n")}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function scenario(db: string): Promise<void> {
  for (
    const args of [
      ["config", "set", "lease", "3"],
      ["schedule", "add", "tick", "--every", "1s", "--", "true"],
    ]
  ) {
    const r = await runCli(args, { db });
    assert.equal(r.code, 0, r.stderr);
  }
  const procs: CliProcess[] = [];
  const start = () => {
    const p = startCli(["worker", "start", "--count", "1"], { db });
    procs.push(p);
    return p;
  };
  try {
    const a = start();
    start();
    await waitForFires(procs, 3);
    // The leader or not, one supervisor stops (resigning) and a new one starts.
    a.kill("SIGTERM");
    assert.equal((await a.status).code, 0, a.stderr());
    const before = fires(procs).length;
    start();
    await waitForFires(procs, before + 3);
  } finally {
    for (const p of procs) p.kill("SIGTERM");
    for (const p of procs) await p.status;
  }
  const all = fires(procs);
  const slots = all.map((f) => f.slot);
  assert.equal(new Set(slots).size, slots.length, `a slot fired twice: ${slots}`);
  const [s] = await runCliJson<
    { next_run_at: string; created_at: string; last_job_id: string }[]
  >(["schedule", "list"], { db });
  // Slots are whole seconds from the creation; all before next_run_at were handled.
  const handled = (Date.parse(s.next_run_at) - Date.parse(s.created_at)) / 1000 - 1;
  assert.equal(all.reduce((n, f) => n + 1 + f.missed, 0), handled, "every slot accounted once");
  const jobs = await runCliJson<{ id: string; command: string }[]>(
    ["list", "--limit", "1000"],
    { db },
  );
  assert.deepEqual(jobs.map((j) => j.id).sort(), all.map((f) => f.id).sort(), "a job per fire");
  assert.ok(jobs.every((j) => j.command === "true"));
  assert.equal(s.last_job_id, all.sort((x, y) => x.slot.localeCompare(y.slot)).at(-1)!.id);
}

Deno.test("sqlite: several supervisors, one replaced: each slot fires once", async () => {
  await using dir = await tempDir();
  await scenario(dir.file("q.db"));
});

Deno.test({
  name: "postgres: several supervisors, one replaced: each slot fires once",
  ignore: noPg,
  fn: async () => {
    const schema = `qs_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
    const url = new URL(PG_URL);
    url.searchParams.set("schema", schema);
    const sql: postgres.Sql = admin();
    try {
      await scenario(url.toString());
    } finally {
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await sql.end();
    }
  },
});
