/**
 * Text from users and jobs on its way to a terminal or into a message: control and bidi
 * characters made visible, long values cut. See README "Security", "Terminals and messages".
 */

/**
 * Characters a terminal must never receive from data: C0 controls (NUL..US, so ESC, BEL, CR,
 * backspace), DEL, C1 controls (U+0080..U+009F, e.g. the 8-bit CSI U+009B), the bidi embedding,
 * override and isolate controls (U+202A..U+202E, U+2066..U+2069) and the other invisible format
 * characters that reorder or hide text (ALM U+061C, zero-width and directional marks
 * U+200B..U+200F, line/paragraph separators U+2028/U+2029, U+2060..U+2065, BOM U+FEFF, interlinear
 * annotations U+FFF9..U+FFFB).
 */
const UNSAFE =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/g;
const UNSAFE_BUT_LINES =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/g;

const NAMED: Record<string, string> = { "\n": "\\n", "\t": "\\t", "\r": "\\r" };

function escapeChar(c: string): string {
  const named = NAMED[c];
  if (named) return named;
  const code = c.charCodeAt(0);
  return code < 0x100
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
}

/**
 * `text` with every control and bidi character shown as a visible escape (`\x1b`, `\u202e`,
 * `\n`, `\t`, `\r`), so it cannot move the cursor, clear the screen, set the window title or
 * reorder what is shown. `lines: true` keeps newlines and tabs (multi-line output such as a job's
 * stdout); a carriage return is escaped either way (it would let text overwrite its own line).
 * A backslash is left as it is: `\x1b` may be data or an escape; the bytes never reach a terminal.
 */
export function visible(text: string, opts: { lines?: boolean } = {}): string {
  return text.replace(opts.lines ? UNSAFE_BUT_LINES : UNSAFE, escapeChar);
}

/** What JSON.stringify leaves raw of {@link UNSAFE}: DEL, C1, bidi and other format characters. */
const UNSAFE_IN_JSON =
  /[\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/g;

/**
 * JSON text (from JSON.stringify, which escapes C0 controls) with the rest of the unsafe
 * characters as `\uXXXX` escapes too: the same JSON value, safe to print on a terminal. Outside
 * strings JSON holds only ASCII, so every match is inside a string.
 */
export function jsonSafe(json: string): string {
  return json.replace(
    UNSAFE_IN_JSON,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Longest quoted value in a message, in characters, before it is cut. */
export const QUOTE_MAX = 60;

/**
 * A value quoted for a message: JSON-quoted (so `"` and `\` are unambiguous), control and bidi
 * characters escaped, and cut after `max` characters with the total length, so that a 5 MB queue
 * name gives a short error line: `"aaaa…" (5000000 characters)`. Non-strings are shown as JSON.
 */
export function quote(value: unknown, max: number = QUOTE_MAX): string {
  let text: string;
  if (typeof value === "string") text = value;
  else if (typeof value === "number" && !Number.isFinite(value)) {
    // JSON has no Infinity: a number too large to hold (1e400) would be shown as null.
    return String(value);
  } else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
    if (text.length <= max) return visible(text);
    return `${visible(cut(text, max))}… (${text.length} characters)`;
  }
  if (text.length <= max) return visible(JSON.stringify(text));
  return `${visible(JSON.stringify(cut(text, max) + "…"))} (${text.length} characters)`;
}

/** The first `max` UTF-16 units of `text`, without a half surrogate pair at the end. */
function cut(text: string, max: number): string {
  const head = text.slice(0, max);
  return /[\ud800-\udbff]$/.test(head) ? head.slice(0, -1) : head;
}

/** Longest error line body before it is cut (the bad value is quoted with {@link quote} anyway). */
export const MESSAGE_MAX = 1000;

/** A message made safe for one terminal line: escaped (newlines too) and cut to `max` characters. */
export function oneSafeLine(text: string, max: number = MESSAGE_MAX): string {
  return visible(text.length > max ? `${cut(text, max)}… (${text.length} characters)` : text);
}
