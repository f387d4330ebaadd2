/** Issue 16 through the real CLI: enqueue --after, list/show/status of waiting jobs, `queue`. */
import assert from "node:assert/strict";
import { ExitCodes } from "../../src/core/errors.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";

Deno.test("enqueue --after: waiting jobs in list, show and status; bad ids change nothing", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const ok = async (args: string[]) => {
    const r = await runCli(args, { db });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  await ok(["enqueue", "--id", "a", "--", "true"]);
  await ok(["enqueue", '{"id":"b","command":"true","after":["a"]}']);
  await ok(["enqueue", "--id", "c", "--after", "a,b", "--", "true"]);
  const list = await ok(["list"]);
  assert.match(list, /^c +waiting \(blocked on a, b\)/m);
  assert.match(list, /^b +waiting \(blocked on a\)/m);
  assert.match(list, /^a +pending/m);
  const show = await ok(["show", "c"]);
  assert.match(show, /runs after +a \(pending\), b \(pending\) — waiting, 2 not completed/);
  assert.match(await ok(["show", "a"]), /runs before +b \(pending\), c \(pending\)/);
  const json = await runCliJson<Record<string, unknown>>(["show", "c"], { db });
  assert.deepEqual(json.after, ["a", "b"]);
  assert.equal(json.blocked_by, 2);
  assert.deepEqual(json.dependencies, [{ id: "a", state: "pending" }, {
    id: "b",
    state: "pending",
  }]);
  assert.match(await ok(["status"]), /^waiting: 2 \(blocked on dependencies\)$/m);

  for (
    const [args, pattern] of [
      [
        ["enqueue", "--id", "x", "--after", "nope", "--", "true"],
        /"x" runs after "nope", which does not exist/,
      ],
      [["enqueue", "--id", "x", "--after", "x", "--", "true"], /"x" cannot run after itself/],
      [["enqueue", '{"command":"true","after":7}'], /Invalid after/],
    ] as const
  ) {
    const r = await runCli([...args], { db });
    assert.equal(r.code, ExitCodes.invalidInput, r.stderr);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split("\n").length, 1, "one line");
  }
  // A file may run after ids earlier in it, never later ones: all or nothing.
  const good = dir.file("good.jsonl");
  await Deno.writeTextFile(
    good,
    '{"id":"f1","command":"true","after":["c"]}\n{"id":"f2","command":"true","after":["f1","a"]}\n',
  );
  await ok(["enqueue", "--file", good]);
  const bad = dir.file("bad.jsonl");
  await Deno.writeTextFile(
    bad,
    '{"id":"g1","command":"true","after":["g2"]}\n{"id":"g2","command":"true"}\n',
  );
  const r = await runCli(["enqueue", "--file", bad], { db });
  assert.equal(r.code, ExitCodes.invalidInput);
  assert.match(r.stderr, /"g1" runs after "g2", which comes later in the input/);
  const ids = (await runCliJson<{ id: string }[]>(["list"], { db })).map((j) => j.id).sort();
  assert.deepEqual(ids, ["a", "b", "c", "f1", "f2"]);
});

Deno.test("queue pause/resume/limit/list, and their bad input", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const ok = async (args: string[]) => {
    const r = await runCli(args, { db });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  await ok(["enqueue", "--queue", "gpu", "--", "true"]);
  await ok(["enqueue", "--", "true"]);
  assert.equal(await ok(["queue", "limit", "gpu", "2"]), "gpu: at most 2 jobs running at once\n");
  assert.match(await ok(["queue", "pause", "gpu"]), /^gpu paused/);
  // A queue with no job yet may be paused before its jobs come.
  assert.match(await ok(["queue", "pause", "later"]), /^later paused/);
  const queues = await runCliJson<Record<string, unknown>[]>(["queue", "list"], { db });
  assert.deepEqual(queues.map((q) => [q.name, q.paused, q.limit, q.waiting]), [
    ["default", false, 0, 0],
    ["gpu", true, 2, 0],
    ["later", true, 0, 0],
  ]);
  assert.deepEqual((queues[1].counts as Record<string, number>).pending, 1);
  const status = await ok(["status"]);
  assert.match(status, /^paused queues: gpu, later$/m);
  assert.match(status, /^queue limits: gpu 2$/m);
  assert.match(await ok(["queue", "list"]), /^gpu +paused +2 +1 +0/m);

  for (
    const [args, code, pattern] of [
      [["queue", "limit", "gpu", "-1"], ExitCodes.invalidInput, /Invalid limit/],
      [["queue", "limit", "gpu", "two"], ExitCodes.invalidInput, /Invalid limit/],
      [["queue", "limit", "bad name", "2"], ExitCodes.invalidInput, /Invalid queue name/],
      [["queue", "resume", "nope"], ExitCodes.notFound, /No queue named "nope"/],
      [["queue", "pause"], ExitCodes.invalidInput, /Give a queue name or --all/],
      [["queue", "pause", "gpu", "--all"], ExitCodes.invalidInput, /Give a queue name or --all/],
    ] as const
  ) {
    const r = await runCli([...args], { db });
    assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
  // Nothing changed by the refused commands.
  const after = await runCliJson<Record<string, unknown>[]>(["queue", "list"], { db });
  assert.deepEqual(after.map((q) => [q.name, q.paused, q.limit]), [
    ["default", false, 0],
    ["gpu", true, 2],
    ["later", true, 0],
  ]);
  assert.equal(await ok(["queue", "resume", "--all"]), "gpu resumed\nlater resumed\n");
  assert.equal(await ok(["queue", "limit", "gpu", "0"]), "gpu: no limit\n");
  assert.doesNotMatch(await ok(["status"]), /paused queues|queue limits/);
  assert.equal(
    await ok(["queue", "pause", "--all"]),
    "default paused (running jobs finish; no new job starts)\ngpu paused (running jobs finish; no new job starts)\nlater paused (running jobs finish; no new job starts)\n",
  );
});
