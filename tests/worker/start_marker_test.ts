/** The start marker a supervised worker writes before each spawn, read back by its supervisor. */
import assert from "node:assert/strict";
import {
  MarkerDirectory,
  readStartMarker,
  sameClaim,
  StartMarker,
} from "../../src/worker/start_marker.ts";
import { faultNeeds } from "../helpers/faults/requirements.ts";
import { mountTmpfs } from "../helpers/faults/tmpfs.ts";
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
  // Spawned while the job before it was being settled: both named. Two ids of the longest kind
  // still fit the page written at open.
  const longest = { id: "z".repeat(200), attempts: 99, started_at: 1_700_000_000_999 };
  marker.record(longest, { ...longest, id: "y".repeat(200) });
  assert.deepEqual(readStartMarker(path), {
    worker: "w1-abc",
    job: longest,
    unsettled: { ...longest, id: "y".repeat(200) },
  });
  assert.equal(Deno.statSync(path).size, size, "written in place, no growth");
  marker.record(short);
  assert.deepEqual(readStartMarker(path), { worker: "w1-abc", job: short });
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
      '["w1", "a", 1, 2, "b", 1]\n',
      '["w1", "a", 1, 2, "b", "1", 2]\n',
    ]
  ) {
    await Deno.writeTextFile(path, text);
    assert.equal(readStartMarker(path), null, JSON.stringify(text));
  }
  assert.equal(StartMarker.open(dir.file("no/such/dir/marker"), "w1"), null, "cannot be created");
  // An existing file (a mistaken `worker run --start-marker`, a planted symlink) is left alone.
  const existing = dir.file("precious");
  await Deno.writeTextFile(existing, "keep me\n");
  assert.equal(StartMarker.open(existing, "w1"), null, "an existing file is refused");
  await Deno.symlink(existing, dir.file("link"));
  assert.equal(StartMarker.open(dir.file("link"), "w1"), null, "a symlink is refused");
  assert.equal(await Deno.readTextFile(existing), "keep me\n", "and never written");
});

Deno.test("sameClaim: the id, the attempt and the claim time must all match", () => {
  const job = { id: "a", attempts: 2, started_at: 5 };
  assert.ok(sameClaim(job, { ...job }));
  assert.ok(!sameClaim(null, job));
  assert.ok(!sameClaim(job, { ...job, id: "b" }));
  assert.ok(!sameClaim(job, { ...job, attempts: 1 }));
  assert.ok(!sameClaim(job, { ...job, started_at: 6 }));
});

const { ignore: noTmpfs } = await faultNeeds("start marker on a full disk", ["tmpfs"]);

Deno.test({
  name: "start marker on a full disk: records that fit its first page go on; one that fails " +
    "leaves the marker unreadable, for good",
  ignore: noTmpfs,
  fn: async () => {
    await using disk = await mountTmpfs(1024 * 1024);
    const path = disk.file("marker");
    const marker = StartMarker.open(path, "w1");
    assert.ok(marker);
    assert.ok(await disk.fill() > 0);
    const small = { id: "a", attempts: 1, started_at: 5 };
    marker.record(small);
    assert.deepEqual(readStartMarker(path), { worker: "w1", job: small }, "written in place");
    // Longer than the page the marker holds: the write needs a new block, and the disk is full.
    marker.record({ id: "b".repeat(8192), attempts: 1, started_at: 6 });
    assert.equal(readStartMarker(path), null, "a failed write leaves no stale record");
    assert.equal(Deno.statSync(path).size, 0, "truncated: not even a record cut short");
    await disk.free();
    marker.record(small);
    assert.equal(readStartMarker(path), null, "nothing more is written after a failure");
    marker.close();
  },
});

Deno.test({
  name: "start marker directory: ours while unchanged; kept fresh for age-based cleaners; a " +
    "replaced one is neither trusted nor removed",
  ignore: Deno.build.os === "windows",
  fn: () => {
    const dir = MarkerDirectory.make();
    assert.ok(dir);
    try {
      assert.equal(Deno.statSync(dir.path).mode! & 0o777, 0o700);
      assert.ok(dir.isOurs());
      const marker = `${dir.path}/1-1`;
      Deno.writeTextFileSync(marker, '["w1"]\n');
      const now = Date.now();
      const old = new Date(now - 30 * 24 * 3600 * 1000);
      const mtime = (path: string) => Deno.statSync(path).mtime!.getTime();
      // A day old or less: nothing touched.
      Deno.utimeSync(marker, old, old);
      assert.ok(dir.look([marker], now));
      assert.equal(mtime(marker), old.getTime(), "a fresh directory: its markers untouched");
      // Older: the directory and the live markers are touched.
      Deno.utimeSync(dir.path, old, old);
      assert.ok(dir.look([marker, `${dir.path}/2-9`], now), "a missing marker is skipped");
      assert.ok(Math.abs(mtime(marker) - now) < 1000, "the marker touched");
      assert.ok(Math.abs(mtime(dir.path) - now) < 1000, "the directory touched");
      // Deleted, then made again at the same path (another mode, maybe the same inode).
      Deno.removeSync(dir.path, { recursive: true });
      assert.equal(dir.isOurs(), false, "gone");
      assert.equal(dir.look([marker], now), false);
      Deno.mkdirSync(dir.path, { mode: 0o755 });
      Deno.writeTextFileSync(marker, '["w1"]\n');
      assert.equal(dir.isOurs(), false, "replaced");
      assert.equal(dir.look([marker], now), false);
      dir.remove();
      assert.ok(Deno.statSync(marker).isFile, "a directory not ours is not removed");
    } finally {
      Deno.removeSync(dir.path, { recursive: true });
    }
  },
});

Deno.test({
  name: "start marker directory: remove() takes it with its markers while it is ours",
  ignore: Deno.build.os === "windows",
  fn: () => {
    const dir = MarkerDirectory.make();
    assert.ok(dir);
    Deno.writeTextFileSync(`${dir.path}/1-1`, '["w1"]\n');
    dir.remove();
    assert.throws(() => Deno.lstatSync(dir.path), Deno.errors.NotFound);
  },
});
