/**
 * The database file as the operating system sees it: created private (0600), checked before
 * SQLite opens it (a directory, a device, a pseudo-file), and, when opening or writing fails, the
 * real cause named with its fix (see {@link diagnose}). A database a user may read but not write
 * is opened read-only, so that reading commands still work ({@link readOnlyFallback}).
 */
import { StorageError } from "../../core/errors.ts";
import { quote } from "../../core/text.ts";

/** The fix every "choose another file" message offers. */
const ELSEWHERE = "choose another path with --db";

/** Octal mode and owner of a file, for messages: `mode 0444, owner uid 0`. */
function describeFile(info: Deno.FileInfo): string {
  const mode = info.mode === null ? "" : `mode 0${(info.mode & 0o777).toString(8)}`;
  const owner = info.uid === null ? "" : `owner uid ${info.uid}`;
  return [mode, owner].filter(Boolean).join(", ");
}

function dirOf(path: string): string {
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}

/**
 * Refuses paths that cannot hold a database before SQLite tries (it would say only "disk I/O
 * error" or Deno "run again with --allow-all"): a directory, a device or other special file, and
 * anything under /proc or /sys (pseudo-files of the kernel).
 */
function checkKind(path: string, info: Deno.FileInfo | null): void {
  if (Deno.build.os !== "windows") {
    let absolute = path;
    try {
      absolute = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
    } catch {
      // no cwd: check the path as given
    }
    const system = /^\/+(proc|sys)(\/|$)/.exec(absolute.replace(/\/\.\//g, "/"))?.[1];
    if (system) {
      throw new StorageError(
        `Cannot use ${
          quote(path)
        } as the database: /${system} holds the kernel's pseudo-files, not data`,
        { hint: `${ELSEWHERE}, e.g. a file in your home directory` },
      );
    }
  }
  if (info === null || info.isFile) return;
  if (info.isDirectory) {
    throw new StorageError(`The database ${quote(path)} is a directory, not a file`, {
      hint: `give a file path, e.g. --db ${path.replace(/[\\/]+$/, "")}/queue.db`,
    });
  }
  const kind = info.isCharDevice
    ? "a character device"
    : info.isBlockDevice
    ? "a block device"
    : info.isFifo
    ? "a named pipe"
    : info.isSocket
    ? "a socket"
    : "not a regular file";
  throw new StorageError(`The database ${quote(path)} is ${kind}, not a file`, {
    hint: `queuectl keeps jobs in a regular file; ${ELSEWHERE}`,
  });
}

/**
 * Creates the database file with mode 0600 when missing (SQLite copies it to -wal and -shm). An
 * existing empty file (`touch q.db`, `mktemp`) gets mode 0600 too: queuectl is about to write its
 * schema and jobs into it, so it must be as private as a file queuectl created.
 *
 * Returns what stat(2) said of the file that was there (the caller takes its identity from it
 * rather than stat the file again); null when there was none (created here) or it cannot be read.
 */
export function ensureFile(path: string): Deno.FileInfo | null {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (err) {
    checkKind(path, null);
    if (!(err instanceof Deno.errors.NotFound)) return null; // opening it reports the real cause
    try {
      if (Deno.lstatSync(path).isSymlink) return null; // a dangling link: opening it reports that
    } catch {
      // missing: created below
    }
    create(path);
    return null;
  }
  checkKind(path, info);
  if (info.size === 0) makePrivate(path, info);
  return info;
}

/** chmod 0600 an empty file queuectl is about to fill; refused when another user owns it. */
function makePrivate(path: string, info: Deno.FileInfo): void {
  if (Deno.build.os === "windows" || info.mode === null || (info.mode & 0o777) === 0o600) return;
  let uid: number | null = null;
  try {
    uid = Deno.uid();
  } catch {
    // --allow-sys=uid missing: chmod below fails for a file of another user anyway
  }
  if (uid !== null && info.uid !== null && info.uid !== uid) {
    throw new StorageError(
      `The database ${path} is an empty file owned by another user (uid ${info.uid})`,
      { hint: "its owner could read every job written to it; choose another path with --db" },
    );
  }
  try {
    Deno.chmodSync(path, 0o600);
  } catch (err) {
    throw new StorageError(
      `Cannot make the database ${path} private (mode 0600): ${
        err instanceof Error ? err.message : err
      }`,
      { hint: "chmod 600 it yourself, or choose another path with --db" },
    );
  }
}

function create(path: string): void {
  const dir = dirOf(path);
  try {
    if (!Deno.statSync(dir).isDirectory) throw new Error("not a directory");
  } catch {
    throw new StorageError(`Cannot create the database ${path}: directory ${dir} does not exist`, {
      hint: "create the directory first, or choose another path with --db",
    });
  }
  try {
    const file = Deno.openSync(path, { createNew: true, write: true, mode: 0o600 });
    file.close();
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return;
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new StorageError(
        `Cannot create the database ${path}: you may not write in the directory ${dir} (${
          describeDir(dir)
        })`,
        { hint: `create it in a directory of yours, or ${ELSEWHERE}` },
      );
    }
    throw new StorageError(`Cannot create the database ${path}: ${osMessage(err)}`, {
      hint: `check that the directory is writable, or ${ELSEWHERE}`,
    });
  }
}

function describeDir(dir: string): string {
  try {
    return describeFile(Deno.statSync(dir));
  } catch {
    return "cannot be read";
  }
}

/**
 * An operating system or driver error in words for a user: Deno's permission texts ("run again
 * with the --allow-all flag") are about Deno's own sandbox, never the user's problem.
 */
function osMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof Deno.errors.NotCapable || /--allow-all|run again with/i.test(message)) {
    return "the operating system does not allow a database there";
  }
  return message;
}

/**
 * Why the database at `path` could not be opened (`action` "open") or written ("write"), as a
 * StorageError naming the cause and the fix; null when it is none of the causes known here (the
 * driver's mapping applies then). Looks at the file and its directory as the user sees them.
 */
export function diagnose(
  path: string,
  err: unknown,
  action: "open" | "write",
): StorageError | null {
  if (path === ":memory:") return null;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof Deno.errors.NotCapable || /--allow-all|run again with/i.test(message)) {
    return new StorageError(`Cannot open the database ${quote(path)}: ${osMessage(err)}`, {
      hint: ELSEWHERE,
    });
  }
  if (/read-only file system|EROFS/i.test(message)) {
    return new StorageError(
      `Cannot ${action} the database ${quote(path)}: its file system is mounted read-only`,
      { hint: `remount it read-write, or ${ELSEWHERE}` },
    );
  }
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    return null;
  }
  try {
    Deno.openSync(path, { read: true }).close();
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied) {
      return new StorageError(
        `Cannot read the database ${quote(path)}: permission denied (${describeFile(info)})`,
        { hint: "run queuectl as the file's owner, or ask them to give you access" },
      );
    }
  }
  const why = notWritable(path, info);
  if (why) {
    return new StorageError(`Cannot write the database ${quote(path)}: ${why.cause}`, {
      hint: why.fix,
    });
  }
  return null;
}

/** Why this user cannot write the database (file or directory), with the fix; null if they can. */
function notWritable(path: string, info: Deno.FileInfo): { cause: string; fix: string } | null {
  try {
    Deno.openSync(path, { write: true }).close();
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied) {
      return {
        cause: `the file is read-only for you (${describeFile(info)})`,
        fix:
          `reading commands such as status, list and show still work; to write, chmod u+w ${path} ` +
          "or run as its owner",
      };
    }
  }
  const dir = dirOf(path);
  try {
    Deno.removeSync(Deno.makeTempFileSync({ dir, prefix: ".queuectl-probe-" }));
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied) {
      return {
        cause: `its directory ${dir} is read-only for you (${describeDir(dir)}), and SQLite ` +
          "writes its journal (-wal, -shm) beside the database",
        fix:
          "reading commands such as status, list and show still work; to write, make the directory " +
          "writable or move the database to one that is",
      };
    }
  }
  return null;
}

/** Read-only databases opened through {@link readOnlyFallback}: path → why not writable. */
const readOnlyCauses = new Map<string, { cause: string; fix: string }>();

/**
 * When `err` (opening `path` for writing failed) comes from a file or directory this user may not
 * write, where to read the database instead: the file itself when SQLite can read it in place
 * (its -shm exists), else a private snapshot copy (SQLite cannot read a WAL database without
 * creating -shm, and the driver offers no `immutable` flag); null when writing failed for another
 * reason. Writes then fail with the cause (see {@link writeFailure}).
 */
export function readOnlyFallback(
  path: string,
  err: unknown,
): { path: string; snapshotDir: string | null } | null {
  if (path === ":memory:") return null;
  const message = err instanceof Error ? err.message : String(err);
  if (!/readonly|read-only|unable to open|permission denied/i.test(message)) return null;
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
    Deno.openSync(path, { read: true }).close();
  } catch {
    return null;
  }
  const why = notWritable(path, info);
  if (!why) return null;
  readOnlyCauses.set(path, why);
  try {
    Deno.openSync(`${path}-shm`, { read: true }).close();
    return { path, snapshotDir: null };
  } catch {
    // no readable -shm: read a snapshot
  }
  const snapshotDir = Deno.makeTempDirSync({ prefix: "queuectl-readonly-" }); // mode 0700
  const copy = `${snapshotDir}/db`;
  try {
    Deno.copyFileSync(path, copy);
    Deno.chmodSync(copy, 0o600);
    try {
      Deno.copyFileSync(`${path}-wal`, `${copy}-wal`);
      Deno.chmodSync(`${copy}-wal`, 0o600);
    } catch {
      // no journal: the file holds everything
    }
  } catch (e) {
    Deno.removeSync(snapshotDir, { recursive: true });
    throw new StorageError(`Cannot read the database ${quote(path)}: ${osMessage(e)}`, {
      hint: why.fix,
    });
  }
  return { path: copy, snapshotDir };
}

/** The error of a write to a database opened read-only by {@link readOnlyFallback}, or null. */
export function writeFailure(path: string): StorageError | null {
  const why = readOnlyCauses.get(path);
  return why
    ? new StorageError(`Cannot write the database ${quote(path)}: ${why.cause}`, { hint: why.fix })
    : null;
}
