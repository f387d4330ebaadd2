/**
 * Short or full sizes for the reliability suite. `deno task test` runs the short version of every
 * reliability test; `deno task test:reliability` sets QUEUECTL_RELIABILITY=full for the figures
 * published in RELIABILITY.md.
 */
import { DatabaseSync } from "node:sqlite";

export const FULL = Deno.env.get("QUEUECTL_RELIABILITY") === "full";

/** The short figure under `deno task test`, the full one under `deno task test:reliability`. */
export function size<T>(short: T, full: T): T {
  return FULL ? full : short;
}

/**
 * Prints a test's figures on one line (and appends them as JSON Lines to the file named by
 * QUEUECTL_RELIABILITY_REPORT when set), so RELIABILITY.md can quote the last run.
 */
export function report(test: string, figures: Record<string, unknown>): void {
  const line = JSON.stringify({ test, profile: FULL ? "full" : "short", ...figures });
  console.log(`[reliability] ${line}`);
  const file = Deno.env.get("QUEUECTL_RELIABILITY_REPORT");
  if (file) Deno.writeTextFileSync(file, line + "\n", { append: true });
}

/** `PRAGMA integrity_check` of a SQLite database: "ok" when sound. */
export function integrityCheck(path: string): string {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const rows = db.prepare("PRAGMA integrity_check").all() as Record<string, string>[];
    return rows.map((r) => Object.values(r)[0]).join("; ");
  } finally {
    db.close();
  }
}

/** Runs one read-only query on a SQLite database and returns its rows. */
export function query<T = Record<string, unknown>>(
  path: string,
  sql: string,
  ...params: (string | number | null)[]
): T[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return db.prepare(sql).all(...params).map((row) => ({ ...row })) as T[];
  } finally {
    db.close();
  }
}

/** A random integer in [min, max]. */
export function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

/** The chaos tests drive jobs through `sh` and signal processes: Unix only. */
export const UNIX = Deno.build.os !== "windows";

/** Log lines `<iso> [worker N] text` (a `--log` file) → {at, text}. */
export function parseLog(text: string): { at: number; text: string }[] {
  return text.split("\n").filter((l) => l.trim()).map((l) => {
    const space = l.indexOf(" ");
    return { at: Date.parse(l.slice(0, space)), text: l.slice(space + 1) };
  });
}

/** Shell-quotes a path for a job command. */
export function shq(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}
