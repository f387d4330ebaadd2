/**
 * The stop signals this process was started with set to "ignore", which it must keep ignoring:
 * `nohup` starts its command with SIGHUP ignored (so that it outlives the terminal), and a
 * non-interactive shell starts a `cmd &` with SIGINT ignored (so that Ctrl-C reaches only the
 * foreground). Deno cannot read a signal's disposition, and once it listens to any signal it
 * handles SIGHUP and SIGINT itself (one with no listener then ends the process), so a supervisor
 * stopped every worker when the terminal of a `nohup queuectl worker start &` closed. Such a
 * signal gets a listener that does nothing instead. Linux only: `/proc/self/status` of a child (`cat`), which
 * inherits the ignored signals (SIG_IGN survives fork and exec; a handled signal would not, so
 * this must run before the process listens to them). Elsewhere, or when it cannot be read: none.
 */

/** The stop signals whose "ignore" from the start is kept (SIGTERM always stops: `worker stop`). */
const KEPT: readonly [Deno.Signal, number][] = [["SIGHUP", 1], ["SIGINT", 2]];

/** Which of SIGHUP and SIGINT were ignored when this process started (see the module's doc). */
export async function ignoredAtStart(): Promise<ReadonlySet<Deno.Signal>> {
  const ignored = new Set<Deno.Signal>();
  if (Deno.build.os !== "linux") return ignored;
  try {
    const out = await new Deno.Command("cat", {
      args: ["/proc/self/status"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    const line = new TextDecoder().decode(out.stdout).split("\n")
      .find((l) => l.startsWith("SigIgn:"));
    if (!line || !/^[0-9a-f]+$/i.test(line.slice(7).trim())) return ignored;
    const mask = BigInt(`0x${line.slice(7).trim()}`);
    for (const [name, number] of KEPT) {
      if ((mask >> BigInt(number - 1)) & 1n) ignored.add(name);
    }
  } catch {
    // no `cat`, or not allowed to run it: listen as before
  }
  return ignored;
}
