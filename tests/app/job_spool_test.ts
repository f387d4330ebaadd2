/** The spool of a bulk enqueue from a pipe (app/job_spool.ts): what goes in comes out, in order. */
import assert from "node:assert/strict";
import { InputSpool } from "../../src/app/job_spool.ts";
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

Deno.test("input spool: the bytes come back as read, in order, and the file is removed", async () => {
  await using dir = await tempDir();
  const input = chunks(40, 10_000);
  let path: string;
  {
    await using spool = await InputSpool.create(dir.path);
    await pass(spool, input);
    assert.ok(spool.onFile);
    const files = [...Deno.readDirSync(dir.path)].map((e) => e.name);
    assert.equal(files.length, 1);
    path = `${dir.path}/${files[0]}`;
    if (Deno.build.os !== "windows") assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    assert.equal(Deno.statSync(path).size, 400_000);
    assert.deepEqual(concat(await Array.fromAsync(spool.readable())), concat(input));
    // Read twice: the same again (nothing consumed).
    assert.deepEqual(concat(await Array.fromAsync(spool.readable())), concat(input));
  }
  assert.throws(() => Deno.statSync(path), Deno.errors.NotFound);
});

Deno.test("input spool: in memory where no file can be made", async () => {
  await using dir = await tempDir();
  await using spool = await InputSpool.create(dir.file("missing"));
  const input = chunks(3, 1000);
  await pass(spool, input);
  assert.equal(spool.onFile, false);
  assert.deepEqual(concat(await Array.fromAsync(spool.readable())), concat(input));
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
    const [file] = [...Deno.readDirSync(disk.path)];
    assert.ok(Deno.statSync(disk.file(file.name)).size > 500_000, "the first bytes on disk");
    assert.deepEqual(concat(await Array.fromAsync(spool.readable())), concat(input));
  },
});
