import { fileIdentity } from "../file_identity.ts";

/** The wake file of {@link WakeFile}: the database path plus this. */
export const WAKE_FILE_SUFFIX = "-wake";

const ONE_BYTE = new Uint8Array([0x2a]);

/**
 * The file beside the database (`<db>-wake`, mode 0600) that idle workers watch (worker/wake.ts):
 * a store writes one byte to it after committing work a worker may claim (an enqueue, a job that
 * becomes pending or failed again: retry, restore, release, a retry scheduled) and never
 * otherwise. Workers used to watch the WAL file, but SQLite also touches the WAL and shared-memory
 * files when any process opens the database (as root it fchowns them to the database's owner), so
 * every `status` or `list` woke every idle worker for nothing (docs/architecture.md "Wake-ups").
 *
 * The byte is written at offset 0, so the file stays one byte long. Best effort: a write that
 * fails only means workers notice the work at their next poll.
 */
export class WakeFile {
  readonly path: string | null;
  #file: Deno.FsFile | null = null;
  #broken = false;

  /** `suffix`: `-wake` (work to claim) or {@link KILL_FILE_SUFFIX} (kill requests). */
  constructor(dbPath: string, suffix = WAKE_FILE_SUFFIX) {
    const wake = wakeFilePath(dbPath);
    this.path = wake === null ? null : wake.slice(0, -WAKE_FILE_SUFFIX.length) + suffix;
  }

  /** Tells idle workers that work may be waiting. */
  touch(): void {
    if (this.path === null || this.#broken) return;
    try {
      // Deleted or replaced since it was opened (a clean-up beside the database): the watchers
      // watch the path, so the byte goes to whatever file is there now, made anew if need be.
      if (this.#file !== null && this.#file.statSync().nlink === 0) this.close();
      this.#file ??= Deno.openSync(this.path, { write: true, create: true, mode: 0o600 });
      this.#file.seekSync(0, Deno.SeekMode.Start);
      this.#file.writeSync(ONE_BYTE);
    } catch {
      // E.g. a read-only directory: workers fall back to their poll. This connection stops
      // trying, rather than failing an open on every commit.
      this.close();
      this.#broken = true;
    }
  }

  close(): void {
    try {
      this.#file?.close();
    } catch {
      // already closed
    }
    this.#file = null;
  }
}

/** The file written after each kill request (`queuectl kill`), which workers watch. */
export const KILL_FILE_SUFFIX = "-kill";

/**
 * Calls `onHint` on every write to `path` (created 0600 when missing) until the returned function
 * is called; does nothing where the file cannot be made or watched (the heartbeat still reads
 * kill requests). One watch for a worker's whole life, so a job costs nothing; when the file is
 * deleted or replaced, the file at the path (made anew if need be) is watched from then on, and
 * `onHint` is called once, for a write that came before the new watch.
 */
export function watchFile(path: string | null, onHint: () => void): () => void {
  if (path === null) return () => {};
  let watcher: Deno.FsWatcher | null = null;
  let stopped = false;
  /** The watched file's device and inode, taken before the watch began. */
  let watched: string | null = null;
  const watch = (): Deno.FsWatcher | null => {
    try {
      Deno.openSync(path, { write: true, create: true, mode: 0o600 }).close();
      watched = fileIdentity(path);
      return Deno.watchFs(path, { recursive: false });
    } catch {
      return null;
    }
  };
  watcher = watch();
  if (watcher === null) return () => {};
  (async () => {
    while (watcher !== null && !stopped) {
      const current: Deno.FsWatcher = watcher;
      let gone = false;
      try {
        for await (const event of current) {
          // Deleted or replaced (a rename over it is reported as a change of the old file while
          // anyone holds that open): watch the file at the path instead.
          if (
            event.kind === "remove" || event.kind === "rename" || fileIdentity(path) !== watched
          ) {
            gone = true;
            break;
          }
          if (event.kind === "modify" || event.kind === "any" || event.kind === "other") onHint();
        }
      } catch {
        // closed or broken: heartbeats still read requests
      }
      close(current);
      if (!gone || stopped) return;
      watcher = watch();
      if (watcher !== null) onHint();
    }
  })();
  return () => {
    stopped = true;
    if (watcher !== null) close(watcher);
  };
}

function close(watcher: Deno.FsWatcher): void {
  try {
    watcher.close();
  } catch {
    // already closed
  }
}

/** `<db>-wake`, or null for a database that is not a plain file (`:memory:`, `file:` URIs). */
export function wakeFilePath(dbPath: string): string | null {
  if (dbPath === "" || dbPath === ":memory:" || dbPath.startsWith("file:")) return null;
  return `${dbPath}${WAKE_FILE_SUFFIX}`;
}
