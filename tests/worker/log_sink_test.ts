/**
 * LineQueue (worker/log_sink.ts): a worker's lines to stdout never make it wait for the reader.
 * The end to end case (a `worker start` whose stdout nobody reads) is in worker_cli_test.ts.
 */
import assert from "node:assert/strict";
import { LineQueue } from "../../src/worker/log_sink.ts";

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
  const q = new LineQueue(w.write, 100);
  const line = (i: number) => `line ${String(i).padStart(2, "0")} ${"x".repeat(20)}`; // 29 bytes
  // The first line is being written; three more fit the 100 bytes that may wait; six do not.
  for (let i = 1; i <= 10; i++) q.push(line(i));
  assert.equal(await q.flush(50), false, "a reader that does not read is not waited for");
  w.release();
  assert.equal(await q.flush(5000), true);
  assert.deepEqual(w.written.slice(0, 4), [1, 2, 3, 4].map((i) => line(i) + "\n"));
  assert.equal(w.written.length, 5);
  assert.match(w.written[4], /^\[pid \d+\] 6 log lines dropped: stdout was not read /);
  q.push("after");
  assert.equal(await q.flush(5000), true);
  assert.equal(w.written.at(-1), "after\n");
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
