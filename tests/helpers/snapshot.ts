/** A full dump of a SQLite queue database, to assert that a failed command changed nothing. */
import { DatabaseSync } from "node:sqlite";

export function snapshotDb(path: string): string {
  try {
    Deno.statSync(path);
  } catch {
    return "<no database>";
  }
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const tables = ["jobs", "job_runs", "config", "schema_migrations"];
    return JSON.stringify(
      Object.fromEntries(
        tables.map((t) => [t, db.prepare(`SELECT * FROM ${t} ORDER BY 1`).all()]),
      ),
    );
  } finally {
    db.close();
  }
}
