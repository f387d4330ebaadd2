/**
 * Watching jobs change (`wait`, `logs --follow`): hints that something was settled or written,
 * never a busy poll (docs/architecture.md "Watching jobs").
 *
 * - PostgreSQL: the store's `waitForChanges` (LISTEN queuectl_changes; settles NOTIFY while a
 *   watcher is recorded).
 * - SQLite file: every commit appends to `<db>-wal`, so a watch on it (worker/wake.ts FileWaker)
 *   fires within milliseconds of another process's settle.
 * - Whatever the source, callers still look every {@link SAFETY_POLL_MS} (a watch can miss events
 *   on network file systems, LISTEN can drop with the connection).
 *
 * This module loads worker/wake.ts: the CLI imports it with import() (start-up stays small).
 */
import type { Ctx } from "./queue.ts";
import { FileWaker, sleep, TimerWaker, type Waker } from "../worker/wake.ts";

/** The longest wait without a look, whatever the hints say. */
export const SAFETY_POLL_MS = 5000;
/** At least this long between two looks, even when hints come in a burst. */
const MIN_GAP_MS = 50;

export interface ChangeWatch {
  /** Resolves on a hint since the last wait, after `ms`, or when `signal` aborts. */
  wait(ms: number, signal?: AbortSignal): Promise<void>;
  close(): void;
}

/**
 * Starts watching: once this resolves, any change committed after the caller's next look makes
 * the following wait() return (the caller looks, then waits, then looks again).
 */
export async function watchChanges(ctx: Ctx): Promise<ChangeWatch> {
  const store = ctx.store;
  if (store.waitForChanges) {
    const waitForChanges = store.waitForChanges.bind(store);
    // Records the watcher and opens the LISTEN before the first look.
    await waitForChanges({ now: ctx.clock.now(), timeoutMs: 0 });
    return throttled({
      wait: (ms, signal) => waitForChanges({ now: ctx.clock.now(), timeoutMs: ms, signal }),
      close: () => {},
    });
  }
  let waker: Waker = new TimerWaker();
  if (store.kind === "sqlite" && store.location !== ":memory:") {
    const file = new FileWaker(`${store.location}-wal`);
    if (file.idle()) waker = file;
  }
  return throttled({
    // The waker forgets its hints when a wait returns: a commit during the caller's next look
    // makes the wait after it return at once.
    wait: async (ms, signal) => {
      await waker.wait(ms, signal);
    },
    close: () => waker.close(),
  });
}

/** At most one look per MIN_GAP_MS: a busy queue commits far more often than a user needs. */
function throttled(watch: ChangeWatch): ChangeWatch {
  let last = -Infinity;
  return {
    async wait(ms, signal) {
      await watch.wait(ms, signal);
      const gap = MIN_GAP_MS - (performance.now() - last);
      if (gap > 0 && !signal?.aborted) await sleep(Math.min(gap, ms), signal);
      last = performance.now();
    },
    close: () => watch.close(),
  };
}
