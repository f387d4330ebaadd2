/**
 * Typed configuration, pure: every key, its default, its validation and its aliases. Values are
 * stored as strings in the database (`config` table) and turned into a {@link Config} by
 * {@link configFrom}; the use cases that read and write them are in app/config.ts.
 * `max-retries` and `max_retries` name the same key.
 */
import { parseDuration } from "./duration.ts";
import { InvalidInput } from "./errors.ts";
import { MAX_RETRIES_LIMIT } from "./job.ts";
import type { RetryPolicy } from "./retry_policy.ts";
import { quote } from "./text.ts";

export interface Config extends RetryPolicy {
  /** Retries after the first failure for jobs enqueued without max_retries. */
  max_retries: number;
  /** Base of exponential backoff: retry n waits backoff_base ^ n seconds. */
  backoff_base: number;
  /** Longest single retry delay, seconds. */
  backoff_max: number;
  /** Default job timeout in seconds; 0 = no timeout. */
  job_timeout: number;
  /** How often an idle worker looks for due jobs when no wake-up arrives, seconds. */
  poll_interval: number;
  /** Lease a worker holds on a running job, seconds; renewed every lease/3 by a heartbeat. */
  lease: number;
  /** Bytes of stdout and of stderr kept per run (the last bytes). */
  output_limit: number;
  /**
   * How long a worker or supervisor rides out a database it cannot reach before it gives up and
   * exits, seconds (see docs/architecture.md "No unbounded waits").
   */
  outage_limit: number;
  /**
   * Completion hooks (docs/architecture.md "Flow control"): a shell command run after a job's
   * outcome is committed (completed, dead) or a queue emptied (drained); "" = none.
   */
  hook_completed: string;
  hook_dead: string;
  hook_drained: string;
  /** A hook still running after this many seconds is terminated (its process group). */
  hook_timeout: number;
  /**
   * Completed jobs are deleted (with their runs) this long after they completed, seconds; 0 =
   * kept until purged (the maintenance service's retention duty, worker/maintenance.ts).
   */
  retain_completed: number;
  /** Dead jobs (the DLQ) are deleted this long after they died, seconds; 0 = kept. */
  retain_dead: number;
}

export type ConfigKey = keyof Config;

interface KeySpec {
  default: number | string;
  description: string;
  /** Parse user text into the typed value, or throw with the expectation (no key name). */
  parse: (text: string) => number | string;
  expect: string;
}

/** The longest hook command accepted (characters). */
export const HOOK_MAX_CHARS = 4096;

/**
 * A hook command: any shell command line, or "" (none); no NUL (a process argument cannot hold
 * one). Stored without surrounding white space, which the shell would ignore anyway, so that
 * `config get` shows it unambiguously.
 */
function hookCommand(text: string): string {
  if (text.includes("\0") || text.length > HOOK_MAX_CHARS) throw new Error();
  return text.trim();
}

function wholeNumber(min: number, max: number) {
  return (text: string): number => {
    const n = /^\s*-?\d+\s*$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error();
    return n;
  };
}

function number(min: number, max: number, minExclusive = false) {
  return (text: string): number => {
    const n = /^\s*-?\d+(\.\d+)?\s*$/.test(text) ? Number(text) : NaN;
    if (!Number.isFinite(n) || n < min || n > max || (minExclusive && n === min)) {
      throw new Error();
    }
    return n;
  };
}

function seconds(min: number, max: number, minExclusive = false) {
  return (text: string): number => {
    const s = parseDuration(text, "duration") / 1000;
    if (s < min || s > max || (minExclusive && s === min)) throw new Error();
    return s;
  };
}

function bytes(min: number, max: number) {
  return (text: string): number => {
    const m = /^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib)?\s*$/i.exec(text);
    if (!m) throw new Error();
    const unit = (m[2] ?? "b").toLowerCase();
    const n = Number(m[1]) * (unit.startsWith("k") ? 1024 : unit.startsWith("m") ? 1048576 : 1);
    if (n < min || n > max) throw new Error();
    return n;
  };
}

export const CONFIG_KEYS: Readonly<Record<ConfigKey, KeySpec>> = {
  max_retries: {
    default: 3,
    description: "retries after the first failure (job runs at most 1 + max_retries times)",
    parse: wholeNumber(0, MAX_RETRIES_LIMIT),
    expect: `a whole number from 0 to ${MAX_RETRIES_LIMIT}`,
  },
  backoff_base: {
    default: 2,
    description: "retry n waits backoff_base ^ n seconds",
    parse: number(1, 3600),
    expect: "a number from 1 to 3600",
  },
  backoff_max: {
    default: 3600,
    description: "longest retry delay, seconds (or 30s, 5m, 1h)",
    parse: seconds(0, 31_536_000),
    expect: "a duration from 0s to 365d, e.g. 3600 or 1h",
  },
  job_timeout: {
    default: 0,
    description: "default job timeout, seconds; 0 = none",
    parse: seconds(0, 31_536_000),
    expect: "a duration from 0 (none) to 365d, e.g. 300 or 5m",
  },
  poll_interval: {
    default: 1,
    description: "idle worker's fallback poll, seconds (enqueue also wakes workers at once)",
    parse: seconds(0.01, 3600),
    expect: "a duration from 10ms to 1h, e.g. 1 or 500ms",
  },
  lease: {
    default: 30,
    description: "job lease of a worker, seconds; a dead worker's job is rescued after it",
    parse: seconds(1, 86_400),
    expect: "a duration from 1s to 1d, e.g. 30 or 2m",
  },
  output_limit: {
    default: 65536,
    description: "bytes of stdout and of stderr kept per run (the last bytes)",
    parse: bytes(0, 64 * 1048576),
    expect: "a size from 0 to 64MiB, e.g. 65536 or 64KiB",
  },
  outage_limit: {
    default: 60,
    description:
      "how long workers ride out an unreachable database before they give up and exit, seconds",
    parse: seconds(1, 86_400),
    expect: "a duration from 1s to 1d, e.g. 60 or 5m",
  },
  hook_completed: {
    default: "",
    description: "shell command run after a job completed (QUEUECTL_* variables describe it)",
    parse: hookCommand,
    expect: `a shell command of at most ${HOOK_MAX_CHARS} characters, without NUL`,
  },
  hook_dead: {
    default: "",
    description: "shell command run after a job went to the DLQ (dead)",
    parse: hookCommand,
    expect: `a shell command of at most ${HOOK_MAX_CHARS} characters, without NUL`,
  },
  hook_drained: {
    default: "",
    description: "shell command run when a queue has no pending, running or failed job left",
    parse: hookCommand,
    expect: `a shell command of at most ${HOOK_MAX_CHARS} characters, without NUL`,
  },
  hook_timeout: {
    default: 30,
    description: "a hook still running after this long is terminated, seconds",
    parse: seconds(0.1, 3600),
    expect: "a duration from 100ms to 1h, e.g. 30 or 2m",
  },
  retain_completed: {
    default: 7 * 86_400,
    description: "completed jobs are deleted this long after they completed, seconds; 0 = kept",
    parse: seconds(0, 36_500 * 86_400),
    expect: "a duration from 0 (keep) to 36500d, e.g. 7d or 12h",
  },
  retain_dead: {
    default: 30 * 86_400,
    description: "dead jobs (the DLQ) are deleted this long after they died, seconds; 0 = kept",
    parse: seconds(0, 36_500 * 86_400),
    expect: "a duration from 0 (keep) to 36500d, e.g. 30d",
  },
};

export const DEFAULT_CONFIG: Config = Object.fromEntries(
  Object.entries(CONFIG_KEYS).map(([k, spec]) => [k, spec.default]),
) as unknown as Config;

/** Resolves a user-typed key (`max-retries`, `MAX_RETRIES`) to its canonical name. */
export function resolveKey(input: string): ConfigKey {
  const key = input.trim().toLowerCase().replaceAll("-", "_");
  if (!Object.hasOwn(CONFIG_KEYS, key)) {
    throw new InvalidInput(`Unknown config key ${quote(input)}`, {
      hint: `known keys: ${Object.keys(CONFIG_KEYS).join(", ")}`,
    });
  }
  return key as ConfigKey;
}

/** Validates a value for a key; the error names the key, the expectation and the value. */
export function parseValue(key: ConfigKey, text: string): number | string {
  const spec = CONFIG_KEYS[key];
  try {
    return spec.parse(text);
  } catch {
    throw new InvalidInput(
      `Cannot set '${key}': expected ${spec.expect}, got ${quote(text)}`,
    );
  }
}

/** Merges stored values over the defaults. A bad stored value falls back to the default. */
export function configFrom(stored: Record<string, string>): Config {
  const config = { ...DEFAULT_CONFIG };
  for (const [key, text] of Object.entries(stored)) {
    if (Object.hasOwn(CONFIG_KEYS, key)) {
      try {
        (config as Record<ConfigKey, number | string>)[key as ConfigKey] =
          CONFIG_KEYS[key as ConfigKey].parse(text);
      } catch {
        // Stored by an older or newer version with other rules: keep the default.
      }
    }
  }
  return config;
}
