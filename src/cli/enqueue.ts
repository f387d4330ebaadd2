/** `queuectl enqueue '<json>' | --file F | -- command words...` */
import { buildCommand } from "@stricli/core";
import { InvalidInput } from "../core/errors.ts";
import { enqueue, parseJobArgument, parseJobFile } from "../app/queue.ts";
import { type CliContext, type GlobalFlags, globalFlags, withStore } from "./context.ts";

interface EnqueueFlags extends GlobalFlags {
  file?: string;
  id?: string;
  maxRetries?: string;
  priority?: string;
  delay?: string;
  runAt?: string;
  timeout?: string;
  queue?: string;
}

/** Reads `--file` (`-` = stdin) fully. */
async function readInput(path: string): Promise<string> {
  try {
    if (path === "-") return await new Response(Deno.stdin.readable).text();
    return await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new InvalidInput(`Cannot read ${path}: no such file`);
    }
    throw new InvalidInput(`Cannot read ${path}: ${(err as Error).message}`);
  }
}

function num(text: string, what: string): number {
  const n = Number(text);
  if (text.trim() === "" || Number.isNaN(n)) {
    throw new InvalidInput(`Invalid ${what}: expected a number, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** The job spec built from `--` words and option flags. */
function specFromWords(words: readonly string[], flags: EnqueueFlags): Record<string, unknown> {
  const spec: Record<string, unknown> = { command: words.join(" ") };
  if (flags.id !== undefined) spec.id = flags.id;
  if (flags.maxRetries !== undefined) spec.max_retries = num(flags.maxRetries, "--max-retries");
  if (flags.priority !== undefined) spec.priority = num(flags.priority, "--priority");
  if (flags.delay !== undefined) spec.delay = flags.delay;
  if (flags.runAt !== undefined) spec.run_at = flags.runAt;
  if (flags.timeout !== undefined) spec.timeout = num(flags.timeout, "--timeout");
  if (flags.queue !== undefined) spec.queue = flags.queue;
  return spec;
}

const JOB_OPTION_FLAGS = [
  "id",
  "maxRetries",
  "priority",
  "delay",
  "runAt",
  "timeout",
  "queue",
] as const;

async function run(this: CliContext, flags: EnqueueFlags, ...positional: string[]) {
  await withStore(this, flags, async (app, out) => {
    const dashdash = this.args.indexOf("--");
    const usesOptions = JOB_OPTION_FLAGS.filter((f) => flags[f] !== undefined);
    let specs: { value: unknown; where?: string }[];
    if (dashdash >= 0) {
      if (flags.file !== undefined) {
        throw new InvalidInput("Give either --file or a command after --, not both");
      }
      const words = this.args.slice(dashdash + 1);
      if (words.length === 0) throw new InvalidInput("Missing command after --");
      specs = [{ value: specFromWords(words, flags) }];
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
        specs = parseJobFile(await readInput(flags.file));
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
    const ids = await enqueue(app, specs);
    if (out.json) out.printJson(ids);
    else if (ids.length > 20) out.line(`enqueued ${ids.length} jobs`);
    else for (const id of ids) out.line(id);
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
        "[--id ID] [--max-retries N] [--priority N] [--delay D] [--queue Q] -- command words...",
      ],
    },
  });
