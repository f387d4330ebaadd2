/**
 * Where the database is: its URL's kind, a printable form, the default path. No Store and no
 * driver here, so any layer may use it; opening a store is store/mod.ts (called by
 * cli/context.ts only).
 */
import { InvalidInput } from "../core/errors.ts";
import { quote } from "../core/text.ts";

/**
 * Refuses a database URL of a kind queuectl does not store jobs in (`mysql://`, `redis://`,
 * `file://`...), naming the kinds it does, instead of taking it for a file path. Only the scheme
 * is repeated: the rest may hold a password.
 */
export function checkDatabaseUrl(url: string): void {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1];
  if (scheme === undefined || /^(postgres|postgresql|sqlite)$/i.test(scheme)) return;
  throw new InvalidInput(
    `Unsupported database URL scheme ${
      quote(scheme + "://")
    }: queuectl stores jobs in SQLite or PostgreSQL`,
    {
      hint:
        "give --db a file path or sqlite:PATH for SQLite, or postgres://user@host/db for PostgreSQL",
    },
  );
}

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/** The URL with any password replaced, safe for output and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:@/]*):[^@/]*@/i, "$1:***@");
}

/**
 * Where the database lives when neither --db nor QUEUECTL_DB is given:
 * `$XDG_DATA_HOME/queuectl/queuectl.db`, else `~/.local/share/queuectl/queuectl.db`;
 * `%LOCALAPPDATA%\queuectl\queuectl.db` on Windows.
 */
export function defaultDbPath(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  os: typeof Deno.build.os = Deno.build.os,
): string {
  if (os === "windows") {
    const base = env("LOCALAPPDATA") ?? `${env("USERPROFILE") ?? "C:\\"}\\AppData\\Local`;
    return `${base}\\queuectl\\queuectl.db`;
  }
  const xdg = env("XDG_DATA_HOME");
  if (xdg && xdg.startsWith("/")) return `${xdg}/queuectl/queuectl.db`;
  const home = env("HOME");
  if (!home || !home.startsWith("/")) {
    // Never a shared directory instead (this used /tmp): another user could make the path first
    // and hand this user a database of their choosing, whose jobs this user's workers would run.
    throw new InvalidInput("No default database: HOME is not set (or not an absolute path)", {
      hint: "give the database with --db PATH or QUEUECTL_DB, or set HOME or XDG_DATA_HOME",
    });
  }
  return `${home}/.local/share/queuectl/queuectl.db`;
}

/**
 * Creates the default data directory (mode 0700) if missing, and refuses it (Unix) when another
 * user could swap what is in it: the directory or one above it owned by someone other than this
 * user or root, or writable by everyone without the sticky bit (see README "Where data lives").
 */
export async function ensureDefaultDir(path: string): Promise<void> {
  const dir = path.replace(/[\\/][^\\/]*$/, "");
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  if (Deno.build.os === "windows") return;
  const me = Deno.uid();
  for (let at = await Deno.realPath(dir); at !== ""; at = at.replace(/\/[^/]*$/, "")) {
    const info = await Deno.stat(at);
    const mode = info.mode ?? 0;
    const why = info.uid !== me && info.uid !== 0
      ? `it is owned by uid ${info.uid}`
      : (mode & 0o002) !== 0 && (mode & 0o1000) === 0
      ? "everyone may write to it"
      : null;
    if (why !== null) {
      const what = `${quote(at)} is not safe (${why}); another user could replace the database`;
      throw new InvalidInput(
        `Refusing the default database directory ${quote(dir)}: ${what}`,
        { hint: "give the database with --db PATH or QUEUECTL_DB in a directory only you control" },
      );
    }
  }
}
