/**
 * Strictness JSON.parse lacks, for job input: invalid UTF-8 and duplicate keys are refused
 * instead of silently becoming U+FFFD or "the last one wins".
 */

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The text of `bytes`, or the 1-based line (split at `\n`) of the first byte sequence that is not
 * UTF-8. A leading byte order mark is dropped, as JSON tools do.
 */
export function decodeUtf8Lines(bytes: Uint8Array): { text: string } | { badLine: number } {
  try {
    return { text: strictUtf8.decode(bytes) };
  } catch {
    // Find the line: decode line by line (a valid sequence never contains the byte 0x0A).
  }
  let line = 1;
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x0a) {
      try {
        strictUtf8.decode(bytes.subarray(start, i));
      } catch {
        return { badLine: line };
      }
      line++;
      start = i + 1;
    }
  }
  return { badLine: line - 1 };
}

/**
 * Strings and brackets of a JSON text. Outside strings valid JSON has no `"`, so matching from
 * left to right always starts at the opening quote of a string.
 */
const TOKENS = /"(?:[^"\\]|\\.)*"|[{}[\]]/g;

/**
 * The first key that appears twice in one object of `text`, which must be valid JSON (parse it
 * first), with its offset in `text`; null when every object's keys are distinct.
 */
export function findDuplicateKey(text: string): { key: string; offset: number } | null {
  // Fast path: fewer than two keys cannot repeat (most job lines have two to five distinct ones).
  if (text.indexOf(":") === text.lastIndexOf(":")) return null;
  const stack: (Set<string> | null)[] = [];
  TOKENS.lastIndex = 0;
  for (let m = TOKENS.exec(text); m !== null; m = TOKENS.exec(text)) {
    const token = m[0];
    if (token === "{") stack.push(new Set());
    else if (token === "[") stack.push(null);
    else if (token === "}" || token === "]") stack.pop();
    else {
      const keys = stack[stack.length - 1];
      if (!keys) continue; // a string in an array
      // A string followed by `:` is a key; any other string in an object is a value.
      let j = TOKENS.lastIndex;
      while (text[j] === " " || text[j] === "\t" || text[j] === "\n" || text[j] === "\r") j++;
      if (text[j] !== ":") continue;
      const key = token.includes("\\") ? JSON.parse(token) as string : token.slice(1, -1);
      if (keys.has(key)) return { key, offset: m.index };
      keys.add(key);
    }
  }
  return null;
}
