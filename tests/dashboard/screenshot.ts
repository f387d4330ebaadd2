/**
 * Takes the README screenshot: seeds a demo queue (ten minutes of traffic, a few failures, a DLQ,
 * four workers), serves the dashboard on a free port and saves docs/dashboard.png.
 *
 *   deno run --allow-read --allow-write --allow-env --allow-run --allow-net \
 *     --allow-sys=hostname,homedir,uid tests/dashboard/screenshot.ts [out.png] [--narrow]
 */
import { ManualClock } from "../../src/core/clock.ts";
import { openSqliteStore } from "../../src/store/sqlite/mod.ts";
import type { Store } from "../../src/store/store.ts";
import { startDashboard } from "../../src/dashboard/server.ts";
import { randomToken } from "../../src/dashboard/security.ts";
import { add, claim, completeJob, deadJob, failJob } from "./seed.ts";
import { chromiumMissing, launchChromium } from "./browser.ts";

const COMMANDS = [
  "./bin/resize-image uploads/IMG_{n}.jpg --width 1200",
  "curl -fsS https://api.example.com/webhooks/{n} -d @payload.json",
  "python3 etl/daily_rollup.py --day 2026-01-{n}",
  "pg_dump -Fc shop > backups/shop-{n}.dump",
  "ffmpeg -i talks/{n}.mov -c:v libx264 talks/{n}.mp4",
  "node scripts/send-digest.js --user {n}",
];

function command(i: number): string {
  return COMMANDS[i % COMMANDS.length].replaceAll("{n}", String(1000 + i));
}

/** Ten minutes of traffic ending now, then a few jobs in every other state. */
export async function seedDemo(store: Store, end = Date.now()): Promise<void> {
  const clock = new ManualClock(end - 10 * 60_000);
  const queues = ["default", "images", "email"];
  let i = 0;
  for (let t = 0; t < 60; t++) {
    const burst = 3 + Math.round(3 * Math.sin(t / 6) + 2 * Math.sin(t / 2.3) + 3);
    for (let k = 0; k < burst; k++) {
      const id = await add(store, clock, { command: command(i), queue: queues[i % 3] });
      clock.advance(250);
      await completeJob(store, clock, id, { stdout: `done ${i}\n`, stderr: "" });
      i++;
    }
    clock.set(end - 10 * 60_000 + (t + 1) * 10_000);
  }
  clock.set(end - 95_000);
  for (const [n, error] of [[7, "exit code 7"], [137, "timed out after 300s"]] as const) {
    await deadJob(store, clock, { command: command(i++), queue: "images" }, {
      exit_code: n,
      error,
      stderr: "convert: unable to open image: No such file or directory\n",
    });
  }
  await deadJob(store, clock, { command: "python3 etl/import_orders.py --since yesterday" }, {
    exit_code: 1,
    error: "exit code 1",
    stderr: "Traceback (most recent call last):\n  ...\nKeyError: 'order_id'\n",
  });
  for (let f = 0; f < 3; f++) {
    const id = await add(store, clock, { command: command(i++), queue: "email" });
    await failJob(store, clock, id, {
      exit_code: 22,
      error: "exit code 22",
      policy: { backoff_base: 150 + 20 * f, backoff_max: 3600 },
    });
  }
  for (let q = 0; q < 14; q++) {
    clock.set(end - 40_000 + q * 2000);
    await add(store, clock, { command: command(i++), queue: queues[q % 3] });
  }
  const running: string[] = [];
  for (let p = 0; p < 4; p++) {
    clock.set(end - 9000 + p * 2000);
    const id = await add(store, clock, { command: command(i++), queue: queues[p % 3] });
    await claim(store, clock, id, `worker-${p + 1}`);
    running.push(id);
  }
  await add(store, clock, { command: "./bin/reindex-search --full", delay: "1h" });
  const host = "build-01";
  await store.registerWorker({
    worker: {
      id: "supervisor-1",
      pid: 41200,
      host,
      queues: null,
      started_at: end - 15 * 60_000,
      heartbeat_at: end - 1000,
      current_job: null,
      stop_requested_at: null,
      supervisor_id: null,
    },
  });
  for (let w = 0; w < 4; w++) {
    await store.registerWorker({
      worker: {
        id: `worker-${w + 1}`,
        pid: 41201 + w,
        host,
        queues: null,
        started_at: end - 15 * 60_000,
        heartbeat_at: end - 500 * (w + 1),
        current_job: running[w],
        stop_requested_at: null,
        supervisor_id: "supervisor-1",
      },
    });
  }
}

if (import.meta.main) {
  const narrow = Deno.args.includes("--narrow");
  const out = Deno.args.find((a) => !a.startsWith("--")) ??
    new URL("../../docs/dashboard.png", import.meta.url).pathname;
  const missing = chromiumMissing();
  if (missing) {
    console.error(`error: ${missing}`);
    Deno.exit(1);
  }
  const dir = await Deno.makeTempDir({ prefix: "queuectl-shot-" });
  const store = await openSqliteStore(`${dir}/demo.db`);
  await seedDemo(store);
  const dashboard = startDashboard({ store, hostname: "127.0.0.1", port: 0, token: randomToken() });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({
      viewport: narrow ? { width: 420, height: 900 } : { width: 1280, height: 820 },
      deviceScaleFactor: 1,
      colorScheme: "light",
    });
    await page.goto(dashboard.loginUrl);
    await page.waitForURL(dashboard.url);
    await page.locator("#live[data-status=live]").waitFor();
    await page.locator("#jobs-table tbody tr.clickable").first().waitFor();
    await page.screenshot({ path: out });
    console.log(`saved ${out}`);
  } finally {
    await browser.close();
    await dashboard.shutdown();
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}
