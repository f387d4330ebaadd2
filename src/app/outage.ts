/**
 * Long-running reads ride out a database outage: `wait`, `enqueue --wait` and `logs --follow` keep
 * waiting through a restart or a failover of the database server instead of failing at its first
 * refused connection while the jobs they wait for run on. Only reads go through here (retrying them
 * is harmless); see docs/architecture.md, "Watching jobs".
 */
import { isTransient } from "../core/errors.ts";
import { formatDuration } from "../core/duration.ts";
import type { Store } from "../store/store.ts";
import type { Ctx } from "./queue.ts";
import { sleep } from "../worker/wake.ts";

/** The first retry after this long, doubling up to {@link RETRY_MAX_MS}. */
const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 5000;

export interface OutageOptions {
  /** How long one outage may last before the call's error is thrown (config `outage_limit`). */
  limitMs: number;
  /** No retry is started after this moment (performance.now()); e.g. the end of `--timeout`. */
  deadline?: number;
  /** Says, once per outage, that the database is unreachable, and when it is back. */
  say(line: string): void;
}

/**
 * `ctx` with a store whose calls retry transient errors with backoff, for up to `limitMs` of one
 * outage (then the last error is thrown). Use it for reads only.
 */
export function ridingOutages(ctx: Ctx, opts: OutageOptions): Ctx {
  let downSince: number | null = null;
  const call = async <T>(fn: () => Promise<T>, first: Promise<T>): Promise<T> => {
    let delay = RETRY_FIRST_MS;
    for (let attempt = first;; attempt = fn()) {
      try {
        const value = await attempt;
        if (downSince !== null) {
          downSince = null;
          opts.say("database reachable again");
        }
        return value;
      } catch (err) {
        if (!isTransient(err)) throw err;
        const now = performance.now();
        if (downSince === null) {
          downSince = now;
          opts.say(
            `${(err as Error).message}; still waiting (for up to outage_limit ${
              formatDuration(opts.limitMs)
            })`,
          );
        }
        const wait = Math.min(delay, RETRY_MAX_MS);
        const end = Math.min(downSince + opts.limitMs, opts.deadline ?? Infinity);
        if (now + wait > end) throw err;
        await sleep(wait);
        delay *= 2;
      }
    }
  };
  const store = new Proxy(ctx.store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      // Called on the store itself: its private fields are not the proxy's. Only calls that
      // return a promise (database calls) are retried.
      return (...args: unknown[]) => {
        const first = value.apply(target, args);
        return first instanceof Promise ? call(() => value.apply(target, args), first) : first;
      };
    },
  }) as Store;
  return { ...ctx, store };
}
