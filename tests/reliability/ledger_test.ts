/** The fault suite's bookkeeping counts what it says it counts (synthetic runs, records, logs). */
import assert from "node:assert/strict";
import {
  brokenPromises,
  deathsFromLogs,
  findContradictions,
  type JobRecord,
  ledger,
  type LogLine,
  parseLogLines,
} from "./ledger.ts";

const t0 = Date.parse("2026-11-27T10:00:00.000Z");
const at = (ms: number) => new Date(t0 + ms).toISOString();
const log = (source: string, ...lines: [number, string][]) =>
  parseLogLines(source, lines.map(([ms, text]) => `${at(ms)} ${text}`).join("\n"));
const rec = (id: string, state: string, extra: Partial<JobRecord> = {}): JobRecord => ({
  id,
  state,
  attempts: 1,
  ...extra,
});

Deno.test("ledger: a clean run breaks no promise", () => {
  const l = ledger({
    ids: ["a", "b"],
    records: [rec("a", "completed"), rec("b", "completed")],
    runsText: "a 1\nb 1\n",
    logs: log(
      "h",
      [0, "[worker 3fa2c1.1] started a: x"],
      [10, "[worker 3fa2c1.1] completed a (0.01s)"],
      [20, "[worker 3fa2c1.2] started b: x"],
      [30, "[worker 3fa2c1.2] completed b (0.01s)"],
    ),
  });
  assert.deepEqual(brokenPromises(l), []);
  assert.equal(l.runs, 2);
  assert.deepEqual(l.states, { completed: 2 });
});

Deno.test("ledger: lost, vanished and stuck jobs", () => {
  const l = ledger({
    ids: ["gone", "held", "orphan", "waiting"],
    records: [
      rec("held", "processing", { lease_owner: "w1" }),
      rec("orphan", "processing", { lease_owner: "w9" }),
      rec("waiting", "pending"),
    ],
    runsText: "",
    logs: [],
    liveOwners: new Set(["w1"]),
  });
  assert.deepEqual(l.vanished, ["gone"]);
  assert.deepEqual(l.lost, ["gone", "orphan"]);
  assert.deepEqual(l.stuck, ["held", "orphan"]);
  assert.equal(brokenPromises(l).length, 2);
});

Deno.test("ledger: a duplicate is explained only by a death behind each extra run", () => {
  const logs = log(
    "h",
    [0, "[worker 3fa2c1.1] started a: x"],
    [
      100,
      "[supervisor 3fa2c1] worker 3fa2c1.1 (pid 42) was killed by SIGKILL unexpectedly; restarting in 0.5s",
    ],
    [200, "[maintenance] rescued a from lost worker w1-x: retry 1/3 in 1s"],
    [1300, "[worker 3fa2c1.2] started a (attempt 2/4): x"],
    [1400, "[worker 3fa2c1.2] completed a (0.01s)"],
    [0, "[worker 3fa2c1.3] started b: x"],
    [2000, "[worker 3fa2c1.3] completed b (0.01s)"],
  );
  assert.deepEqual(deathsFromLogs(logs).map((d) => [...d.jobs]), [["a"]]);
  const l = ledger({
    ids: ["a", "b", "c"],
    records: [rec("a", "completed"), rec("b", "completed"), rec("c", "completed")],
    runsText: "a 1\na 2\nb 1\nb 2\nc 1\nc 2\nc 3\n",
    logs,
    deaths: [{ what: "worker SIGKILLed by the test", jobs: ["c"] }],
  });
  assert.deepEqual(l.duplicates.map((d) => [d.id, d.runs, d.deaths.length]), [
    ["a", 2, 1],
    ["b", 2, 0],
    ["c", 3, 1],
  ]);
  assert.deepEqual(l.unexplainedDuplicates.map((d) => d.id), ["b", "c"]);
});

Deno.test("ledger: wrong outcomes: exited 0 but dead without a death, completed without a run", () => {
  const l = ledger({
    ids: ["ok-dead", "died", "never-ran", "failed-run", "crash"],
    records: [
      rec("ok-dead", "dead", { error: "worker lost" }),
      rec("died", "dead", { error: "worker lost" }),
      rec("never-ran", "completed"),
      rec("failed-run", "dead", { error: "exit code 1" }),
      rec("crash", "dead", { error: "worker lost" }),
    ],
    runsText: "ok-dead 1\ndied 1\ncrash 1\n",
    logs: [],
    deaths: [
      { what: "host cut off", jobs: ["died"] },
      { what: "server crash", jobs: ["crash"], excusesOutcome: false },
    ],
  });
  assert.deepEqual(l.wrongOutcomes.map((w) => w.id), ["ok-dead", "never-ran", "crash"]);
});

Deno.test("ledger: log lines that contradict each other or the record", () => {
  const logs: LogLine[] = [
    ...log(
      "h",
      [0, "[worker 3fa2c1.1] started a: x"],
      [
        3000,
        "[worker 3fa2c1.1] lost the lease on a (another worker took it over); its result will be dropped",
      ],
      [3100, "[worker 3fa2c1.1] completed a (3.10s)"],
      [0, "[worker 3fa2c1.2] started b: x"],
      [3000, "[worker 3fa2c1.2] completed b (3.00s)"],
      [0, "[worker 3fa2c1.3] started c: x"],
      [
        1000,
        "[worker 3fa2c1.3] lost the lease on c (another worker took it over); its result will be dropped",
      ],
      [
        1100,
        "[worker 3fa2c1.3] c: result dropped (completed): its lease expired and the job was taken over",
      ],
    ),
    ...log("k", [
      3050,
      "[maintenance] rescued b from lost worker w2-x: b moved to DLQ (worker lost, 1 attempt)",
    ]),
    ...log("k", [
      900,
      "[maintenance] rescued c from lost worker w3-x: c moved to DLQ (worker lost, 1 attempt)",
    ]),
  ];
  const records = new Map([
    ["a", rec("a", "completed")],
    ["b", rec("b", "completed")],
    ["c", rec("c", "dead")],
  ]);
  const found = findContradictions(logs, records);
  assert.equal(found.length, 2, found.join("\n"));
  assert.match(found[0], /^a: .*will be dropped.* then .*completed a/);
  assert.match(found[1], /^b: last log line .*moved to DLQ.* says dead, recorded completed/);
});
