/** The skip-or-fail policy for tests that need PostgreSQL or Chromium. */
import assert from "node:assert/strict";
import { skipAllowedBecause } from "./services.ts";

const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("without CI a missing service may be skipped", () => {
  assert.equal(skipAllowedBecause("postgres", envOf({})), "CI is unset");
  assert.equal(skipAllowedBecause("browser", envOf({ CI: "false" })), "CI is unset");
  assert.equal(skipAllowedBecause("browser", envOf({ CI: "0" })), "CI is unset");
});

Deno.test("with CI set a missing service fails, unless the runner declares it lacks it", () => {
  for (const ci of ["true", "1"]) {
    assert.equal(skipAllowedBecause("postgres", envOf({ CI: ci })), null);
    assert.equal(
      skipAllowedBecause("browser", envOf({ CI: ci, QUEUECTL_TEST_NO_BROWSER: "" })),
      null,
    );
    assert.equal(
      skipAllowedBecause("postgres", envOf({ CI: ci, QUEUECTL_TEST_NO_BROWSER: "1" })),
      null,
    );
    assert.match(
      skipAllowedBecause("postgres", envOf({ CI: ci, QUEUECTL_TEST_NO_PG: "1" }))!,
      /QUEUECTL_TEST_NO_PG is set/,
    );
    assert.match(
      skipAllowedBecause("browser", envOf({ CI: ci, QUEUECTL_TEST_NO_BROWSER: "1" }))!,
      /QUEUECTL_TEST_NO_BROWSER is set/,
    );
    assert.equal(skipAllowedBecause("root", envOf({ CI: ci, QUEUECTL_TEST_NO_PG: "1" })), null);
    assert.match(
      skipAllowedBecause("root", envOf({ CI: ci, QUEUECTL_TEST_NO_ROOT: "1" }))!,
      /QUEUECTL_TEST_NO_ROOT is set/,
    );
  }
});
