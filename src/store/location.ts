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
  const base = xdg && xdg.startsWith("/") ? xdg : `${env("HOME") ?? "/tmp"}/.local/share`;
  return `${base}/queuectl/queuectl.db`;
}

/** Creates the default data directory (mode 0700) if missing. */
export async function ensureDefaultDir(path: string): Promise<void> {
  const dir = path.replace(/[\\/][^\\/]*$/, "");
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
}
