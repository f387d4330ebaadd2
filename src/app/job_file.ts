/**
 * Reading a job file as it streams (`enqueue --file`, issue 15.6): JSON Lines are decoded and
 * parsed one line at a time, so a file of millions of jobs never sits in memory whole; a JSON array
 * (the other accepted form) is read and parsed whole (parseJobFile). The same strictness as
 * parseJobFile: invalid UTF-8 and a key given twice are refused, naming the line.
 */
import { InvalidInput } from "../core/errors.ts";
import { decodeUtf8Lines, findDuplicateKey } from "../core/json_input.ts";
import { quote } from "../core/text.ts";
import {
  type BulkEnqueued,
  checkJobSpecs,
  type Ctx,
  enqueueStream,
  type EnqueueStreamOptions,
  jsonErrorMessage,
  parseJobFile,
} from "./queue.ts";

const NEWLINE = 0x0a;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Appends `b` to `a` (a new array; `a` is only a line's tail). */
function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Whether the first non-blank byte (after a byte order mark) opens a JSON array. */
function opensArray(bytes: Uint8Array): boolean | undefined {
  let i = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  while (
    i < bytes.length &&
    (bytes[i] === 0x20 || bytes[i] === 0x09 || bytes[i] === 0x0a || bytes[i] === 0x0d)
  ) i++;
  return i < bytes.length ? bytes[i] === 0x5b : undefined;
}

/** One job spec of a file, with where it came from (`line N: `). */
export interface FileSpec {
  value: unknown;
  where: string;
}

/**
 * The job specs of a job file, in order, in groups (one per chunk read: an async step per line
 * costs more than the line's own parsing at a million lines). Throws InvalidInput on invalid
 * UTF-8, invalid JSON or a duplicate key, naming the line; the caller's transaction then rolls back
 * whatever was read before.
 */
export async function* jobFileSpecs(
  input: ReadableStream<Uint8Array>,
): AsyncGenerator<FileSpec[]> {
  let tail: Uint8Array = new Uint8Array(0);
  let lineNo = 0;
  /** Undecided until the first non-blank byte: true = a JSON array, false = JSON Lines. */
  let array: boolean | undefined;
  const whole: Uint8Array[] = [];
  function parseText(text: string): FileSpec | null {
    lineNo++;
    const line = text.trim();
    if (line === "") return null;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new InvalidInput(`line ${lineNo}: invalid JSON: ${jsonErrorMessage(err)}`);
    }
    const dup = findDuplicateKey(line);
    if (dup) {
      throw new InvalidInput(`line ${lineNo}: duplicate key ${quote(dup.key)}`, {
        hint: "give each field once",
      });
    }
    return { value, where: `line ${lineNo}: ` };
  }
  function parseLine(bytes: Uint8Array): FileSpec | null {
    let text: string;
    try {
      text = strictUtf8.decode(bytes);
    } catch {
      throw new InvalidInput(`line ${lineNo + 1}: invalid UTF-8`, {
        hint: "save the file as UTF-8",
      });
    }
    return parseText(text);
  }
  /** The specs of `bytes`, whole lines each ending with a newline. */
  function parseLines(bytes: Uint8Array): FileSpec[] {
    const specs: FileSpec[] = [];
    let text: string | undefined;
    try {
      text = strictUtf8.decode(bytes); // the chunk at once (a decode per line costs more)
    } catch {
      // Line by line, to name the line with the invalid UTF-8.
      let start = 0;
      for (let nl = bytes.indexOf(NEWLINE); nl >= 0; nl = bytes.indexOf(NEWLINE, start)) {
        const spec = parseLine(bytes.subarray(start, nl));
        if (spec) specs.push(spec);
        start = nl + 1;
      }
      return specs;
    }
    let start = 0;
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
      const spec = parseText(text.slice(start, nl));
      if (spec) specs.push(spec);
      start = nl + 1;
    }
    return specs;
  }
  for await (const chunk of input) {
    if (array === undefined) {
      array = opensArray(concat(tail, chunk));
      if (array === undefined) {
        tail = concat(tail, chunk); // blank so far
        continue;
      }
    }
    if (array) {
      whole.push(concat(tail, chunk));
      tail = new Uint8Array(0);
      continue;
    }
    const bytes = concat(tail, chunk);
    const end = bytes.lastIndexOf(NEWLINE) + 1;
    if (end > 0) {
      const specs = parseLines(bytes.subarray(0, end));
      if (specs.length > 0) yield specs;
    }
    tail = bytes.slice(end);
  }
  if (array) {
    const all = new Uint8Array(whole.reduce((n, b) => n + b.length, 0));
    let at = 0;
    for (const b of whole) {
      all.set(b, at);
      at += b.length;
    }
    const decoded = decodeUtf8Lines(all);
    if ("badLine" in decoded) {
      throw new InvalidInput(`line ${decoded.badLine}: invalid UTF-8`, {
        hint: "save the file as UTF-8",
      });
    }
    yield parseJobFile(decoded.text);
    return;
  }
  if (tail.length > 0) {
    const spec = parseLine(tail);
    if (spec) yield [spec];
  }
}

/**
 * Enqueues a job file (`enqueue --file`) in one transaction, as {@link enqueueStream} does.
 * `spool`: the input may come slowly (a pipe, a terminal). It is then read to its end and checked
 * (a bad job fails as soon as it is read) before the transaction begins, and kept meanwhile
 * (app/job_spool.ts): no write lock or transaction waits on the producer.
 */
export async function enqueueFile(
  ctx: Ctx,
  input: ReadableStream<Uint8Array>,
  opts: EnqueueStreamOptions & { spool?: boolean } = {},
): Promise<BulkEnqueued> {
  if (!opts.spool) return await enqueueStream(ctx, jobFileSpecs(input), opts);
  const { InputSpool } = await import("./job_spool.ts");
  await using spool = await InputSpool.create();
  await checkJobSpecs(ctx, jobFileSpecs(spool.copy(input)), opts);
  return await enqueueStream(ctx, jobFileSpecs(spool.readable()), opts);
}

/**
 * A new temporary file (mode 0600, in `$TMPDIR` or `dir`) open for reading and writing, already
 * removed from its directory where the system allows it (Unix): what it holds is gone when the
 * process ends, however it ends (Ctrl-C, SIGKILL), never left behind. `path` is set only where the
 * removal failed (Windows keeps an open file): the caller removes it when done.
 */
export async function anonymousTempFile(
  prefix: string,
  dir?: string,
): Promise<{ file: Deno.FsFile; path: string | null }> {
  const path = await Deno.makeTempFile({ prefix, dir });
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true, write: true });
  } catch (err) {
    await Deno.remove(path).catch(() => {});
    throw err;
  }
  try {
    await Deno.remove(path);
    return { file, path: null };
  } catch {
    return { file, path };
  }
}
