/**
 * Chooses the backend from a database URL: `postgres://` or `postgresql://` → PostgreSQL (driver
 * loaded only then), anything else (a path, or `sqlite:PATH`) → SQLite.
 */
import type { Store } from "./store.ts";

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/** The URL with any password replaced, safe for output and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:@/]*):[^@/]*@/i, "$1:***@");
}

export async function openStore(url: string): Promise<Store> {
  if (isPostgresUrl(url)) {
    const { openPostgresStore } = await import("./postgres/mod.ts");
    return await openPostgresStore(url);
  }
  // Loaded on use, like the PostgreSQL driver: commands that open no store do not pay for it.
  const { openSqliteStore } = await import("./sqlite/mod.ts");
  return await openSqliteStore(url.replace(/^sqlite:(\/\/)?/i, ""));
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
