/**
 * Command words → one shell command line that runs exactly those words (the `--` form of
 * `enqueue`). A job's command runs through the shell of the worker's host (`sh -c` on Unix,
 * `cmd /d /s /c` on Windows, see worker/executor.ts), so each word is quoted for that shell.
 */

/** Words made only of these characters need no quoting in a POSIX shell. */
const POSIX_SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * POSIX shell quoting of one word: as is when it is made only of safe characters, else inside
 * single quotes, each `'` written as `'\''` (nothing is special inside single quotes: `$`, `\`,
 * `"`, newlines and non-ASCII text stay as they are).
 */
export function quotePosixWord(word: string): string {
  if (POSIX_SAFE.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Characters cmd.exe interprets on its command line: each is escaped with `^`. */
const CMD_META = /[()\][%!^"`<>&|;, *?=\t]/g;

/**
 * One word for `cmd /d /s /c <line>`: quoted for the program's argument parser (the
 * CommandLineToArgvW rules: backslashes double before a `"`, which is escaped), then every cmd.exe
 * metacharacter escaped with `^`, so that cmd passes the word through unchanged and `%VAR%` is
 * never expanded. The first word (the program) is only `^`-escaped: cmd looks it up as written.
 */
export function quoteCmdWord(word: string, first = false): string {
  if (first) return word.replace(CMD_META, "^$&");
  let quoted = word.replace(/(\\*)"/g, '$1$1\\"').replace(/(\\*)$/, "$1$1");
  quoted = `"${quoted}"`;
  return quoted.replace(CMD_META, "^$&");
}

/**
 * The command line that runs exactly `words` (program first) through the shell of `os`: each word
 * quoted by {@link quotePosixWord} (or {@link quoteCmdWord} on Windows), joined with spaces.
 */
export function commandFromWords(
  words: readonly string[],
  os: typeof Deno.build.os = Deno.build.os,
): string {
  if (os === "windows") return words.map((w, i) => quoteCmdWord(w, i === 0)).join(" ");
  return words.map(quotePosixWord).join(" ");
}
