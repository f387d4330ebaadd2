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

Deno.test("eagerFunctions leaves a declaration that shares a line, and a chunk that does not parse", () => {
  const chunks = [
    // Other code on its lines.
    ["function one() { return 1; } var x = one();"],
    ["var y = 2; function two() {", "  return y;", "}"],
    // Never closed: does not parse.
    ["function open() {", "  return 1;"],
    // A brace too many: does not parse.
    ["function f(a = () => {", "}) {", "  return a;", "}) ;"],
  ].map((lines) => lines.join("\n"));
  for (const chunk of chunks) assert.equal(eagerFunctions(chunk), chunk);
});

Deno.test("eagerFunctions leaves a chunk with line ends other than \\n as it is", () => {
  for (const end of ["\r", "\u2028", "\u2029"]) {
    const chunk = ["var s = `a" + end + "b`;", "function f() {", "  return s;", "}"].join("\n");
    assert.equal(eagerFunctions(chunk), chunk);
  }
});

Deno.test("eagerFunctions moves a declaration whose string goes on past a line end", () => {
  const chunk = ["function g() {", '  return "a\\', 'b";', "}"].join("\n");
  const out = eagerFunctions(chunk);
  assert.equal(out, ["var g = (function g() {", '  return "a\\', 'b";', "});"].join("\n"));
  assert.equal(new Function(`${out}; return g();`)(), "ab");
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

Deno.test("eagerFunctions takes no template literal after a regular expression for code", () => {
  // A regular expression after `)`, holding a backtick: the template literal after it is text.
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
