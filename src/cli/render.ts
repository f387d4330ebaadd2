/**
 * Output: tables for people, JSON for programs, colour only on a terminal (NO_COLOR and
 * --no-color honoured).
 */
import { formatDuration } from "../core/duration.ts";
import { type Job, type JobState, jobToJson } from "../core/job.ts";

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

  line(text = ""): void {
    this.stdout.write(text + "\n");
  }

  error(text: string): void {
    this.stderr.write(text + "\n");
  }

  /** A note for people on stderr (so stdout stays clean for pipes). */
  note(text: string): void {
    this.stderr.write(text + "\n");
  }

  printJson(value: unknown): void {
    this.stdout.write(JSON.stringify(value, null, 2) + "\n");
  }

  paint(code: number, text: string): string {
    return this.opts.color ? `\x1b[${code}m${text}\x1b[0m` : text;
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

  /** Left-aligned columns; widths from the plain text (colour codes do not count). */
  table(headers: string[], rows: string[][]): void {
    // deno-lint-ignore no-control-regex
    const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");
    const widths = headers.map((h, i) =>
      Math.max(plain(h).length, ...rows.map((r) => plain(r[i] ?? "").length))
    );
    const fmt = (cells: string[]) =>
      cells.map((c, i) => i === cells.length - 1 ? c : c + " ".repeat(widths[i] - plain(c).length))
        .join("  ").trimEnd();
    this.line(this.bold(fmt(headers)));
    for (const r of rows) this.line(fmt(r));
  }

  jobs(jobs: Job[], now: number): void {
    if (this.json) return this.printJson(jobs.map((j) => jobToJson(j)));
    if (jobs.length === 0) return this.note("no jobs");
    this.table(
      ["ID", "STATE", "QUEUE", "ATTEMPTS", "UPDATED", "COMMAND"],
      jobs.map((j) => [
        j.id,
        this.state(j.state),
        j.queue,
        `${j.attempts}/${j.max_retries + 1}`,
        `${formatDuration(now - j.updated_at)} ago`,
        oneLine(j.command, 60),
      ]),
    );
  }
}

/** First line of `text`, cut to `max` characters with an ellipsis. */
export function oneLine(text: string, max: number): string {
  const first = text.replace(/\s*\n[\s\S]*/, " …");
  return first.length > max ? first.slice(0, max - 1) + "…" : first;
}

export function iso(ms: number | null): string {
  return ms === null ? "-" : new Date(ms).toISOString();
}

/** "in 4s" / "3m ago" relative to now. */
export function relative(ms: number | null, now: number): string {
  if (ms === null) return "-";
  return ms > now ? `in ${formatDuration(ms - now)}` : `${formatDuration(now - ms)} ago`;
}
