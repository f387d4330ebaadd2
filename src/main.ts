/**
 * queuectl entry point.
 *
 * 1. Build the default context (stdout/stderr writers, env, system clock).
 * 2. Run the stricli command tree on the arguments; commands turn their own errors into one
 *    `error: ...` line and an exit code (src/cli/context.ts).
 * 3. Map stricli's own codes (unknown command, bad flag: negative numbers) to exit code 2.
 */
import { ExitCodes } from "./core/errors.ts";
import { runCommandLine } from "./cli/mod.ts";
import { defaultContext } from "./cli/context.ts";
import { exactArgs } from "./cli/argv.ts";

export async function main(args: readonly string[]): Promise<number> {
  const context = defaultContext(args);
  await runCommandLine(args, context);
  const code = Number(context.process.exitCode ?? 0);
  if (code < 0) return code === -1 ? ExitCodes.internal : ExitCodes.invalidInput;
  return code;
}

if (import.meta.main) {
  Deno.exitCode = await main(exactArgs(Deno.args));
}
