/**
 * The import rules of docs/architecture.md, checked on the module graph that `deno info` builds
 * (Deno's own parser: static imports, `export ... from`, dynamic `import()`, `import type`; a
 * commented-out import or one in a string is no import).
 */

/** One import of a module under src/. */
export interface Edge {
  /** The importing module, relative to src/ (`cli/worker.ts`). */
  from: string;
  /**
   * The imported module: relative to src/ for a module under it, `../<path>` for another file of
   * the project (`../deno.json`), else the resolved specifier (`npm:postgres@3.4.9`, `node:sqlite`).
   */
  to: string;
  /** `import()`: loaded only when the code runs (a separate chunk of the bundle). */
  dynamic: boolean;
  /** `import type`: erased, never loaded. */
  typeOnly: boolean;
}

interface DenoInfo {
  modules: {
    specifier: string;
    error?: string;
    dependencies?: {
      specifier: string;
      code?: { specifier?: string; error?: string };
      type?: { specifier?: string; error?: string };
      isDynamic?: boolean;
    }[];
  }[];
}

async function sourceFiles(dir: string, prefix = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) files.push(...await sourceFiles(`${dir}/${entry.name}`, `${path}/`));
    else if (/\.(ts|tsx|mts)$/.test(entry.name)) files.push(path);
  }
  return files.sort();
}

/**
 * Every import of every TypeScript module under `<root>/src` (resolved with `config`'s import
 * map). Throws when a module or an import cannot be resolved.
 */
export async function importGraph(root: string, config: string): Promise<Edge[]> {
  const rootUrl = new URL(`file://${root.replace(/\/?$/, "/")}`).href;
  const srcUrl = `${rootUrl}src/`;
  const files = await sourceFiles(`${root}/src`);
  const dir = await Deno.makeTempDir({ prefix: "queuectl-layers-" });
  try {
    // One graph for every file: an entry that imports them all (deno info takes one root).
    const entry = `${dir}/all.ts`;
    await Deno.writeTextFile(entry, files.map((f) => `import "${srcUrl}${f}";\n`).join(""));
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", "--no-lock", "--config", config, entry],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`deno info failed: ${new TextDecoder().decode(out.stderr)}`);
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as DenoInfo;
    const name = (url: string) =>
      url.startsWith(srcUrl)
        ? url.slice(srcUrl.length)
        : url.startsWith(rootUrl)
        ? `../${url.slice(rootUrl.length)}`
        : url;
    const edges: Edge[] = [];
    const seen = new Set<string>();
    for (const m of info.modules) {
      if (!m.specifier.startsWith(srcUrl)) continue;
      const from = name(m.specifier);
      if (m.error) throw new Error(`${from}: ${m.error}`);
      seen.add(from);
      for (const d of m.dependencies ?? []) {
        const resolved = d.code?.specifier ?? d.type?.specifier;
        if (!resolved) {
          throw new Error(
            `${from}: cannot resolve ${d.specifier}: ${d.code?.error ?? d.type?.error}`,
          );
        }
        edges.push({ from, to: name(resolved), dynamic: d.isDynamic === true, typeOnly: !d.code });
      }
    }
    const missing = files.filter((f) => !seen.has(f));
    if (missing.length) throw new Error(`not in the module graph: ${missing.join(", ")}`);
    return edges;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const DRIVERS = ["store/sqlite/", "store/postgres/"];
const isDriver = (to: string) => DRIVERS.some((d) => to.startsWith(d));
const isPackage = (to: string) => /^(npm|node|jsr|https?):/.test(to);
/** The cron library (core/schedule.ts), loaded with import() only. */
export const isCroner = (to: string) => /^npm:\/?croner@/.test(to);
const inLayer = (to: string, ...layers: string[]) => layers.some((l) => to.startsWith(`${l}/`));

interface Rule {
  /** Modules the rule applies to. */
  applies: (from: string) => boolean;
  forbids: (e: Edge) => boolean;
  why: string;
}

/** Who may import whom (docs/architecture.md, "Import rules"). */
export const RULES: readonly Rule[] = [
  {
    applies: (f) => f.startsWith("core/"),
    forbids: (e) => !inLayer(e.to, "core") && !(e.dynamic && isCroner(e.to)),
    why: "core/ imports nothing but core/ (and croner, pure computation, through import())",
  },
  {
    applies: (f) => f.startsWith("store/"),
    forbids: (e) => inLayer(e.to, "worker", "app", "cli", "dashboard") || e.to === "main.ts",
    why: "store/ imports only core/ and store/",
  },
  {
    applies: (f) => f.startsWith("worker/"),
    forbids: (e) => inLayer(e.to, "app", "cli", "dashboard") || e.to === "main.ts",
    why: "worker/ never imports app/, cli/ or dashboard/",
  },
  {
    applies: (f) => f.startsWith("app/"),
    forbids: (e) => inLayer(e.to, "cli", "dashboard") || e.to === "main.ts",
    why: "app/ never imports cli/ or dashboard/ (they call it)",
  },
  {
    applies: (f) => f.startsWith("worker/") || f.startsWith("app/") || f.startsWith("dashboard/"),
    forbids: (e) => isDriver(e.to),
    why: "only the store (opened by cli/context.ts) picks a driver: others use the Store interface",
  },
  {
    applies: (f) => f.startsWith("dashboard/"),
    forbids: (e) =>
      inLayer(e.to, "worker", "cli") || e.to === "main.ts" ||
      (inLayer(e.to, "store") && e.to !== "store/store.ts" && e.to !== "store/location.ts"),
    why: "dashboard/ goes through app/ (the Store contract's types and store/location.ts excepted)",
  },
  {
    applies: (f) => f.startsWith("cli/"),
    forbids: (e) => isDriver(e.to) || inLayer(e.to, "worker"),
    why: "cli/ never imports a store driver nor worker/: it calls app/",
  },
  {
    applies: (f) => f.startsWith("cli/") && f !== "cli/context.ts",
    forbids: (e) => inLayer(e.to, "store"),
    why: "cli/ calls app/ only; cli/context.ts is the one place that opens the store",
  },
  {
    applies: (f) => f === "main.ts",
    forbids: (e) => !isPackage(e.to) && !inLayer(e.to, "cli", "core"),
    why: "main.ts only starts the command line (cli/)",
  },
  {
    applies: (f) => !f.startsWith("store/"),
    forbids: (e) => e.to === "node:sqlite" || /^npm:\/?postgres@/.test(e.to),
    why: "only store/ imports a database driver (node:sqlite, postgres)",
  },
  {
    applies: (f) => !f.startsWith("cli/"),
    forbids: (e) => /^npm:\/?@stricli\//.test(e.to),
    why: "only cli/ imports @stricli",
  },
];

/** One line per import that breaks a rule: `from → to (how): why`. */
export function violations(edges: readonly Edge[]): string[] {
  const found: string[] = [];
  for (const e of edges) {
    for (const rule of RULES) {
      if (!rule.applies(e.from) || !rule.forbids(e)) continue;
      const how = e.dynamic ? " (import())" : e.typeOnly ? " (import type)" : "";
      found.push(`${e.from} → ${e.to}${how}: ${rule.why}`);
    }
  }
  return found;
}

/** The modules under src/ that loading `entry` loads: static, non-type imports only. */
export function startupModules(edges: readonly Edge[], entry = "main.ts"): Set<string> {
  const loaded = new Set([entry]);
  const queue = [entry];
  while (queue.length) {
    const from = queue.shift()!;
    for (const e of edges) {
      if (e.from !== from || e.dynamic || e.typeOnly || isPackage(e.to) || loaded.has(e.to)) {
        continue;
      }
      loaded.add(e.to);
      queue.push(e.to);
    }
  }
  return loaded;
}

/**
 * Loaded with import() only when used, so that every other command starts without them (the
 * bundle puts each behind its own chunk).
 */
export const LOADED_ON_USE: readonly string[] = [
  "worker/",
  "dashboard/",
  "store/sqlite/",
  "store/postgres/",
  "app/workers.ts",
  "cli/completion_scripts.ts",
];
