/** The retry policy, pure: how long retry number `n` (1-based) waits. */

export interface RetryPolicy {
  /** Base of the exponential backoff: retry n waits backoff_base ^ n seconds. */
  backoff_base: number;
  /** Upper bound of one delay, in seconds. */
  backoff_max: number;
}

/** Delay in seconds before retry number `retryNumber` (1-based): min(base ^ n, max). */
export function retryDelaySeconds(retryNumber: number, policy: RetryPolicy): number {
  const delay = Math.pow(policy.backoff_base, retryNumber);
  return Math.min(Number.isFinite(delay) ? delay : policy.backoff_max, policy.backoff_max);
}
