/** A job's output, bounded: each pipe is read into a buffer that keeps only its last bytes. */
const decoder = new TextDecoder(); // non-fatal: invalid UTF-8 becomes U+FFFD
const EMPTY = new Uint8Array(0);

/** Keeps the last `limit` bytes pushed into it, in the chunks they arrived in. */
export class TailBuffer {
  dropped = false;
  /** Set by drain() once the pipe reached its end (or broke, or was cancelled). */
  closed = false;
  #chunks: Uint8Array[] = [];
  #head = 0; // index of the oldest chunk still kept
  #size = 0; // bytes in chunks[head..]
  readonly #limit: number;
  /** Told of every chunk pushed (live output, see {@link LiveOutput}); the chunk is not copied. */
  readonly #onPush: ((chunk: Uint8Array) => void) | undefined;

  constructor(limit: number, onPush?: (chunk: Uint8Array) => void) {
    this.#limit = Math.max(0, Math.floor(limit));
    this.#onPush = onPush;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#onPush?.(chunk);
    const limit = this.#limit;
    if (chunk.length >= limit) {
      // This chunk alone fills the buffer: keep its tail (a copy, not a view of a big buffer).
      if (chunk.length > limit || this.#size > 0) this.dropped = true;
      this.#chunks = limit === 0 ? [] : [chunk.length === limit ? chunk : chunk.slice(-limit)];
      this.#head = 0;
      this.#size = limit;
      return;
    }
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    // Drop whole chunks while the rest still holds `limit` bytes; the excess is cut in bytes().
    while (this.#size - this.#chunks[this.#head].length >= limit) {
      this.#size -= this.#chunks[this.#head].length;
      this.#chunks[this.#head] = EMPTY; // let the dropped chunk be collected now
      this.#head++;
      this.dropped = true;
    }
    if (this.#head > 64 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }

  bytes(): Uint8Array {
    const kept = this.#chunks.length - this.#head;
    if (kept === 0) return new Uint8Array(0);
    let all: Uint8Array;
    if (kept === 1) {
      all = this.#chunks[this.#head];
    } else {
      all = new Uint8Array(this.#size);
      let at = 0;
      for (let i = this.#head; i < this.#chunks.length; i++) {
        all.set(this.#chunks[i], at);
        at += this.#chunks[i].length;
      }
    }
    if (all.length > this.#limit) {
      this.dropped = true;
      all = all.subarray(all.length - this.#limit);
    }
    return all;
  }

  /**
   * The kept bytes as text. When the head was cut, up to 3 leading UTF-8 continuation bytes (the
   * rest of a character cut in half) are skipped rather than shown as U+FFFD. NUL becomes U+FFFD:
   * PostgreSQL rejects \u0000 in TEXT.
   */
  text(): string {
    if (this.#size === 0) return "";
    let bytes = this.bytes();
    if (this.dropped) {
      let skip = 0;
      while (skip < 3 && skip < bytes.length && (bytes[skip] & 0xc0) === 0x80) skip++;
      if (skip > 0) bytes = bytes.subarray(skip);
    }
    const s = decoder.decode(bytes);
    return s.includes("\0") ? s.replaceAll("\0", "\uFFFD") : s;
  }
}

/** Size of one pipe read. */
const READ_SIZE = 65536;
/** Read buffers of finished jobs, for the next ones (at most a few are kept). */
const spareBuffers: ArrayBuffer[] = [];

/**
 * Reads a pipe to its end into `into`. BYOB reads into a buffer taken from spareBuffers and given
 * back at the end: the default reader would allocate a fresh 64 KiB buffer for every read, at
 * least two per job even when it prints nothing. Only the bytes read are copied into the tail.
 */
export async function drain(reader: ReadableStreamBYOBReader, into: TailBuffer): Promise<void> {
  let buffer = spareBuffers.pop() ?? new ArrayBuffer(READ_SIZE);
  try {
    for (;;) {
      // The read transfers `buffer` and hands its memory back as `value.buffer`.
      const { value, done } = await reader.read(new Uint8Array(buffer));
      if (value === undefined) return;
      buffer = value.buffer as ArrayBuffer;
      if (value.length > 0) into.push(value.slice());
      if (done) return;
    }
  } catch {
    // cancelled or the pipe broke: keep what we have
  } finally {
    into.closed = true;
    // A transferred-away buffer is detached (byteLength 0): not reusable.
    if (buffer.byteLength === READ_SIZE && spareBuffers.length < 8) spareBuffers.push(buffer);
  }
}

/** How often a running job's new output is written to the store, and how much makes it sooner. */
export const LIVE_FLUSH_MS = 1000;
export const LIVE_FLUSH_BYTES = 64 * 1024;
/**
 * The least time from the end of one write to the start of the next, however fast the job
 * prints. Without it a job printing 100 MB made a write per 64 KiB: the worker spent its time
 * writing (50 times the job's own time) and, not reading its pipes meanwhile, slowed the job as much.
 */
export const LIVE_FLUSH_GAP_MS = 100;

/**
 * A running job's output on its way to the store while the job runs (`logs --follow`, the
 * dashboard): bytes are collected as the pipes deliver them and handed to `write` at most once per
 * {@link LIVE_FLUSH_MS} (sooner once {@link LIVE_FLUSH_BYTES} are waiting, but never less than
 * {@link LIVE_FLUSH_GAP_MS} after the previous write ended), one write at a time. A job that
 * prints nothing costs nothing: no timer, no write. At most the last `limit` bytes of each stream
 * wait between writes (the store keeps only the last `limit` anyway).
 */
export class LiveOutput {
  readonly #limit: number;
  readonly #write: (chunk: { stdout: string; stderr: string }) => Promise<void>;
  readonly #decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  #waiting = { stdout: new TailBuffer(0), stderr: new TailBuffer(0) };
  #bytes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the timer fires (performance.now()), Infinity when none is set. */
  #timerAt = Infinity;
  /** When the last write ended (performance.now()). */
  #lastEnd = -Infinity;
  #inFlight: Promise<void> | null = null;
  #closed = false;

  constructor(
    limit: number,
    write: (chunk: { stdout: string; stderr: string }) => Promise<void>,
  ) {
    this.#limit = Math.max(0, Math.floor(limit));
    this.#write = write;
    this.#waiting = { stdout: new TailBuffer(this.#limit), stderr: new TailBuffer(this.#limit) };
  }

  /** Bytes the job wrote to one of its pipes (a listener of the executor's tail buffers). */
  push(stream: "stdout" | "stderr", chunk: Uint8Array): void {
    if (this.#closed || this.#limit === 0 || chunk.length === 0) return;
    this.#waiting[stream].push(chunk);
    this.#bytes += chunk.length;
    // During a write, what arrives is scheduled when the write ends.
    if (this.#inFlight === null) this.#schedule();
  }

  /** Sets the next write's time from what waits: at once, after the gap, or after a second. */
  #schedule(): void {
    if (this.#bytes === 0 || this.#closed) return;
    const now = performance.now();
    const at = this.#bytes >= LIVE_FLUSH_BYTES
      ? this.#lastEnd + LIVE_FLUSH_GAP_MS
      : Math.max(now, this.#lastEnd) + LIVE_FLUSH_MS;
    if (at <= now) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
      void this.#flush();
      return;
    }
    if (this.#timerAt <= at) return; // a write comes sooner anyway
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      void this.#flush();
    }, at - now);
  }

  async #flush(): Promise<void> {
    if (this.#closed || this.#bytes === 0) return;
    const taken = this.#waiting;
    this.#waiting = { stdout: new TailBuffer(this.#limit), stderr: new TailBuffer(this.#limit) };
    this.#bytes = 0;
    const text = (s: "stdout" | "stderr") => {
      // Streaming decode: a character cut between two writes is completed by the next one.
      const t = this.#decoders[s].decode(taken[s].bytes(), { stream: true });
      return t.includes("\0") ? t.replaceAll("\0", "\uFFFD") : t;
    };
    const chunk = { stdout: text("stdout"), stderr: text("stderr") };
    this.#inFlight = this.#write(chunk).catch(() => {
      // Live output is a view: the settle writes the whole captured output anyway.
    });
    await this.#inFlight;
    this.#inFlight = null;
    this.#lastEnd = performance.now();
    this.#schedule();
  }

  /** No more writes; resolves once the write under way (if any) is over. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    await this.#inFlight;
  }
}
