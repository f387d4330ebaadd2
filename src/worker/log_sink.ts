/**
 * Where supervisor, worker and maintenance lines go: stdout, or a file shared by several
 * processes (`worker start --log`, `--detach`). Whole lines per write, so lines never mix; stdout
 * is written asynchronously, never waited for (see {@link LineQueue}).
 *
 * A line carries a job's command, error or id, written by whoever enqueued it: its control and
 * bidi characters (and newlines) are written as visible escapes (core/text.ts), so neither the
 * terminal of `worker start` nor one that shows the log file (`tail -f`) obeys them, and one
 * event stays one line.
 */
import { oneSafeLine, visible } from "../core/text.ts";

const encoder = new TextEncoder();

/**
 * Bytes of lines waiting for stdout at most; more are dropped (and counted) rather than waited
 * for. About 10,000 lines of a busy worker.
 */
export const STDOUT_BACKLOG_MAX = 1 << 20;

/** How long a line may wait for others to share its write (an async write costs ~50 µs of CPU). */
export const LINE_BATCH_MS = 20;
/**
 * Most bytes per write: a write to a pipe of at most PIPE_BUF (4096 on Linux) bytes is never
 * interleaved with another process's, so whole lines from several workers never mix.
 */
const BATCH_BYTES = 4096;

/**
 * Lines on their way to a writer (stdout) by async writes, one at a time, of the lines gathered
 * for up to {@link LINE_BATCH_MS}: a reader that stops reading (a terminal paused with Ctrl-S,
 * `worker start | less` left at a page, a stalled pipe) must not stop the process. A synchronous
 * write blocked the event loop once the pipe was full: the workers stopped claiming, renewing
 * leases and obeying their supervisor until the reader went on (on PostgreSQL another host's
 * maintenance then rescued their jobs as lost). At most `max` bytes wait; later lines are
 * dropped, counted, and said after the backlog is written.
 */
export class LineQueue {
  #lines: Uint8Array[] = [];
  #bytes = 0;
  #dropped = 0;
  /** The write loop, while it runs. */
  #writing: Promise<void> | null = null;
  /** The timer that starts the write loop once a batch was gathered. */
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The writer failed (stdout closed: the reader is gone, `| head`): nothing more is written. */
  #closed = false;
  readonly #write: (bytes: Uint8Array) => Promise<number>;
  readonly #max: number;
  readonly #batchMs: number;

  constructor(
    write: (bytes: Uint8Array) => Promise<number>,
    opts: { max?: number; batchMs?: number } = {},
  ) {
    this.#write = write;
    this.#max = opts.max ?? STDOUT_BACKLOG_MAX;
    this.#batchMs = opts.batchMs ?? LINE_BATCH_MS;
  }

  /** Queues one line (without its newline); never waits, never throws. */
  push(line: string): void {
    if (this.#closed) return;
    const bytes = encoder.encode(line + "\n");
    if (this.#bytes + bytes.length > this.#max) {
      this.#dropped++;
      return;
    }
    this.#lines.push(bytes);
    this.#bytes += bytes.length;
    if (this.#writing === null && this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#start(), this.#batchMs);
    }
  }

  #start(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#writing ??= this.#drain().finally(() => this.#writing = null);
  }

  async #drain(): Promise<void> {
    while (this.#lines.length > 0) {
      // Whole lines up to BATCH_BYTES (a longer line alone).
      let n = 1;
      let size = this.#lines[0].length;
      while (n < this.#lines.length && size + this.#lines[n].length <= BATCH_BYTES) {
        size += this.#lines[n++].length;
      }
      const batch = n === 1 ? this.#lines[0] : new Uint8Array(size);
      if (n > 1) {
        let at = 0;
        for (let i = 0; i < n; i++) {
          batch.set(this.#lines[i], at);
          at += this.#lines[i].length;
        }
      }
      this.#lines.splice(0, n);
      this.#bytes -= size;
      try {
        let off = 0;
        while (off < batch.length) off += await this.#write(batch.subarray(off));
      } catch {
        // Logging must never kill a worker.
        this.#closed = true;
        this.#lines = [];
        this.#bytes = 0;
        return;
      }
      if (this.#lines.length === 0 && this.#dropped > 0) {
        const dropped = this.#dropped;
        this.#dropped = 0;
        this.#lines.push(encoder.encode(
          `[pid ${Deno.pid}] ${dropped} log line${dropped === 1 ? "" : "s"} dropped: stdout was ` +
            `not read (the jobs' states and runs are in the database: queuectl list, show)\n`,
        ));
      }
    }
  }

  /** Writes what waits now, and waits for it at most `ms`; false when some still waits. */
  async flush(ms: number): Promise<boolean> {
    if (this.#timer !== undefined) this.#start();
    if (this.#writing === null) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#writing, new Promise((r) => timer = setTimeout(r, ms))]);
    clearTimeout(timer);
    return this.#writing === null && this.#timer === undefined;
  }
}

/** This process's stdout lines (made on first use). */
let stdoutQueue: LineQueue | null = null;

/** Writes whole lines to stdout (lines from several processes never mix, see LineQueue). */
export function stdoutLines(): (line: string) => void {
  stdoutQueue ??= new LineQueue((bytes) => Deno.stdout.write(bytes));
  const queue = stdoutQueue;
  return (line) => queue.push(visible(line));
}

/**
 * Waits until the lines queued for stdout are written, at most `ms`; false when some are still
 * waiting then (a process about to exit: a reader that does not read must not keep it alive).
 */
export function flushStdoutLines(ms: number): Promise<boolean> {
  return stdoutQueue?.flush(ms) ?? Promise.resolve(true);
}

/**
 * How often (at most) a process writing a log file checks that the file at its path is still the
 * one it writes to (see {@link fileLines}).
 */
export const LOG_RECHECK_MS = 1000;

/**
 * Appends timestamped lines to a file (O_APPEND: several processes may share it). A write that
 * fails (a full disk, a quota) never stops the process: the line is lost. The first loss of an
 * outage is said once on stderr (`warn`), and once writes succeed again the file gets one line
 * saying how many lines this process lost, and why, before the next line.
 *
 * Rotation: a detached supervisor runs for months, and logrotate's default moves the file away
 * (and may create a new one), after which a process that kept its descriptor would write to the
 * moved file forever. So before a write, at most every `recheckMs`, the path is looked at: when it
 * names another file or none, the file is opened again at the path (created, mode 0600). A
 * `copytruncate` rotation keeps the file: O_APPEND writes go on at its new end.
 */
export function fileLines(
  path: string,
  warn: (message: string) => void = warnOnStderr,
  recheckMs = LOG_RECHECK_MS,
): (line: string) => void {
  const open = () => Deno.openSync(path, { append: true, create: true, mode: 0o600 });
  let file = open();
  let identity = identityOf(file.statSync());
  let checkedAt = performance.now();
  /** Opens the path again when it no longer names the open file (see above). */
  const followRotation = () => {
    const now = performance.now();
    if (now - checkedAt < recheckMs) return;
    checkedAt = now;
    let current: string | null = null;
    try {
      current = identityOf(Deno.statSync(path));
    } catch {
      // moved away, not replaced (yet): a new file is made below
    }
    if (current === identity) return;
    try {
      const next = open();
      const id = identityOf(next.statSync());
      file.close();
      file = next;
      identity = id;
    } catch {
      // the directory is gone or not writable: keep writing where we were
    }
  };
  let lost = 0;
  let why = "";
  /** A write failed after part of its text was written: the file ends mid-line. */
  let torn = false;
  return (line) => {
    const stamp = new Date().toISOString();
    let text = `${stamp} ${visible(line)}\n`;
    if (lost > 0) {
      const note = `${stamp} [log] ${lost} line${lost === 1 ? "" : "s"} of process ${Deno.pid} ` +
        `could not be written to this file (${visible(why)})\n`;
      text = (torn ? "\n" : "") + note + text;
    }
    followRotation();
    const failed = writeAll(file, text);
    if (failed === null) {
      lost = 0;
      torn = false;
      return;
    }
    if (lost === 0) {
      warn(
        `queuectl: cannot write to the log file ${path}: ${failed.error}; ` +
          `its lines are lost until it can be written again`,
      );
    }
    lost++;
    why = failed.error;
    torn ||= failed.written > 0;
  };
}

/** A file's identity for the rotation check: device and inode (null where there are none). */
function identityOf(info: Deno.FileInfo): string {
  return `${info.dev}:${info.ino}`;
}

function warnOnStderr(message: string): void {
  // Not waited for: a stderr nobody reads must not stop the process either.
  Deno.stderr.write(encoder.encode(oneSafeLine(message) + "\n")).catch(() => {});
}

/** Writes all of `text`; on failure, what failed and how many bytes were written before. */
function writeAll(
  w: { writeSync(p: Uint8Array): number },
  text: string,
): { error: string; written: number } | null {
  const bytes = encoder.encode(text);
  let off = 0;
  try {
    while (off < bytes.length) off += w.writeSync(bytes.subarray(off));
    return null;
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err), written: off };
  }
}
