/**
 * The stop signals this process was started with set to "ignore", which it must keep ignoring:
 * `nohup` starts its command with SIGHUP ignored (so that it outlives the terminal), and a
 * non-interactive shell starts a `cmd &` with SIGINT ignored (so that Ctrl-C reaches only the
 * foreground). Deno cannot read a signal's disposition, and once it listens to any signal it
 * handles SIGHUP and SIGINT itself (one with no listener then ends the process), so a supervisor
 * stopped every worker when the terminal of a `nohup queuectl worker start &` closed.
 *
 * Linux only: read from `/proc/self/status` of a child (`cat`), which inherits the ignored signals
 * (SIG_IGN survives fork and exec; a handled signal would not, so this must run before the process
 * listens to them). Elsewhere, or when it cannot be read: none.
 */
import { signalNumber } from "../core/job.ts";

/** The stop signals whose "ignore" from the start is kept (SIGTERM always stops: `worker stop`). */
const KEPT: readonly Deno.Signal[] = ["SIGHUP", "SIGINT"];

/**
 * Which of SIGHUP and SIGINT were ignored when this process started; each gets a listener that
 * does nothing, for the life of the process. Callers must not make them stop signals.
 */
export async function keepIgnoredSignals(): Promise<ReadonlySet<Deno.Signal>> {
  const ignored = new Set<Deno.Signal>();
  if (Deno.build.os !== "linux") return ignored;
  try {
    const out = await new Deno.Command("cat", {
      args: ["/proc/self/status"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    const mask = new TextDecoder().decode(out.stdout).match(/^SigIgn:\s*([0-9a-f]+)$/im)?.[1];
    if (mask === undefined) return ignored;
    for (const name of KEPT) {
      if ((BigInt(`0x${mask}`) >> BigInt(signalNumber(name)! - 1)) & 1n) ignored.add(name);
    }
  } catch {
    // no `cat`, or not allowed to run it: listen as before
  }
  for (const name of ignored) Deno.addSignalListener(name, () => {});
  return ignored;
}
