/**
 * Maps postgres.js and PostgreSQL errors to queuectl's typed errors. Connection failures become a
 * {@link StorageError} marked `transient` (the worker retries its write), naming the server by its
 * printable location only: the password never appears in a message.
 */
import { Conflict, QueueError, StorageError } from "../../core/errors.ts";
import { quote } from "../../core/text.ts";

/** SQLSTATE too_many_connections (max_connections, or a role's or database's CONNECTION LIMIT). */
const TOO_MANY_CONNECTIONS = "53300";
/** SQLSTATE read_only_sql_transaction. */
export const READ_ONLY = "25006";

/** Socket and driver error codes that mean "the server is (for now) out of reach". */
const TRANSIENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  // SQLSTATE: server shutting down or restarting, too many connections, lost serialization races.
  "57P01",
  "57P02",
  "57P03",
  TOO_MANY_CONNECTIONS,
  "40001",
  "40P01",
  // A read-only session: a standby (the old primary after a failover) or a database set to
  // default_transaction_read_only. A new session may reach a primary (the store then reconnects).
  READ_ONLY,
]);

interface DriverError {
  code?: unknown;
  message?: unknown;
  detail?: unknown;
  severity?: unknown;
}

function codeOf(err: unknown): string | undefined {
  const code = (err as DriverError | null)?.code;
  return typeof code === "string" ? code : undefined;
}

export function isTransient(err: unknown): boolean {
  const code = codeOf(err);
  if (code === undefined) return false;
  // Class 08: connection exception.
  return TRANSIENT_CODES.has(code) || code.startsWith("08");
}

export function isUniqueViolation(err: unknown): boolean {
  return codeOf(err) === "23505";
}

/** The id in a unique-violation detail such as `Key (id)=(job-1) already exists.` */
export function duplicateKeyOf(err: unknown): string | undefined {
  const detail = (err as DriverError | null)?.detail;
  if (typeof detail !== "string") return undefined;
  return /^Key \([^)]*\)=\((.*)\) already exists\.?$/.exec(detail)?.[1];
}

export interface ErrorContext {
  /** Printable location (no password). */
  location: string;
  /** The password, scrubbed from any driver text that might echo it. */
  password?: string;
}

/** Turns anything a driver call threw into a QueueError (QueueErrors pass through). */
export function toQueueError(err: unknown, ctx: ErrorContext): QueueError {
  if (err instanceof QueueError) return err;
  const raw = err instanceof Error ? err.message : String(err);
  const reason = scrub(raw.split("\n")[0], ctx.password);
  const code = codeOf(err);
  const refused = /^unsupported startup parameter: (.*)$/.exec(reason);
  if (refused) {
    // PgBouncer's answer to a startup parameter it does not pass on (08P01: not transient).
    return new StorageError(
      `The connection pooler at ${ctx.location} refuses the session setting ${quote(refused[1])}`,
      {
        hint: refused[1] === "search_path"
          ? "leave schema= out of the URL and set the role's search_path to the schema: " +
            "ALTER ROLE <user> SET search_path = <schema>; or connect to PostgreSQL directly"
          : "remove it from the URL, or connect to PostgreSQL directly",
      },
    );
  }
  if (code === READ_ONLY) {
    return new StorageError(`PostgreSQL at ${ctx.location} is read-only: ${reason}`, {
      hint: "a standby, or default_transaction_read_only is on: point --db / QUEUECTL_DB at " +
        "the primary; workers retry on new sessions",
      transient: true,
    });
  }
  if (code === TOO_MANY_CONNECTIONS) {
    return new StorageError(`PostgreSQL at ${ctx.location} has no connection left: ${reason}`, {
      hint: "raise max_connections (or the role's or database's CONNECTION LIMIT), or run fewer " +
        "workers: a worker start holds 2-3 connections per worker and 2 of its own; retried",
      transient: true,
    });
  }
  if (isTransient(err)) {
    return new StorageError(`Cannot reach PostgreSQL at ${ctx.location}: ${reason}`, {
      hint: "check that the server is running and that --db / QUEUECTL_DB is right",
      transient: true,
    });
  }
  if (code === "28P01" || code === "28000") {
    return new StorageError(`PostgreSQL at ${ctx.location} refused the login: ${reason}`, {
      hint: "check the user name and password in --db / QUEUECTL_DB",
    });
  }
  if (code === "3D000") {
    return new StorageError(`PostgreSQL at ${ctx.location}: ${reason}`, {
      hint: "create the database first (createdb), or fix the name in --db / QUEUECTL_DB",
    });
  }
  if (code === "ENOTFOUND") {
    return new StorageError(`Cannot find the PostgreSQL host of ${ctx.location}: ${reason}`, {
      hint: "check the host name in --db / QUEUECTL_DB",
    });
  }
  if (isUniqueViolation(err)) {
    const key = duplicateKeyOf(err);
    return new Conflict(
      key === undefined ? `Duplicate key: ${reason}` : `${quote(key)} already exists`,
    );
  }
  return new StorageError(
    `PostgreSQL error${code ? ` ${code}` : ""} at ${ctx.location}: ${reason}`,
  );
}

function scrub(text: string, password: string | undefined): string {
  return password ? text.split(password).join("***") : text;
}
