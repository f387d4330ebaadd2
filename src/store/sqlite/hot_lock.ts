/** The lock file of {@link HotLock}: the database path plus this. */
export const HOT_LOCK_SUFFIX = "-lock";

/**
 * How long a worker waits for the lock file before it goes on without it. The lock is held for
 * one claim or settle (well under a millisecond): a longer wait means its holder is frozen
 * (SIGSTOP, a debugger, a VM pause) or starved, and everyone else must not wait with it.
 */
export const HOT_LOCK_WAIT_MS = 500;

type LockFile = Deno.FsFile;

function openLockFile(path: string): LockFile {
  return Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
}

/**
 * The lock file beside the database (`<db>-lock`, mode 0600) that workers' claim and settle
 * transactions hold while they run: a worker that finds the other one's transaction under way
 * sleeps in the kernel until it ends, instead of retrying on every turn of its event loop
 * (with two busy workers, about half of all transactions met the other's lock; each retry is a
 * failed BEGIN, an exception, and CPU taken from the jobs). An advisory lock (flock(2) on Unix,
 * LockFileEx on Windows): released by the kernel when its holder dies, and ignored by every
 * other writer, which keep SQLite's own locking. Unavailable (no lock at all) for `:memory:` and
 * when the file cannot be opened or locked.
 *
 * Waiting never blocks the event loop and is bounded (docs/architecture.md, "Rescue rules"): a
 * free lock is taken at once (a non-blocking try); a held one is waited for on a thread of the
 * runtime's pool (`lock()`, the kernel wakes it when the holder lets go), at most
 * {@link HOT_LOCK_WAIT_MS}. When that runs out the holder is taken to be frozen: the wait is left
 * to finish in the background on a file of its own (it lets go of the lock the moment it gets it)
 * and, until then, acquire() only tries without waiting and otherwise says "go on without it"
 * (the caller then takes SQLite's own write lock like any other writer).
 */
export class HotLock {
  readonly #path: string;
  #file: LockFile | null;
  /** An abandoned wait still under way (its holder looks frozen): no waiting until it ends. */
  #abandoned: Promise<void> | null = null;

  private constructor(path: string, file: LockFile | null) {
    this.#path = path;
    this.#file = file;
  }

  static open(dbPath: string): HotLock {
    if (dbPath === "" || dbPath === ":memory:" || dbPath.startsWith("file:")) {
      return new HotLock("", null);
    }
    const path = `${dbPath}${HOT_LOCK_SUFFIX}`;
    try {
      return new HotLock(path, openLockFile(path));
    } catch {
      return new HotLock(path, null);
    }
  }

  /** True while there is a lock file to take. */
  get usable(): boolean {
    return this.#file !== null;
  }

  /**
   * Takes the lock, waiting at most `waitMs` (see the class comment). False when the caller must
   * go on without it: no lock file, a failure (no lock from now on), or its holder looks frozen.
   */
  async acquire(waitMs = HOT_LOCK_WAIT_MS): Promise<boolean> {
    const file = this.#file;
    if (file === null) return false;
    try {
      if (file.tryLockSync(true)) return true;
      if (this.#abandoned !== null) return false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waiting = file.lock(true).then(() => true, () => false);
      const late = new Promise<false>((resolve) => (timer = setTimeout(resolve, waitMs, false)));
      const got = await Promise.race([waiting, late]);
      clearTimeout(timer);
      if (got) {
        if (this.#file === file) return true;
        // Closed meanwhile: closing the file released the lock already.
        return false;
      }
      if (this.#file !== file) return false;
      // Its holder looks frozen: leave the wait to this file, take a new one for tries.
      this.#abandoned = waiting.then(() => {
        try {
          file.close(); // releases the lock, if the wait got it
        } catch {
          // already closed
        }
        this.#abandoned = null;
      });
      this.#file = null;
      this.#file = openLockFile(this.#path);
      return false;
    } catch {
      this.close();
      return false;
    }
  }

  release(): void {
    try {
      this.#file?.unlockSync();
    } catch {
      this.close(); // closing the file releases the lock
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
