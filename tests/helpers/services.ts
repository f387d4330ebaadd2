/**
 * When may a test that needs PostgreSQL, Chromium, another local user (root, to switch to
 * `nobody`) or root itself skip because it is missing?
 *
 * - `CI` unset (a developer's machine): yes, saying why.
 * - `CI` set (.ci/run, GitHub): no, the test fails loudly...
 * - ...unless the runner declares that it lacks the service: `QUEUECTL_TEST_NO_PG=1`,
 *   `QUEUECTL_TEST_NO_BROWSER=1`, `QUEUECTL_TEST_NO_OTHER_USER=1` or `QUEUECTL_TEST_NO_ROOT=1`.
 *   GitHub sets CI=true on every runner, and its macOS and Windows runners have no PostgreSQL, none
 *   has /usr/bin/chromium, and none runs the tests as root; .github/workflows/ci.yml sets these
 *   there. .ci/run (as root) provides all of them and sets none.
 *
 * "postgres" covers the server at QUEUECTL_TEST_PG_URL and the fault suite's own cluster (initdb);
 * "root" covers what only root may do: network namespaces (partitions) and tmpfs mounts.
 */

export type Service = "postgres" | "browser" | "other-user" | "root";

/** The variable that declares this runner lacks `service`. */
export const LACKS_VAR: Record<Service, string> = {
  postgres: "QUEUECTL_TEST_NO_PG",
  browser: "QUEUECTL_TEST_NO_BROWSER",
  "other-user": "QUEUECTL_TEST_NO_OTHER_USER",
  root: "QUEUECTL_TEST_NO_ROOT",
};

function truthy(value: string | undefined): boolean {
  return value !== undefined && !["", "0", "false"].includes(value.trim().toLowerCase());
}

/** True when CI is set: a missing service fails the tests, unless the runner declares it lacks it. */
export function isCi(env: (name: string) => string | undefined = (n) => Deno.env.get(n)): boolean {
  return truthy(env("CI"));
}

/** True when this runner says it has no `service` (QUEUECTL_TEST_NO_PG / _NO_BROWSER / _NO_ROOT). */
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
