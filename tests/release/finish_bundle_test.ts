/**
 * scripts/finish_bundle.ts: the chunks' dynamic imports hidden from the start-up graph, and the
 * top-level function declarations written as parenthesized functions (compiled with the script,
 * so kept in V8's code cache) that still exist before any statement of their chunk runs.
 */
import assert from "node:assert/strict";
import { eagerFunctions, finishBundle } from "../../scripts/finish_bundle.ts";
import { tempDir } from "../helpers/temp.ts";

Deno.test("eagerFunctions: declarations become parenthesized functions, after the imports", () => {
  const chunk = [
    "import {",
    "  a",
    '} from "./chunk-A.js";',
    'import "./chunk-B.js";',
    "",
    "// src/x.ts",
    "var X = f(1);",
    "function f(n) {",
    "  return n + a;",
    "}",
    "async function g() {",
    "  await 0;",
    "}",
    "function* h() {",
    "  yield 1;",
    "}",
    "export {",
    "  X,",
    "  g as gg",
    "};",
  ].join("\n");
  assert.equal(
    eagerFunctions(chunk),
    [
      "import {",
      "  a",
      '} from "./chunk-A.js";',
      'import "./chunk-B.js";',
      "var f = (function f(n) {",
      "  return n + a;",
      "});",
      "var g = (async function g() {",
      "  await 0;",
      "});",
      "var h = (function* h() {",
      "  yield 1;",
      "});",
      "",
      "// src/x.ts",
      "var X = f(1);",
      "export {",
      "  X,",
      "  g as gg",
      "};",
    ].join("\n"),
  );
});

Deno.test("eagerFunctions reads strings, templates and regular expressions to find the end", () => {
  const chunk = [
    "function script(name) {",
    "  return `${name}() {",
    "  echo '}'",
    "}",
    '${name.replace(/[}\\/]/g, "")}`;',
    "}",
    "function quoted() {",
    '  const s = "}";',
    "  return /[\"{]/.test(s) ? `}` : '{'; // }",
    "}",
  ].join("\n");
  const out = eagerFunctions(chunk);
  assert.equal(
    out,
    [
      "var script = (function script(name) {",
      ...chunk.split("\n").slice(1, 5),
      "});",
      "var quoted = (function quoted() {",
      ...chunk.split("\n").slice(7, 9),
      "});",
    ].join("\n"),
  );
  const run = new Function(`${out}; return [script("f"), quoted()];`);
  assert.deepEqual(run(), ["f() {\n  echo '}'\n}\nf", "{"]);
});

Deno.test("eagerFunctions leaves a declaration whose end is not certain as it is", () => {
  const chunks = [
    // On one line.
    ["function one() { return 1; }"],
    // Never closed.
    ["function open() {", "  return 1;", "  }"],
    // The body closes on a line with more than the brace.
    ["function f(a = () => {", "}) {", "  return a;", "}) ;"],
    // A string continued on the next line.
    ["function g() {", '  return "a\\', 'b";', "}"],
  ].map((lines) => lines.join("\n"));
  for (const chunk of chunks) assert.equal(eagerFunctions(chunk), chunk);
});

Deno.test("eagerFunctions takes no text inside a template literal for a declaration", () => {
  const chunk = [
    "var s = `",
    "function fake() {",
    "  x",
    "}",
    "`;",
    "function real() {",
    "  return s;",
    "}",
  ].join("\n");
  assert.equal(
    eagerFunctions(chunk),
    ["var real = (function real() {", "  return s;", "});", ...chunk.split("\n").slice(0, 5)]
      .join("\n"),
  );
});

Deno.test("eagerFunctions keeps the chunk as it is when the result would not parse", () => {
  // A regular expression after `)` is read as a division: its backtick seems to close the
  // template literal it opens, and the text inside is taken for a declaration. Moved, it would
  // not parse: the chunk stays as it was.
  const chunk = [
    'var ok = true, s = "", t;',
    "if (ok) /`/.test(s), t = `",
    "function fake() {",
    "  not javascript",
    "}",
    "`;",
  ].join("\n");
  assert.equal(eagerFunctions(chunk), chunk);
});

Deno.test("finishBundle: a rewritten bundle runs as before, calls before the definition included", async () => {
  await using dir = await tempDir();
  const files: Record<string, string> = {
    "main.js": [
      'import { twice } from "./chunk-A.js";',
      "var early = later(2);",
      "function later(n) {",
      "  return twice(n) + 1;",
      "}",
      'var lazy = () => import("./lazy-B.js");',
      "export {",
      "  early,",
      "  lazy",
      "};",
    ].join("\n"),
    "chunk-A.js": ["function twice(n) {", "  return 2 * n;", "}", "export {", "  twice", "};"]
      .join("\n"),
    "lazy-B.js": ['export const b = "b";'].join("\n"),
  };
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir.path}/${name}`, text);
  }
  assert.equal(await finishBundle(dir.path), 1);
  const main = await Deno.readTextFile(`${dir.path}/main.js`);
  assert.match(main, /^var later = \(function later\(n\) \{$/m);
  assert.match(main, /import\(String\("\.\/lazy-B\.js"\)\)/);
  const mod = await import(`${dir.path}/main.js`);
  assert.equal(mod.early, 5);
  assert.equal((await mod.lazy()).b, "b");
});

Deno.test("finishBundle refuses chunks that import each other in a cycle", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(
    `${dir.path}/main.js`,
    'import "./chunk-A.js";\nimport("./chunk-B.js");',
  );
  await Deno.writeTextFile(`${dir.path}/chunk-A.js`, 'import "./chunk-B.js";');
  await Deno.writeTextFile(`${dir.path}/chunk-B.js`, 'import "./chunk-A.js";');
  await assert.rejects(finishBundle(dir.path), /chunks import each other: .*chunk-A\.js/);
});
