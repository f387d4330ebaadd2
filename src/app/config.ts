/**
 * The config use cases: read the values in force, set and unset one (`queuectl config ...`).
 * The keys, defaults and validation are core/config.ts.
 */
import {
  type Config,
  CONFIG_KEYS,
  configFrom,
  type ConfigKey,
  parseValue,
  resolveKey,
} from "../core/config.ts";
import type { Store } from "../store/store.ts";

export async function loadConfig(store: Store): Promise<Config> {
  return configFrom(await store.getConfig());
}

export interface ConfigEntry {
  key: ConfigKey;
  value: number | string;
  default: number | string;
  is_default: boolean;
  description: string;
}

export async function listConfig(store: Store): Promise<ConfigEntry[]> {
  const stored = await store.getConfig();
  const config = configFrom(stored);
  return (Object.keys(CONFIG_KEYS) as ConfigKey[]).map((key) => ({
    key,
    value: config[key],
    default: CONFIG_KEYS[key].default,
    is_default: !(key in stored),
    description: CONFIG_KEYS[key].description,
  }));
}

export async function getConfigValue(store: Store, input: string): Promise<ConfigEntry> {
  const key = resolveKey(input);
  const entries = await listConfig(store);
  return entries.find((e) => e.key === key)!;
}

export async function setConfigValue(
  store: Store,
  input: string,
  text: string,
): Promise<ConfigEntry> {
  const key = resolveKey(input);
  const value = parseValue(key, text);
  await store.setConfig({ key, value: String(value) });
  return { ...(await getConfigValue(store, key)) };
}

export async function unsetConfigValue(store: Store, input: string): Promise<boolean> {
  return await store.unsetConfig({ key: resolveKey(input) });
}
