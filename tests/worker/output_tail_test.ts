/**
 * LiveOutput (worker/output_tail.ts): when a running job's output is written to the store. Real
 * timers; the bounds checked are orders, not durations: a write per 64 KiB against one per 100 ms.
 */
import assert from "node:assert/strict";
import {
  LIVE_FLUSH_BYTES,
  LIVE_FLUSH_GAP_MS,
  LIVE_FLUSH_MS,
  LiveOutput,
} from "../../src/worker/output_tail.ts";
import { waitFor } from "../helpers/wait_for.ts";

const LIMIT = 65536;

function recorder() {
  const writes: { stdout: string; stderr: string; at: number }[] = [];
  const live = new LiveOutput(LIMIT, (chunk) => {
    writes.push({ ...chunk, at: performance.now() });
    return Promise.resolve();
  });
  return { writes, live };
}

const block = (c: string) => new TextEncoder().encode(c.repeat(LIVE_FLUSH_BYTES));
const tick = () => new Promise((r) => setTimeout(r, 1));

Deno.test("live output: a full block is written at once, the next ones no sooner than the gap", async () => {
  const { writes, live } = recorder();
  try {
    live.push("stdout", block("a"));
    await waitFor(() => writes.length === 1, { what: "the first write" });
    // A block per event-loop turn for 300 ms: without the gap, a write each.
    const start = performance.now();
    let pushed = 0;
    while (performance.now() - start < 300) {
      live.push("stdout", block(pushed++ % 2 ? "b" : "c"));
      await tick();
    }
    const elapsed = performance.now() - start;
    assert.ok(pushed > 20, `only ${pushed} blocks pushed`);
    const bound = 2 + Math.ceil(elapsed / LIVE_FLUSH_GAP_MS);
    assert.ok(writes.length <= bound, `${writes.length} writes in ${elapsed} ms`);
    for (let i = 1; i < writes.length; i++) {
      // A timer may fire up to a millisecond early on some systems.
      assert.ok(writes[i].at - writes[i - 1].at >= LIVE_FLUSH_GAP_MS - 2, `write ${i} too soon`);
    }
    // What waits when the pushes stop is written after the gap, not held back for a second.
    const last = pushed - 1;
    await waitFor(() => writes.at(-1)!.stdout.endsWith(last % 2 ? "b" : "c"), {
      timeoutMs: LIVE_FLUSH_MS / 2,
      what: "the last block written after the gap",
    });
    // Each write holds at most the last `limit` bytes of what waited.
    assert.ok(writes.every((w) => w.stdout.length <= LIMIT));
  } finally {
    await live.close();
  }
});

Deno.test("live output: a few bytes wait a second, and nothing is written after close", async () => {
  const { writes, live } = recorder();
  const start = performance.now();
  live.push("stderr", new TextEncoder().encode("one line\n"));
  await waitFor(() => writes.length === 1, { timeoutMs: 5000, what: "the write" });
  assert.ok(writes[0].at - start >= LIVE_FLUSH_MS - 2, "small output waits for the second");
  assert.deepEqual([writes[0].stdout, writes[0].stderr], ["", "one line\n"]);
  live.push("stdout", block("z"));
  await live.close();
  const count = writes.length;
  live.push("stdout", block("y"));
  await new Promise((r) => setTimeout(r, LIVE_FLUSH_GAP_MS * 2));
  assert.equal(writes.length, count, "no write after close");
});
