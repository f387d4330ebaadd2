/**
 * LISTEN/NOTIFY wake-ups: changes that make a job runnable send `NOTIFY queuectl_jobs` (payload:
 * the schema), and idle workers wait for it in {@link JobsListener.wait} instead of polling fast.
 */
import type { Sql } from "./connect.ts";

/** Channel of the "jobs may be runnable" hint; the payload names the schema. */
export const NOTIFY_CHANNEL = "queuectl_jobs";
/** Channel of the "a job was settled or its output grew" hint, sent only while watchers exist. */
export const CHANGES_CHANNEL = "queuectl_changes";
/** Channel of the "a kill was requested" hint (`queuectl kill`); the payload names the schema. */
export const KILL_CHANNEL = "queuectl_kill";
/** After a failed LISTEN, wait this long before trying again (callers poll meanwhile). */
const LISTEN_RETRY_MS = 5000;

/** The LISTEN connection of one store (one channel), opened by the first wait. */
export class JobsListener {
  readonly #channel: string;
  /** Opens another pool on the same server (for the LISTEN connection). */
  readonly #connect: (max: number) => Sql;
  /** The schema the tables live in: the NOTIFY payload that concerns this store. */
  readonly #schema: string;
  /** The pool that owns the LISTEN connection, and its setup (true once listening). */
  #listener: Sql | null = null;
  #listening: Promise<boolean> | null = null;
  /** When LISTEN last failed: wait a while before trying again (meanwhile: plain polling). */
  #listenFailedAt = -Infinity;
  readonly #waiters = new Set<(hinted?: boolean) => void>();
  /** A hint arrived while nobody waited: the next wait returns at once. */
  #hinted = false;
  #closed = false;

  constructor(connect: (max: number) => Sql, schema: string, channel = NOTIFY_CHANNEL) {
    this.#channel = channel;
    this.#connect = connect;
    this.#schema = schema;
  }

  /**
   * Waits up to `timeoutMs` for a NOTIFY saying jobs were enqueued or became runnable. The first
   * call opens the LISTEN connection (and waits until it listens); when that fails the call
   * degrades to a plain timer, so the caller's polling goes on. True when a NOTIFY (one that came
   * while nobody waited included) ended the wait.
   */
  async wait(p: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean> {
    if (this.#closed || p.signal?.aborted) return false;
    const listening = await this.#listen();
    if (listening && this.#killHints.size > 0 && !this.#killListening) {
      // The kill LISTEN failed earlier (or its connection was replaced): set it up again.
      this.#killListening = true;
      void this.#listenKills();
    }
    if (this.#hinted && listening) {
      this.#hinted = false;
      return true;
    }
    if (this.#closed || p.signal?.aborted) return false;
    return await new Promise<boolean>((resolve) => {
      const done = (hinted = false) => {
        clearTimeout(timer);
        p.signal?.removeEventListener("abort", onAbort);
        this.#waiters.delete(done);
        resolve(hinted);
      };
      const onAbort = () => done(false);
      const timer = setTimeout(done, Math.max(0, p.timeoutMs), false);
      p.signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(done);
    });
  }

  /** Kill hints (see {@link onKillRequest}); true once their LISTEN is set up or under way. */
  readonly #killHints = new Set<() => void>();
  #killListening = false;

  /**
   * Calls `onHint` on every `NOTIFY queuectl_kill` for this schema until the returned function is
   * called. Listens on the connection of the job wake-ups (opened now if not yet: a worker needs
   * it anyway), so a worker holds no extra connection; when LISTEN fails, heartbeats still read
   * the requests, and the next caller tries again.
   */
  onKillRequest(onHint: () => void): () => void {
    this.#killHints.add(onHint);
    if (!this.#killListening && !this.#closed) {
      this.#killListening = true;
      void this.#listenKills();
    }
    return () => this.#killHints.delete(onHint);
  }

  async #listenKills(): Promise<void> {
    const listening = await this.#listen();
    const pool = this.#listener;
    if (!listening || pool === null || this.#closed) {
      this.#killListening = false;
      return;
    }
    await pool.listen(KILL_CHANNEL, (payload) => {
      if (payload !== this.#schema) return;
      for (const hint of [...this.#killHints]) hint();
    }).catch(() => {
      this.#killListening = false;
    });
  }

  #listen(): Promise<boolean> {
    if (this.#listening) return this.#listening;
    if (performance.now() - this.#listenFailedAt < LISTEN_RETRY_MS) return Promise.resolve(false);
    // A pool of its own: when LISTEN fails, postgres.js keeps the failed channel in its pool, so
    // the next attempt needs a fresh one. Once listening, postgres.js re-listens by itself after
    // a lost connection and calls onlisten again.
    const listener = this.#connect(1);
    this.#listener = listener;
    let first = true;
    this.#listening = listener.listen(
      this.#channel,
      (payload) => {
        if (payload === this.#schema) this.#wake();
      },
      () => {
        // Re-listening after a lost connection: notifications may have been missed.
        if (!first) this.#wake();
        first = false;
      },
    ).then(() => true, async () => {
      this.#listenFailedAt = performance.now();
      this.#listening = null;
      this.#listener = null;
      await listener.end({ timeout: 0 }).catch(() => {});
      return false;
    });
    return this.#listening;
  }

  #wake(): void {
    if (this.#waiters.size === 0) {
      this.#hinted = true;
      return;
    }
    for (const done of [...this.#waiters]) done(true);
  }

  /** Ends every wait now; later waits return at once. */
  stop(): void {
    this.#closed = true;
    for (const done of [...this.#waiters]) done();
  }

  /** Once the LISTEN setup under way (if any) is over, ends the LISTEN connection. */
  async close(): Promise<void> {
    this.stop();
    await Promise.allSettled([this.#listening]);
    await this.#listener?.end({ timeout: 0 });
    this.#killHints.clear();
  }
}
