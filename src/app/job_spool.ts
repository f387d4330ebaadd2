/**
 * Where a bulk enqueue from a pipe keeps its input until the input has ended, so that the insert's
 * transaction (on SQLite the database's one write lock) is held for the insert only, never while
 * waiting for a slow producer (docs/architecture.md, "Bulk enqueue from a pipe").
 *
 * The bytes as read, in a temporary file (mode 0600 in `$TMPDIR`, unlinked at once: nothing is left
 * behind when the process is interrupted). Where no file can be made, or a
 * write to it fails (a full disk), the bytes from then on stay in memory; reading gives the file's
 * bytes, then those, in order.
 */
import { anonymousTempFile } from "./job_file.ts";

export class InputSpool implements AsyncDisposable {
  #file: Deno.FsFile | null;
  readonly #path: string | null;
  /** Bytes in the file; a failed write is cut back to here. */
  #written = 0;
  readonly #memory: Uint8Array[] = [];

  private constructor(path: string | null, file: Deno.FsFile | null) {
    this.#path = path;
    this.#file = file;
  }

  /**
   * A spool in a new temporary file (in `dir`, default `$TMPDIR`; removed from the directory at
   * once, see anonymousTempFile), or in memory if none can be made.
   */
  static async create(dir?: string): Promise<InputSpool> {
    try {
      const { file, path } = await anonymousTempFile("queuectl-input-", dir);
      return new InputSpool(path, file);
    } catch {
      return new InputSpool(null, null);
    }
  }

  /** True while the bytes go to the file (false: in memory from the start or since a failure). */
  get onFile(): boolean {
    return this.#file !== null && this.#memory.length === 0;
  }

  /** `input` as it is read, each chunk kept first. */
  copy(input: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    return ReadableStream.from(this.#copied(input));
  }

  async *#copied(input: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of input) {
      this.#write(chunk);
      yield chunk;
    }
  }

  #write(chunk: Uint8Array): void {
    if (this.#file === null || this.#memory.length > 0) {
      this.#memory.push(chunk.slice());
      return;
    }
    let at = 0;
    try {
      while (at < chunk.length) at += this.#file.writeSync(chunk.subarray(at));
      this.#written += chunk.length;
    } catch {
      // A full disk, say: the rest of this chunk and all later ones in memory.
      this.#written += at;
      this.#memory.push(chunk.slice(at));
    }
  }

  /** The bytes kept, in order. */
  readable(): ReadableStream<Uint8Array> {
    return ReadableStream.from(this.#kept());
  }

  async *#kept(): AsyncGenerator<Uint8Array> {
    const file = this.#file;
    if (file !== null && this.#written > 0) {
      await file.seek(0, Deno.SeekMode.Start);
      for (let left = this.#written; left > 0;) {
        const buf = new Uint8Array(Math.min(left, 64 * 1024));
        const n = await file.read(buf);
        if (n === null) throw new Error("the spooled input ended early");
        left -= n;
        yield buf.subarray(0, n);
      }
    }
    yield* this.#memory;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#file?.close();
    this.#file = null;
    if (this.#path !== null) await Deno.remove(this.#path).catch(() => {});
  }
}
