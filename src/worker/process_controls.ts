/**
 * How a worker process obeys its surroundings: signals, and the supervisor's orders on its stdin
 * pipe (see supervisor.ts for the other end).
 */
import type { Runner } from "./runner.ts";

export interface ProcessControlOptions {
  /** Spawned by a supervisor: stdin carries its commands and its end means it is gone. */
  supervised: boolean;
  /** Unsupervised: the signals it was started ignoring, which stay ignored (keepIgnoredSignals). */
  ignored?: ReadonlySet<Deno.Signal>;
}

/**
 * Connects a runner to its process: signals, and (when supervised) the supervisor's stdin pipe.
 *
 * - Supervised: stdin lines `stop` / `abort` / `giveup <why>` (the database was unreachable for
 *   `outage_limit`: see Runner.giveUp) are the supervisor's orders; end of stdin means the
 *   supervisor died (even by SIGKILL: the kernel closes the pipe). SIGINT, SIGHUP and SIGTERM are
 *   ignored: Ctrl-C and a closed terminal reach the whole process group where a worker shares it
 *   with the supervisor (Windows), and the supervisor relays them; and a worker in session mode
 *   shares its process group with its job (see executor.ts), so a job's `kill 0` (as in the
 *   idiom `trap 'kill 0' EXIT`) reaches the worker too, and must not stop it. The trade-off: a
 *   SIGTERM sent to a supervised worker's pid by hand does nothing; stop workers through their
 *   supervisor or `worker stop`.
 * - Unsupervised: SIGTERM, SIGINT and SIGHUP: first graceful, second abort; but a SIGHUP or SIGINT
 *   ignored since the start (`nohup`, a shell's `cmd &`) stays ignored.
 * - Supervised: the parent pid is also checked on each heartbeat as a second line of defence.
 *
 * Returns a function that detaches everything.
 */
export function attachProcessControls(
  runner: Runner,
  opts: ProcessControlOptions,
): () => void {
  const cleanups: (() => void)[] = [];
  let signals = 0;
  const onSignal = (name: string) => () => {
    signals++;
    runner.requestStop(signals === 1 ? "graceful" : "abort", `${name} received`);
  };
  const listen = (sig: Deno.Signal, handler: () => void) => {
    if (opts.ignored?.has(sig)) return; // kept ignored by keepIgnoredSignals
    try {
      Deno.addSignalListener(sig, handler);
      cleanups.push(() => Deno.removeSignalListener(sig, handler));
    } catch {
      // signal not supported on this platform
    }
  };
  // Supervised: a listener that does nothing keeps the signal from killing the process.
  const ignoreIfSupervised = (name: string) => opts.supervised ? () => {} : onSignal(name);
  if (Deno.build.os !== "windows") {
    listen("SIGTERM", ignoreIfSupervised("SIGTERM"));
    listen("SIGHUP", ignoreIfSupervised("SIGHUP"));
  }
  listen("SIGINT", ignoreIfSupervised("SIGINT"));

  if (opts.supervised) {
    const reader = Deno.stdin.readable.getReader();
    let detached = false;
    (async () => {
      const decoder = new TextDecoder();
      let buffer = "";
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let nl: number;
          while ((nl = buffer.indexOf("\n")) >= 0) {
            const order = buffer.slice(0, nl).trim();
            buffer = buffer.slice(nl + 1);
            if (order === "stop") runner.requestStop("graceful", "asked by the supervisor");
            else if (order === "abort") runner.requestStop("abort", "asked by the supervisor");
            else if (order.startsWith("giveup ")) runner.giveUp(order.slice("giveup ".length));
          }
        }
      } catch {
        // stdin broken: same as closed
      }
      if (!detached) runner.supervisorGone();
    })();
    cleanups.push(() => {
      detached = true;
      reader.cancel().catch(() => {});
    });

    if (Deno.build.os !== "windows") {
      const parent = Deno.ppid;
      const timer = setInterval(() => {
        if (Deno.ppid !== parent) runner.supervisorGone();
      }, 1000);
      Deno.unrefTimer(timer);
      cleanups.push(() => clearInterval(timer));
    }
  }
  return () => {
    for (const c of cleanups.splice(0)) c();
  };
}
