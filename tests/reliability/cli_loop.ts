/**
 * Load generator for the contention test: runs the real CLI entry point (`main`, the code behind
 * every `queuectl` command, opening and closing the database each time) in a paced loop inside
 * one process, like a script calling queuectl many times a second.
 *
 *   cli_loop.ts enqueue <db> <calls per second> <seconds> <id prefix> <ids file> <summary file>
 *   cli_loop.ts status  <db> <calls per second> <seconds> <summary file>
 *
 * Error lines reach stderr exactly as a user would see them. Stdout is the commands' output. The
 * summary (calls, failures, latencies) is written as JSON to <summary file>.
 */
import { main } from "../../src/main.ts";

const [mode, db, rateText, secondsText, ...rest] = Deno.args;
const rate = Number(rateText);
const seconds = Number(secondsText);
const summaryFile = rest[rest.length - 1];
const [prefix, idsFile] = rest;

const latencies: number[] = [];
const failures: Record<string, number> = {};
const start = performance.now();
let calls = 0;
for (let i = 0; performance.now() - start < seconds * 1000; i++) {
  // Pacing: call i is due at start + i / rate; late calls run at once to keep the rate.
  const due = start + (i * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const args = mode === "enqueue"
    ? [
      "enqueue",
      JSON.stringify({
        id: `${prefix}${i}`,
        command: `printf '%s\\n' "$QUEUECTL_JOB_ID" >> '${idsFile}'`,
      }),
      "--db",
      db,
    ]
    : ["status", "--db", db];
  const t0 = performance.now();
  const code = await main(args);
  latencies.push(performance.now() - t0);
  calls++;
  if (code !== 0) failures[code] = (failures[code] ?? 0) + 1;
}
latencies.sort((a, b) => a - b);
const pct = (p: number) => Math.round(latencies[Math.floor((latencies.length - 1) * p)] ?? 0);
await Deno.writeTextFile(
  summaryFile,
  JSON.stringify({
    calls,
    failures,
    seconds: (performance.now() - start) / 1000,
    p50_ms: pct(0.5),
    p99_ms: pct(0.99),
    max_ms: pct(1),
  }),
);
