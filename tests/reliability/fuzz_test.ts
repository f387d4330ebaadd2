/**
 * Fuzzing (property-based, fast-check): the enqueue parser and the config setter get arbitrary
 * JSON and strings; job output gets arbitrary bytes. Whatever comes in: no crash, never an
 * internal error, either a valid job / value or one clear `InvalidInput`/`Conflict` message, and
 * the database unchanged on error.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { ManualClock } from "../../src/core/clock.ts";
import { Conflict, ExitCodes, formatError, InvalidInput } from "../../src/core/errors.ts";
import {
  type JOB_SPEC_FIELDS,
  MAX_RETRIES_LIMIT,
  type NewJob,
  parseJobSpec,
  PRIORITY_LIMIT,
  validateJobId,
  validateQueueName,
} from "../../src/core/job.ts";
import { complete, fail } from "../../src/core/transitions.ts";
import { appFor } from "../../src/cli/mod.ts";
import { runInProcess } from "../helpers/in_process.ts";
import { enqueue, parseJobArgument, parseJobFile } from "../../src/app/queue.ts";
import { CONFIG_KEYS, type ConfigKey, parseValue, resolveKey } from "../../src/core/config.ts";
import {
  getConfigValue,
  loadConfig,
  setConfigValue,
  unsetConfigValue,
} from "../../src/app/config.ts";
import { execute } from "../../src/worker/executor.ts";
import { runCli } from "../helpers/run_cli.ts";
import { snapshotDb } from "../helpers/snapshot.ts";
import { tempStore } from "../helpers/temp.ts";
import { report, size } from "./profile.ts";

/** Runs of each in-process property, and of each property through the real CLI (slow). */
const RUNS = size(150, 2000);
const CLI_RUNS = size(4, 40);
const OUTPUT_RUNS = size(15, 300);
const DEFAULTS = { max_retries: 3, now: Date.UTC(2026, 0, 1) };
/** The latest time a JavaScript Date can hold (ms since the epoch). */
const MAX_DATE_MS = 8.64e15;

// --- arbitraries ------------------------------------------------------------------------------

/** What JSON.parse can hand the parser: the value goes through JSON text and back. */
const viaJson = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

const validId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:@+\/-]{0,30}$/);
/** A few ids used over and over, so duplicates (within a file and with stored jobs) happen. */
const hotId = fc.constantFrom("job1", "job2", "a.b", "x:y@z");
const durationText = fc.stringMatching(/^\s?\d{1,25}(\.\d{1,4})?\s?(ms|s|m|h|d|w)?\s?$/);

/** Per field: a plausible value, a value of the right type at the edges, or any JSON at all. */
const fieldValues: Record<typeof JOB_SPEC_FIELDS[number], fc.Arbitrary<unknown>> = {
  id: fc.oneof(validId, hotId, fc.string(), fc.jsonValue()),
  command: fc.oneof(fc.string({ minLength: 1 }), fc.string({ unit: "binary" }), fc.jsonValue()),
  queue: fc.oneof(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,70}$/), fc.jsonValue()),
  priority: fc.oneof(fc.integer({ min: -2e6, max: 2e6 }), fc.double(), fc.jsonValue()),
  max_retries: fc.oneof(fc.integer({ min: -5, max: 1200 }), fc.double(), fc.jsonValue()),
  timeout: fc.oneof(fc.double({ min: -10, max: 4e7 }), fc.constant(null), fc.jsonValue()),
  run_at: fc.oneof(
    fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
    fc.stringMatching(/^\d{4}-\d{2}-\d{2}.{0,20}$/),
    fc.jsonValue(),
  ),
  delay: fc.oneof(
    fc.double({ noNaN: true }),
    fc.integer({ min: -1000, max: 1e9 }),
    durationText,
    fc.jsonValue(),
  ),
  cwd: fc.oneof(fc.constantFrom("/tmp", "/a/../b/", "sub/dir", ".."), fc.string(), fc.jsonValue()),
  after: fc.oneof(
    fc.array(fc.oneof(hotId, validId), { maxLength: 3 }),
    fc.oneof(hotId, validId),
    fc.jsonValue(),
  ),
  env: fc.oneof(
    fc.dictionary(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/), fc.string()),
    fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue(), { maxKeys: 3 }),
    fc.jsonValue(),
  ),
  unique_key: fc.oneof(fc.constantFrom("k1", "k2"), fc.string(), fc.constant(null), fc.jsonValue()),
};

/** An object with any subset of the job fields, now and then with an unknown one. */
const jobLike: fc.Arbitrary<unknown> = fc.tuple(
  fc.record(fieldValues, { requiredKeys: [] }),
  fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue(), { maxKeys: 2 }), {
    freq: 5,
  }),
).map(([known, extra]) => viaJson({ ...(extra ?? {}), ...known }));

/** A spec whose every field is of the right kind, with values up to and past the limits. */
const plausibleJob: fc.Arbitrary<unknown> = fc.record({
  id: validId,
  command: fc.string({ minLength: 1, unit: "grapheme" }),
  queue: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,70}$/),
  priority: fc.integer({ min: -1_100_000, max: 1_100_000 }),
  max_retries: fc.integer({ min: 0, max: 1100 }),
  timeout: fc.double({ min: 0, max: 4e7, noNaN: true }),
  when: fc.oneof(
    fc.record({ delay: fc.oneof(fc.double({ min: 0, noNaN: true }), durationText) }),
    fc.record({ run_at: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()) }),
  ),
}, { requiredKeys: ["command"] }).map(({ when, ...rest }) => viaJson({ ...rest, ...when }));

/** A spec that should be accepted (unless its id is taken): every value within its limits. */
const validJob: fc.Arbitrary<unknown> = fc.record({
  id: fc.oneof({ weight: 6, arbitrary: validId }, { weight: 1, arbitrary: hotId }),
  command: fc.string({ minLength: 1, unit: "grapheme" }).filter((c) => c.trim() !== ""),
  queue: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
  priority: fc.integer({ min: -1_000_000, max: 1_000_000 }),
  max_retries: fc.integer({ min: 0, max: 1000 }),
  timeout: fc.double({ min: 0.001, max: 31_536_000, noNaN: true }),
  delay: fc.oneof(fc.double({ min: 0, max: 1e9, noNaN: true }), fc.constantFrom("30s", "5m")),
}, { requiredKeys: ["command"] }).map(viaJson);

/** Anything a user could put where a job is expected. */
const jobValue = fc.oneof(
  { weight: 3, arbitrary: plausibleJob },
  { weight: 3, arbitrary: jobLike },
  { weight: 1, arbitrary: fc.jsonValue().map(viaJson) },
);

/** Text of a job file: an array, JSON Lines, arbitrary text, or valid text with a byte changed. */
const fileJob = fc.oneof({ weight: 10, arbitrary: validJob }, { weight: 1, arbitrary: jobValue });
const jobFileText: fc.Arbitrary<string> = fc.oneof(
  fc.array(fileJob, { minLength: 0, maxLength: 6 }).map((a) => JSON.stringify(a)),
  fc.array(fc.oneof(fileJob.map((v) => JSON.stringify(v)), fc.constantFrom("", "  ", "\r")), {
    maxLength: 8,
  }).map((lines) => lines.join("\n")),
  fc.string({ unit: "grapheme" }),
  fc.tuple(
    fc.array(jobLike, { minLength: 1, maxLength: 4 }).map((a) =>
      a.map((v) => JSON.stringify(v)).join("\n")
    ),
    fc.nat(),
    fc.string({ minLength: 1, maxLength: 2 }),
  ).map(([text, at, insert]) => {
    const i = at % (text.length + 1);
    return text.slice(0, i) + insert + text.slice(i);
  }),
);

const configKeyInput: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...Object.keys(CONFIG_KEYS)),
  fc.constantFrom(...Object.keys(CONFIG_KEYS)).map((k) =>
    ` ${k.toUpperCase().replaceAll("_", "-")}`
  ),
  // Names every object has through its prototype: they are not config keys.
  fc.constantFrom("constructor", "__proto__", "hasOwnProperty", "toString", "valueOf"),
  fc.string(),
);
const configValueText: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: -10, max: 100_000_000 }).map(String),
  fc.double().map(String),
  durationText,
  fc.stringMatching(/^\s?\d{1,12}\s?(b|k|kb|kib|m|mb|mib|K|KiB|MiB|MB)?\s?$/),
  fc.string(),
);

// --- checks ----------------------------------------------------------------------------------

/** A user-facing error: the expected class, one non-empty line, no internal-error wording. */
function assertClearError(err: unknown, classes: (typeof InvalidInput | typeof Conflict)[]): void {
  if (!classes.some((c) => err instanceof c)) {
    throw new Error(`expected ${classes.map((c) => c.name).join(" or ")}, got: ${err}`, {
      cause: err,
    });
  }
  const message = (err as Error).message;
  assert.ok(message.trim().length > 0, "error message is empty");
  // One line, and no control character from the input reaches the terminal raw.
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(message, /[\u0000-\u001f\u007f]/, `control character in: ${message}`);
  assert.doesNotMatch(message, /\[object Object\]|internal error/, message);
  assert.match(formatError(err), /^error: /);
}

/** A parsed job is valid in every field and keeps what the user asked for. */
function assertValidJob(job: NewJob, spec: Record<string, unknown>, now: number): void {
  assert.doesNotThrow(() => validateJobId(job.id));
  assert.doesNotThrow(() => validateQueueName(job.queue));
  assert.equal(typeof job.command, "string");
  assert.ok(job.command.trim() !== "" && !job.command.includes("\0"));
  assert.ok(Number.isInteger(job.priority) && Math.abs(job.priority) <= PRIORITY_LIMIT);
  assert.ok(Number.isInteger(job.max_retries));
  assert.ok(job.max_retries >= 0 && job.max_retries <= MAX_RETRIES_LIMIT);
  assert.ok(job.timeout === null || (Number.isFinite(job.timeout) && job.timeout > 0));
  assert.ok(
    Number.isSafeInteger(job.run_at) && Math.abs(job.run_at) <= MAX_DATE_MS,
    `run_at ${job.run_at} is not a representable time`,
  );
  assert.ok(job.cwd === null || job.cwd.startsWith("/"), `cwd ${job.cwd} is not absolute`);
  if (job.env !== null) {
    const env: Record<string, unknown> = JSON.parse(job.env);
    assert.deepEqual(env, spec.env);
    for (const v of Object.values(env)) assert.ok(typeof v === "string" && !v.includes("\0"));
  }
  assert.equal(job.command, spec.command);
  if (typeof spec.id === "string") assert.equal(job.id, spec.id);
  assert.equal(job.queue, spec.queue ?? "default");
  assert.equal(job.priority, spec.priority ?? 0);
  assert.equal(job.max_retries, spec.max_retries ?? DEFAULTS.max_retries);
  assert.equal(job.timeout, spec.timeout ?? null);
  assert.equal(job.unique_key, spec.unique_key ?? null);
  if (spec.delay === undefined && spec.run_at === undefined) assert.equal(job.run_at, now);
  if (typeof spec.delay === "number") {
    assert.equal(job.run_at, now + Math.round(spec.delay * 1000));
  }
}

/** Only the prefix of an error message that the parser adds, e.g. "line 3: ". */
function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// --- properties in process -------------------------------------------------------------------

Deno.test("fuzz: parseJobSpec turns any JSON value into a valid job or one clear error", () => {
  let valid = 0;
  let refused = 0;
  fc.assert(
    fc.property(jobValue, (value) => {
      let job: NewJob;
      try {
        job = parseJobSpec(value, DEFAULTS, "line 1: ");
      } catch (err) {
        assertClearError(err, [InvalidInput]);
        assert.match((err as Error).message, /^line 1: /);
        refused++;
        return;
      }
      assert.ok(isRecord(value));
      assertValidJob(job, value, DEFAULTS.now);
      valid++;
    }),
    { numRuns: RUNS * 4 },
  );
  report("fuzz parseJobSpec", { runs: RUNS * 4, valid, refused });
  assert.ok(valid > 0 && refused > 0, "both outcomes exercised");
});

Deno.test("fuzz: parseJobArgument takes any string and returns JSON or one clear error", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.string({ unit: "binary" }), jobValue.map((v) => JSON.stringify(v))),
      (text) => {
        try {
          const value = parseJobArgument(text);
          assert.deepEqual(value, JSON.parse(text));
        } catch (err) {
          assertClearError(err, [InvalidInput]);
        }
      },
    ),
    { numRuns: RUNS * 4 },
  );
});

Deno.test("fuzz: enqueue of any file is all or nothing, and nothing changes on error", async () => {
  await using t = await tempStore();
  const ctx = { store: t.store, clock: new ManualClock(DEFAULTS.now) };
  let enqueued = 0;
  let refused = 0;
  let jobs = 0;
  await fc.assert(
    fc.asyncProperty(jobFileText, async (text) => {
      const before = snapshotDb(t.dbPath);
      let ids: string[];
      let specs: { value: unknown; where: string }[] = [];
      try {
        specs = parseJobFile(text);
        ids = await enqueue(ctx, specs);
      } catch (err) {
        assertClearError(err, [InvalidInput, Conflict]);
        assert.equal(snapshotDb(t.dbPath), before, "database changed by a refused enqueue");
        refused++;
        return;
      }
      assert.equal(ids.length, specs.length);
      for (const [i, id] of ids.entries()) {
        const stored = await t.store.getJob({ id });
        assert.ok(stored, `job ${id} is in the database`);
        assert.equal(stored.state, "pending");
        assert.equal(stored.attempts, 0);
        const spec = specs[i].value as Record<string, unknown>;
        if (typeof spec.unique_key === "string") {
          // The job inserted, or the pending job that held its key already (printed instead).
          assert.equal(stored.unique_key, spec.unique_key);
          const own = stored.command === spec.command &&
            (typeof spec.id !== "string" || stored.id === spec.id);
          if (!own) continue;
        }
        assertValidJob(stored, spec, DEFAULTS.now);
      }
      enqueued++;
      jobs += ids.length;
    }),
    { numRuns: RUNS },
  );
  report("fuzz enqueue file", { runs: RUNS, enqueued, refused, jobs });
  assert.ok(enqueued > 0 && refused > 0, "both outcomes exercised");
});

Deno.test("fuzz: config set stores a value that reads back the same, or changes nothing", async () => {
  await using t = await tempStore();
  let set = 0;
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(configKeyInput, configValueText, async (keyInput, text) => {
      const before = snapshotDb(t.dbPath);
      let entry;
      try {
        entry = await setConfigValue(t.store, keyInput, text);
      } catch (err) {
        assertClearError(err, [InvalidInput]);
        assert.match((err as Error).message, /Unknown config key|Cannot set '[a-z_]+'/);
        assert.equal(snapshotDb(t.dbPath), before, "database changed by a refused config set");
        refused++;
        return;
      }
      const key: ConfigKey = resolveKey(keyInput);
      assert.equal(entry.key, key);
      assert.equal(entry.value, parseValue(key, text));
      // Numbers, or the text of a hook command (hook_* keys).
      assert.ok(typeof entry.value === "string" || Number.isFinite(entry.value));
      assert.equal(entry.is_default, false);
      // The stored text must read back as the same value (no silent fall-back to the default).
      assert.equal((await loadConfig(t.store))[key], entry.value, `${key} = ${text}`);
      set++;
    }),
    { numRuns: RUNS * 2 },
  );
  report("fuzz config set", { runs: RUNS * 2, set, refused });
  assert.ok(set > 0 && refused > 0, "both outcomes exercised");
});

Deno.test("fuzz: config get and unset of any key give the entry or one clear error", async () => {
  await using t = await tempStore();
  await fc.assert(
    fc.asyncProperty(configKeyInput, fc.boolean(), async (keyInput, unset) => {
      const before = snapshotDb(t.dbPath);
      try {
        if (unset) assert.equal(typeof await unsetConfigValue(t.store, keyInput), "boolean");
        const entry = await getConfigValue(t.store, keyInput);
        assert.equal(entry.key, resolveKey(keyInput));
        assert.ok(typeof entry.value === "string" || Number.isFinite(entry.value));
        assert.equal(entry.value, CONFIG_KEYS[entry.key].default);
      } catch (err) {
        assertClearError(err, [InvalidInput]);
        assert.match((err as Error).message, /^Unknown config key /);
        assert.equal(snapshotDb(t.dbPath), before);
      }
    }),
    { numRuns: RUNS },
  );
});

// --- through the real CLI --------------------------------------------------------------------

/** No NUL: an argv string cannot hold one. */
const argText = (a: fc.Arbitrary<string>) => a.filter((s) => !s.includes("\0"));

/** The CLI either succeeded or printed exactly one `error: ` line, no stack trace, no change. */
async function assertCliOutcome(
  db: string,
  args: string[],
  expectedOk: (stdout: string) => void,
): Promise<boolean> {
  const before = snapshotDb(db);
  const r = await runCli(args, { db });
  assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+|internal error|Uncaught/, r.stderr);
  if (r.code === 0) {
    assert.equal(r.stderr, "");
    expectedOk(r.stdout);
    return true;
  }
  assert.ok(
    ([ExitCodes.invalidInput, ExitCodes.conflict] as number[]).includes(r.code),
    `exit code ${r.code} for ${JSON.stringify(args)}: ${r.stderr}`,
  );
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one stderr line expected, got: ${r.stderr}`);
  assert.match(lines[0], /^error: \S/);
  assert.equal(r.stdout, "");
  assert.equal(snapshotDb(db), before, `database changed by ${JSON.stringify(args)}`);
  return false;
}

Deno.test("fuzz (CLI): enqueue, enqueue --file and config set with generated input", async () => {
  await using t = await tempStore();
  await t.store.close(); // the CLI subprocesses own the database from here
  const file = t.dir.file("jobs.txt");
  let ok = 0;
  let refused = 0;
  const count = (accepted: boolean) => accepted ? ok++ : refused++;
  await fc.assert(
    fc.asyncProperty(
      argText(fc.oneof(jobValue.map((v) => JSON.stringify(v)), fc.string())),
      async (text) => {
        count(
          await assertCliOutcome(t.dbPath, ["enqueue", text], (out) => {
            assert.match(out, /^\S+\n$/, "one id printed");
          }),
        );
      },
    ),
    { numRuns: CLI_RUNS },
  );
  await fc.assert(
    fc.asyncProperty(jobFileText, async (text) => {
      await Deno.writeTextFile(file, text);
      count(
        await assertCliOutcome(t.dbPath, ["enqueue", "--file", file, "--json"], (out) => {
          assert.ok(Array.isArray(JSON.parse(out)));
        }),
      );
    }),
    { numRuns: CLI_RUNS },
  );
  await fc.assert(
    fc.asyncProperty(argText(configKeyInput), argText(configValueText), async (key, value) => {
      count(
        await assertCliOutcome(t.dbPath, ["config", "set", key, value], (out) => {
          // One line; a hook's command may hold spaces, or be "" (no hook).
          assert.match(out, /^[a-z_]+ = (\S([^\n]*\S)?)?\n$/);
        }),
      );
    }),
    { numRuns: CLI_RUNS },
  );
  report("fuzz CLI", { runs: CLI_RUNS * 3, ok, refused });
});

// --- the whole command tree, in process --------------------------------------------------------

/** Runs the CLI's command tree in this process (as main.ts does), capturing its output. */
async function cliInProcess(args: string[], db: string) {
  const { code: raw, stdout, stderr } = await runInProcess(appFor(args), args, {
    QUEUECTL_DB: db,
    NO_COLOR: "1",
  });
  let code = Number(raw);
  // main.ts: stricli's own negative codes are 1 (internal) and 2 (bad arguments).
  if (code < 0) code = code === -1 ? ExitCodes.internal : ExitCodes.invalidInput;
  return { code, stdout, stderr };
}

const COMMAND_PATHS: string[][] = [
  ["enqueue"],
  ["list"],
  ["ls"],
  ["show"],
  ["logs"],
  ["status"],
  ["retry"],
  ["cancel"],
  ["purge"],
  ["dlq", "list"],
  ["dlq", "restore"],
  ["dlq", "move"],
  ["dlq", "purge"],
  ["config", "list"],
  ["config", "get"],
  ["config", "set"],
  ["config", "unset"],
  ["worker", "list"],
  ["worker", "stop"],
];
const SEEDED_IDS = ["p1", "f1", "d1", "c1"];
const token: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "--json",
    "--state",
    "--limit",
    "--offset",
    "--after",
    "--queue",
    "--search",
    "--id",
    "--priority",
    "--delay",
    "--max-retries",
    "--timeout",
    "--run-at",
    "--older-than",
    "--all",
    "--force",
    "--no-color",
    "--",
    "-n",
    "--help",
  ),
  fc.constantFrom(...SEEDED_IDS, ...Object.keys(CONFIG_KEYS), "constructor", "__proto__"),
  fc.constantFrom(
    "pending",
    "processing",
    "completed",
    "failed",
    "dead",
    "0",
    "-1",
    "1.5",
    "1e3",
    "1e400",
    "0x10",
    "NaN",
    "Infinity",
    "0s",
    "30s",
    "99999999999999999999w",
    "2030-01-01T00:00:00Z",
    "+275760-09-13T00:00:01Z",
  ),
  validJob.map((v) => JSON.stringify(v)),
  fc.string(),
);
const argv = fc.tuple(fc.constantFrom(...COMMAND_PATHS), fc.array(token, { maxLength: 6 }))
  .map(([path, rest]) => [...path, ...rest])
  // No NUL (argv cannot hold one); no way to point at another database or read stdin.
  .filter((a) => a.every((t) => !t.includes("\0") && !/^--(db|file|log)\b/.test(t)));

Deno.test("fuzz: any argv through the whole command tree: a result or one error line, no change", async () => {
  await using t = await tempStore();
  // One job in each settled-or-waiting state, so retry/cancel/dlq/purge have something to act on.
  const clock = new ManualClock(Date.now() - 30 * 86_400_000);
  const ctx = { store: t.store, clock };
  // Each seed in its own queue, so each claim below takes exactly that job.
  await enqueue(
    ctx,
    SEEDED_IDS.map((id) => ({ value: { id, queue: id, command: "true", max_retries: 1 } })),
  );
  const config = await loadConfig(t.store);
  const claim = async (id: string) => {
    const [job] = await t.store.claimJobs({
      workerId: "w",
      queues: [id],
      now: clock.now(),
      leaseMs: 1000,
      limit: 1,
    });
    assert.equal(job.id, id);
    return job;
  };
  const runOf = (exit_code: number) => ({ now: clock.now(), workerId: "w", exit_code });
  assert.ok(await t.store.applyChange({ change: complete(await claim("c1"), runOf(0)) }));
  assert.ok(await t.store.applyChange({ change: fail(await claim("f1"), runOf(1), config) }));
  assert.ok(await t.store.applyChange({ change: fail(await claim("d1"), runOf(1), config) }));
  clock.advance(10_000);
  assert.ok(await t.store.applyChange({ change: fail(await claim("d1"), runOf(1), config) }));
  assert.equal((await t.store.getJob({ id: "d1" }))?.state, "dead");
  await t.store.close();

  const codes: Record<number, number> = {};
  await fc.assert(
    fc.asyncProperty(argv, async (args) => {
      const before = snapshotDb(t.dbPath);
      if (Deno.env.get("FUZZ_TRACE")) console.error(JSON.stringify(args));
      const r = await cliInProcess(args, t.dbPath);
      codes[r.code] = (codes[r.code] ?? 0) + 1;
      const what = JSON.stringify(args);
      assert.doesNotMatch(r.stderr, /internal error|\bat .*\.ts:\d+/, `${what}: ${r.stderr}`);
      if (r.code === 0) {
        assert.doesNotMatch(r.stderr, /^error:/m, what);
        return;
      }
      assert.ok(
        ([ExitCodes.invalidInput, ExitCodes.notFound, ExitCodes.conflict] as number[]).includes(
          r.code,
        ),
        `${what}: exit ${r.code}: ${r.stderr}`,
      );
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, `${what}: one stderr line expected, got: ${r.stderr}`);
      assert.match(lines[0], /^error: \S/);
      // deno-lint-ignore no-control-regex
      assert.doesNotMatch(lines[0], /[\u0000-\u001f\u007f]/, `${what}: control character`);
      assert.equal(snapshotDb(t.dbPath), before, `${what} failed but changed the database`);
    }),
    { numRuns: size(300, 4000) },
  );
  report("fuzz whole CLI in process", { runs: size(300, 4000), exit_codes: codes });
});

// --- arbitrary bytes in job output -----------------------------------------------------------

/** Byte strings that hurt: invalid UTF-8, lone surrogates, overlongs, NUL, cut characters. */
const nastyChunk = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.constantFrom(
    [0x00],
    [0xff],
    [0xfe, 0xff],
    [0xc3],
    [0xc0, 0x80],
    [0xed, 0xa0, 0x80],
    [0xf0, 0x9f, 0x98],
    [0xf0, 0x9f, 0x98, 0x80],
    [0xe2, 0x80, 0xa8],
    [0x1b, 0x5b, 0x32, 0x4a],
    [0x0d],
    [0x0a],
  ).map((a) => new Uint8Array(a)),
  fc.string({ unit: "grapheme" }).map((s) => new TextEncoder().encode(s)),
);
const nastyBytes = fc.array(nastyChunk, { maxLength: 40 }).chain((chunks) =>
  fc.nat({ max: 3 }).map((longLine) => {
    const parts = [...chunks];
    // Now and then a long line without a newline (bigger than small output limits).
    if (longLine === 0) parts.push(new Uint8Array(5000).fill(0x61));
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return all;
  })
);

/** How the executor may present bytes: decoded as UTF-8, NUL as U+FFFD. */
function decoded(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes).replaceAll("\0", "\uFFFD");
}

Deno.test("fuzz: arbitrary bytes in job output are stored, bounded and read back by the CLI", async () => {
  await using t = await tempStore();
  const clock = new ManualClock(DEFAULTS.now);
  const ctx = { store: t.store, clock };
  const outFile = t.dir.file("out.bin");
  const errFile = t.dir.file("err.bin");
  const jobs: { id: string; stdout: string; stderr: string; limit: number }[] = [];
  let truncated = 0;
  let n = 0;

  /** Runs one job through executor and store like a worker does; returns what was stored. */
  async function runJob(command: string, limit: number) {
    await setConfigValue(t.store, "output_limit", String(limit));
    const config = await loadConfig(t.store);
    assert.equal(config.output_limit, limit);
    const id = `out-${++n}`;
    await enqueue(ctx, [{ value: { id, command, max_retries: 0 } }]);
    const [job] = await t.store.claimJobs({
      workerId: "fuzz",
      queues: null,
      now: clock.now(),
      leaseMs: 30_000,
      limit: 1,
    });
    assert.equal(job.id, id);
    const result = await execute({ command, outputLimit: config.output_limit, cwd: t.dir.path });
    const run = {
      now: clock.now(),
      workerId: "fuzz",
      exit_code: result.exit_code,
      error: result.error,
    };
    const change = result.exit_code === 0 ? complete(job, run) : fail(job, run, config);
    assert.ok(
      await t.store.applyChange({
        change,
        output: { stdout: result.stdout, stderr: result.stderr },
      }),
    );
    const stored = await t.store.getJobOutput({ id });
    assert.ok(stored);
    // Bounded: the last `limit` bytes kept, each byte at most one UTF-16 unit once decoded.
    assert.ok(stored.stdout.length <= limit, `stdout ${stored.stdout.length} > ${limit}`);
    assert.ok(stored.stderr.length <= limit, `stderr ${stored.stderr.length} > ${limit}`);
    assert.ok(!stored.stdout.includes("\0") && !stored.stderr.includes("\0"));
    if (result.truncated.stdout || result.truncated.stderr) truncated++;
    jobs.push({ id, ...stored, limit });
    return { stored, result };
  }

  await fc.assert(
    fc.asyncProperty(
      nastyBytes,
      nastyBytes,
      fc.constantFrom(0, 1, 3, 16, 1000, 65536),
      async (out, err, limit) => {
        await Deno.writeFile(outFile, out);
        await Deno.writeFile(errFile, err);
        const { stored, result } = await runJob("cat out.bin; cat err.bin >&2; exit 3", limit);
        assert.equal(result.exit_code, 3);
        if (out.length <= limit) assert.equal(stored.stdout, decoded(out));
        else assert.ok(result.truncated.stdout);
        if (err.length <= limit) assert.equal(stored.stderr, decoded(err));
        else assert.ok(result.truncated.stderr);
      },
    ),
    { numRuns: OUTPUT_RUNS },
  );

  // Huge lines: megabytes of random bytes (NUL, invalid UTF-8) with no newline, on both streams.
  const hugeMiB = size(2, 32);
  for (const limit of [65536, 1048576]) {
    const { stored, result } = await runJob(
      `head -c ${hugeMiB * 1048576} /dev/urandom; head -c ${hugeMiB * 1048576} /dev/urandom >&2`,
      limit,
    );
    assert.equal(result.exit_code, 0, result.error ?? "");
    assert.ok(result.truncated.stdout && result.truncated.stderr);
    assert.ok(stored.stdout.length > limit / 2, "the tail is kept");
  }

  // Read back through the real CLI: `show --json` and `logs` for a sample and the huge ones.
  const sample = [...jobs.slice(0, size(4, 40)), ...jobs.slice(-2)];
  await t.store.close();
  for (const job of sample) {
    const show = await runCli(["show", job.id, "--json"], { db: t.dbPath });
    assert.equal(show.code, 0, show.stderr);
    assert.equal(show.stderr, "");
    const shown = JSON.parse(show.stdout);
    assert.equal(shown.stdout, job.stdout);
    assert.equal(shown.stderr, job.stderr);
    const logs = await runCli(["logs", job.id], { db: t.dbPath });
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout, job.stdout);
    assert.equal(logs.stderr, job.stderr);
    const text = await runCli(["show", job.id], { db: t.dbPath });
    assert.equal(text.code, 0, text.stderr);
    assert.equal(text.stderr, "");
  }
  report("fuzz job output", {
    jobs: jobs.length,
    truncated,
    huge_line_mib: hugeMiB,
    read_back_by_cli: sample.length,
  });
});
