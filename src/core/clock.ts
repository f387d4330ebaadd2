/** Time source. Everything that depends on "now" takes a Clock so tests can move time by hand. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock for tests: starts at `start` and only moves when told to. */
export class ManualClock implements Clock {
  #now: number;
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  advance(ms: number): void {
    this.#now += ms;
  }
  set(ms: number): void {
    this.#now = ms;
  }
}

/**
 * The longest delay one timer takes: setTimeout reads its delay as a 32-bit signed number, and a
 * longer one (25 days or more) fires at once (after a TimeoutOverflowWarning).
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer set by `setLongTimeout`. */
export interface LongTimer {
  clear(): void;
}

/**
 * Calls `fn` once after `ms`, however long: a delay past `MAX_TIMER_MS` (a job timeout of 30
 * days) is waited out in steps of at most `step` ms instead of overflowing. `unref` lets the
 * process exit while the timer waits.
 */
export function setLongTimeout(
  fn: () => void,
  ms: number,
  opts: { unref?: boolean; step?: number } = {},
): LongTimer {
  const step = Math.min(opts.step ?? MAX_TIMER_MS, MAX_TIMER_MS);
  const due = performance.now() + Math.max(0, ms);
  let timer: ReturnType<typeof setTimeout>;
  const arm = (left: number) => {
    timer = setTimeout(() => {
      if (left > step) arm(due - performance.now());
      else fn();
    }, Math.min(Math.max(0, left), step));
    if (opts.unref) Deno.unrefTimer(timer);
  };
  arm(due - performance.now());
  return { clear: () => clearTimeout(timer) };
}
