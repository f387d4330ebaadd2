/**
 * The last step of `deno task build`: hides the bundle's dynamic imports from the module graph
 * that `deno run` builds before it starts.
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
 * Usage: deno run --allow-read=DIR --allow-write=DIR scripts/finish_bundle.ts DIR
 */

/** `import("./x.js")` as esbuild writes a dynamic import of one of the bundle's own chunks. */
const DYNAMIC_IMPORT = /\bimport\("(\.\/[\w.-]+\.js)"\)/g;

/**
 * Rewrites, in every `.js` file of `outdir`, each dynamic import of a chunk that exists in
 * `outdir` so that `deno run`'s graph does not follow it; returns how many were rewritten.
 */
export async function finishBundle(outdir: string): Promise<number> {
  const files = new Set<string>();
  for await (const e of Deno.readDir(outdir)) {
    if (e.isFile && e.name.endsWith(".js")) files.add(e.name);
  }
  let n = 0;
  for (const name of files) {
    const path = `${outdir}/${name}`;
    const text = await Deno.readTextFile(path);
    const out = text.replace(DYNAMIC_IMPORT, (whole, spec: string) => {
      if (!files.has(spec.slice(2))) return whole;
      n++;
      return `import(String("${spec}"))`;
    });
    if (out !== text) await Deno.writeTextFile(path, out);
  }
  return n;
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
