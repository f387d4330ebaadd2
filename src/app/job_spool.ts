/**
 * Where a bulk enqueue from a pipe keeps its input until the input has ended, so that the insert's
 * transaction (on SQLite the database's one write lock) is held for the insert only, never while
 * waiting for a slow producer (docs/architecture.md, "Bulk enqueue from a pipe").
 *
 * The bytes as read, in a temporary file (mode 0600 in `$TMPDIR`, unlinked at once: nothing is left
 * behind when the process is interrupted). Where no file can be made, or a
 * write to it fails (a full disk), the bytes from then on stay in memory, at most
 * {@link SPOOL_MEMORY_MAX} bytes (then the enqueue fails, nothing enqueued, rather than the
 * process running out of memory); reading gives the file's bytes, then those, in order.
 */
import { InvalidInput } from "../core/errors.ts";
import { anonymousTempFile } from "./job_file.ts";

/** Bytes of input kept in memory at most, where the temporary file cannot take them. */
export const SPOOL_MEMORY_MAX = 256 * 1024 * 1024;

export class InputSpool implements AsyncDisposable {
  #file: Deno.FsFile | null;
  readonly #path: string | null;
  /** Bytes in the file, what a failed write wrote before it failed included. */
  #written = 0;
  readonly #memory: Uint8Array[] = [];
  #memoryBytes = 0;
  readonly #memoryMax: number;
  /** Why the bytes went to memory (no file, or the write that failed). */
  #why = "";

  private constructor(
    path: string | null,
    file: Deno.FsFile | null,
    memoryMax: number,
    why = "",
  ) {
    this.#path = path;
    this.#file = file;
    this.#memoryMax = memoryMax;
    this.#why = why;
  }

  /**
   * A spool in a new temporary file (in `dir`, default `$TMPDIR`; removed from the directory at
   * once, see anonymousTempFile), or in memory if none can be made.
   */
  static async create(
    dir?: string,
    memoryMax: number = SPOOL_MEMORY_MAX,
  ): Promise<InputSpool> {
    try {
      const { file, path } = await anonymousTempFile("queuectl-input-", dir);
      return new InputSpool(path, file, memoryMax);
    } catch (err) {
      return new InputSpool(null, null, memoryMax, errorText(err));
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
      this.#remember(chunk);
      return;
    }
    let at = 0;
    try {
      while (at < chunk.length) at += this.#file.writeSync(chunk.subarray(at));
      this.#written += chunk.length;
    } catch (err) {
      // A full disk, say: the rest of this chunk and all later ones in memory.
      this.#written += at;
      this.#why = errorText(err);
      this.#remember(chunk.subarray(at));
    }
  }

  #remember(bytes: Uint8Array): void {
    if (this.#memoryBytes + bytes.length > this.#memoryMax) {
      throw new InvalidInput(
        `Cannot keep the input until it ends: the temporary file failed (${this.#why}) and ` +
          `more than ${this.#memoryMax} bytes would stay in memory; nothing was enqueued`,
        { hint: "set TMPDIR to a directory with room, or give the jobs as a file: --file PATH" },
      );
    }
    this.#memoryBytes += bytes.length;
    this.#memory.push(bytes.slice());
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

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
