/**
 * The command line exactly as given. Deno 2.9 drops trailing "\r"s from arguments in
 * `Deno.args` (`printf 'a\r'` arrives as `a`), so `enqueue -- words...` would store another
 * command than the one given. On Linux `/proc/<pid>/cmdline` holds the arguments unchanged; its
 * last `Deno.args.length` entries are ours whether we run from source or as a compiled binary.
 * Deno lets only `--allow-all` read a process's own `/proc` entries, so `cat` reads it for us (one
 * short process, only for the `--` form).
 */
export function exactArgs(args: readonly string[]): readonly string[] {
  // Only the `--` form stores words verbatim; everything else is parsed, where "\r" is no matter.
  if (Deno.build.os !== "linux" || !args.includes("--")) return args;
  let entries: string[];
  try {
    const out = new Deno.Command("cat", {
      args: [`/proc/${Deno.pid}/cmdline`],
      stdin: "null",
      stderr: "null",
    }).outputSync();
    if (!out.success) return args;
    entries = new TextDecoder().decode(out.stdout).split("\0");
  } catch {
    return args;
  }
  if (entries.at(-1) === "") entries.pop();
  const tail = entries.slice(-args.length);
  if (tail.length !== args.length) return args;
  // The same arguments, apart from the "\r"s Deno dropped; anything else means we misread.
  for (let i = 0; i < args.length; i++) {
    const raw = tail[i];
    if (raw !== args[i] && !(raw.startsWith(args[i]) && /^\r+$/.test(raw.slice(args[i].length)))) {
      return args;
    }
  }
  return tail;
}
