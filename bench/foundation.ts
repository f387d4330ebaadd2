/**
 * Foundation benchmarks (issue 2), each measured side by side in one run:
 * 1. start-up: `queuectl status` on a small database vs `deno run` of an empty script;
 * 2. bulk enqueue: `enqueue --file` of 100,000 jobs vs a bare node:sqlite insert of the same rows
 *    in one transaction (both as fresh processes, so both pay Deno's start-up);
 * 3. `status` and `list --state pending --limit 50` on 1,000,000 jobs: work beyond process start.
 */
import { DatabaseSync } from "node:sqlite";
import { openSqliteStore } from "../src/store/sqlite/mod.ts";
import { bundleArgs } from "../scripts/compile.ts";
import { finishBundle } from "../scripts/finish_bundle.ts";
import denoJson from "../deno.json" with { type: "json" };
import { fmt, loadAverage, MAIN, median, PERMISSIONS, ROOT, timeCommand } from "./util.ts";

const deno = Deno.execPath();

/**
 * `deno bundle` of `entry` into `outdir` with the build task's options, then its last step
 * (scripts/finish_bundle.ts); returns the output file.
 */
export async function bundle(entry: string, outdir: string): Promise<string> {
  const args = bundleArgs(denoJson.tasks.build, outdir, entry);
  const out = await new Deno.Command(deno, { args, cwd: ROOT, stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`deno bundle ${entry}: ${new TextDecoder().decode(out.stderr)}`);
  }
  await finishBundle(outdir); // the build task's last step
  return `${outdir}/${entry.split("/").at(-1)!.replace(/\.ts$/, ".js")}`;
}

async function startup(dir: string, rounds: number): Promise<string> {
  const empty = `${dir}/empty.ts`;
  await Deno.writeTextFile(empty, "");
  const db = `${dir}/small.db`;
  const env = { QUEUECTL_DB: db, NO_COLOR: "1" };
  await timeCommand(deno, ["run", ...PERMISSIONS, MAIN, "enqueue", '{"command":"true"}'], { env });
  const bundled = await bundle("src/main.ts", `${dir}/bundle`);
  const floor = await bundle("bench/startup_floor.ts", `${dir}/floor`);
  const runs: [string, string[]][] = [
    ["`deno run empty.ts`", ["run", empty]],
    [
      "stack floor: a one-command stricli app reading the counters with node:sqlite (bundled)",
      ["run", ...PERMISSIONS, floor, "status"],
    ],
    [
      "`queuectl status` from the bundle (`deno task build`; what the binary is compiled from)",
      ["run", ...PERMISSIONS, bundled, "status"],
    ],
    ["`queuectl status` from source (`deno task queuectl status`)", [
      "run",
      ...PERMISSIONS,
      MAIN,
      "status",
    ]],
  ];
  const times: number[][] = runs.map(() => []);
  // Warm every one, then interleave so machine noise hits all alike.
  for (const [, args] of runs) await timeCommand(deno, args, { env });
  for (let i = 0; i < rounds; i++) {
    for (const [k, [, args]] of runs.entries()) {
      times[k].push(await timeCommand(deno, args, { env }));
    }
  }
  const base = median(times[0]);
  // Ratios to the stack floor, pair by pair (each round's run against that round's floor).
  const toFloor = (k: number) => {
    const r = times[k].map((t, i) => t / times[1][i]).sort((a, b) => a - b);
    return `${fmt(median(r), 2)} (${fmt(r[0], 2)}-${fmt(r.at(-1)!, 2)})`;
  };
  const load = await loadAverage(); // Deno reads /proc only under --allow-all
  return [
    "### Start-up: `queuectl status` (small database) vs `deno run empty.ts`",
    "",
    `${rounds} interleaved runs each, medians (wall time, fresh processes); load average ${load} ` +
    "at the end.",
    "",
    "| run | median | ratio to empty | ratio to the floor, pair by pair: median (range) |",
    "|---|---|---|---|",
    ...runs.map(([name], k) =>
      `| ${name} | ${fmt(median(times[k]))} ms | ${k >= 2 ? "**" : ""}${
        fmt(median(times[k]) / base, 2)
      }${k >= 2 ? "**" : ""} | ${k >= 1 ? toFloor(k) : "-"} |`
    ),
    "",
    "Target <= 1.4 (to empty); each CLI call <= 1.2x the floor (developers' guide). The floor is " +
    "what stricli and node:sqlite cost together before any queuectl code runs; queuectl's own " +
    "share is the difference between its rows and the floor.",
    "",
  ].join("\n");
}

const BARE_INSERT = `
import { DatabaseSync } from "node:sqlite";
const [db, file] = Deno.args;
const d = new DatabaseSync(db);
d.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
const schema = Deno.env.get("SCHEMA");
if (schema) d.exec(schema);
const rows = (await Deno.readTextFile(file)).split("\\n").filter(Boolean).map((l) => JSON.parse(l));
const now = Date.now();
const ins = d.prepare("INSERT INTO jobs (id, command, queue, state, priority, attempts, max_retries, timeout, run_at, created_at, updated_at) VALUES (?, ?, 'default', 'pending', 0, 0, 3, NULL, ?, ?, ?)");
d.exec("BEGIN");
for (const r of rows) ins.run(r.id, r.command, now, now, now);
d.exec("COMMIT");
d.close();
`;

const MINIMAL_SCHEMA = "CREATE TABLE jobs (id TEXT PRIMARY KEY, command TEXT NOT NULL, " +
  "queue TEXT NOT NULL, state TEXT NOT NULL, priority INTEGER NOT NULL, attempts INTEGER NOT NULL, " +
  "max_retries INTEGER NOT NULL, timeout REAL, run_at INTEGER NOT NULL, created_at INTEGER NOT NULL, " +
  "updated_at INTEGER NOT NULL)";

async function bulkEnqueue(dir: string, n: number, rounds: number): Promise<string> {
  const file = `${dir}/jobs.jsonl`;
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(JSON.stringify({ id: `job-${i}`, command: `echo ${i}` }));
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
  const bare = `${dir}/bare_insert.ts`;
  await Deno.writeTextFile(bare, BARE_INSERT);
  const ours: number[] = [];
  const sameSchema: number[] = [];
  const minimal: number[] = [];
  for (let r = 0; r < rounds; r++) {
    // queuectl: a fresh database each round.
    const db1 = `${dir}/bulk-${r}.db`;
    ours.push(
      await timeCommand(deno, ["run", ...PERMISSIONS, MAIN, "enqueue", "--file", file], {
        env: { QUEUECTL_DB: db1 },
      }),
    );
    // Bare insert into a database that already has queuectl's schema (same indexes).
    const db2 = `${dir}/bare-${r}.db`;
    (await openSqliteStore(db2)).close();
    sameSchema.push(
      await timeCommand(deno, [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        bare,
        db2,
        file,
      ]),
    );
    // Bare insert into a table with the same columns and only a primary key.
    const db3 = `${dir}/minimal-${r}.db`;
    minimal.push(
      await timeCommand(deno, [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        bare,
        db3,
        file,
      ], {
        env: { SCHEMA: MINIMAL_SCHEMA },
      }),
    );
    const check = new DatabaseSync(db1, { readOnly: true });
    const count = (check.prepare("SELECT count(*) AS n FROM jobs").get() as { n: number }).n;
    check.close();
    if (count !== n) throw new Error(`expected ${n} jobs, found ${count}`);
  }
  return [
    `### Bulk enqueue: \`enqueue --file\` of ${
      n.toLocaleString("en")
    } jobs vs a bare node:sqlite insert`,
    "",
    `Median of ${rounds}, each a fresh process and database (wall time, includes Deno start-up):`,
    "",
    "| run | ms | queuectl / this |",
    "|---|---|---|",
    `| queuectl enqueue --file | ${fmt(median(ours), 0)} | 1.00 |`,
    `| bare insert, queuectl's schema (same indexes) | ${fmt(median(sameSchema), 0)} | ${
      fmt(median(ours) / median(sameSchema), 2)
    } |`,
    `| bare insert, minimal table (primary key only) | ${fmt(median(minimal), 0)} | ${
      fmt(median(ours) / median(minimal), 2)
    } |`,
    "",
    "Target: queuectl < 3x the bare insert.",
    "",
  ].join("\n");
}

/** Fills a database with `n` jobs in a realistic mix of states, through SQL for speed. */
async function seedLarge(path: string, n: number): Promise<void> {
  (await openSqliteStore(path)).close();
  const d = new DatabaseSync(path);
  d.exec("PRAGMA synchronous = OFF");
  const ins = d.prepare(
    "INSERT INTO jobs (id, command, queue, state, priority, attempts, max_retries, timeout, run_at, " +
      "created_at, updated_at, finished_at) VALUES (?, ?, ?, ?, 0, ?, 3, NULL, ?, ?, ?, ?)",
  );
  const start = Date.now() - n * 10;
  d.exec("BEGIN");
  for (let i = 0; i < n; i++) {
    const r = i % 20;
    const state = r < 13 ? "completed" : r < 17 ? "pending" : r < 19 ? "failed" : "dead";
    const t = start + i * 10;
    ins.run(
      `job-${i}`,
      `echo ${i}`,
      i % 3 === 0 ? "mail" : "default",
      state,
      state === "pending" ? 0 : 1,
      state === "failed" ? t + 3_600_000 : t,
      t,
      t,
      state === "completed" ? t : null,
    );
  }
  d.exec("COMMIT");
  // Raw inserts bypass the store: bring its per-queue, per-state counters up to date.
  d.exec(
    "DELETE FROM job_counts; INSERT INTO job_counts (queue, state, n) " +
      "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state",
  );
  d.close();
}

async function largeQueries(dir: string, n: number, rounds: number): Promise<string> {
  const db = `${dir}/large.db`;
  await seedLarge(db, n);
  const env = { QUEUECTL_DB: db, NO_COLOR: "1" };
  const empty = `${dir}/empty.ts`;
  const base: number[] = [];
  const status: number[] = [];
  const list: number[] = [];
  const version: number[] = [];
  await timeCommand(deno, ["run", ...PERMISSIONS, MAIN, "status"], { env });
  for (let i = 0; i < rounds; i++) {
    base.push(await timeCommand(deno, ["run", empty]));
    version.push(await timeCommand(deno, ["run", ...PERMISSIONS, MAIN, "--version"], { env }));
    status.push(await timeCommand(deno, ["run", ...PERMISSIONS, MAIN, "status"], { env }));
    list.push(
      await timeCommand(deno, [
        "run",
        ...PERMISSIONS,
        MAIN,
        "list",
        "--state",
        "pending",
        "--limit",
        "50",
      ], { env }),
    );
  }
  // In-process: the query work alone, on a warm page cache.
  const store = await openSqliteStore(db);
  const { status: statusUseCase, listJobs } = await import("../src/app/queue.ts");
  const ctx = { store, clock: { now: () => Date.now() } };
  const inStatus: number[] = [];
  const inList: number[] = [];
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    await statusUseCase(ctx);
    inStatus.push(performance.now() - t);
    t = performance.now();
    await listJobs(ctx, { state: "pending", limit: 50 });
    inList.push(performance.now() - t);
  }
  await store.close();
  const b = median(base);
  return [
    `### \`status\` and \`list --state pending --limit 50\` on ${n.toLocaleString("en")} jobs`,
    "",
    `Median of ${rounds} runs. "Beyond start" = command wall time minus \`deno run empty.ts\` (${
      fmt(b)
    } ms) in the same run.`,
    "",
    "| command | wall ms | beyond start ms | in-process query ms |",
    "|---|---|---|---|",
    `| queuectl --version (no database) | ${fmt(median(version))} | ${
      fmt(median(version) - b)
    } | - |`,
    `| queuectl status | ${fmt(median(status))} | ${fmt(median(status) - b)} | ${
      fmt(median(inStatus))
    } |`,
    `| queuectl list --state pending --limit 50 | ${fmt(median(list))} | ${
      fmt(median(list) - b)
    } | ${fmt(median(inList))} |`,
    "",
    "Target: under 150 ms beyond process start.",
    "",
  ].join("\n");
}

/** The parts of this benchmark, in the order a full run measures them. */
const PARTS = ["startup", "bulk", "queries"] as const;
type Part = typeof PARTS[number];

export async function benchFoundation(
  opts: { quick?: boolean; parts?: readonly Part[] } = {},
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-bench-" });
  const parts = opts.parts ?? PARTS;
  try {
    const sections: string[] = [];
    if (parts.includes("startup")) sections.push(await startup(dir, opts.quick ? 5 : 21));
    if (parts.includes("bulk")) {
      sections.push(await bulkEnqueue(dir, opts.quick ? 10_000 : 100_000, opts.quick ? 1 : 3));
    }
    if (parts.includes("queries")) {
      sections.push(await largeQueries(dir, opts.quick ? 100_000 : 1_000_000, opts.quick ? 3 : 7));
    }
    return sections.join("\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// deno run -A bench/foundation.ts [--quick] [--part=startup|bulk|queries]
if (import.meta.main) {
  const part = Deno.args.find((a) => a.startsWith("--part="))?.slice("--part=".length);
  if (part !== undefined && !(PARTS as readonly string[]).includes(part)) {
    console.error(`error: unknown --part ${part} (one of ${PARTS.join(", ")})`);
    Deno.exit(2);
  }
  console.log(
    await benchFoundation({
      quick: Deno.args.includes("--quick"),
      parts: part === undefined ? undefined : [part as Part],
    }),
  );
}
