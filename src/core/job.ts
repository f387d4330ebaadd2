/**
 * The job model: the states a job moves through, the row the store keeps, and the parsing of a
 * user's job spec (JSON) into a validated {@link NewJob}.
 */
import { parseDuration } from "./duration.ts";
import { InvalidInput } from "./errors.ts";

export const JOB_STATES = ["pending", "processing", "completed", "failed", "dead"] as const;
export type JobState = typeof JOB_STATES[number];

export function isJobState(value: string): value is JobState {
  return (JOB_STATES as readonly string[]).includes(value);
}

export function parseJobState(value: string): JobState {
  if (!isJobState(value)) {
    throw new InvalidInput(
      `Unknown state ${JSON.stringify(value)}: expected one of ${JOB_STATES.join(", ")}`,
    );
  }
  return value;
}

/** A job as stored. Times are milliseconds since the epoch; JSON output turns them into ISO-8601. */
export interface Job {
  id: string;
  command: string;
  queue: string;
  state: JobState;
  priority: number;
  /** How many times the job has been started (claimed). */
  attempts: number;
  /** Retries allowed after the first failure: the job runs at most 1 + max_retries times. */
  max_retries: number;
  /** Per-job timeout in seconds; null = use config `job_timeout`. */
  timeout: number | null;
  /** The job may not start before this time (delay, retry backoff). */
  run_at: number;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  finished_at: number | null;
  exit_code: number | null;
  error: string | null;
  /** Worker id holding the lease while processing. */
  lease_owner: string | null;
  lease_expires_at: number | null;
}

/** Captured output of the last run (the last `output_limit` bytes of each stream). */
export interface JobOutput {
  stdout: string;
  stderr: string;
}

/** What enqueue inserts: everything the user may choose, already validated and defaulted. */
export interface NewJob {
  id: string;
  command: string;
  queue: string;
  priority: number;
  max_retries: number;
  timeout: number | null;
  run_at: number;
}

export const DEFAULT_QUEUE = "default";
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@+\/-]{0,199}$/;
const QUEUE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const MAX_RETRIES_LIMIT = 1000;
export const PRIORITY_LIMIT = 1_000_000;
/** The latest time a JavaScript Date can hold (ms since the epoch). */
export const MAX_TIME_MS = 8.64e15;

/** Fields accepted in a job spec. Anything else is refused, so a typo never passes silently. */
export const JOB_SPEC_FIELDS = [
  "id",
  "command",
  "queue",
  "priority",
  "max_retries",
  "timeout",
  "run_at",
  "delay",
] as const;

/** Random job id: 16 hex characters (64 bits). */
export function generateJobId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function validateJobId(id: string): string {
  if (!ID_PATTERN.test(id)) {
    throw new InvalidInput(
      `Invalid job id ${
        JSON.stringify(id)
      }: use 1-200 letters, digits or . _ : @ + / -, starting with a letter or digit`,
    );
  }
  return id;
}

export function validateQueueName(queue: string): string {
  if (!QUEUE_PATTERN.test(queue)) {
    throw new InvalidInput(
      `Invalid queue name ${
        JSON.stringify(queue)
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
        JSON.stringify(value)
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
        JSON.stringify(value)
      }`,
    );
  }
  return value;
}

export function validateTimeout(value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || value > 31_536_000) {
    throw new InvalidInput(
      `Invalid timeout: expected a number of seconds greater than 0, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Accepts an ISO-8601 date-time string; returns epoch milliseconds. */
export function parseRunAt(value: unknown): number {
  const ms = typeof value === "string" && /^\d{4}-\d{2}-\d{2}/.test(value)
    ? Date.parse(value)
    : NaN;
  if (Number.isNaN(ms)) {
    throw new InvalidInput(
      `Invalid run_at: expected an ISO-8601 date-time such as 2026-12-01T09:00:00Z, got ${
        JSON.stringify(value)
      }`,
    );
  }
  return ms;
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
    `Invalid delay: expected seconds or a duration like 30s, got ${JSON.stringify(value)}`,
  );
}

export interface JobDefaults {
  max_retries: number;
  now: number;
}

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
    const spec = value as Record<string, unknown>;
    const unknown = Object.keys(spec).filter((k) =>
      !(JOB_SPEC_FIELDS as readonly string[]).includes(k)
    );
    if (unknown.length > 0) {
      throw new InvalidInput(
        `Unknown job field${unknown.length > 1 ? "s" : ""} ${
          unknown.map((k) => JSON.stringify(k)).join(", ")
        }: allowed fields are ${JOB_SPEC_FIELDS.join(", ")}`,
      );
    }
    if (typeof spec.command !== "string" || spec.command.trim() === "") {
      throw new InvalidInput(
        spec.command === undefined
          ? `Missing "command": a job needs a shell command to run`
          : `Invalid command: expected a non-empty string, got ${JSON.stringify(spec.command)}`,
      );
    }
    if (spec.command.includes("\0")) {
      throw new InvalidInput("Invalid command: it contains a NUL character");
    }
    let id: string;
    if (spec.id === undefined || spec.id === null) id = generateJobId();
    else if (typeof spec.id !== "string") {
      throw new InvalidInput(`Invalid id: expected a string, got ${JSON.stringify(spec.id)}`);
    } else id = validateJobId(spec.id);
    const queue = spec.queue === undefined
      ? DEFAULT_QUEUE
      : typeof spec.queue === "string"
      ? validateQueueName(spec.queue)
      : (() => {
        throw new InvalidInput(
          `Invalid queue: expected a string, got ${JSON.stringify(spec.queue)}`,
        );
      })();
    if (spec.run_at !== undefined && spec.delay !== undefined) {
      throw new InvalidInput(`Give either "run_at" or "delay", not both`);
    }
    const run_at = spec.run_at !== undefined
      ? parseRunAt(spec.run_at)
      : defaults.now + (spec.delay !== undefined ? parseDelay(spec.delay) : 0);
    if (!(run_at <= MAX_TIME_MS)) {
      // A delay past the last date JavaScript can hold would break every view of the job.
      throw new InvalidInput(
        `Invalid delay: ${
          JSON.stringify(spec.delay)
        } is too far in the future (a job cannot run after ${new Date(MAX_TIME_MS).toISOString()})`,
      );
    }
    return {
      id,
      command: spec.command,
      queue,
      priority: spec.priority === undefined ? 0 : validatePriority(spec.priority),
      max_retries: spec.max_retries === undefined
        ? defaults.max_retries
        : validateMaxRetries(spec.max_retries),
      timeout: spec.timeout === undefined || spec.timeout === null
        ? null
        : validateTimeout(spec.timeout),
      run_at,
    };
  } catch (err) {
    if (where && err instanceof InvalidInput) throw new InvalidInput(`${where}${err.message}`);
    throw err;
  }
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value === null) return "null";
  return `a ${typeof value} (${JSON.stringify(value).slice(0, 40)})`;
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** The JSON shape of a job in `--json` output and the dashboard API (ISO-8601 times). */
export function jobToJson(job: Job, output?: JobOutput): Record<string, unknown> {
  return {
    id: job.id,
    command: job.command,
    queue: job.queue,
    state: job.state,
    priority: job.priority,
    attempts: job.attempts,
    max_retries: job.max_retries,
    timeout: job.timeout,
    run_at: iso(job.run_at),
    created_at: iso(job.created_at),
    updated_at: iso(job.updated_at),
    started_at: iso(job.started_at),
    finished_at: iso(job.finished_at),
    exit_code: job.exit_code,
    error: job.error,
    lease_owner: job.lease_owner,
    lease_expires_at: iso(job.lease_expires_at),
    ...(output ? { stdout: output.stdout, stderr: output.stderr } : {}),
  };
}
