/**
 * Typed errors. Every error a user can cause is a {@link QueueError} with an exit code and, where
 * useful, a hint that says what to do next. The CLI prints `error: <message> (<hint>)` and exits
 * with `exitCode`; anything else is a bug and exits 1.
 */
import { oneSafeLine } from "./text.ts";

/** Process exit codes, documented in README.md. */
export const ExitCodes = {
  ok: 0,
  internal: 1,
  invalidInput: 2,
  notFound: 3,
  conflict: 4,
  storage: 5,
  jobsDead: 6,
  /** `wait`, `enqueue --wait`, `logs --follow`: the time ran out first (as timeout(1)). */
  waitTimeout: 124,
} as const;

export interface QueueErrorOptions {
  hint?: string;
  cause?: unknown;
}

export class QueueError extends Error {
  readonly exitCode: number = ExitCodes.internal;
  readonly hint?: string;
  constructor(message: string, options: QueueErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "QueueError";
    this.hint = options.hint;
  }
}

/** The user gave something malformed: bad JSON, a wrong type, an out-of-range value. */
export class InvalidInput extends QueueError {
  override readonly exitCode: number = ExitCodes.invalidInput;
  constructor(message: string, options?: QueueErrorOptions) {
    super(message, options);
    this.name = "InvalidInput";
  }
}

/** The named job (or key) does not exist. */
export class NotFound extends QueueError {
  override readonly exitCode: number = ExitCodes.notFound;
  constructor(message: string, options?: QueueErrorOptions) {
    super(message, options);
    this.name = "NotFound";
  }
}

/** The request is well-formed but clashes with the current state: duplicate id, wrong job state. */
export class Conflict extends QueueError {
  override readonly exitCode: number = ExitCodes.conflict;
  constructor(message: string, options?: QueueErrorOptions) {
    super(message, options);
    this.name = "Conflict";
  }
}

/** The database cannot be opened, is corrupt, is newer than this program, or is unreachable. */
export class StorageError extends QueueError {
  override readonly exitCode: number = ExitCodes.storage;
  /** True when the same call may succeed later (connection lost, server restarting). */
  readonly transient?: boolean;
  /**
   * True when the database this process opened is no longer the one at its location (the file
   * was deleted or replaced): stop, and start again to use what is there now. Never transient.
   */
  readonly gone?: boolean;
  constructor(
    message: string,
    options?: QueueErrorOptions & { transient?: boolean; gone?: boolean },
  ) {
    super(message, options);
    this.name = "StorageError";
    if (options?.transient) this.transient = true;
    if (options?.gone) this.gone = true;
  }
}

/**
 * A storage error that may go away if the call is made again: a lost connection, a restarting or
 * read-only server, a lock held too long. Workers retry their writes on it (worker/runner.ts),
 * waits their reads (app/outage.ts).
 */
export function isTransient(err: unknown): boolean {
  return err instanceof StorageError &&
    (err.transient === true || /\b(locked|busy)\b/i.test(err.message));
}

/**
 * One line for stderr: `error: <message> (<hint>)`. Whatever a message carries (a value quoted
 * with `quote()` from core/text.ts, a path, a driver's text) comes out on one line, control and
 * bidi characters escaped, cut to about a thousand characters.
 */
export function formatError(err: unknown): string {
  if (err instanceof QueueError) {
    return `error: ${oneSafeLine(err.message)}${err.hint ? ` (${oneSafeLine(err.hint)})` : ""}`;
  }
  const message = err instanceof Error ? err.message : String(err);
  return `error: internal error: ${
    oneSafeLine(message.split("\n")[0])
  } (please report this as a bug)`;
}

export function exitCodeOf(err: unknown): number {
  return err instanceof QueueError ? err.exitCode : ExitCodes.internal;
}
