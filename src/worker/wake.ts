/**
 * How an idle worker learns that a job may be waiting, without hammering the database.
 *
 * - A store with `waitForJobs` (PostgreSQL LISTEN/NOTIFY) is used as is.
 * - SQLite: the store writes a byte to its wake file (`store.wakeFile`, `<db>-wake`) after every
 *   commit that makes a job claimable, and only then, so a file watch on it (inotify on Linux,
 *   FSEvents on macOS, ReadDirectoryChangesW on Windows) fires within milliseconds of another
 *   process's enqueue, and never for a read: not the WAL file, which SQLite touches whenever any
 *   process opens the database (as root it fchowns it), so a `status` woke every idle worker.
 *   Only "modify"-like events count: opening the file raises "access" events.
 * - Whatever the source, the caller still polls at `poll_interval` as a safety net (a watch can
 *   miss events on network file systems, LISTEN can drop with the connection).
 */
import type { Store } from "../store/store.ts";
import { fileIdentity } from "../store/file_identity.ts";

export interface Waker {
  /**
   * The worker found nothing to do. Returns true if the wake-up source only started now: the
   * caller must then look for work once more before waiting, since a commit between its last
   * look and this moment raised no hint.
   */
  idle(): boolean;
  /** The worker got a job: the source may rest until the next idle(). */
  busy(): void;
  /**
   * Forget hints seen so far. Call right before looking for work: any commit after this moment
   * (including one that lands between the look and the wait) makes the next {@link wait} return
   * at once, so no wake-up is lost.
   */
  arm(): void;
  /**
   * Resolves on a hint since the last arm() (to true), after `timeoutMs` or when `signal` aborts
   * (to false).
   */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  close(): void;
}

/** No hints at all: waits the full timeout (or until aborted). */
export class TimerWaker implements Waker {
  idle(): boolean {
    return false;
  }
  busy(): void {}
  arm(): void {}
  async wait(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    await sleep(timeoutMs, signal);
    return false;
  }
  close(): void {}
}

/** Delegates to the store's own notification channel (PostgreSQL LISTEN/NOTIFY). */
export class StoreWaker implements Waker {
  constructor(
    readonly store: Store & { waitForJobs: NonNullable<Store["waitForJobs"]> },
  ) {}
  idle(): boolean {
    return false;
  }
  busy(): void {}
  arm(): void {}
  async wait(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    try {
      return await this.store.waitForJobs({ timeoutMs, signal });
    } catch {
      // A broken notification channel must not break the worker: fall back to the timer.
      await sleep(timeoutMs, signal);
      return false;
    }
  }
  close(): void {}
}

const WAKING_KINDS: ReadonlySet<Deno.FsEvent["kind"]> = new Set([
  "modify",
  "create",
  "remove",
  "rename",
  "any",
  "other",
]);

/**
 * Watches a file (the store's wake file) and treats every write to it as a hint, only while the
 * worker is idle: a busy worker gains nothing from hints, and each costs an inotify event and a
 * notify-thread wake-up. The watch starts at idle() and stops at busy(). The file is created
 * (mode 0600) when missing, so that a worker started before any enqueue can watch it.
 */
export class FileWaker implements Waker {
  readonly #path: string;
  #watcher: Deno.FsWatcher | null = null;
  #dirty = false;
  #wake: ((hinted: boolean) => void) | null = null;
  #closed = false;
  /** The watched file's device and inode, taken before the watch began. */
  #watched: string | null = null;

  constructor(path: string) {
    this.#path = path;
  }

  /** True while the watch is on (for tests). */
  get watching(): boolean {
    return this.#watcher !== null;
  }

  idle(): boolean {
    if (this.#watcher !== null || this.#closed) return false;
    try {
      this.#watched = fileIdentity(this.#path);
      this.#watcher = Deno.watchFs(this.#path, { recursive: false });
    } catch {
      try {
        Deno.openSync(this.#path, { write: true, create: true, mode: 0o600 }).close();
        this.#watched = fileIdentity(this.#path);
        this.#watcher = Deno.watchFs(this.#path, { recursive: false });
      } catch {
        return false; // no watching here: waits fall back to the timer
      }
    }
    this.#dirty = false;
    this.#pump(this.#watcher);
    return true;
  }

  busy(): void {
    const watcher = this.#watcher;
    this.#watcher = null;
    try {
      watcher?.close();
    } catch {
      // already closed
    }
  }

  async #pump(watcher: Deno.FsWatcher): Promise<void> {
    try {
      for await (const event of watcher) {
        if (!WAKING_KINDS.has(event.kind)) continue;
        if (
          this.#watcher === watcher &&
          (event.kind === "remove" || event.kind === "rename" ||
            fileIdentity(this.#path) !== this.#watched)
        ) {
          // Deleted or replaced (a rename over it is reported as a change of the old file while
          // anyone holds that open): the next idle() watches the file at the path then.
          this.busy();
        }
        this.#dirty = true;
        this.#wake?.(true);
      }
    } catch {
      // closed or broken: waits fall back to the timer
    }
  }

  arm(): void {
    this.#dirty = false;
  }

  wait(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    if (this.#dirty) {
      this.#dirty = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const done = (hinted = false) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#wake = null;
        this.#dirty = false;
        resolve(hinted);
      };
      const onAbort = () => done(false);
      const timer = setTimeout(done, Math.max(0, timeoutMs), false);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#wake = done;
    });
  }

  close(): void {
    this.#closed = true;
    this.busy();
    this.#wake?.(false);
  }
}

/**
 * The best waker for a store: its own `waitForJobs` when it has one, a watch on its wake file
 * (SQLite file database), else a plain timer.
 */
export function wakerFor(store: Store): Waker {
  if (store.waitForJobs) {
    return new StoreWaker(store as Store & { waitForJobs: NonNullable<Store["waitForJobs"]> });
  }
  if (store.wakeFile !== undefined) return new FileWaker(store.wakeFile);
  return new TimerWaker();
}

/** Resolves after `ms` or when `signal` aborts, whichever comes first; never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener("abort", done, { once: true });
  });
}
