import assert from "node:assert/strict";
import { MAX_TIMER_MS, setLongTimeout } from "../../src/core/clock.ts";

Deno.test("setLongTimeout waits out a delay longer than one step in several steps", async () => {
  const start = performance.now();
  const fired = await new Promise<number>((resolve) => {
    setLongTimeout(() => resolve(performance.now() - start), 250, { step: 40 });
  });
  assert.ok(fired >= 249, `fired after ${fired.toFixed(1)} ms, before the 250 ms asked`);
});

Deno.test("setLongTimeout can be cleared between two steps", async () => {
  let fired = false;
  const timer = setLongTimeout(() => fired = true, 120, { step: 30 });
  await new Promise((r) => setTimeout(r, 50));
  timer.clear();
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(fired, false);
});

Deno.test("setLongTimeout does not fire at once past the 32-bit limit of setTimeout", async () => {
  let fired = false;
  const timer = setLongTimeout(() => fired = true, MAX_TIMER_MS + 1000);
  await new Promise((r) => setTimeout(r, 100));
  timer.clear();
  assert.equal(fired, false, "a delay past 2^31-1 ms fired within 100 ms");
});
