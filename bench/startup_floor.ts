/**
 * The start-up floor of queuectl's stack, for the start-up benchmark: a one-command stricli
 * application (the same three global flags as every queuectl command) whose command opens the
 * SQLite database with node:sqlite, reads the per-state counters and prints them. No queuectl
 * code: what any `status` built on stricli and node:sqlite costs at least. The benchmark bundles it
 * like queuectl's own bundle and runs it as `startup_floor.js status` with QUEUECTL_DB set.
 */
import { buildApplication, buildCommand, buildRouteMap, run } from "@stricli/core";

const encoder = new TextEncoder();
const stdout = { write: (s: string) => void Deno.stdout.writeSync(encoder.encode(s)) };

const status = buildCommand({
  async func(flags: { db?: string; json: boolean; color: boolean }) {
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(flags.db ?? Deno.env.get("QUEUECTL_DB") ?? "queuectl.db");
    db.exec("PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL;");
    const rows = db.prepare("SELECT state, sum(n) AS n FROM job_counts GROUP BY state").all();
    stdout.write(rows.map((r) => `${r.state} ${r.n}\n`).join(""));
    db.close();
  },
  parameters: {
    flags: {
      db: { kind: "parsed", parse: String, brief: "Database", optional: true },
      json: { kind: "boolean", brief: "JSON", default: false },
      color: { kind: "boolean", brief: "Colour", default: true, withNegated: true },
    },
  },
  docs: { brief: "Counts per state" },
});

const app = buildApplication(
  buildRouteMap({ routes: { status }, docs: { brief: "start-up floor" } }),
  { name: "floor" },
);
await run(app, Deno.args, { process: { stdout, stderr: stdout } });
