/** The spool of a bulk enqueue from a pipe (app/job_spool.ts): what goes in comes out, in order. */
import assert from "node:assert/strict";
import { anonymousTempFile } from "../../src/app/job_file.ts";
import { InputSpool } from "../../src/app/job_spool.ts";
import { InvalidInput } from "../../src/core/errors.ts";
import { faultNeeds } from "../helpers/faults/requirements.ts";
import { mountTmpfs } from "../helpers/faults/tmpfs.ts";
import { tempDir } from "../helpers/temp.ts";

/** `n` chunks of `size` bytes, each distinct. */
function chunks(n: number, size: number): Uint8Array[] {
  return Array.from({ length: n }, (_, c) => {
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = (c * 31 + i * 7) & 0xff;
    return bytes;
  });
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Passes `input` through `spool.copy`, checking that it is passed on unchanged. */
async function pass(spool: InputSpool, input: Uint8Array[]): Promise<void> {
  const passed = await Array.fromAsync(spool.copy(ReadableStream.from(input)));
  assert.deepEqual(concat(passed), concat(input), "passed on as read");
}

Deno.test("input spool: the bytes come back as read, in order, from a file nobody else can reach", async () => {
  await using dir = await tempDir();
  const input = chunks(40, 10_000);
  {
    await using spool = await InputSpool.create(dir.path);
    await pass(spool, input);
    assert.ok(spool.onFile);
    if (Deno.build.os !== "windows") {
      assert.deepEqual([...Deno.readDirSync(dir.path)], [], "unlinked at once");
    }
    assert.deepEqual(concat(await Array.fromAsync(spool.readable())), concat(input));
    // Read twice: the same again (nothing consumed).
    assert.deepEqual(concat(await Array.fromAsync(spool.readable())), concat(input));
  }
  assert.deepEqual([...Deno.readDirSync(dir.path)], [], "nothing left");
});

Deno.test("anonymous temporary file: mode 0600, already gone from its directory, readable and writable", async () => {
  await using dir = await tempDir();
  const { file, path } = await anonymousTempFile("queuectl-test-", dir.path);
  try {
    if (Deno.build.os !== "windows") {
      assert.equal(path, null);
      assert.deepEqual([...Deno.readDirSync(dir.path)], []);
      assert.equal((await file.stat()).mode! & 0o777, 0o600);
    }
    await file.write(new TextEncoder().encode("kept"));
    await file.seek(0, Deno.SeekMode.Start);
    const buf = new Uint8Array(4);
    assert.equal(await file.read(buf), 4);
    assert.equal(new TextDecoder().decode(buf), "kept");
  } finally {
    file.close();
    if (path !== null) await Deno.remove(path);
  }
});

Deno.test("input spool: in memory where no file can be made", async () => {
  await using dir = await tempDir();
  await using spool = await InputSpool.create(dir.file("missing"));
  const input = chunks(3, 1000);
  await pass(spool, input);
  assert.equal(spool.onFile, false);
  assert.deepEqual(concat(await Array.fromAsync(spool.readable())), concat(input));
});

Deno.test("input spool: in memory only up to its bound, then a clear error instead of running out of memory", async () => {
  await using dir = await tempDir();
  await using spool = await InputSpool.create(dir.file("missing"), 25_000);
  await assert.rejects(
    () => pass(spool, chunks(3, 10_000)),
    (err: unknown) => {
      assert.ok(err instanceof InvalidInput);
      assert.match(
        err.message,
        /^Cannot keep the input until it ends: the temporary file failed \(.+\) and more than 25000 bytes would stay in memory; nothing was enqueued$/,
      );
      assert.match(err.hint ?? "", /TMPDIR/);
      return true;
    },
  );
});

const { ignore: noTmpfs } = await faultNeeds("input spool on a full disk", ["tmpfs"]);

Deno.test({
  name: "input spool: a disk that fills up keeps what was written, the rest in memory",
  ignore: noTmpfs,
  fn: async () => {
    await using disk = await mountTmpfs(1024 * 1024);
    await using spool = await InputSpool.create(disk.path);
    // 2 MB through a 1 MiB disk, in chunks that do not divide it: it fills mid-chunk.
    const input = chunks(30, 70_001);
    await pass(spool, input);
    assert.equal(spool.onFile, false, "the disk filled up");
    assert.ok(await disk.availableBytes() < 100_000, "the first bytes on disk");
    assert.deepEqual(concat(await Array.fromAsync(spool.readable())), concat(input));
  },
});
