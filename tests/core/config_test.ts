/** The config table, pure: keys, aliases, validation, defaults. */
import assert from "node:assert/strict";
import { InvalidInput } from "../../src/core/errors.ts";
import { configFrom, DEFAULT_CONFIG, parseValue, resolveKey } from "../../src/core/config.ts";

Deno.test("config keys resolve with aliases", () => {
  assert.equal(resolveKey("max-retries"), "max_retries");
  assert.equal(resolveKey("MAX_RETRIES"), "max_retries");
  assert.throws(() => resolveKey("retries"), /Unknown config key "retries"/);
});

Deno.test("config values are validated with a message naming key, expectation and value", () => {
  assert.equal(parseValue("max_retries", "5"), 5);
  assert.equal(parseValue("backoff_base", "1.5"), 1.5);
  assert.equal(parseValue("lease", "2m"), 120);
  assert.equal(parseValue("poll_interval", "250ms"), 0.25);
  assert.equal(parseValue("output_limit", "64KiB"), 65536);
  assert.equal(parseValue("outage_limit", "5m"), 300);
  for (
    const [key, value] of [
      ["max_retries", "-1"],
      ["max_retries", "2.5"],
      ["backoff_base", "0.5"],
      ["lease", "0"],
      ["output_limit", "1GiB"],
      ["job_timeout", "forever"],
      ["outage_limit", "0"],
      ["outage_limit", "2d"],
    ] as const
  ) {
    assert.throws(
      () => parseValue(key, value),
      (e: Error) =>
        e instanceof InvalidInput && e.message.startsWith(`Cannot set '${key}': expected`) &&
        e.message.endsWith(`got ${JSON.stringify(value)}`),
    );
  }
});

Deno.test("stored config overrides defaults; a bad stored value falls back", () => {
  assert.deepEqual(configFrom({}), DEFAULT_CONFIG);
  assert.equal(configFrom({ max_retries: "7" }).max_retries, 7);
  assert.equal(configFrom({ max_retries: "nonsense" }).max_retries, 3);
});

Deno.test("a hook command is stored without surrounding white space; blank means no hook", () => {
  assert.equal(parseValue("hook_drained", " 0"), "0");
  assert.equal(
    parseValue("hook_completed", "\t notify-send 'done: a b' \n"),
    "notify-send 'done: a b'",
  );
  assert.equal(parseValue("hook_dead", "   "), "");
  assert.throws(() => parseValue("hook_dead", "a\0b"), InvalidInput);
});
