/** `queuectl kill <id> [--signal SIG] [--retry]`: stop a running job, on whatever host runs it. */
import { buildCommand } from "@stricli/core";
import { killJob } from "../app/queue.ts";
import { type CliContext, type GlobalFlags, globalFlags, withStore } from "./context.ts";

interface KillFlags extends GlobalFlags {
  signal?: string;
  retry: boolean;
}

export const killCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: KillFlags, id: string) {
      await withStore(this, flags, async (app, out) => {
        const job = await killJob(app, id, { signal: flags.signal, retry: flags.retry });
        if (out.json) {
          return out.printJson({
            id: job.id,
            signal: job.kill_signal,
            retry: flags.retry,
            worker: job.lease_owner,
          });
        }
        out.line(
          `asked ${job.lease_owner ?? "its worker"} to kill ${job.id} with ${job.kill_signal}; ${
            flags.retry ? "the retry policy decides what comes next" : "it will not be retried"
          }`,
        );
      });
    },
    parameters: {
      flags: {
        ...globalFlags,
        signal: {
          kind: "parsed",
          parse: String,
          brief:
            "Signal for the job's process group: TERM (default), INT, HUP, QUIT, USR1, USR2, KILL... (SIGKILL follows after the grace period)",
          optional: true,
          placeholder: "SIG",
        },
        retry: {
          kind: "boolean",
          brief: "Count the killed run as a failure under the retry policy (default: to the DLQ)",
          default: false,
        },
      },
      positional: {
        kind: "tuple",
        parameters: [{ brief: "Job id (a running job)", parse: String, placeholder: "id" }],
      },
    },
    docs: {
      brief:
        "Signal a running job's process group on whatever host runs it; the run is recorded as killed",
    },
  });
