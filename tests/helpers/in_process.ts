/** Runs a queuectl stricli application in this process (as main.ts does), capturing its output. */
import { type Application, run } from "@stricli/core";
import { type CliContext, firstErrorOnly } from "../../src/cli/context.ts";
import { systemClock } from "../../src/core/clock.ts";

export interface InProcessResult {
  /** The context's exit code as stricli left it (its own codes are negative). */
  code: number | string;
  stdout: string;
  stderr: string;
}

export async function runInProcess(
  app: Application<CliContext>,
  args: string[],
  env: Record<string, string>,
): Promise<InProcessResult> {
  let stdout = "";
  let stderr = "";
  const ctx: CliContext = {
    process: {
      stdout: { write: (t: string) => void (stdout += t) },
      // As defaultContext does around the real stderr.
      stderr: firstErrorOnly({ write: (t: string) => void (stderr += t) }),
    },
    args,
    env: (name) => Object.hasOwn(env, name) ? env[name] : undefined,
    clock: systemClock,
    isTerminal: false,
  };
  await run(app, args, ctx);
  return { code: ctx.process.exitCode ?? 0, stdout, stderr };
}
