/**
 * One clear line per cause, not one per operation that met it: while the database cannot be
 * written (disk full, read-only file, I/O error, an outage), every store call of a process fails
 * with the same error: its claim, its settle, its heartbeat, the maintenance duties. The first
 * to fail says so; the others stay silent about the same error for {@link REPEAT_MS}.
 */

/** How long the same error is not repeated by a process. */
export const REPEAT_MS = 60_000;

export class FailureNotes {
  readonly #said = new Map<string, number>();

  /**
   * True when `error` (its message) should be reported now: it was not reported in the last
   * {@link REPEAT_MS}. Records it as reported.
   */
  fresh(error: unknown, now = performance.now()): boolean {
    const key = error instanceof Error ? error.message : String(error);
    const last = this.#said.get(key);
    if (last !== undefined && now - last < REPEAT_MS) return false;
    if (this.#said.size > 100) this.#said.clear();
    this.#said.set(key, now);
    return true;
  }
}
