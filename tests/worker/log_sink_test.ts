/**
 * LineQueue (worker/log_sink.ts): a worker's lines to stdout never make it wait for the reader.
 * The end to end case (a `worker start` whose stdout nobody reads) is in worker_cli_test.ts.
 * fileLines: a log file on a disk that fills up loses lines, and says so; a rotated one is followed.
 */
import assert from "node:assert/strict";
import { fileLines, LineQueue } from "../../src/worker/log_sink.ts";
import { faultNeeds } from "../helpers/faults/requirements.ts";
import { mountTmpfs } from "../helpers/faults/tmpfs.ts";
import { tempDir } from "../helpers/temp.ts";

/** A writer that takes nothing until `release()`, then everything; records what it wrote. */
function stalledWriter() {
  const written: string[] = [];
  let release = () => {};
  const released = new Promise<void>((go) => release = go);
  const write = async (bytes: Uint8Array) => {
    await released;
    written.push(new TextDecoder().decode(bytes));
    return bytes.length;
  };
  return { written, release, write };
}

Deno.test("LineQueue: lines wait for a stalled reader in order; past the backlog they are counted and said", async () => {
  const w = stalledWriter();
  const q = new LineQueue(w.write, { max: 100 });
  const line = (i: number) => `line ${String(i).padStart(2, "0")} ${"x".repeat(20)}`; // 29 bytes
  // Three lines fit the 100 bytes that may wait; seven do not.
  for (let i = 1; i <= 10; i++) q.push(line(i));
  assert.equal(await q.flush(50), false, "a reader that does not read is not waited for");
  w.release();
  assert.equal(await q.flush(5000), true);
  assert.deepEqual(w.written.slice(0, 1), [[1, 2, 3].map((i) => line(i) + "\n").join("")]);
  assert.equal(w.written.length, 2);
  assert.match(w.written[1], /^\[pid \d+\] 7 log lines dropped: stdout was not read /);
  q.push("after");
  assert.equal(await q.flush(5000), true);
  assert.equal(w.written.at(-1), "after\n");
});

Deno.test("LineQueue: lines gathered for a moment share a write of whole lines, at most 4096 bytes", async () => {
  const writes: string[] = [];
  const q = new LineQueue((bytes) => {
    writes.push(new TextDecoder().decode(bytes));
    return Promise.resolve(bytes.length);
  });
  const lines = Array.from({ length: 100 }, (_, i) => `${i} ${"y".repeat(100)}`);
  for (const l of lines) q.push(l);
  q.push("z".repeat(5000)); // longer than a batch: alone
  q.push("last");
  assert.equal(writes.length, 0, "nothing is written at once");
  assert.equal(await q.flush(5000), true);
  assert.equal(
    writes.join(""),
    lines.map((l) => l + "\n").join("") + "z".repeat(5000) + "\nlast\n",
  );
  assert.ok(writes.length <= 6, `${writes.length} writes for 10 KiB of lines`);
  for (const w of writes) {
    assert.ok(w.endsWith("\n"), "whole lines only");
    assert.ok(w.length <= 4096 || !w.slice(0, -1).includes("\n"), "a batch over 4096 is one line");
  }
});

Deno.test("LineQueue: a writer that fails (stdout closed) ends the writing, never the caller", async () => {
  let calls = 0;
  const q = new LineQueue(() => {
    calls++;
    return Promise.reject(new Error("Broken pipe"));
  });
  q.push("one");
  q.push("two");
  assert.equal(await q.flush(5000), true);
  q.push("three");
  assert.equal(await q.flush(5000), true);
  assert.equal(calls, 1, "no write after the first failure");
});

Deno.test("LineQueue: a partial write is continued, not repeated", async () => {
  const chunks: string[] = [];
  const q = new LineQueue((bytes) => {
    const n = Math.min(3, bytes.length);
    chunks.push(new TextDecoder().decode(bytes.subarray(0, n)));
    return Promise.resolve(n);
  });
  q.push("abcdefg");
  assert.equal(await q.flush(5000), true);
  assert.equal(chunks.join(""), "abcdefg\n");
});

const { ignore: noTmpfs } = await faultNeeds("log file on a full disk", ["tmpfs"]);

Deno.test({
  name:
    "log file on a disk that fills up: lost lines are said once on stderr, then counted in the file",
  ignore: noTmpfs,
  fn: async () => {
    await using disk = await mountTmpfs(256 * 1024);
    const path = disk.file("w.log");
    const warnings: string[] = [];
    const log = fileLines(path, (m) => warnings.push(m));
    log("before");
    await disk.fill();
    // Long lines: the disk's last bytes take part of one, which must not run into the next line.
    for (let i = 0; i < 20; i++) log(`lost ${i} ` + "x".repeat(3000));
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(
      warnings[0],
      /^queuectl: cannot write to the log file .*w\.log: .*; its lines are lost/,
    );
    await disk.free();
    log("after");
    log("after again");
    assert.equal(warnings.length, 1, "said once per outage");
    const lines = (await Deno.readTextFile(path)).split("\n");
    assert.equal(lines.pop(), "", "ends with a whole line");
    const stamp = /^\d{4}-\d\d-\d\dT[\d:.]+Z /;
    const whole = lines.filter((l) => stamp.test(l));
    assert.match(whole[0], / before$/);
    const note = whole.findIndex((l) => / \[log\] /.test(l));
    assert.ok(note > 0, lines.map((l) => l.slice(0, 80)).join("\n"));
    const [, count] =
      / \[log\] (\d+) lines? of process \d+ could not be written to this file \(.+\)$/
        .exec(whole[note])!;
    // Lines that reached the disk whole before it filled, plus those counted lost: all 20.
    const kept = whole.filter((l) => / lost \d+ x{3000}$/.test(l)).length;
    assert.equal(kept + Number(count), 20, `${kept} kept, ${count} counted lost`);
    assert.match(whole[note + 1], / after$/);
    assert.match(whole[note + 2], / after again$/);
    // A torn line (part of a lost one) may stand alone; it never carries the note or a later line.
    for (const l of lines.filter((l) => !stamp.test(l))) assert.match(l, /^(x*|\S+ lost \d+ x*)$/);
  },
});

Deno.test("log file rotation: moved away (logrotate's default), replaced, or truncated in place, the next lines go to the file at the path", async () => {
  await using dir = await tempDir();
  const path = dir.file("w.log");
  const read = (p: string) => Deno.readTextFileSync(p).trim().split("\n").map((l) => l.slice(25));
  // recheckMs 0: the path is looked at before every line (1 s apart in real use).
  const log = fileLines(path, () => {}, 0);
  log("one");
  // Moved away, nothing at the path: a new file is made there.
  Deno.renameSync(path, `${path}.1`);
  log("two");
  assert.deepEqual(read(`${path}.1`), ["one"]);
  assert.deepEqual(read(path), ["two"]);
  assert.equal((Deno.statSync(path).mode ?? 0) & 0o777, 0o600);
  // Moved away and a new file created in its place (logrotate's `create`): written there.
  Deno.renameSync(path, `${path}.2`);
  Deno.writeTextFileSync(path, "");
  log("three");
  assert.deepEqual(read(`${path}.2`), ["two"]);
  assert.deepEqual(read(path), ["three"]);
  // copytruncate: the same file, emptied; appends go on at its new end (no hole of zeros).
  Deno.truncateSync(path, 0);
  log("four");
  assert.deepEqual(read(path), ["four"]);
  assert.equal(Deno.readTextFileSync(path).indexOf("\0"), -1);
});

Deno.test("log file rotation: when the file cannot be made again (its directory gone), lines go on to the open one", async () => {
  await using dir = await tempDir();
  Deno.mkdirSync(dir.file("logs"));
  const path = dir.file("logs/w.log");
  const warnings: string[] = [];
  const log = fileLines(path, (m) => warnings.push(m), 0);
  log("one");
  Deno.renameSync(dir.file("logs"), dir.file("moved"));
  log("two");
  const lines = Deno.readTextFileSync(dir.file("moved/w.log")).trim().split("\n");
  assert.deepEqual(lines.map((l) => l.slice(25)), ["one", "two"]);
  assert.deepEqual(warnings, [], "nothing lost, nothing to say");
});
