import { InvalidInput } from "./errors.ts";
import { quote } from "./text.ts";

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * Parses a duration such as `500ms`, `30s`, `5m`, `2h`, `7d`, `1w`, several of them in a row as
 * {@link formatDuration} writes them (`3m20s`, `1h 30m`), or a bare number of seconds (`30`,
 * `1.5`) into milliseconds. `what` names the value in the error message.
 */
export function parseDuration(input: string, what: string): number {
  const bare = /^\s*(\d+(?:\.\d+)?)\s*$/.exec(input);
  if (bare) return Math.round(Number(bare[1]) * 1000);
  if (/^\s*(\d+(?:\.\d+)?\s*(ms|s|m|h|d|w)\s*)+$/.test(input)) {
    let ms = 0;
    for (const part of input.matchAll(/(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)/g)) {
      ms += Number(part[1]) * UNITS[part[2]];
    }
    return Math.round(ms);
  }
  throw new InvalidInput(
    `Cannot read ${what}: expected a duration like 30s, 5m, 2h, 7d or 1h30m, got ${quote(input)}`,
  );
}

/** Short human form of a duration in milliseconds: `850ms`, `12s`, `3m20s`, `5h2m`, `3d4h`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return ms < 10_000 ? `${(ms / 1000).toFixed(1).replace(/\.0$/, "")}s` : `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60 ? `${s % 60}s` : ""}`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${m % 60 ? `${m % 60}m` : ""}`;
  const d = Math.floor(h / 24);
  return `${d}d${h % 24 ? `${h % 24}h` : ""}`;
}
