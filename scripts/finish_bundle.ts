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

import * as acorn from "acorn";

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

/** The chunk's top-level statements, as acorn reads them (null if it does not parse). */
function statements(text: string): acorn.Program["body"] | null {
  try {
    return acorn.parse(text, { ecmaVersion: "latest", sourceType: "module", locations: true })
      .body;
  } catch {
    return null;
  }
}

/**
 * The chunk with each top-level function declaration rewritten as a parenthesized function
 * expression assigned to a `var` of the same name, all of them moved to just after the imports
 * (before any other statement, where a declaration is hoisted to). The chunk is read by acorn; a
 * declaration is moved only when it has whole lines to itself (as esbuild writes them), and a
 * chunk that does not parse is left as it is.
 */
export function eagerFunctions(text: string): string {
  const body = statements(text);
  if (body === null) return text;
  // acorn also ends a line at \r, U+2028 and U+2029, which esbuild's ASCII output never holds
  // raw; a chunk that does would number its lines otherwise than the split below: left as it is.
  if (/[\r\u2028\u2029]/.test(text)) return text;
  const lines = text.split("\n");
  // acorn's lines count from 1; `start`, `first` and `last` index `lines`.
  const lineOf = (p: acorn.Position) => p.line - 1;
  // First line after the leading imports: the moved functions go there.
  let start = 0;
  for (const node of body) {
    if (node.type !== "ImportDeclaration") break;
    start = lineOf(node.loc!.end) + 1;
  }
  const moved: string[] = [];
  const movedLines = new Set<number>();
  for (const node of body) {
    if (node.type !== "FunctionDeclaration" || node.id === null) continue;
    const first = lineOf(node.loc!.start);
    const last = lineOf(node.loc!.end);
    // Whole lines of its own, after the imports.
    if (first < start || node.loc!.start.column !== 0) continue;
    if (node.loc!.end.column !== lines[last].length) continue;
    moved.push(`var ${node.id.name} = (${text.slice(node.start, node.end)});`);
    for (let i = first; i <= last; i++) movedLines.add(i);
  }
  if (moved.length === 0) return text;
  const rest = lines.slice(start).filter((_, i) => !movedLines.has(start + i));
  const out = [...lines.slice(0, start), ...moved, ...rest].join("\n");
  // What acorn wrote back must parse, with the same imports and exports.
  return statements(out) === null ? text : out;
}

/**
 * Throws if the chunks import each other in a cycle: a function moved to the top of its chunk
 * exists once that chunk runs, where a declaration exists as soon as the chunk is linked, which
 * differs only when a chunk can run code of another that has not run yet (a cycle). esbuild writes
 * none; this keeps it so.
 */
function checkAcyclic(texts: Map<string, string>): void {
  const deps = new Map([...texts].map(([name, text]) => {
    const body = statements(text);
    if (body === null) throw new Error(`${name} does not parse`);
    return [
      name,
      body.flatMap((n) =>
        n.type === "ImportDeclaration" && typeof n.source.value === "string" &&
          n.source.value.startsWith("./")
          ? [n.source.value.slice(2)]
          : []
      ),
    ];
  }));
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
