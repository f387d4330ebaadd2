/**
 * How an idle worker learns that a job may be waiting, without hammering the database.
 *
 * - A store with `waitForJobs` (PostgreSQL LISTEN/NOTIFY) is used as is.
 * - SQLite: every commit appends to the `<db>-wal` file, so a file watch on it (inotify on Linux,
 *   FSEvents on macOS, ReadDirectoryChangesW on Windows) fires within milliseconds of another
 *   process's enqueue. Only "modify"-like events count: reads of the WAL file also raise "access"
 *   events, and waking on our own reads would be a busy loop. An UPDATE that matches nothing
 *   (an empty claim) appends nothing, so idle workers do not wake each other.
 * - Whatever the source, the caller still polls at `poll_interval` as a safety net (a watch can
 *   miss events on network file systems, LISTEN can drop with the connection).
 */
import type { Store } from "../store/store.ts";

export interface Waker {
  /**
   * Forget hints seen so far. Call right before looking for work: any commit after this moment
   * (including one that lands between the look and the wait) makes the next {@link wait} return
   * at once, so no wake-up is lost.
   */
  arm(): void;
  /** Resolves on a hint since the last arm(), after `timeoutMs`, or when `signal` aborts. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  close(): void;
}

/** No hints at all: waits the full timeout (or until aborted). */
export class TimerWaker implements Waker {
  arm(): void {}
  wait(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return sleep(timeoutMs, signal);
  }
  close(): void {}
}

/** Delegates to the store's own notification channel (PostgreSQL LISTEN/NOTIFY). */
export class StoreWaker implements Waker {
  constructor(
    readonly store: Store & { waitForJobs: NonNullable<Store["waitForJobs"]> },
  ) {}
  arm(): void {}
  async wait(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    try {
      await this.store.waitForJobs({ timeoutMs, signal });
    } catch {
      // A broken notification channel must not break the worker: fall back to the timer.
      await sleep(timeoutMs, signal);
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
 * Watches a file (the SQLite WAL) and treats every write to it as a hint. Events are only read
 * while someone waits: a busy worker's own commits would otherwise wake its JS thousands of times
 * a second for nothing. Unread events queue up (bounded) and are read at the next wait; stale ones
 * cost at most one extra look.
 */
export class FileWaker implements Waker {
  #watcher: Deno.FsWatcher;
  #dirty = false;
  #wake: (() => void) | null = null;
  #resumePump: (() => void) | null = null;
  #closed = false;

  constructor(path: string) {
    this.#watcher = Deno.watchFs(path, { recursive: false });
    this.#pump();
  }

  async #pump(): Promise<void> {
    const events = this.#watcher[Symbol.asyncIterator]();
    try {
      for (;;) {
        if (this.#wake === null && !this.#closed) {
          await new Promise<void>((resume) => (this.#resumePump = resume));
        }
        if (this.#closed) return;
        const { value, done } = await events.next();
        if (done) return;
        if (!WAKING_KINDS.has(value.kind)) continue;
        this.#dirty = true;
        this.#wake?.();
      }
    } catch {
      // watcher closed or broken: waits degrade to the timer
    }
  }

  arm(): void {
    this.#dirty = false;
  }

  wait(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#closed) return sleep(timeoutMs, signal);
    if (this.#dirty || signal?.aborted) {
      this.#dirty = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        this.#wake = null;
        this.#dirty = false;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      signal?.addEventListener("abort", done, { once: true });
      this.#wake = done;
      this.#resumePump?.();
      this.#resumePump = null;
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake?.();
    this.#resumePump?.();
    try {
      this.#watcher.close();
    } catch {
      // already closed
    }
  }
}

/**
 * The best waker for a store: its own `waitForJobs` when it has one, a watch on the WAL file for
 * an SQLite file database, else a plain timer.
 */
export function wakerFor(store: Store): Waker {
  if (store.waitForJobs) {
    return new StoreWaker(store as Store & { waitForJobs: NonNullable<Store["waitForJobs"]> });
  }
  if (store.kind === "sqlite" && store.location !== ":memory:") {
    try {
      return new FileWaker(`${store.location}-wal`);
    } catch {
      // no WAL file yet, or watching unsupported: poll
    }
  }
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
