/**
 * When may a test that needs PostgreSQL or Chromium skip because the service is missing?
 *
 * - `CI` unset (a developer's machine): yes, saying why.
 * - `CI` set (.ci/run, GitHub): no, the test fails loudly...
 * - ...unless the runner declares that it lacks the service: `QUEUECTL_TEST_NO_PG=1` or
 *   `QUEUECTL_TEST_NO_BROWSER=1`. GitHub sets CI=true on every runner, and its macOS and Windows
 *   runners have no PostgreSQL and none has /usr/bin/chromium; .github/workflows/ci.yml sets these
 *   there. .ci/run provides both services and sets neither.
 */

export type Service = "postgres" | "browser";

/** The variable that declares this runner lacks `service`. */
export const LACKS_VAR: Record<Service, string> = {
  postgres: "QUEUECTL_TEST_NO_PG",
  browser: "QUEUECTL_TEST_NO_BROWSER",
};

function truthy(value: string | undefined): boolean {
  return value !== undefined && !["", "0", "false"].includes(value.trim().toLowerCase());
}

/** True when CI is set: a missing service fails the tests, unless the runner declares it lacks it. */
export function isCi(env: (name: string) => string | undefined = (n) => Deno.env.get(n)): boolean {
  return truthy(env("CI"));
}

/** True when this runner says it has no `service` (QUEUECTL_TEST_NO_PG / QUEUECTL_TEST_NO_BROWSER). */
export function runnerLacks(
  service: Service,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): boolean {
  return truthy(env(LACKS_VAR[service]));
}

/**
 * Why tests needing `service` may skip when it is missing ("CI is unset", "QUEUECTL_TEST_NO_PG is
 * set: ..."), to print with the skip; null when they must fail instead.
 */
export function skipAllowedBecause(
  service: Service,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): string | null {
  if (!isCi(env)) return "CI is unset";
  if (runnerLacks(service, env)) return `${LACKS_VAR[service]} is set: this runner has none`;
  return null;
}
