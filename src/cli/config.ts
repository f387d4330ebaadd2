/** `queuectl config list | get <key> | set <key> <value> | unset <key>` */
import { buildCommand, buildRouteMap } from "@stricli/core";
import { CONFIG_KEYS, resolveKey } from "../core/config.ts";
import {
  type ConfigEntry,
  getConfigValue,
  listConfig,
  setConfigValue,
  unsetConfigValue,
} from "../app/config.ts";
import { type CliContext, type GlobalFlags, globalFlags, withStore } from "./context.ts";
import type { Output } from "./render.ts";

const keyArg = {
  brief: `Key: ${Object.keys(CONFIG_KEYS).join(", ")}`,
  parse: String,
  placeholder: "key",
};

function printEntry(out: Output, e: ConfigEntry): void {
  if (out.json) out.printJson(e);
  else out.line(String(e.value));
}

const listCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags) {
      await withStore(this, flags, async (app, out) => {
        const entries = await listConfig(app.store);
        if (out.json) return out.printJson(entries);
        out.table(
          ["KEY", "VALUE", "DEFAULT", "DESCRIPTION"],
          entries.map((e) => [
            e.key,
            e.is_default ? String(e.value) : out.bold(String(e.value)),
            String(e.default),
            e.description,
          ]),
        );
      });
    },
    parameters: { flags: globalFlags },
    docs: { brief: "Show every key with its value and default" },
  });

const getCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags, key: string) {
      await withStore(this, flags, async (app, out) => {
        printEntry(out, await getConfigValue(app.store, key));
      });
    },
    parameters: { flags: globalFlags, positional: { kind: "tuple", parameters: [keyArg] } },
    docs: { brief: "Print one value" },
  });

const setCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags, key: string, value: string) {
      await withStore(this, flags, async (app, out) => {
        const entry = await setConfigValue(app.store, key, value);
        if (out.json) out.printJson(entry);
        else out.line(`${entry.key} = ${entry.value}`);
      });
    },
    parameters: {
      flags: globalFlags,
      positional: {
        kind: "tuple",
        parameters: [keyArg, { brief: "Value", parse: String, placeholder: "value" }],
      },
    },
    docs: { brief: "Set a value (validated; e.g. config set max_retries 5)" },
  });

const unsetCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: GlobalFlags, key: string) {
      await withStore(this, flags, async (app, out) => {
        const canonical = resolveKey(key);
        const was = await unsetConfigValue(app.store, canonical);
        const entry = await getConfigValue(app.store, canonical);
        if (out.json) out.printJson({ ...entry, was_set: was });
        else out.line(`${entry.key} = ${entry.value} (default)`);
      });
    },
    parameters: { flags: globalFlags, positional: { kind: "tuple", parameters: [keyArg] } },
    docs: { brief: "Return a key to its default" },
  });

export const configRoutes = () =>
  buildRouteMap({
    routes: { list: listCommand(), get: getCommand(), set: setCommand(), unset: unsetCommand() },
    docs: { brief: "Read and change configuration (stored in the database)" },
  });
