/**
 * Maps node:sqlite's errors (it gives no error codes, only messages) to queuectl's typed errors.
 */
import { StorageError } from "../../core/errors.ts";
import { diagnose, writeFailure } from "./file.ts";

/** A driver error on the database at `path` as a StorageError with a hint the user can act on. */
export function storageError(path: string, err: unknown): StorageError {
  const message = err instanceof Error ? err.message : String(err);
  // A database opened read-only because this user may not write it: say why (file.ts).
  if (/readonly|read-only/i.test(message)) {
    const readOnly = writeFailure(path) ?? diagnose(path, err, "write");
    if (readOnly) return readOnly;
  }
  if (/not a database|malformed|corrupt/i.test(message)) {
    return new StorageError(`${path} is not a queuectl database or is corrupt (${message})`, {
      hint: "point --db at another file, or restore it from a backup",
      cause: err,
    });
  }
  // Faults of the disk or the file rather than of the data: a retry may succeed once the operator
  // fixed them, so workers ride them out like an outage (they keep the outcome in hand and retry).
  if (isFull(err)) {
    return new StorageError(`The disk that holds ${path} is full (${message})`, {
      hint: "free space on that disk (workers keep the results they hold and retry meanwhile)",
      cause: err,
      transient: true,
    });
  }
  if (/disk I\/O error/i.test(message)) {
    return new StorageError(`I/O error on ${path} (${message})`, {
      hint: "check the disk and the kernel log, dmesg (workers keep their results and retry)",
      cause: err,
      transient: true,
    });
  }
  if (/attempt to write a readonly database/i.test(message)) {
    return new StorageError(`${path} is read-only (${message})`, {
      hint: "make the file, its directory and its -wal/-shm files writable, or remount the disk " +
        "read-write (workers keep their results and retry)",
      cause: err,
      transient: true,
    });
  }
  if (/readonly|read-only|permission denied|unable to open/i.test(message)) {
    return new StorageError(`Cannot write the database ${path}: ${message}`, {
      hint: "check that the directory exists and is writable, or choose another path with --db",
      cause: err,
    });
  }
  if (/locked|busy/i.test(message)) {
    return new StorageError(`The database ${path} stayed locked: ${message}`, {
      hint: "another process holds a long write; try again",
      cause: err,
    });
  }
  return new StorageError(`Database error on ${path}: ${message}`, { cause: err });
}

/** SQLITE_BUSY: another connection holds the lock (node:sqlite gives no error code, only this). */
export function isLocked(err: unknown): boolean {
  return err instanceof Error && /database is locked/i.test(err.message);
}

/** SQLITE_FULL: the disk (or the file system's quota) has no room for the write. */
export function isFull(err: unknown): boolean {
  return err instanceof Error && /database or disk is full|no space left/i.test(err.message);
}
