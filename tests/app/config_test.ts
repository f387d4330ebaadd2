import assert from "node:assert/strict";
import { InvalidInput } from "../../src/core/errors.ts";
import {
  configFrom,
  DEFAULT_CONFIG,
  getConfigValue,
  loadConfig,
  parseValue,
  resolveKey,
  setConfigValue,
  unsetConfigValue,
} from "../../src/app/config.ts";
import { tempStore } from "../helpers/temp.ts";

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
  for (
    const [key, value] of [
      ["max_retries", "-1"],
      ["max_retries", "2.5"],
      ["backoff_base", "0.5"],
      ["lease", "0"],
      ["output_limit", "1GiB"],
      ["job_timeout", "forever"],
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

Deno.test("set, get, unset round-trip through the store", async () => {
  await using t = await tempStore();
  await setConfigValue(t.store, "max-retries", "9");
  assert.equal((await loadConfig(t.store)).max_retries, 9);
  assert.equal((await getConfigValue(t.store, "max_retries")).is_default, false);
  assert.equal(await unsetConfigValue(t.store, "max_retries"), true);
  assert.equal(await unsetConfigValue(t.store, "max_retries"), false);
  assert.equal((await loadConfig(t.store)).max_retries, 3);
});
