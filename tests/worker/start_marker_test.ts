/** The start marker a supervised worker writes before each spawn, read back by its supervisor. */
import assert from "node:assert/strict";
import { readStartMarker, sameClaim, StartMarker } from "../../src/worker/start_marker.ts";
import { tempDir } from "../helpers/temp.ts";

Deno.test("start marker: the worker alone, then each job recorded in place, read back", async () => {
  await using dir = await tempDir();
  const path = dir.file("marker");
  const marker = StartMarker.open(path, "w1-abc");
  assert.ok(marker);
  if (Deno.build.os !== "windows") assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
  assert.deepEqual(readStartMarker(path), { worker: "w1-abc", job: null });
  const long = {
    id: "a-long-job-id-" + "x".repeat(100),
    attempts: 3,
    started_at: 1_700_000_000_123,
  };
  marker.record(long);
  assert.deepEqual(readStartMarker(path), { worker: "w1-abc", job: long });
  // A shorter record over a longer one: only the first line counts.
  const short = { id: 'b\n"quoted"', attempts: 1, started_at: null };
  marker.record(short);
  assert.deepEqual(readStartMarker(path), { worker: "w1-abc", job: short });
  const size = Deno.statSync(path).size;
  marker.record(long);
  assert.equal(Deno.statSync(path).size, size, "written in place, no growth");
  marker.close();
});

Deno.test("start marker: what cannot be read says nothing (the jobs are left to the rescue)", async () => {
  await using dir = await tempDir();
  const path = dir.file("marker");
  assert.equal(readStartMarker(path), null, "missing");
  for (
    const text of [
      "",
      '["w1"]', // no newline: a write cut short
      "not json\n",
      "{}\n",
      '[1, "a", 1, 2]\n',
      '["w1", "a", 1]\n',
      '["w1", "a", "1", 2]\n',
      '["w1", "a", 1.5, 2]\n',
      '["w1", 7, 1, 2]\n',
    ]
  ) {
    await Deno.writeTextFile(path, text);
    assert.equal(readStartMarker(path), null, JSON.stringify(text));
  }
  assert.equal(StartMarker.open(dir.file("no/such/dir/marker"), "w1"), null, "cannot be created");
});

Deno.test("sameClaim: the id, the attempt and the claim time must all match", () => {
  const job = { id: "a", attempts: 2, started_at: 5 };
  assert.ok(sameClaim(job, { ...job }));
  assert.ok(!sameClaim(null, job));
  assert.ok(!sameClaim(job, { ...job, id: "b" }));
  assert.ok(!sameClaim(job, { ...job, attempts: 1 }));
  assert.ok(!sameClaim(job, { ...job, started_at: 6 }));
});
