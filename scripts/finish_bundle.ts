/**
 * The last step of `deno task build`: hides the bundle's dynamic imports from the module graph
 * that `deno run` builds before it starts, and has V8 compile the top-level functions with their
 * chunk, so that they are kept in its code cache.
 *
 * `deno run main.js` first walks the module graph from the entry, and it follows every dynamic
 * `import("./chunk.js")` whose specifier is a plain string, reading and analysing each chunk, even
 * those the command never loads: the worker, the dashboard, the PostgreSQL driver, croner (about
 * 0.6 MB, most of the bundle), before `status` runs its first line. Here each such specifier is
 * wrapped as `import(String("./chunk.js"))`, which the graph does not follow: a chunk is read when
 * the code imports it, like any module loaded at run time (`--allow-read` is among queuectl's
 * permissions). The compile task embeds the whole directory (`deno compile --include dist/bundle`),
 * since the compiler's graph no longer sees these chunks either. docs/architecture.md, "Import
 * rules", has the measure.
 *
 * It also writes each top-level function declaration as a parenthesized function expression
 * (`var f = (function f(...) {...});`, at the top of its chunk, so that it exists before any other
 * statement runs, as a declaration would). V8 compiles a parenthesized function with the script
 * and puts it in the code cache that `deno run` keeps; a plain declaration is compiled on its first
 * call, again on every run. What a command calls at start-up (stricli's parser, the store's open)
 * is then read from the cache, not compiled (docs/architecture.md has the measure).
 *
 * Usage: deno run --allow-read=DIR --allow-write=DIR scripts/finish_bundle.ts DIR
 */

/** `import("./x.js")` as esbuild writes a dynamic import of one of the bundle's own chunks. */
const DYNAMIC_IMPORT = /\bimport\("(\.\/[\w.-]+\.js)"\)/g;

/**
 * Rewrites, in every `.js` file of `outdir`, each dynamic import of a chunk that exists in
 * `outdir` so that `deno run`'s graph does not follow it, and the top-level function declarations
 * (`eagerFunctions`); returns how many dynamic imports were rewritten.
 */
export async function finishBundle(outdir: string): Promise<number> {
  const files = new Set<string>();
  for await (const e of Deno.readDir(outdir)) {
    if (e.isFile && e.name.endsWith(".js")) files.add(e.name);
  }
  let n = 0;
  const texts = new Map<string, string>();
  for (const name of files) {
    const text = await Deno.readTextFile(`${outdir}/${name}`);
    texts.set(name, text);
  }
  checkAcyclic(texts);
  for (const [name, text] of texts) {
    const out = eagerFunctions(text.replace(DYNAMIC_IMPORT, (whole, spec: string) => {
      if (!files.has(spec.slice(2))) return whole;
      n++;
      return `import(String("${spec}"))`;
    }));
    if (out !== text) await Deno.writeTextFile(`${outdir}/${name}`, out);
  }
  return n;
}

/** A top-level function declaration as esbuild writes one: its body on the following lines. */
const FUNCTION_START = /^(async )?function(\*?) ?([A-Za-z_$][\w$]*)\((.*[^}])$/;

/**
 * The chunk with each top-level function declaration rewritten as a parenthesized function
 * expression assigned to a `var` of the same name, all of them moved to just after the imports
 * (before any other statement, where a declaration is hoisted to). The chunk is read as code
 * (strings, template literals, comments, regular expressions, braces): only a declaration that
 * starts at top level and whose closing brace is a line of its own is rewritten; from a line that
 * cannot be read with certainty on, the chunk is left as it is, and the whole chunk when the result
 * does not parse as the chunk did.
 */
export function eagerFunctions(text: string): string {
  const lines = text.split("\n");
  let start = 0; // first line after the leading import statements
  while (start < lines.length && lines[start].startsWith("import ")) {
    while (start < lines.length && !lines[start].endsWith(";")) start++;
    start++;
  }
  const reader = new CodeReader();
  const moved: string[] = [];
  const rest: string[] = [];
  for (let i = start; i < lines.length; i++) {
    const m = reader.atTop ? FUNCTION_START.exec(lines[i]) : null;
    if (m === null) {
      reader.read(lines[i]);
      rest.push(lines[i]);
      continue;
    }
    let end = i;
    reader.read(lines[end]);
    while (!reader.atTop && !reader.lost && end + 1 < lines.length) reader.read(lines[++end]);
    if (reader.atTop && end > i && lines[end] === "}") {
      const [, async = "", star, name, tail] = m;
      moved.push(`var ${name} = (${async}function${star} ${name}(${tail}`);
      moved.push(...lines.slice(i + 1, end), "});");
    } else {
      rest.push(...lines.slice(i, end + 1));
    }
    i = end;
  }
  if (moved.length === 0) return text;
  const out = [...lines.slice(0, start), ...moved, ...rest].join("\n");
  return parses(out, start) || !parses(text, start) ? out : text;
}

/** Characters after which a `/` starts a regular expression, not a division. */
const BEFORE_REGEX = new Set("(,=:[!&|?{};+-*%<>~^".split(""));
const WORDS_BEFORE_REGEX =
  /(?:^|[^\w$])(?:return|typeof|case|do|else|in|of|new|delete|void|throw|yield|await)$/;

/**
 * Reads JavaScript line by line as far as finding where a top-level declaration ends needs:
 * strings, template literals (with `${...}`), comments, regular expressions, braces. `lost` once a
 * line is not read with certainty (a string or regular expression continued on the next line, a
 * brace closing nothing); nothing read after that counts.
 */
class CodeReader {
  /** Code (with its open braces) at top level or inside `${...}`, and template literals. */
  #stack: ({ kind: "code"; depth: number } | { kind: "template" })[] = [{ kind: "code", depth: 0 }];
  #comment = false; // inside /* */
  lost = false;

  /** At top level: outside any brace, string, template literal or comment. */
  get atTop(): boolean {
    const top = this.#stack[0];
    return !this.lost && !this.#comment && this.#stack.length === 1 && top.kind === "code" &&
      top.depth === 0;
  }

  read(line: string): void {
    let prev = ""; // code read so far on this line (to tell a regex from a division)
    for (let i = 0; i < line.length && !this.lost; i++) {
      const c = line[i];
      const top = this.#stack[this.#stack.length - 1];
      if (this.#comment) {
        if (c === "*" && line[i + 1] === "/") this.#comment = false, i++;
      } else if (top.kind === "template") {
        if (c === "\\") i++;
        else if (c === "`") this.#stack.pop();
        else if (c === "$" && line[i + 1] === "{") {
          this.#stack.push({ kind: "code", depth: 0 }), i++;
        }
      } else if (c === "'" || c === '"') {
        i = stringEnd(line, i, c);
        prev += "a";
      } else if (c === "`") {
        this.#stack.push({ kind: "template" });
      } else if (c === "/" && line[i + 1] === "/") {
        break;
      } else if (c === "/" && line[i + 1] === "*") {
        this.#comment = true;
        i++;
      } else if (c === "/" && regexMayStart(prev)) {
        i = regexEnd(line, i);
        prev += "a";
      } else if (c === "{") {
        top.depth++;
        prev += c;
      } else if (c === "}") {
        if (top.depth > 0) top.depth--;
        else if (this.#stack.length > 1) this.#stack.pop(); // the end of a ${...}
        else this.lost = true;
        prev += c;
      } else if (c !== " " && c !== "\t") {
        prev += c;
      }
      if (i < 0) this.lost = true;
    }
  }
}

function stringEnd(line: string, from: number, quote: string): number {
  for (let i = from + 1; i < line.length; i++) {
    if (line[i] === "\\") i++;
    else if (line[i] === quote) return i;
  }
  return -1;
}

function regexMayStart(before: string): boolean {
  const last = before.at(-1);
  return last === undefined || BEFORE_REGEX.has(last) || WORDS_BEFORE_REGEX.test(before);
}

function regexEnd(line: string, from: number): number {
  let inClass = false;
  for (let i = from + 1; i < line.length; i++) {
    const c = line[i];
    if (c === "\\") i++;
    else if (c === "[") inClass = true;
    else if (c === "]") inClass = false;
    else if (c === "/" && !inClass) return i;
  }
  return -1;
}

/**
 * Whether a chunk's code parses, without running it: its imports (the first `start` lines) and its
 * closing `export { ... };` left out, the rest compiled as the body of an async function.
 */
function parses(text: string, start: number): boolean {
  const lines = text.split("\n").slice(start);
  const exportAt = lines.findLastIndex((l) => l.startsWith("export {"));
  const body = (exportAt < 0 ? lines : lines.slice(0, exportAt)).join("\n");
  const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
  try {
    new AsyncFunction(`"use strict";\n${body.replaceAll("import.meta", "({})")}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Throws if the chunks import each other in a cycle: a function moved to the top of its chunk
 * exists once that chunk runs, where a declaration exists as soon as the chunk is linked, which
 * differs only when a chunk can run code of another that has not run yet (a cycle). esbuild writes
 * none; this keeps it so.
 */
function checkAcyclic(texts: Map<string, string>): void {
  const IMPORT = /^import (?:[^;]*? from )?"\.\/([\w.-]+\.js)";/gms;
  const deps = new Map(
    [...texts].map(([name, text]) => [name, [...text.matchAll(IMPORT)].map((m) => m[1])]),
  );
  const state = new Map<string, "open" | "done">();
  const visit = (name: string, path: string[]) => {
    if (state.get(name) === "done") return;
    if (state.get(name) === "open") {
      throw new Error(`chunks import each other: ${[...path, name].join(" -> ")}`);
    }
    state.set(name, "open");
    for (const d of deps.get(name) ?? []) visit(d, [...path, name]);
    state.set(name, "done");
  };
  for (const name of texts.keys()) visit(name, []);
}

if (import.meta.main) {
  const [outdir] = Deno.args;
  if (!outdir) {
    console.error("usage: finish_bundle.ts DIR");
    Deno.exit(2);
  }
  try {
    const n = await finishBundle(outdir);
    if (n === 0) throw new Error(`no dynamic import of a chunk found in ${outdir}`);
  } catch (err) {
    console.error(`error: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
}
