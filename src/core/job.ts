/**
 * The job model: the states a job moves through, the list of a job's fields ({@link JOB_FIELDS}:
 * the row the store keeps, what a user may set, what a state change may write, the JSON output),
 * and the parsing of a user's job spec (JSON) into a validated {@link NewJob}.
 */
import { parseDuration } from "./duration.ts";
import { InvalidInput } from "./errors.ts";
import {
  type ChangeKey,
  type FieldDef,
  fieldNames,
  type FieldsConsistent,
  fieldsParser,
  type InsertRowOf,
  type InsertSource,
  insertSource,
  type JobDefaults,
  type JobSpec,
  jsonWriter,
  type NewRowOf,
  NOW,
  type RowOf,
  type SpecKey,
} from "./job_fields.ts";
import { quote } from "./text.ts";

export type { JobDefaults, JobSpec };

export const JOB_STATES = ["pending", "processing", "completed", "failed", "dead"] as const;
export type JobState = typeof JOB_STATES[number];

export function isJobState(value: string): value is JobState {
  return (JOB_STATES as readonly string[]).includes(value);
}

export function parseJobState(value: string): JobState {
  if (!isJobState(value)) {
    throw new InvalidInput(
      `Unknown state ${quote(value)}: expected one of ${JOB_STATES.join(", ")}`,
    );
  }
  return value;
}

/**
 * Every field of a job, in column order (and the order of the JSON output). Adding a field: an
 * entry here, one migration per backend (src/store/{sqlite,postgres}/migrations.ts) adding the
 * column, and the docs; the types, both stores' queries, the JSON output and the enqueue
 * validation follow from the entry. See {@link FieldDef} for what an entry says.
 */
export const JOB_FIELDS = {
  id: { type: "text", enqueue: { parse: parseIdField } },
  command: { type: "text", enqueue: { required: true, parse: parseCommandField } },
  queue: { type: "text", enqueue: { parse: parseQueueField } },
  state: { type: "text", values: JOB_STATES, initial: "pending" },
  priority: { type: "integer", enqueue: { parse: parsePriorityField } },
  /** How many times the job has been started (claimed). */
  attempts: { type: "integer", initial: 0, change: true },
  /** Retries allowed after the first failure: the job runs at most 1 + max_retries times. */
  max_retries: { type: "integer", enqueue: { parse: parseMaxRetriesField } },
  /** Per-job timeout in seconds; null = use config `job_timeout`. */
  timeout: { type: "real", nullable: true, enqueue: { parse: parseTimeoutField } },
  /** The job may not start before this time (delay, retry backoff). */
  run_at: {
    type: "time",
    enqueue: { keys: ["run_at", "delay"], parse: parseRunAtField },
    change: true,
  },
  created_at: { type: "time", initial: NOW },
  updated_at: { type: "time", initial: NOW },
  started_at: { type: "time", nullable: true, change: true },
  finished_at: { type: "time", nullable: true, change: true },
  exit_code: { type: "integer", nullable: true, change: true },
  error: { type: "text", nullable: true, change: true },
  /** Worker id holding the lease while processing. */
  lease_owner: { type: "text", nullable: true, change: true },
  lease_expires_at: { type: "time", nullable: true, change: true },
  /**
   * The job's working directory, absolute: `cwd` of the spec resolved against the directory of
   * the process that enqueued it, or that directory (JobDefaults.cwd). Null only for jobs enqueued
   * before it was recorded (they run in the worker's directory).
   */
  cwd: { type: "text", nullable: true, enqueue: { parse: parseCwdField } },
  /**
   * Variables the job gets on top of the worker's environment, as the text of a JSON object of
   * strings (see {@link parseJobEnv}); null = none. JSON output shows the object (jobToJson).
   */
  env: { type: "text", nullable: true, enqueue: { parse: parseEnvField }, json: false },
  /**
   * `queuectl kill`: the signal asked for while the job is processing (its worker signals the
   * job's process group), null otherwise; cleared when the run settles.
   */
  kill_signal: { type: "text", nullable: true, change: true },
  /** With kill_signal: 1 = the killed run counts as a failure under the retry policy (--retry). */
  kill_retry: { type: "integer", nullable: true, change: true, json: false },
  /**
   * The jobs this one runs after (`"after"` in the spec, `enqueue --after`), as the text of a JSON
   * array of ids; null = none. Each must exist or come earlier in the same input, so there are no
   * cycles (docs/architecture.md "Flow control", "Dependencies"). JSON output shows the array as
   * `after`.
   */
  depends_on: {
    type: "text",
    nullable: true,
    enqueue: { keys: ["after"], parse: parseAfterField },
    json: false,
  },
  /**
   * How many of `depends_on` are not completed, kept by the store: a job is claimable only at 0
   * (shown as waiting, blocked on them, otherwise).
   */
  blocked_by: { type: "integer", initial: 0 },
  /**
   * While a job with this key is pending, scheduled (a retry waiting) or running, no other job
   * with it can be enqueued (a partial unique index; see docs/architecture.md "Unique jobs").
   */
  unique_key: { type: "text", nullable: true, enqueue: { parse: parseUniqueKeyField } },
} as const satisfies Record<string, FieldDef>;

type JobFields = typeof JOB_FIELDS;
/** Compile-time check of the list: parsers and initial values fit their field's type. */
const _jobFieldsConsistent: FieldsConsistent<JobFields> = true;

/** A job as stored. Times are milliseconds since the epoch; JSON output turns them into ISO-8601. */
export type Job = RowOf<JobFields>;

/** What enqueue inserts: everything the user may choose, already validated and defaulted. */
export type NewJob = NewRowOf<JobFields>;

/** What a store inserts: a NewJob whose nullable fields may be left out (null). */
export type JobToInsert = InsertRowOf<JobFields>;

/** Columns a state change may write (besides state and updated_at). */
export type JobChangeField = ChangeKey<JobFields>;

/** Captured output of the last run (the last `output_limit` bytes of each stream). */
export interface JobOutput {
  stdout: string;
  stderr: string;
}

/** The state of a newly enqueued job. */
export const NEW_JOB_STATE: JobState = JOB_FIELDS.state.initial;

/** Every column of a job, in list order. */
export const JOB_COLUMNS: readonly (keyof Job)[] = Object.keys(JOB_FIELDS) as (keyof Job)[];

/** The columns a state change may write (`StateChange.set`), in list order. */
export const CHANGE_COLUMNS: readonly JobChangeField[] = fieldNames(JOB_FIELDS, (f) => !!f.change);

/** Each column with where its value comes from when a job is enqueued, in list order. */
export const INSERT_SOURCES: readonly (readonly [keyof Job, InsertSource])[] = JOB_COLUMNS.map(
  (name) => [name, insertSource(JOB_FIELDS[name])] as const,
);

export const DEFAULT_QUEUE = "default";
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@+\/-]{0,199}$/;
const QUEUE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const MAX_RETRIES_LIMIT = 1000;
/** The most dependencies one job may have (a fan-in of this many jobs into one). */
export const MAX_DEPENDENCIES = 10_000;
export const PRIORITY_LIMIT = 1_000_000;
/** The latest time a JavaScript Date can hold (ms since the epoch). */
export const MAX_TIME_MS = 8.64e15;

/** Fields accepted in a job spec. Anything else is refused, so a typo never passes silently. */
export const JOB_SPEC_FIELDS: readonly SpecKey<JobFields>[] = JOB_COLUMNS.flatMap((name) => {
  const enqueue = (JOB_FIELDS[name] as FieldDef).enqueue;
  return enqueue ? (enqueue.keys ?? [name]) : [];
}) as SpecKey<JobFields>[];

/** Crockford's base32 digits, lower case (in ASCII order, so ids sort as their values do). */
const BASE32 = "0123456789abcdefghjkmnpqrstvwxyz";
const ID_RANDOM_DIGITS = 16;
/** The id generator's state: the last millisecond used and its 80-bit random part (digits). */
let idMs = -1;
let idTime = "";
const idRandom = new Uint8Array(ID_RANDOM_DIGITS);
const idChars = new Array<string>(ID_RANDOM_DIGITS);

/**
 * A new job id, ordered by creation time: 26 characters, ULID-style (48-bit millisecond time, then
 * 80 random bits, in Crockford base32, lower case). Within one millisecond (or if the clock steps
 * back) the random part of the previous id is incremented, so ids from one process always sort in
 * the order they were made. Time-ordered ids make inserts append to the primary-key index instead
 * of landing all over it (issue 15.6).
 */
export function generateJobId(now: number = Date.now()): string {
  if (now > idMs) {
    idMs = now;
    let t = now;
    idTime = "";
    for (let i = 0; i < 10; i++) {
      idTime = BASE32[t % 32] + idTime;
      t = Math.floor(t / 32);
    }
    const bytes = crypto.getRandomValues(new Uint8Array(ID_RANDOM_DIGITS));
    for (let i = 0; i < ID_RANDOM_DIGITS; i++) {
      idRandom[i] = bytes[i] & 31;
      idChars[i] = BASE32[idRandom[i]];
    }
  } else {
    let i = ID_RANDOM_DIGITS - 1;
    while (i >= 0 && idRandom[i] === 31) {
      idRandom[i] = 0;
      idChars[i] = "0";
      i--;
    }
    if (i < 0) return generateJobId(idMs + 1); // 2^80 ids in one millisecond: borrow the next
    idRandom[i]++;
    idChars[i] = BASE32[idRandom[i]];
  }
  return idTime + idChars.join("");
}

export function validateJobId(id: string): string {
  if (!ID_PATTERN.test(id)) {
    throw new InvalidInput(
      `Invalid job id ${
        quote(id)
      }: use 1-200 letters, digits or . _ : @ + / -, starting with a letter or digit`,
    );
  }
  return id;
}

export function validateQueueName(queue: string): string {
  if (!QUEUE_PATTERN.test(queue)) {
    throw new InvalidInput(
      `Invalid queue name ${
        quote(queue)
      }: use 1-64 letters, digits or . _ -, starting with a letter or digit`,
    );
  }
  return queue;
}

export function validateMaxRetries(value: unknown, where = "max_retries"): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 0 ||
    value > MAX_RETRIES_LIMIT
  ) {
    throw new InvalidInput(
      `Invalid ${where}: expected a whole number from 0 to ${MAX_RETRIES_LIMIT}, got ${
        quote(value)
      }`,
    );
  }
  return value;
}

export function validatePriority(value: unknown): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || Math.abs(value) > PRIORITY_LIMIT
  ) {
    throw new InvalidInput(
      `Invalid priority: expected a whole number from -${PRIORITY_LIMIT} to ${PRIORITY_LIMIT}, got ${
        quote(value)
      }`,
    );
  }
  return value;
}

export function validateTimeout(value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || value > 31_536_000) {
    throw new InvalidInput(
      `Invalid timeout: expected a number of seconds greater than 0, got ${quote(value)}`,
    );
  }
  return value;
}

/**
 * Accepts an ISO-8601 date-time string; returns epoch milliseconds. Without an offset (`Z`,
 * `+02:00`) the time is this machine's local time, as ISO-8601 says, a date alone included (its
 * local midnight: Date.parse would take a date alone as UTC and a date-time as local).
 */
export function parseRunAt(value: unknown): number {
  const date = typeof value === "string" ? /^(\d{4})-(\d{2})-(\d{2})/.exec(value) : null;
  // Date.parse rolls a day the month does not have over into the next month (2026-02-30 is
  // March 2nd): such a date is refused, not moved.
  const ms = date && isCalendarDate(Number(date[1]), Number(date[2]), Number(date[3]))
    ? (value === date[0]
      ? localMidnight(Number(date[1]), Number(date[2]), Number(date[3]))
      : Date.parse(value as string))
    : NaN;
  if (Number.isNaN(ms)) {
    throw new InvalidInput(
      `Invalid run_at: expected an ISO-8601 date-time such as 2026-12-01T09:00:00Z, got ${
        quote(value)
      }`,
    );
  }
  return ms;
}

/** The start of day `d` of month `m` (1-12) of year `y` in this machine's time zone. */
function localMidnight(y: number, m: number, d: number): number {
  const day = new Date(0);
  day.setFullYear(y, m - 1, d); // not new Date(y, ...), which reads years 0-99 as 1900-1999
  day.setHours(0, 0, 0, 0);
  return day.getTime();
}

/** Whether day `d` of month `m` (1-12) exists in year `y`. */
function isCalendarDate(y: number, m: number, d: number): boolean {
  const probe = new Date(0);
  probe.setUTCFullYear(y, m - 1, d); // not Date.UTC, which reads years 0-99 as 1900-1999
  return probe.getUTCFullYear() === y && probe.getUTCMonth() === m - 1 && probe.getUTCDate() === d;
}

/** `delay` is a duration string ("30s", "5m") or a number of seconds; returns milliseconds. */
export function parseDelay(value: unknown): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0) {
      throw new InvalidInput(
        `Invalid delay: expected seconds >= 0 or a duration like 30s, got ${value}`,
      );
    }
    return Math.round(value * 1000);
  }
  if (typeof value === "string") return parseDuration(value, "delay");
  throw new InvalidInput(
    `Invalid delay: expected seconds or a duration like 30s, got ${quote(value)}`,
  );
}

const parseFields = fieldsParser(JOB_FIELDS);

/**
 * Validates one job spec (already parsed from JSON) and fills in defaults. `where` prefixes error
 * messages, e.g. "line 3: " for a JSON Lines file.
 */
export function parseJobSpec(value: unknown, defaults: JobDefaults, where = ""): NewJob {
  try {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new InvalidInput(
        `A job must be a JSON object like {"command":"echo hi"}, got ${describe(value)}`,
      );
    }
    const spec = value as JobSpec;
    const unknown = Object.keys(spec).filter((k) =>
      !(JOB_SPEC_FIELDS as readonly string[]).includes(k)
    );
    if (unknown.length > 0) {
      throw new InvalidInput(
        `Unknown job field${unknown.length > 1 ? "s" : ""} ${
          unknown.map((k) => quote(k)).join(", ")
        }: allowed fields are ${JOB_SPEC_FIELDS.join(", ")}`,
      );
    }
    return parseFields(spec, defaults) as NewJob;
  } catch (err) {
    if (where && err instanceof InvalidInput) throw new InvalidInput(`${where}${err.message}`);
    throw err;
  }
}

// --- the enqueue parsers of JOB_FIELDS: each reads its spec fields, validates, defaults ---------

/** `"after"`: an id or an array of ids (no repeats kept, not the job's own) → JSON text or null. */
function parseAfterField(spec: JobSpec): string | null {
  const value = spec.after;
  if (value === undefined || value === null) return null;
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.some((v) => typeof v !== "string")) {
    throw new InvalidInput(
      `Invalid after: expected a job id or an array of job ids, got ${quote(value)}`,
    );
  }
  const ids = [...new Set(list as string[])];
  if (ids.length === 0) return null;
  if (ids.length > MAX_DEPENDENCIES) {
    throw new InvalidInput(
      `Invalid after: at most ${MAX_DEPENDENCIES} dependencies, got ${ids.length}`,
    );
  }
  for (const id of ids) {
    try {
      validateJobId(id);
    } catch (err) {
      if (err instanceof InvalidInput) throw new InvalidInput(`Invalid after: ${err.message}`);
      throw err;
    }
  }
  if (typeof spec.id === "string" && ids.includes(spec.id)) {
    throw new InvalidInput(`Job ${quote(spec.id)} cannot run after itself`);
  }
  return JSON.stringify(ids);
}

/** The ids of a job's `depends_on` (see {@link JOB_FIELDS}); [] when none. */
export function parseDependsOn(dependsOn: string | null): string[] {
  return dependsOn === null ? [] : JSON.parse(dependsOn) as string[];
}

function parseCommandField(spec: JobSpec): string {
  if (typeof spec.command !== "string" || spec.command.trim() === "") {
    throw new InvalidInput(
      spec.command === undefined
        ? `Missing "command": a job needs a shell command to run`
        : `Invalid command: expected a non-empty string, got ${quote(spec.command)}`,
    );
  }
  if (spec.command.includes("\0")) {
    throw new InvalidInput("Invalid command: it contains a NUL character");
  }
  // UTF-8 takes at most 3 bytes per UTF-16 unit: most commands need no count.
  if (spec.command.length * 3 > MAX_COMMAND_BYTES) {
    const bytes = new TextEncoder().encode(spec.command).length;
    if (bytes > MAX_COMMAND_BYTES) {
      throw new InvalidInput(
        `Invalid command: ${bytes} bytes, more than the ${MAX_COMMAND_BYTES} a shell is given ` +
          `as one argument (Linux's limit); put it in a script and enqueue the script`,
      );
    }
  }
  return spec.command;
}

/**
 * The longest command in UTF-8 bytes. A job runs as `sh -c <command>`, and Linux refuses an
 * argument longer than MAX_ARG_STRLEN (131,072 bytes with its terminating NUL): a longer command
 * would be accepted, then fail to start on every attempt and end in the DLQ.
 */
export const MAX_COMMAND_BYTES = 131_071;

function parseIdField(spec: JobSpec): string {
  if (spec.id === undefined || spec.id === null) return generateJobId();
  if (typeof spec.id !== "string") {
    throw new InvalidInput(`Invalid id: expected a string, got ${quote(spec.id)}`);
  }
  return validateJobId(spec.id);
}

function parseQueueField(spec: JobSpec): string {
  if (spec.queue === undefined) return DEFAULT_QUEUE;
  if (typeof spec.queue !== "string") {
    throw new InvalidInput(`Invalid queue: expected a string, got ${quote(spec.queue)}`);
  }
  return validateQueueName(spec.queue);
}

function parsePriorityField(spec: JobSpec): number {
  return spec.priority === undefined ? 0 : validatePriority(spec.priority);
}

function parseMaxRetriesField(spec: JobSpec, defaults: JobDefaults): number {
  return spec.max_retries === undefined
    ? defaults.max_retries
    : validateMaxRetries(spec.max_retries);
}

function parseTimeoutField(spec: JobSpec): number | null {
  return spec.timeout === undefined || spec.timeout === null ? null : validateTimeout(spec.timeout);
}

/** `run_at` (an ISO-8601 time) or `delay` (from now), not both; default: now. */
function parseRunAtField(spec: JobSpec, defaults: JobDefaults): number {
  if (spec.run_at !== undefined && spec.delay !== undefined) {
    throw new InvalidInput(`Give either "run_at" or "delay", not both`);
  }
  const run_at = spec.run_at !== undefined
    ? parseRunAt(spec.run_at)
    : defaults.now + (spec.delay !== undefined ? parseDelay(spec.delay) : 0);
  if (!(run_at <= MAX_TIME_MS)) {
    // A delay past the last date JavaScript can hold would break every view of the job.
    throw new InvalidInput(
      `Invalid delay: ${quote(spec.delay)} is too far in the future (a job cannot run after ${
        new Date(MAX_TIME_MS).toISOString()
      })`,
    );
  }
  return run_at;
}

/** Longest unique key accepted. */
export const MAX_UNIQUE_KEY_LENGTH = 200;

/** The job states that hold a unique key: pending (or scheduled), processing, failed (retrying). */
export const UNIQUE_KEY_STATES: readonly JobState[] = ["pending", "processing", "failed"];

export function validateUniqueKey(value: unknown, where = "unique_key"): string {
  if (typeof value !== "string" || value === "") {
    throw new InvalidInput(`Invalid ${where}: expected a non-empty string, got ${quote(value)}`);
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw new InvalidInput(`Invalid ${where}: it contains a control character`);
  }
  if (value.length > MAX_UNIQUE_KEY_LENGTH) {
    throw new InvalidInput(`Invalid ${where}: longer than ${MAX_UNIQUE_KEY_LENGTH} characters`);
  }
  return value;
}

/** `unique_key`: null (none) or a key of 1-200 characters without control characters. */
function parseUniqueKeyField(spec: JobSpec): string | null {
  return spec.unique_key === undefined || spec.unique_key === null
    ? null
    : validateUniqueKey(spec.unique_key);
}

/** Longest `cwd` accepted (PATH_MAX on Linux). */
export const MAX_CWD_LENGTH = 4096;

/** True for `/x`, `C:\x`, `C:/x` or `\\server\share`. */
export function isAbsolutePath(p: string): boolean {
  return p.startsWith("/") || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith("\\\\");
}

/**
 * `path` resolved against the directory `base` (both as given by the caller's OS): an absolute path
 * as is, a relative one appended to `base`; POSIX paths lose `.` and `..` segments and repeated or
 * trailing slashes.
 */
export function resolvePath(base: string, path: string): string {
  const joined = isAbsolutePath(path) ? path : `${base}${base.includes("\\") ? "\\" : "/"}${path}`;
  if (!joined.startsWith("/")) return joined;
  const parts: string[] = [];
  for (const part of joined.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return "/" + parts.join("/");
}

/** `cwd`: a directory path, relative ones resolved against the caller's; default the caller's. */
function parseCwdField(spec: JobSpec, defaults: JobDefaults): string | null {
  if (spec.cwd === undefined || spec.cwd === null) return defaults.cwd ?? null;
  if (typeof spec.cwd !== "string" || spec.cwd === "") {
    throw new InvalidInput(
      `Invalid cwd: expected a directory path, got ${quote(spec.cwd)}`,
    );
  }
  if (spec.cwd.includes("\0")) throw new InvalidInput("Invalid cwd: it contains a NUL character");
  if (spec.cwd.length > MAX_CWD_LENGTH) {
    throw new InvalidInput(`Invalid cwd: longer than ${MAX_CWD_LENGTH} characters`);
  }
  if (!isAbsolutePath(spec.cwd) && !defaults.cwd) {
    throw new InvalidInput(
      `Invalid cwd ${quote(spec.cwd)}: a relative path needs the caller's directory`,
      { hint: "give an absolute path" },
    );
  }
  return resolvePath(defaults.cwd ?? "/", spec.cwd);
}

/** Signals `queuectl kill --signal` accepts (Deno's names; `TERM`, `sigterm`, `15` also work). */
export const KILL_SIGNALS: readonly string[] = [
  "SIGTERM",
  "SIGKILL",
  "SIGINT",
  "SIGHUP",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
  "SIGALRM",
  "SIGCONT",
  "SIGSTOP",
];
const SIGNAL_NUMBERS: Readonly<Record<string, string>> = {
  "1": "SIGHUP",
  "2": "SIGINT",
  "3": "SIGQUIT",
  "9": "SIGKILL",
  "14": "SIGALRM",
  "15": "SIGTERM",
};

/** The number of a signal of {@link SIGNAL_NUMBERS} (`SIGTERM` → 15), or null. */
export function signalNumber(name: string): number | null {
  const entry = Object.entries(SIGNAL_NUMBERS).find(([, n]) => n === name);
  return entry ? Number(entry[0]) : null;
}

/** A signal name as `kill --signal` takes it → its canonical name (`SIGTERM`). */
export function parseKillSignal(value: string): string {
  const upper = value.trim().toUpperCase();
  const name = SIGNAL_NUMBERS[upper] ?? (upper.startsWith("SIG") ? upper : `SIG${upper}`);
  if (!KILL_SIGNALS.includes(name)) {
    throw new InvalidInput(
      `Invalid signal ${quote(value, 40)}: expected one of ${
        KILL_SIGNALS.join(", ")
      } (or its number)`,
    );
  }
  return name;
}

/** Variables queuectl sets for every run (worker/runner.ts): a job's `env` may not set them. */
export const RESERVED_ENV_NAMES: readonly string[] = [
  "QUEUECTL_JOB_ID",
  "QUEUECTL_ATTEMPT",
  "QUEUECTL_QUEUE",
  "QUEUECTL_WORKER_SLOT",
];
const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,255}$/;
/** Most variables and bytes (names and values, as JSON) a job's `env` may hold. */
export const MAX_ENV_VARIABLES = 1000;
export const MAX_ENV_BYTES = 131_072;

/** Checks one variable name of a job's environment (`where`: how the user gave it). */
export function validateEnvName(name: string, where = "env"): string {
  if (!ENV_NAME_PATTERN.test(name)) {
    throw new InvalidInput(
      `Invalid ${where}: variable name ${
        quote(name)
      } must be letters, digits and _, not starting with a digit`,
    );
  }
  if (RESERVED_ENV_NAMES.includes(name.toUpperCase())) {
    throw new InvalidInput(`Invalid ${where}: ${name} is set by queuectl for every run`);
  }
  return name;
}

/** `env`: an object of variable names to string values; stored as JSON text, null when empty. */
function parseEnvField(spec: JobSpec): string | null {
  const env = spec.env;
  if (env === undefined || env === null) return null;
  if (typeof env !== "object" || Array.isArray(env)) {
    throw new InvalidInput(
      `Invalid env: expected an object of names to strings like {"KEY":"value"}, got ${
        describe(env)
      }`,
    );
  }
  const entries = Object.entries(env as Record<string, unknown>);
  if (entries.length === 0) return null;
  if (entries.length > MAX_ENV_VARIABLES) {
    throw new InvalidInput(`Invalid env: more than ${MAX_ENV_VARIABLES} variables`);
  }
  for (const [name, value] of entries) {
    validateEnvName(name);
    if (typeof value !== "string") {
      throw new InvalidInput(`Invalid env: ${name} must be a string, got ${describe(value)}`);
    }
    if (value.includes("\0")) {
      throw new InvalidInput(`Invalid env: ${name} contains a NUL character`);
    }
  }
  const text = JSON.stringify(Object.fromEntries(entries));
  if (new TextEncoder().encode(text).length > MAX_ENV_BYTES) {
    throw new InvalidInput(`Invalid env: more than ${MAX_ENV_BYTES} bytes in all`);
  }
  return text;
}

/** The variables of a stored `env` (JSON text of an object of strings); {} for null. */
export function parseJobEnv(env: string | null): Record<string, string> {
  return env === null ? {} : JSON.parse(env) as Record<string, string>;
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value === null) return "null";
  return `a ${typeof value} (${quote(value, 40)})`;
}

const writeJson = jsonWriter(JOB_FIELDS);

/** The JSON shape of a job in `--json` output and the dashboard API (ISO-8601 times). */
export function jobToJson(job: Job, output?: JobOutput): Record<string, unknown> {
  const json = writeJson(job);
  json.env = job.env === null ? null : parseJobEnv(job.env);
  json.after = parseDependsOn(job.depends_on);
  if (output) {
    json.stdout = output.stdout;
    json.stderr = output.stderr;
  }
  return json;
}
