/**
 * Polls `condition` until it returns a truthy value (which is returned) or the deadline passes
 * (then throws, naming `what`). Tests wait for conditions this way, never with fixed sleeps.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const interval = opts.intervalMs ?? 20;
  let last: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${opts.timeoutMs ?? 10_000} ms waiting for ${opts.what ?? "condition"}${
          last ? ` (last error: ${last})` : ""
        }`,
      );
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}
