/**
 * Issue 16 with real workers on both backends: 8 workers, a queue limited to 2 (the running count,
 * sampled all along, never above 2), and a dependency chain run in order by the same workers.
 * PostgreSQL: QUEUECTL_TEST_PG_URL (see tests/helpers/postgres.ts), a fresh schema, dropped after.
 */
import assert from "node:assert/strict";
import { openStore } from "../../src/store/mod.ts";
import { startCli } from "../helpers/cli_process.ts";
import { runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { admin, PG_URL, postgresAvailability } from "../helpers/postgres.ts";

const { ignore: noPg } = await postgresAvailability("flow workers");

async function limitAndChain(db: string, dir: { file(name: string): string }): Promise<void> {
  const ok = async (args: string[]) => {
    const r = await runCli(args, { db });
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  };
  const order = dir.file("order.txt");
  const lines = [
    ...Array.from(
      { length: 10 },
      (_, i) => JSON.stringify({ id: `g${i}`, command: "sleep 0.3", queue: "gpu" }),
    ),
    JSON.stringify({ id: "c1", command: `echo c1 >> '${order}'` }),
    JSON.stringify({ id: "c2", command: `echo c2 >> '${order}'`, after: ["c1"], priority: 9 }),
    JSON.stringify({ id: "c3", command: `echo c3 >> '${order}'`, after: ["c2"], priority: 9 }),
  ];
  const file = dir.file("jobs.jsonl");
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
  await ok(["enqueue", "--file", file]);
  await ok(["queue", "limit", "gpu", "2"]);

  const store = await openStore(db);
  let most = 0;
  try {
    await using sup = startCli(["worker", "start", "--count", "8", "--until-empty"], { db });
    let exited = false;
    const done = sup.status.then(() => exited = true);
    while (!exited) {
      most = Math.max(most, await store.countJobs({ state: "processing", queue: "gpu" }));
      await Promise.race([done, new Promise((r) => setTimeout(r, 20))]);
    }
    const status = await sup.status;
    assert.equal(status.code, 0);
    const completed = await store.countJobs({ state: "completed" });
    assert.equal(completed, 13, "every job completed");
  } finally {
    await store.close();
  }
  assert.equal(most, 2, `8 workers, limit 2: the sampled running count peaked at ${most}`);
  assert.equal(await Deno.readTextFile(order), "c1\nc2\nc3\n");
}

Deno.test("sqlite flow workers: 8 workers never run more than a queue's limit; a chain runs in order", async () => {
  await using dir = await tempDir();
  await limitAndChain(dir.file("q.db"), dir);
});

Deno.test({
  name:
    "postgres flow workers: 8 workers never run more than a queue's limit; a chain runs in order",
  ignore: noPg,
  fn: async () => {
    const schema = `qf_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
    await using dir = await tempDir();
    const sql = admin();
    try {
      await limitAndChain(`${PG_URL}${PG_URL.includes("?") ? "&" : "?"}schema=${schema}`, dir);
    } finally {
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await sql.end();
    }
  },
});
