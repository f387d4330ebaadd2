/** `queuectl enqueue '<json>' | --file F | -- command words...` */
import { buildCommand } from "@stricli/core";
import { InvalidInput } from "../core/errors.ts";
import { quote } from "../core/text.ts";
import { validateEnvName } from "../core/job.ts";
import { commandFromWords } from "../core/shell_words.ts";
import { callerDirectory, enqueue, parseJobArgument, parseOnDuplicate } from "../app/queue.ts";
import { anonymousTempFile, enqueueFile } from "../app/job_file.ts";
import { type CliContext, type GlobalFlags, globalFlags, withStore } from "./context.ts";
import type { Output } from "./render.ts";
import { parseWaitTimeout, waitAndReport } from "./wait.ts";

interface EnqueueFlags extends GlobalFlags {
  file?: string;
  id?: string;
  maxRetries?: string;
  priority?: string;
  delay?: string;
  runAt?: string;
  timeout?: string;
  queue?: string;
  cwd?: string;
  env?: string[];
  after?: string[];
  uniqueKey?: string;
  onDuplicate?: string;
  wait: boolean;
  waitTimeout?: string;
}

/**
 * True when the input of `--file` may come slowly (a pipe, a terminal, a socket: stdin that is not
 * a regular file): then it is read whole before the insert's transaction begins (app/job_spool.ts).
 */
function mayBeSlow(path: string): boolean {
  if (path !== "-") return false; // openInput takes only regular files
  try {
    return !Deno.statSync("/dev/stdin").isFile;
  } catch {
    return true; // no /dev/stdin (Windows): spool, the safe side
  }
}

/** Opens `--file` (`-` = stdin) for reading as a stream (decoded line by line: app/job_file.ts). */
async function openInput(path: string): Promise<ReadableStream<Uint8Array>> {
  if (path === "-") return Deno.stdin.readable;
  try {
    const file = await Deno.open(path, { read: true });
    if (!(await file.stat()).isFile) {
      file.close();
      throw new InvalidInput(`Cannot read ${quote(path)}: not a file`);
    }
    return file.readable;
  } catch (err) {
    if (err instanceof InvalidInput) throw err;
    if (err instanceof Deno.errors.NotFound) {
      throw new InvalidInput(`Cannot read ${quote(path)}: no such file`);
    }
    throw new InvalidInput(`Cannot read ${quote(path)}: ${(err as Error).message}`);
  }
}

function num(text: string, what: string): number {
  const n = Number(text);
  if (text.trim() === "" || Number.isNaN(n)) {
    throw new InvalidInput(`Invalid ${what}: expected a number, got ${quote(text)}`);
  }
  return n;
}

/**
 * `--env KEY=VALUE` and `--env KEY` (the caller's value) → the job's `env` object; a later flag
 * for the same name wins. Names and values are validated with the job (core/job.ts).
 */
export function envFromFlags(
  given: readonly string[],
  callerEnv: (name: string) => string | undefined,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of given) {
    const eq = item.indexOf("=");
    const name = eq < 0 ? item : item.slice(0, eq);
    validateEnvName(name, "--env");
    if (eq >= 0) {
      env[name] = item.slice(eq + 1);
      continue;
    }
    const value = callerEnv(name);
    if (value === undefined) {
      throw new InvalidInput(`--env ${name}: no such variable in the environment`, {
        hint: `give its value: --env ${name}=VALUE`,
      });
    }
    env[name] = value;
  }
  return env;
}

/** The job spec built from `--` words and option flags. */
function specFromWords(
  words: readonly string[],
  flags: EnqueueFlags,
  callerEnv: (name: string) => string | undefined,
): Record<string, unknown> {
  // Each word quoted for the shell, so that the job runs exactly these words (see shell_words.ts).
  const spec: Record<string, unknown> = { command: commandFromWords(words) };
  if (flags.id !== undefined) spec.id = flags.id;
  if (flags.maxRetries !== undefined) spec.max_retries = num(flags.maxRetries, "--max-retries");
  if (flags.priority !== undefined) spec.priority = num(flags.priority, "--priority");
  if (flags.delay !== undefined) spec.delay = flags.delay;
  if (flags.runAt !== undefined) spec.run_at = flags.runAt;
  if (flags.timeout !== undefined) spec.timeout = num(flags.timeout, "--timeout");
  if (flags.queue !== undefined) spec.queue = flags.queue;
  if (flags.cwd !== undefined) spec.cwd = flags.cwd;
  if (flags.env !== undefined) spec.env = envFromFlags(flags.env, callerEnv);
  // --after A,B and --after A --after B alike.
  if (flags.after !== undefined) {
    spec.after = flags.after.flatMap((a) => a.split(",")).map((a) => a.trim());
  }
  if (flags.uniqueKey !== undefined) spec.unique_key = flags.uniqueKey;
  return spec;
}

/** The ids as `printJson(ids)` would print them, one batch of lines at a time. */
async function printJsonIds(out: Output, idLines: Iterable<string> | AsyncIterable<string>) {
  out.stdout.write("[");
  let first = true;
  for await (const lines of idLines) {
    const items = lines.split("\n").map((id) => `  ${JSON.stringify(id)}`).join(",\n");
    out.stdout.write((first ? "\n" : ",\n") + items);
    first = false;
  }
  out.stdout.write("\n]\n");
}

/**
 * The ids of a job file, kept in a temporary file (0600, unlinked at once) until the insert
 * commits, then printed from it: ids are about 27 bytes a job, 270 MB for 10 million jobs (issue
 * 15.6: constant memory).
 */
class IdSpill {
  readonly #file: Deno.FsFile;
  /** Set only where the file could not be unlinked at once (see anonymousTempFile). */
  readonly #path: string | null;
  readonly #enc = new TextEncoder();
  private constructor(path: string | null, file: Deno.FsFile) {
    this.#path = path;
    this.#file = file;
  }
  static async create(): Promise<IdSpill> {
    const { file, path } = await anonymousTempFile("queuectl-ids-");
    return new IdSpill(path, file);
  }
  write(lines: string): void {
    const bytes = this.#enc.encode(lines + "\n");
    for (let at = 0; at < bytes.length;) at += this.#file.writeSync(bytes.subarray(at));
  }
  /** The ids written, as lines ("\n"-joined) of at most about 64 KiB each. */
  async *lines(): AsyncGenerator<string> {
    await this.#file.seek(0, Deno.SeekMode.Start);
    const dec = new TextDecoder();
    const buf = new Uint8Array(64 * 1024);
    let carry = "";
    for (let n = await this.#file.read(buf); n !== null; n = await this.#file.read(buf)) {
      const text = carry + dec.decode(buf.subarray(0, n), { stream: true });
      const end = text.lastIndexOf("\n");
      if (end > 0) yield text.slice(0, end);
      carry = text.slice(end + 1);
    }
  }
  async [Symbol.asyncDispose](): Promise<void> {
    this.#file.close();
    if (this.#path !== null) await Deno.remove(this.#path).catch(() => {});
  }
}

const JOB_OPTION_FLAGS = [
  "id",
  "maxRetries",
  "priority",
  "delay",
  "runAt",
  "timeout",
  "queue",
  "cwd",
  "env",
  "after",
  "uniqueKey",
] as const;

async function run(this: CliContext, flags: EnqueueFlags, ...positional: string[]) {
  await withStore(this, flags, async (app, out) => {
    if (flags.waitTimeout !== undefined && !flags.wait) {
      throw new InvalidInput("--wait-timeout applies only with --wait");
    }
    const waitTimeoutMs = parseWaitTimeout(flags.waitTimeout, "--wait-timeout");
    const onDuplicate = flags.onDuplicate === undefined
      ? undefined
      : parseOnDuplicate(flags.onDuplicate);
    const dashdash = this.args.indexOf("--");
    const usesOptions = JOB_OPTION_FLAGS.filter((f) => flags[f] !== undefined);
    let specs: { value: unknown; where?: string }[] | undefined;
    if (dashdash >= 0) {
      if (flags.file !== undefined) {
        throw new InvalidInput("Give either --file or a command after --, not both");
      }
      const words = this.args.slice(dashdash + 1);
      if (words.length === 0) throw new InvalidInput("Missing command after --");
      specs = [{ value: specFromWords(words, flags, this.env) }];
    } else {
      if (usesOptions.length > 0) {
        throw new InvalidInput(
          `--${
            usesOptions[0].replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())
          } applies only to the form \`queuectl enqueue [options] -- <command words>\``,
          { hint: "put the field in the job JSON instead" },
        );
      }
      if (flags.file !== undefined) {
        if (positional.length > 0) throw new InvalidInput("Give either --file or a job, not both");
        specs = undefined; // streamed below
      } else if (positional.length === 1) {
        specs = [{ value: parseJobArgument(positional[0]) }];
      } else if (positional.length === 0) {
        throw new InvalidInput("Missing job", {
          hint: `e.g. queuectl enqueue '{"command":"echo hi"}' or queuectl enqueue -- echo hi`,
        });
      } else {
        throw new InvalidInput(`Expected one job JSON argument, got ${positional.length}`, {
          hint: `quote the JSON, or put the command words after --`,
        });
      }
    }
    // Jobs run where they were enqueued unless they say otherwise (see callerDirectory).
    const cwd = callerDirectory(this.env);
    // A file streams (constant memory: app/job_file.ts), its ids wait in a temporary file (kept
    // in memory instead where none can be made: an unwritable $TMPDIR).
    await using spill = specs === undefined && !flags.wait
      ? await IdSpill.create().catch(() => null)
      : null;
    if (spill) {
      const { existing } = await enqueueFile(app, await openInput(flags.file!), {
        cwd,
        onDuplicate,
        onIds: (lines) => spill.write(lines),
        spool: mayBeSlow(flags.file!),
      });
      // A job left out for the active job holding its unique key: that job's id instead.
      const reported = async function* (): AsyncGenerator<string> {
        for await (const lines of spill.lines()) {
          yield existing.size === 0
            ? lines
            : lines.split("\n").map((id) => existing.get(id) ?? id).join("\n");
        }
      };
      if (out.json) await printJsonIds(out, reported());
      else for await (const lines of reported()) out.line(lines);
      return;
    }
    // Ids as lines, one string per batch of jobs.
    const idLines = specs === undefined
      ? (await enqueueFile(app, await openInput(flags.file!), {
        cwd,
        onDuplicate,
        spool: mayBeSlow(flags.file!),
      })).idLines
      : [(await enqueue(app, specs, { cwd, onDuplicate })).join("\n")];
    if (flags.wait) {
      const ids = idLines.flatMap((lines) => lines.split("\n"));
      // Like `pueue add --follow`: the ids, then the outcome; exit 0 / 6 / 124 (see cli/wait.ts).
      if (!out.json) out.line(ids.join("\n"));
      return await waitAndReport(app, out, ids, waitTimeoutMs);
    }
    // One id per line however many (README, "Enqueue"): scripts read them. One write per batch.
    if (out.json) await printJsonIds(out, idLines);
    else for (const lines of idLines) out.line(lines);
  });
}

export const enqueueCommand = () =>
  buildCommand({
    func: run,
    parameters: {
      flags: {
        ...globalFlags,
        file: {
          kind: "parsed",
          parse: String,
          brief: "Read jobs from a file (JSON Lines or a JSON array; - = stdin), all or none",
          optional: true,
          placeholder: "path",
        },
        id: { kind: "parsed", parse: String, brief: "Job id (-- form)", optional: true },
        maxRetries: {
          kind: "parsed",
          parse: String,
          brief: "Retries after the first failure (-- form)",
          optional: true,
          placeholder: "n",
        },
        priority: {
          kind: "parsed",
          parse: String,
          brief: "Higher runs first (-- form)",
          optional: true,
          placeholder: "n",
        },
        delay: {
          kind: "parsed",
          parse: String,
          brief: "Run after this long, e.g. 30s, 5m (-- form)",
          optional: true,
          placeholder: "duration",
        },
        runAt: {
          kind: "parsed",
          parse: String,
          brief: "Run at this ISO-8601 time (-- form)",
          optional: true,
          placeholder: "time",
        },
        timeout: {
          kind: "parsed",
          parse: String,
          brief: "Kill the job after this many seconds (-- form)",
          optional: true,
          placeholder: "s",
        },
        queue: {
          kind: "parsed",
          parse: String,
          brief: "Queue name (-- form)",
          optional: true,
          placeholder: "name",
        },
        cwd: {
          kind: "parsed",
          parse: String,
          brief: "Run in this directory (-- form; default: the current directory)",
          optional: true,
          placeholder: "dir",
        },
        env: {
          kind: "parsed",
          parse: String,
          brief: "Set KEY=VALUE, or KEY to pass your value, for the job (-- form; repeatable)",
          optional: true,
          variadic: true,
          placeholder: "KEY[=VALUE]",
        },
        after: {
          kind: "parsed",
          parse: String,
          brief: "Run only once these jobs completed: ID[,ID...] (-- form; repeatable)",
          optional: true,
          variadic: true,
          placeholder: "ids",
        },
        uniqueKey: {
          kind: "parsed",
          parse: String,
          brief: "No second job while one with this key is pending, scheduled or running (-- form)",
          optional: true,
          placeholder: "key",
        },
        onDuplicate: {
          kind: "parsed",
          parse: String,
          brief:
            "When a job with the unique key is active: existing (default: print its id), error, replace (a waiting one)",
          optional: true,
          placeholder: "mode",
        },
        wait: {
          kind: "boolean",
          brief: "Then wait until the jobs are finished: exit 0 completed, 6 dead, 124 timed out",
          default: false,
        },
        waitTimeout: {
          kind: "parsed",
          parse: String,
          brief: "With --wait: give up waiting after this long, e.g. 10m",
          optional: true,
          placeholder: "duration",
        },
      },
      positional: {
        kind: "array",
        parameter: { brief: "Job as JSON, or command words after --", parse: String },
      },
    },
    docs: {
      brief: "Add jobs to the queue; prints their ids",
      customUsage: [
        `'{"id":"job1","command":"echo Hello"}'`,
        "--file jobs.jsonl",
        "[--id ID] [--max-retries N] [--priority N] [--delay D] [--queue Q] [--cwd DIR] [--env K[=V]]... [--after ID[,ID...]] -- program args...",
        "--unique-key K [--on-duplicate existing|error|replace] -- command words...",
        "--wait [--wait-timeout D] -- command words...",
      ],
    },
  });
