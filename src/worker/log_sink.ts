/**
 * Where supervisor, worker and maintenance lines go: stdout, or a file shared by several
 * processes (`worker start --log`, `--detach`). One write per line, so lines never mix.
 *
 * A line carries a job's command, error or id, written by whoever enqueued it: its control and
 * bidi characters (and newlines) are written as visible escapes (core/text.ts), so neither the
 * terminal of `worker start` nor one that shows the log file (`tail -f`) obeys them, and one
 * event stays one line.
 */
import { visible } from "../core/text.ts";

const encoder = new TextEncoder();

/** Writes whole lines to stdout in one write each (lines from several processes never mix). */
export function stdoutLines(): (line: string) => void {
  return (line) => writeAll(Deno.stdout, visible(line) + "\n");
}

/** Appends timestamped lines to a file (O_APPEND: several processes may share it). */
export function fileLines(path: string): (line: string) => void {
  const file = Deno.openSync(path, { append: true, create: true, mode: 0o600 });
  return (line) => writeAll(file, `${new Date().toISOString()} ${visible(line)}\n`);
}

function writeAll(w: { writeSync(p: Uint8Array): number }, text: string): void {
  try {
    const bytes = encoder.encode(text);
    let off = 0;
    while (off < bytes.length) off += w.writeSync(bytes.subarray(off));
  } catch {
    // stdout closed (pipe reader gone): logging must never kill a worker
  }
}
