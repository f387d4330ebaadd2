/**
 * What every command shares: the global flags (--db, --json, --no-color), opening the store, and
 * running a command body so that errors become one `error: ...` line and an exit code.
 */
import type { CommandContext } from "@stricli/core";
import { type Clock, systemClock } from "../core/clock.ts";
import { exitCodeOf, formatError } from "../core/errors.ts";
import type { Ctx } from "../app/queue.ts";
import { defaultDbPath, ensureDefaultDir } from "../store/location.ts";
import { openStore } from "../store/mod.ts";
import { Output } from "./render.ts";

export interface CliContext extends CommandContext {
  readonly process: {
    stdout: { write(s: string): void };
    stderr: { write(s: string): void };
    exitCode?: number | string | null;
  };
  /** The raw argument list (to tell `enqueue -- words` from `enqueue '<json>'`). */
  readonly args: readonly string[];
  readonly env: (name: string) => string | undefined;
  readonly clock: Clock;
  /** Whether stdout is a terminal. */
  readonly isTerminal: boolean;
  /** Whether stderr is a terminal (`logs` shows a job's stderr there); default false. */
  readonly stderrIsTerminal?: boolean;
}

/**
 * The start of the brief of a flag kept hidden only to refuse it with a pointer to what replaced
 * it (`list --offset`, `dashboard --token`): help does not list such flags, and neither do shell
 * completions (completion_scripts.ts drops proposals whose brief starts with this).
 */
export const REMOVED_FLAG_BRIEF = "Removed: ";

export interface GlobalFlags {
  db?: string;
  json: boolean;
  color: boolean;
}

/** Flag definitions shared by every command (spread into each command's `flags`). */
export const globalFlags = {
  db: {
    kind: "parsed",
    parse: String,
    brief: "Database: a file path or postgres:// URL (default $QUEUECTL_DB or the data dir)",
    optional: true,
    placeholder: "path|url",
  },
  json: { kind: "boolean", brief: "Print JSON instead of text", default: false },
  color: {
    kind: "boolean",
    brief: "Colour output on a terminal (--no-color to disable; NO_COLOR honoured)",
    default: true,
    withNegated: true,
  },
} as const;

/** The database URL in force: --db, then QUEUECTL_DB, then the default path. */
export function resolveDbUrl(flags: GlobalFlags, env: CliContext["env"]): {
  url: string;
  isDefault: boolean;
} {
  const given = flags.db ?? env("QUEUECTL_DB");
  if (given !== undefined && given.trim() !== "") return { url: given, isDefault: false };
  return { url: defaultDbPath(env), isDefault: true };
}

/**
 * The database URL in force (see {@link resolveDbUrl}), with the default data directory created
 * when that is where it lives.
 */
export async function databaseUrl(flags: GlobalFlags, env: CliContext["env"]): Promise<string> {
  const { url, isDefault } = resolveDbUrl(flags, env);
  if (isDefault) await ensureDefaultDir(url);
  return url;
}

export function outputFor(ctx: CliContext, flags: GlobalFlags): Output {
  const color = flags.color && ctx.isTerminal && ctx.env("NO_COLOR") === undefined;
  return new Output(ctx.process.stdout, ctx.process.stderr, { json: flags.json, color });
}

/**
 * Runs a command body with an open store and an Output; any error becomes one line on stderr and
 * the error's exit code. The store is always closed.
 */
export async function withStore(
  ctx: CliContext,
  flags: GlobalFlags,
  body: (app: Ctx, out: Output, dbUrl: string) => Promise<number | void>,
  opts: { longRunning?: boolean } = {},
): Promise<void> {
  const out = outputFor(ctx, flags);
  try {
    const url = await databaseUrl(flags, ctx.env);
    // One-shot commands: one PostgreSQL connection (see OpenOptions); a worker or the dashboard
    // (longRunning) keeps the default pool and short TCP keepalive.
    const store = await openStore(
      url,
      opts.longRunning ? { keepAlive: true } : { connections: 1 },
    );
    try {
      const code = await body({ store, clock: ctx.clock }, out, url);
      if (code) ctx.process.exitCode = code;
    } finally {
      await store.close();
    }
  } catch (err) {
    out.error(formatError(err));
    ctx.process.exitCode = exitCodeOf(err);
  }
}

/** Runs a command body that needs no store, with the same error handling. */
export async function withoutStore(
  ctx: CliContext,
  flags: GlobalFlags,
  body: (out: Output) => Promise<number | void>,
): Promise<void> {
  const out = outputFor(ctx, flags);
  try {
    const code = await body(out);
    if (code) ctx.process.exitCode = code;
  } catch (err) {
    out.error(formatError(err));
    ctx.process.exitCode = exitCodeOf(err);
  }
}

/**
 * Lets through only the first `error: ` line a command writes. Stricli reports each bad argument
 * on its own line (`config set` without key and value gives two); the user gets one line, the
 * first thing to fix.
 */
export function firstErrorOnly(w: { write(s: string): void }): { write(s: string): void } {
  let shown = false;
  return {
    write(s: string) {
      // deno-lint-ignore no-control-regex
      if (/^(\x1b\[[0-9;]*m)*error: /.test(s)) {
        if (shown) return;
        shown = true;
      }
      w.write(s);
    },
  };
}

export function defaultContext(args: readonly string[]): CliContext {
  const encoder = new TextEncoder();
  const writer = (fd: typeof Deno.stdout) => ({
    write(s: string) {
      const bytes = encoder.encode(s);
      let off = 0;
      try {
        while (off < bytes.length) off += fd.writeSync(bytes.subarray(off));
      } catch (err) {
        // The reader went away (`queuectl list | head`): stop quietly, like other Unix tools.
        if (err instanceof Deno.errors.BrokenPipe) Deno.exit(0);
        throw err;
      }
    },
  });
  return {
    process: { stdout: writer(Deno.stdout), stderr: firstErrorOnly(writer(Deno.stderr)) },
    args,
    env: (name) => Deno.env.get(name),
    clock: systemClock,
    isTerminal: Deno.stdout.isTerminal(),
    stderrIsTerminal: Deno.stderr.isTerminal(),
  };
}
