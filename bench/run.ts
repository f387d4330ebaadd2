/**
 * `deno task bench`: runs every benchmark side by side on this machine and writes BENCHMARKS.md.
 * `deno task bench --quick` runs smaller sizes (a smoke run, not for reporting).
 */
import { benchFoundation } from "./foundation.ts";
import { benchMetrics } from "./metrics.ts";
import { benchPostgres } from "./postgres.ts";
import { benchScale } from "./scale.ts";
import { benchWorkers } from "./workers.ts";

const quick = Deno.args.includes("--quick");
/** Where BENCHMARKS.md's hand-written part starts: a full run rewrites what is above it. */
const TARGETED_MARKER = "# Targeted measurements";
const only = Deno.args.find((a) => a.startsWith("--only="))?.slice("--only=".length);

const suites: [string, () => Promise<string>][] = [
  ["foundation", () => benchFoundation({ quick })],
  ["workers", () => benchWorkers({ quick })],
  ["postgres", () => benchPostgres({ quick })],
  ["scale", () => benchScale({ quick })],
  ["metrics", () => benchMetrics({ quick })],
];

const sections: string[] = [];
for (const [name, run] of suites) {
  if (only && only !== name) continue;
  console.error(`running ${name} ...`);
  const section = await run();
  console.log(section);
  sections.push(section);
}

const cpu = (await Deno.readTextFile("/proc/cpuinfo").catch(() => "")).match(
  /model name\s*:\s*(.*)/,
)?.[1] ?? Deno.build.arch;
const header = [
  "# Benchmarks",
  "",
  `Measured ${new Date().toISOString().slice(0, 10)} with \`deno task bench${
    quick ? " --quick" : ""
  }${
    only ? ` --only=${only}` : ""
  }\` on ${navigator.hardwareConcurrency} cores (${cpu}), Deno ${Deno.version.deno}, SQLite ${await sqliteVersion()}. Ratios are measured side by side in one run; absolute times on a shared 2-core machine are noisy.`,
  "",
].join("\n");

async function sqliteVersion(): Promise<string> {
  const { DatabaseSync } = await import("node:sqlite");
  const db = new DatabaseSync(":memory:");
  const v = (db.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v;
  db.close();
  return v;
}

if (!quick && !only) {
  // The targeted measurements (single parts run on issue branches, written by hand) stay.
  const file = new URL("../BENCHMARKS.md", import.meta.url);
  const before = await Deno.readTextFile(file).catch(() => "");
  const at = before.indexOf(TARGETED_MARKER);
  await Deno.writeTextFile(
    file,
    header + "\n" + sections.join("\n") + (at >= 0 ? "\n---\n\n" + before.slice(at) : ""),
  );
  console.error("wrote BENCHMARKS.md");
}
