/**
 * The shape of src/ (docs/architecture.md): no import crosses a layer the wrong way, and the
 * modules loaded on use stay out of every command's start-up.
 */
import assert from "node:assert/strict";
import { importGraph, isCroner, LOADED_ON_USE, startupModules, violations } from "./layers.ts";
import { tempDir } from "../helpers/temp.ts";

const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const CONFIG = `${ROOT}/deno.json`;

Deno.test("layers: no import under src/ crosses a layer the wrong way", async () => {
  const edges = await importGraph(ROOT, CONFIG);
  assert.ok(edges.length > 100, `the graph has ${edges.length} imports only`);
  assert.deepEqual(violations(edges), []);
});

Deno.test("layers: start-up loads no worker, dashboard, driver or completion code", async () => {
  const edges = await importGraph(ROOT, CONFIG);
  const startup = [...startupModules(edges)];
  // The check sees the real graph: the commands and their use cases are loaded at start-up...
  for (const m of ["cli/mod.ts", "cli/worker.ts", "app/queue.ts", "store/mod.ts"]) {
    assert.ok(startup.includes(m), `${m} is loaded at start-up: ${startup.join(", ")}`);
  }
  // ...and what is loaded on use is reached through import() only.
  assert.deepEqual(startup.filter((m) => LOADED_ON_USE.some((lazy) => m.startsWith(lazy))), []);
  // The cron library too: only schedule computations load it.
  const startupCroner = edges.filter((e) => startup.includes(e.from) && isCroner(e.to));
  assert.ok(startupCroner.length > 0 && startupCroner.every((e) => e.dynamic), "croner: import()");
  const dynamic = edges.filter((e) => e.dynamic).map((e) => `${e.from} → ${e.to}`);
  for (
    const e of [
      "cli/worker.ts → app/workers.ts",
      "cli/dashboard.ts → dashboard/server.ts",
      "store/mod.ts → store/sqlite/mod.ts",
      "store/mod.ts → store/postgres/mod.ts",
    ]
  ) assert.ok(dynamic.includes(e), `${e} is an import(): ${dynamic.join(", ")}`);
});

Deno.test("layers: the checker flags crafted bad imports, and only those", async () => {
  await using dir = await tempDir();
  const files: Record<string, string> = {
    // A bad static import, and imports that are no imports (comment, string).
    "core/bad.ts": 'import { x } from "../app/thing.ts";\nexport const y = x;\n',
    "core/fine.ts": '// import "../app/thing.ts";\nexport const s = \'import "../cli/y.ts"\';\n',
    // A dynamic import the wrong way, and @stricli outside cli/.
    "app/thing.ts":
      'import { run } from "@stricli/core";\nexport const x = 1;\nexport const later = () => import("../cli/y.ts");\nexport { run };\n',
    // Re-exporting from the dashboard.
    "app/types.ts": 'export type T = number;\nexport * from "../dashboard/d.ts";\n',
    // cli/ reaching a store driver (and the store at all, outside cli/context.ts).
    "cli/y.ts": 'import "../store/sqlite/mod.ts";\nexport {};\n',
    "cli/context.ts": 'import "../store/store.ts";\nexport {};\n',
    // node:sqlite where it belongs, and outside store/ in a type-only import of app/ from worker/.
    "store/sqlite/mod.ts":
      'import { DatabaseSync } from "node:sqlite";\nexport const D = DatabaseSync;\n',
    "store/store.ts": "export type S = string;\n",
    "worker/w.ts":
      'import type { T } from "../app/types.ts";\nimport "node:sqlite";\nexport type U = T;\n',
    "dashboard/d.ts": "export const d = 1;\n",
    // The entry loads worker code at start-up.
    "main.ts": 'import "./worker/w.ts";\nimport "./cli/y.ts";\n',
  };
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(dir.file(`src/${path}`).replace(/\/[^/]*$/, ""), { recursive: true });
    await Deno.writeTextFile(dir.file(`src/${path}`), text);
  }
  const edges = await importGraph(dir.path, CONFIG);
  const found = violations(edges).map((v) => v.replace(/: .*$/, ""));
  assert.deepEqual(
    found.sort(),
    [
      "app/thing.ts → cli/y.ts (import())",
      "app/thing.ts → npm:@stricli/core@1.3.0",
      "app/types.ts → dashboard/d.ts",
      "cli/y.ts → store/sqlite/mod.ts",
      "cli/y.ts → store/sqlite/mod.ts",
      "core/bad.ts → app/thing.ts",
      "main.ts → worker/w.ts",
      "worker/w.ts → app/types.ts (import type)",
      "worker/w.ts → node:sqlite",
    ].sort(),
  );
  assert.ok(startupModules(edges).has("worker/w.ts"), "worker code loaded at start-up is seen");
});
