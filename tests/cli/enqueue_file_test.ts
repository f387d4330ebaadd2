/** `enqueue --file` streams its input (issue 15.6): large files, both forms, the ids it prints. */
import assert from "node:assert/strict";
import { startCli } from "../helpers/cli_process.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";

Deno.test("enqueue --file: JSON Lines over several batches (CRLF, blank lines), ids in input order", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const file = dir.file("jobs.jsonl");
  const lines = Array.from({ length: 2345 }, (_, i) => JSON.stringify({ command: `echo ${i}` }));
  lines[1000] = JSON.stringify({ id: "given", command: "echo given" });
  await Deno.writeTextFile(file, lines.join("\r\n") + "\r\n\r\n  \n");
  const ids = await runCliJson<string[]>(["enqueue", "--file", file], { db });
  assert.equal(ids.length, 2345);
  assert.equal(new Set(ids).size, 2345);
  assert.equal(ids[1000], "given");
  const generated = ids.filter((id) => id !== "given");
  assert.deepEqual([...generated].sort(), generated, "generated ids sort in input order");
  const job = await runCliJson<{ id: string; command: string }>(["show", ids[2344]], { db });
  assert.equal(job.command, "echo 2344");
  const status = await runCliJson<{ counts: { pending: number } }>(["status"], { db });
  assert.equal(status.counts.pending, 2345);
});

Deno.test("enqueue --file -: a JSON array from stdin; a short file prints one id per line", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const r = await runCli(["enqueue", "--file", "-"], {
    db,
    stdin: ' \n[{"id":"a","command":"x"},\n {"id":"b","command":"y"}]\n',
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "a\nb\n");
  const text = await runCli(["enqueue", "--file", "-"], {
    db,
    stdin: '{"id":"c","command":"x"}\n{"id":"d","command":"y"}',
  });
  assert.equal(text.stdout, "c\nd\n");
});

Deno.test("enqueue --file: ids wait in a temporary file until the insert commits, then print; a failed file leaves neither jobs nor the file", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const tmp = dir.file("tmp");
  await Deno.mkdir(tmp);
  const env = { TMPDIR: tmp };
  const file = dir.file("jobs.jsonl");
  // 6,000 ids: more than one 64 KiB read of the spilled ids, so lines cross read boundaries.
  const lines = Array.from({ length: 6000 }, (_, i) => JSON.stringify({ command: `echo ${i}` }));
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
  const r = await runCli(["enqueue", "--file", file], { db, env });
  assert.equal(r.code, 0, r.stderr);
  const ids = r.stdout.split("\n");
  assert.equal(ids.pop(), "");
  assert.equal(ids.length, 6000);
  assert.ok(ids.every((id) => /^[0-9A-Za-z]{20,30}$/.test(id)), "whole ids, one per line");
  assert.equal(new Set(ids).size, 6000);
  assert.deepEqual([...ids].sort(), ids, "in input order");
  const last = await runCliJson<{ command: string }>(["show", ids[5999]], { db });
  assert.equal(last.command, "echo 5999");
  const json = await runCliJson<string[]>(["enqueue", "--file", file], { db, env });
  assert.equal(json.length, 6000);
  assert.equal(new Set([...ids, ...json]).size, 12000);
  await Deno.writeTextFile(file, lines.join("\n") + "\n{not json}\n");
  const bad = await runCli(["enqueue", "--file", file], { db, env });
  assert.equal(bad.code, 2, bad.stderr);
  assert.equal(bad.stdout, "");
  assert.match(bad.stderr, /line 6001: invalid JSON/);
  const status = await runCliJson<{ counts: { pending: number } }>(["status"], { db });
  assert.equal(status.counts.pending, 12000);
  assert.deepEqual(await Array.fromAsync(Deno.readDir(tmp)), [], "temporary files removed");
  // No temporary directory to write to: the ids are kept in memory instead.
  await Deno.writeTextFile(file, '{"id":"m1","command":"x"}\n{"id":"m2","command":"y"}\n');
  const noTmp = await runCli(["enqueue", "--file", file], { db, env: { TMPDIR: dir.file("no") } });
  assert.equal(noTmp.code, 0, noTmp.stderr);
  assert.equal(noTmp.stdout, "m1\nm2\n");
});

Deno.test("enqueue --file - interrupted while it reads: nothing enqueued, no temporary file left", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const tmp = dir.file("tmp");
  await Deno.mkdir(tmp);
  for (const signal of ["SIGINT", "SIGKILL"] as const) {
    await using bulk = startCli(["enqueue", "--file", "-"], {
      db,
      env: { TMPDIR: tmp },
      stdin: "piped",
    });
    // More than a pipe holds: once written, the CLI has read most of it (and spooled it).
    const lines = Array.from(
      { length: 10_000 },
      (_, i) => JSON.stringify({ command: `echo ${i}` }),
    );
    await bulk.writeStdin(lines.join("\n") + "\n");
    bulk.kill(signal);
    const status = await bulk.status;
    assert.equal(status.signal, signal, bulk.stderr());
    // Before, the ids' and the input's temporary files stayed behind (hundreds of MB for a
    // large input): they are now unlinked as soon as they are opened.
    assert.deepEqual(await Array.fromAsync(Deno.readDir(tmp)), [], `after ${signal}`);
  }
  const after = await runCliJson<{ total: number }>(["status"], { db });
  assert.equal(after.total, 0);
});

Deno.test("enqueue --file - from a pipe that stalls: the database stays writable meanwhile, the jobs land once the input ends", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const tmp = dir.file("tmp");
  await Deno.mkdir(tmp);
  await using bulk = startCli(["enqueue", "--file", "-"], {
    db,
    env: { TMPDIR: tmp },
    stdin: "piped",
  });
  // 10,000 lines, far more than a pipe holds: once written, the CLI has read most of them.
  const lines = Array.from({ length: 10_000 }, (_, i) => JSON.stringify({ command: `echo ${i}` }));
  await bulk.writeStdin(lines.join("\n") + "\n");
  // The producer stalls here. Other writers go on at once: before, the bulk enqueue held SQLite's
  // write lock from its first line to its last, and this enqueue failed after the 10 s busy wait.
  const other = await runCli(["enqueue", '{"id":"other","command":"true"}'], { db });
  assert.equal(other.code, 0, other.stderr);
  const during = await runCliJson<{ counts: { pending: number } }>(["status"], { db });
  assert.equal(during.counts.pending, 1, "nothing of the unfinished input is visible");
  await bulk.writeStdin('{"id":"last","command":"true"}\n');
  await bulk.closeStdin();
  const status = await bulk.status;
  assert.equal(status.code, 0, bulk.stderr());
  const ids = bulk.stdout().trimEnd().split("\n");
  assert.equal(ids.length, 10_001);
  assert.equal(ids.at(-1), "last");
  const after = await runCliJson<{ counts: { pending: number } }>(["status"], { db });
  assert.equal(after.counts.pending, 10_002);
  assert.deepEqual(await Array.fromAsync(Deno.readDir(tmp)), [], "temporary files removed");
});

Deno.test("enqueue --file - from a pipe: a bad line fails at once, before the input ends, and enqueues nothing", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  await using bulk = startCli(["enqueue", "--file", "-"], { db, stdin: "piped" });
  await bulk.writeStdin('{"command":"true"}\n{"command":""}\n');
  // The input stays open: the error must not wait for its end.
  const status = await bulk.status;
  assert.equal(status.code, 2, bulk.stderr());
  assert.match(bulk.stderr(), /^error: line 2: /);
  const after = await runCliJson<{ total: number }>(["status"], { db });
  assert.equal(after.total, 0);
});
