/**
 * Leadership on PostgreSQL (Store.tryLead / resign): a session-level advisory lock, held on a
 * connection of its own so that no pooled query can end the session that holds it.
 *
 * - The lock key is 64 bits of a hash of the schema and the name: queues in other schemas of the
 *   same database elect their own leaders.
 * - The lock lives as long as its session. When the holder dies (even by SIGKILL) the server ends
 *   the session and the lock is free at once. A holder that stops calling while its connection
 *   stays open (a frozen process) is cut off too: every call sets `idle_session_timeout` to the
 *   lease, so the server ends a session idle for a whole lease, and the lock with it.
 * - postgres.js reconnects transparently, so a session that died (killed by an admin, the idle
 *   timeout, a network cut) is replaced by a new one without the lock. Each call therefore names
 *   the session it runs in (backend pid and start time): in the session that took the lock the
 *   holder still leads; in any other it tries the lock afresh, and whoever took it meanwhile wins.
 */
import type postgres from "postgres";
import { StorageError } from "../../core/errors.ts";
import { type ErrorContext, isTransient, toQueueError } from "./errors.ts";

// deno-lint-ignore no-explicit-any
type Sql = postgres.Sql<any>;

/** SQLSTATE of a session the server ended for idle_session_timeout. */
const IDLE_SESSION_TIMEOUT = "57P05";
/** A call that gets no answer for this long (or a lease, if longer) gives up on its session. */
const CALL_LIMIT_MS = 5000;

interface Held {
  holder: string;
  /** `<backend pid>@<backend start>` of the session that holds the lock. */
  session: string;
}

export class PgLeadership {
  readonly #connect: (max: number) => Sql;
  readonly #schema: string;
  readonly #ctx: ErrorContext;
  #sql: Sql | null = null;
  readonly #held = new Map<string, Held>();
  /** Calls run one at a time: two candidates of this process share the session. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(connect: (max: number) => Sql, schema: string, ctx: ErrorContext) {
    this.#connect = connect;
    this.#schema = schema;
    this.#ctx = ctx;
  }

  #key(name: string): string {
    return `queuectl:lead:${this.#schema}:${name}`;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const call = this.#queue.then(fn, fn);
    this.#queue = call.catch(() => {});
    return call;
  }

  tryLead(p: { name: string; holder: string; leaseMs: number }): Promise<boolean> {
    return this.#serial(() => this.#tryLead(p));
  }

  resign(p: { name: string; holder: string }): Promise<void> {
    return this.#serial(() => this.#resign(p));
  }

  async #tryLead(p: { name: string; holder: string; leaseMs: number }): Promise<boolean> {
    let held = this.#held.get(p.name);
    let row: { session: string; leads: boolean };
    try {
      try {
        row = await this.#lead(p, held);
      } catch (err) {
        if (!isTransient(err) && (err as { code?: string }).code !== IDLE_SESSION_TIMEOUT) {
          throw err;
        }
        // The session died since the last call (the first query on it says so), and every lock
        // it held with it. Try once more on a new pool: postgres.js could stall reconnecting the
        // reset one.
        this.#reset();
        held = undefined;
        row = await this.#lead(p, held);
      }
    } catch (err) {
      throw toQueueError(err, this.#ctx);
    }
    if (row.session === held?.session) return row.leads;
    // A new session: the old one (and its lock) is gone.
    if (row.leads) this.#held.set(p.name, { holder: p.holder, session: row.session });
    else this.#held.delete(p.name);
    return row.leads;
  }

  /** One attempt, bounded in time: a call that hangs (a network black hole) drops the pool. */
  async #lead(
    p: { name: string; holder: string; leaseMs: number },
    held: Held | undefined,
  ): Promise<{ session: string; leads: boolean }> {
    const sql = this.#sql ??= this.#connect(1);
    // In the session that holds the lock: the lead stays with its holder (and only with it: the
    // same session would take the lock again for anyone). In another session: try the lock.
    const query = sql<{ session: string; leads: boolean }[]>`
      SELECT s.session,
        CASE WHEN s.session = ${held?.session ?? ""} THEN ${held?.holder === p.holder}
          ELSE pg_try_advisory_lock(hashtextextended(${this.#key(p.name)}, 0)) END AS leads,
        set_config('idle_session_timeout', ${String(Math.max(1, Math.round(p.leaseMs)))}, false)
      FROM (SELECT pg_backend_pid() || '@' || (SELECT backend_start FROM pg_stat_activity
        WHERE pid = pg_backend_pid()) AS session) s`;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limitMs = Math.max(p.leaseMs, CALL_LIMIT_MS);
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.#reset();
        reject(
          new StorageError(`No answer from PostgreSQL within ${limitMs} ms`, { transient: true }),
        );
      }, limitMs);
    });
    try {
      const [row] = await Promise.race([query, timedOut]);
      return row;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Drops the pool (and with its session every lock held): the next call opens a new one. */
  #reset(): void {
    this.#held.clear();
    const sql = this.#sql;
    this.#sql = null;
    sql?.end({ timeout: 0 }).catch(() => {});
  }

  async #resign(p: { name: string; holder: string }): Promise<void> {
    const held = this.#held.get(p.name);
    if (!this.#sql || held?.holder !== p.holder) return;
    this.#held.delete(p.name);
    try {
      await this.#sql`
        SELECT CASE WHEN s.session = ${held.session}
            THEN pg_advisory_unlock(hashtextextended(${this.#key(p.name)}, 0)) END
        FROM (SELECT pg_backend_pid() || '@' || (SELECT backend_start FROM pg_stat_activity
          WHERE pid = pg_backend_pid()) AS session) s`;
    } catch (err) {
      throw toQueueError(err, this.#ctx);
    }
  }

  /** Ends the session: every lock it holds is released. */
  async close(): Promise<void> {
    this.#held.clear();
    const sql = this.#sql;
    this.#sql = null;
    await sql?.end({ timeout: 0 });
  }
}
