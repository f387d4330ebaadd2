/**
 * `queuectl list --search T --limit 50` through the CLI (wall time, a process per call), before
 * and after a change, interleaved call by call between a baseline checkout's code and this
 * checkout's, on the same seeded data (see bench/search_before.ts for seeding). Texts: `e ` (too
 * short for the substring index), `job 1` (~100,000 old matches), `needle` (rare).
 *
 * Usage: deno run -A bench/search_cli_before.ts --baseline DIR [--sqlite FILE] [--pg URL]
 *   [--rounds R]   (URL with ?schema=NAME)
 */
import { fmt, loadAverage, median, PERMISSIONS } from "./util.ts";

const arg = (name: string) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
};
const baseline = arg("--baseline");
if (!baseline) throw new Error("--baseline DIR (a checkout of the code before) is required");
const rounds = Number(arg("--rounds") ?? 5);
const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const roots = { before: baseline, now: root };
const dbs: [string, string][] = [];
if (arg("--sqlite")) dbs.push(["SQLite", arg("--sqlite")!]);
if (arg("--pg")) dbs.push(["PostgreSQL", arg("--pg")!]);
const deno = Deno.execPath();

const lines = [
  `Load average at the start: ${await loadAverage()}.`,
  "",
  "| backend | `list --search` | before | now | now / before |",
  "|---|---|---|---|---|",
];
const notes: string[] = [];
for (const [backend, db] of dbs) {
  for (const text of ["e ", "job 1", "needle"]) {
    const ms: Record<string, number[]> = { before: [], now: [] };
    for (let r = 0; r <= rounds; r++) {
      for (const [k, dir] of Object.entries(roots)) {
        const t0 = performance.now();
        const out = await new Deno.Command(deno, {
          args: [
            "run",
            ...PERMISSIONS,
            `${dir}/src/main.ts`,
            "list",
            "--search",
            text,
            "--limit",
            "50",
          ],
          env: { QUEUECTL_DB: db, NO_COLOR: "1" },
          stdout: "null",
          stderr: "piped",
        }).output();
        const took = performance.now() - t0;
        const stderr = new TextDecoder().decode(out.stderr).trim();
        if (!out.success) throw new Error(`${dir}: ${stderr}`);
        if (r === 0 && k === "now" && stderr) notes.push(`${backend} \`${text}\`: ${stderr}`);
        if (r > 0) ms[k].push(took);
      }
    }
    const cell = (v: number[]) =>
      `${fmt(median(v))} (${fmt(Math.min(...v))}-${fmt(Math.max(...v))})`;
    lines.push(
      `| ${backend} | \`${text}\` | ${cell(ms.before)} | **${cell(ms.now)}** | ${
        fmt(median(ms.now) / median(ms.before), 2)
      } |`,
    );
  }
}
lines.push(
  "",
  `Load average at the end: ${await loadAverage()}. ${rounds} interleaved rounds after one ` +
    "warm-up, wall ms.",
  ...notes.map((n) => `\nstderr (now) ${n}`),
);
console.log(lines.join("\n"));
