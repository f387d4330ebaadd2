/** The idle worker's wake-up source for SQLite: a watch on the wake file, on only while idle. */
import assert from "node:assert/strict";
import { FileWaker, TimerWaker } from "../../src/worker/wake.ts";
import { WAKE_FILE_SUFFIX, WakeFile, watchFile } from "../../src/store/sqlite/wake_file.ts";
import { exists, tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

async function append(path: string, text: string): Promise<void> {
  const f = await Deno.open(path, { append: true });
  try {
    await f.write(new TextEncoder().encode(text));
  } finally {
    f.close();
  }
}

Deno.test("FileWaker: a write to the watched file ends an idle wait at once", async () => {
  await using dir = await tempDir();
  const wal = dir.file("q.db-wal");
  await Deno.writeTextFile(wal, "");
  const waker = new FileWaker(wal);
  try {
    assert.equal(waker.idle(), true, "the watch starts: look once more before waiting");
    assert.equal(waker.idle(), false, "already watching");
    waker.arm();
    const started = performance.now();
    const waiting = waker.wait(60_000);
    await append(wal, "commit");
    assert.equal(await waiting, true, "ended by a hint");
    assert.ok(performance.now() - started < 30_000, "woken by the write, not the 60 s timeout");
  } finally {
    waker.close();
  }
});

Deno.test("FileWaker: a hint that arrived after arm() and before wait() is not lost", async () => {
  await using dir = await tempDir();
  const wal = dir.file("q.db-wal");
  await Deno.writeTextFile(wal, "");
  const waker = new FileWaker(wal);
  try {
    waker.idle();
    waker.arm();
    await append(wal, "commit");
    const started = performance.now();
    // The event may still be in flight: the wait must end on it either way.
    assert.equal(await waker.wait(60_000), true);
    assert.ok(performance.now() - started < 30_000);
  } finally {
    waker.close();
  }
});

Deno.test("FileWaker: busy() stops watching; writes then do not end a wait", async () => {
  await using dir = await tempDir();
  const wal = dir.file("q.db-wal");
  await Deno.writeTextFile(wal, "");
  const waker = new FileWaker(wal);
  try {
    waker.idle();
    assert.equal(waker.watching, true);
    waker.busy();
    assert.equal(waker.watching, false);
    waker.arm();
    const started = performance.now();
    const waiting = waker.wait(300);
    await append(wal, "commit by a busy worker");
    assert.equal(await waiting, false, "the timer ended it: no hint");
    assert.ok(performance.now() - started >= 290, "only the timeout ended the wait");
    assert.equal(waker.idle(), true, "the next idle period starts a new watch");
  } finally {
    waker.close();
  }
});

Deno.test("FileWaker creates a missing wake file (0600) and watches it", async () => {
  await using dir = await tempDir();
  const path = dir.file("q.db-wake");
  const waker = new FileWaker(path);
  try {
    assert.equal(waker.idle(), true, "the watch starts on the file it created");
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    waker.arm();
    const waiting = waker.wait(60_000);
    await append(path, "x");
    await waiting; // woken by the write, not the 60 s timeout
  } finally {
    waker.close();
  }
});

Deno.test("FileWaker on a file it cannot create falls back to the timer; TimerWaker waits its timeout", async () => {
  await using dir = await tempDir();
  for (const waker of [new FileWaker(dir.file("no-such-dir/q.db-wake")), new TimerWaker()]) {
    assert.equal(waker.idle(), false);
    const started = performance.now();
    assert.equal(await waker.wait(100), false, "no hint");
    assert.ok(performance.now() - started >= 90);
    const abort = new AbortController();
    const waiting = waker.wait(60_000, abort.signal);
    abort.abort();
    assert.equal(await waiting, false); // ends on abort, not after 60 s
    waker.close();
  }
});

Deno.test("FileWaker: a wait ended by its timer or by close() reports no hint", async () => {
  await using dir = await tempDir();
  const waker = new FileWaker(dir.file("q.db-wake"));
  try {
    assert.equal(waker.idle(), true);
    waker.arm();
    assert.equal(await waker.wait(0), false);
    const waiting = waker.wait(60_000);
    waker.close();
    assert.equal(await waiting, false, "ended by close(), not by a hint");
  } finally {
    waker.close();
  }
});

Deno.test("FileWaker: a wake file deleted under an idle worker wakes it, and the next idle() watches the new file", async () => {
  await using dir = await tempDir();
  const path = dir.file("q.db-wake");
  const waker = new FileWaker(path);
  try {
    assert.equal(waker.idle(), true);
    waker.arm();
    const deleted = waker.wait(60_000);
    await Deno.remove(path);
    assert.equal(await deleted, true, "the deletion is a hint: the worker looks, then idles again");
    // Its removal event may come after the first event of the deletion (the link count's change).
    await waitFor(() => !waker.watching, { what: "the watch on the deleted file dropped" });
    assert.equal(waker.idle(), true, "a new watch, on a new file at the path");
    assert.ok(Deno.statSync(path).isFile);
    waker.arm();
    const started = performance.now();
    const waiting = waker.wait(60_000);
    // What an enqueue from another process writes: the file at the path.
    new WakeFile(path.slice(0, -WAKE_FILE_SUFFIX.length)).touch();
    assert.equal(await waiting, true, "woken by a write to the new file");
    assert.ok(performance.now() - started < 30_000, "not by the timeout");
  } finally {
    waker.close();
  }
});

Deno.test("WakeFile: a touch after its file was deleted or replaced writes to the file at the path", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const path = db + WAKE_FILE_SUFFIX;
  const wake = new WakeFile(db);
  try {
    wake.touch();
    assert.equal(Deno.readTextFileSync(path), "*");
    await Deno.remove(path);
    wake.touch();
    assert.equal(Deno.readTextFileSync(path), "*", "made anew and written");
    // Replaced by another file (a rename over it).
    await Deno.writeTextFile(dir.file("other"), "");
    await Deno.rename(dir.file("other"), path);
    wake.touch();
    assert.equal(Deno.readTextFileSync(path), "*", "the new file written");
  } finally {
    wake.close();
  }
});

Deno.test("watchFile (kill requests): after its file is deleted, writes to the new file still call back", async () => {
  await using dir = await tempDir();
  const path = dir.file("q.db-kill");
  let hints = 0;
  const stop = watchFile(path, () => hints++);
  try {
    const wrote = async (what: string) => {
      const before = hints;
      new WakeFile(dir.file("q.db"), "-kill").touch();
      await waitFor(() => hints > before, { what });
    };
    await wrote("a hint from the first file");
    await Deno.remove(path);
    // Watched again once the deletion is seen (the file made anew); a write to it calls back.
    await waitFor(() => exists(path), { what: "the file made anew" });
    await wrote("a hint from the new file");
  } finally {
    stop();
  }
});

Deno.test("FileWaker and watchFile: a wake or kill file replaced by a rename while another process holds it open is watched anew", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const wakePath = db + WAKE_FILE_SUFFIX;
  const killPath = db + "-kill";
  const waker = new FileWaker(wakePath);
  let hints = 0;
  const stop = watchFile(killPath, () => hints++);
  // Held open (as a long-lived writer would): the kernel reports the rename over it as a change
  // of the old file, not as its removal.
  assert.equal(waker.idle(), true, "watching (the file made)");
  const held = [wakePath, killPath].map((p) => Deno.openSync(p, { read: true }));
  try {
    waker.arm();
    const replaced = waker.wait(60_000);
    for (const p of [wakePath, killPath]) {
      await Deno.writeTextFile(p + ".new", "");
      await Deno.rename(p + ".new", p);
    }
    assert.equal(await replaced, true, "the change is a hint");
    await waitFor(() => !waker.watching, { what: "the watch on the old wake file dropped" });
    assert.equal(waker.idle(), true, "a new watch, on the file now at the path");
    waker.arm();
    const waiting = waker.wait(60_000);
    new WakeFile(db).touch();
    assert.equal(await waiting, true, "woken by a write to the new wake file");
    // The kill watch: a write to the file now at the path calls back.
    await waitFor(async () => {
      const before = hints;
      new WakeFile(db, "-kill").touch();
      return await waitFor(() => hints > before, { timeoutMs: 500 }).then(() => true, () => false);
    }, { what: "a kill hint from the new file" });
  } finally {
    for (const file of held) file.close();
    waker.close();
    stop();
  }
});
