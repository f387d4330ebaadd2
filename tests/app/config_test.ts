/** The config use cases over a real store. */
import assert from "node:assert/strict";
import {
  getConfigValue,
  loadConfig,
  setConfigValue,
  unsetConfigValue,
} from "../../src/app/config.ts";
import { tempStore } from "../helpers/temp.ts";

Deno.test("set, get, unset round-trip through the store", async () => {
  await using t = await tempStore();
  await setConfigValue(t.store, "max-retries", "9");
  assert.equal((await loadConfig(t.store)).max_retries, 9);
  assert.equal((await getConfigValue(t.store, "max_retries")).is_default, false);
  assert.equal(await unsetConfigValue(t.store, "max_retries"), true);
  assert.equal(await unsetConfigValue(t.store, "max_retries"), false);
  assert.equal((await loadConfig(t.store)).max_retries, 3);
});
