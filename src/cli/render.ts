/**
 * Output: tables for people, JSON for programs, colour only on a terminal (NO_COLOR and
 * --no-color honoured).
 *
 * Nothing from a job (command, output, error) or another user (host names, paths) reaches the
 * terminal raw: values are shown through {@link safe} (control and bidi characters as visible
 * escapes, see core/text.ts), and every line this class writes is checked again, letting through
 * only the colour codes it adds itself. README "Security", "Terminals".
 */
import { formatDuration } from "../core/duration.ts";
import { type Job, type JobState, jobToJson } from "../core/job.ts";
import { jsonSafe, visible } from "../core/text.ts";

/** A value for a human-readable line: control and bidi characters as escapes, on one line. */
export function safe(text: string): string {
  return visible(text);
}

/**
 * Multi-line text (a job's output) for a terminal: newlines and tabs kept, `\r\n` read as a
 * newline, every other control or bidi character as an escape (a lone `\r` too: it would let a
 * line overwrite itself).
 */
export function safeLines(text: string): string {
  return visible(text.replace(/\r\n/g, "\n"), { lines: true });
}

/** Select Graphic Rendition (colour) sequences, the only escapes {@link Output} writes itself. */
// deno-lint-ignore no-control-regex
const SGR = /(\x1b\[[0-9;]*m)/;

/** The second fence: escapes anything but newlines, tabs and SGR colour codes. */
function fence(text: string): string {
  const parts = text.split(SGR);
  for (let i = 0; i < parts.length; i += 2) parts[i] = visible(parts[i], { lines: true });
  return parts.join("");
}

interface Sink {
  write(s: string): void;
}

const STATE_COLORS: Record<JobState, number> = {
  pending: 36,
  processing: 33,
  completed: 32,
  failed: 35,
  dead: 31,
};

export class Output {
  constructor(
    readonly stdout: Sink,
    readonly stderr: Sink,
    readonly opts: { json: boolean; color: boolean },
  ) {}

  get json(): boolean {
    return this.opts.json;
  }

  /** One or more lines for people (data in them already shown through {@link safe}). */
  line(text = ""): void {
    this.stdout.write(fence(text) + "\n");
  }

  error(text: string): void {
    this.stderr.write(fence(text) + "\n");
  }

  /** A note for people on stderr (so stdout stays clean for pipes). */
  note(text: string): void {
    this.stderr.write(fence(text) + "\n");
  }

  /** JSON with C1, DEL and bidi characters as `\uXXXX` too (JSON.stringify leaves them raw). */
  printJson(value: unknown): void {
    this.stdout.write(jsonSafe(JSON.stringify(value, null, 2)) + "\n");
  }

  /** Strings this Output painted: table cells that may keep their escapes. */
  readonly #painted = new Set<string>();

  /** Marks text this Output composed from painted and safe parts as a table cell to keep. */
  #ours(text: string): string {
    this.#painted.add(text);
    return text;
  }

  /** `text` in colour `code` (on a terminal); `text` is shown through {@link safe} first. */
  paint(code: number, text: string): string {
    const painted = this.opts.color ? `\x1b[${code}m${safe(text)}\x1b[0m` : safe(text);
    this.#painted.add(painted);
    return painted;
  }

  state(state: JobState): string {
    return this.paint(STATE_COLORS[state], state);
  }

  dim(text: string): string {
    return this.paint(2, text);
  }

  bold(text: string): string {
    return this.paint(1, text);
  }

  /**
   * Left-aligned columns; widths from the plain text (colour codes do not count). Cells are
   * shown through {@link safe} unless painted by this Output (`paint`, `state`, `bold`...).
   */
  table(headers: string[], rows: string[][]): void {
    rows = rows.map((r) => r.map((c) => this.#painted.has(c) ? c : safe(c)));
    // deno-lint-ignore no-control-regex
    const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");
    const widths = headers.map((h, i) =>
      Math.max(plain(h).length, ...rows.map((r) => plain(r[i] ?? "").length))
    );
    const fmt = (cells: string[]) =>
      cells.map((c, i) => i === cells.length - 1 ? c : c + " ".repeat(widths[i] - plain(c).length))
        .join("  ").trimEnd();
    // One write for the whole table (the same text): a line each was an encode and a write(2).
    this.line([this.bold(fmt(headers)), ...rows.map(fmt)].join("\n"));
  }

  /** `blockers`: for jobs waiting for dependencies, those not completed yet (app blockersOf). */
  jobs(jobs: Job[], now: number, blockers?: ReadonlyMap<string, string[]>): void {
    if (this.json) return this.printJson(jobs.map((j) => jobToJson(j)));
    if (jobs.length === 0) return this.note("no jobs");
    this.table(
      ["ID", "STATE", "QUEUE", "ATTEMPTS", "UPDATED", "COMMAND"],
      jobs.map((j) => [
        j.id,
        // A job waiting for its dependencies, or for its run_at (delayed, or a retry), says so.
        blockers?.has(j.id)
          ? this.#ours(
            `${this.paint(STATE_COLORS.pending, "waiting")} (${
              safe(blockedText(blockers.get(j.id)!))
            })`,
          )
          : (j.state === "pending" || j.state === "failed") && j.run_at > now
          ? this.#ours(`${this.state(j.state)} (scheduled, runs ${relative(j.run_at, now)})`)
          : this.state(j.state),
        j.queue,
        `${j.attempts}/${j.max_retries + 1}`,
        `${formatDuration(now - j.updated_at)} ago`,
        oneLine(j.command, 60),
      ]),
    );
  }
}

/** "blocked on a, b" (the first three, then how many more). */
export function blockedText(ids: readonly string[]): string {
  const shown = ids.slice(0, 3).join(", ");
  return `blocked on ${shown}${ids.length > 3 ? ` and ${ids.length - 3} more` : ""}`;
}

/** First line of `text`, cut to `max` characters with an ellipsis, shown through {@link safe}. */
export function oneLine(text: string, max: number): string {
  const first = text.replace(/\s*[\r\n][\s\S]*/, " …");
  return safe(first.length > max ? first.slice(0, max - 1) + "…" : first);
}

export function iso(ms: number | null): string {
  return ms === null ? "-" : new Date(ms).toISOString();
}

/** "in 4s" / "3m ago" relative to now. */
export function relative(ms: number | null, now: number): string {
  if (ms === null) return "-";
  return ms > now ? `in ${formatDuration(ms - now)}` : `${formatDuration(now - ms)} ago`;
}
