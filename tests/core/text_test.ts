import assert from "node:assert/strict";
import { oneSafeLine, quote, visible } from "../../src/core/text.ts";

Deno.test("visible: control, C1 and bidi characters become escapes; text stays", () => {
  assert.equal(visible("\x1b]0;title\x07"), "\\x1b]0;title\\x07");
  assert.equal(visible("\x1b[2Jcleared"), "\\x1b[2Jcleared");
  assert.equal(visible("abc\u202efed.exe"), "abc\\u202efed.exe");
  assert.equal(visible("\u2066x\u2069\u200f"), "\\u2066x\\u2069\\u200f");
  assert.equal(visible("\x9b2J\x7f\x00"), "\\x9b2J\\x7f\\x00");
  assert.equal(visible("a\nb\tc\rd"), "a\\nb\\tc\\rd");
  assert.equal(visible("a\nb\tc\rd", { lines: true }), "a\nb\tc\\rd");
  assert.equal(visible("héllo → 日本 🙂 C:\\path"), "héllo → 日本 🙂 C:\\path");
});

Deno.test("quote: short values quoted whole, long ones cut with their length", () => {
  assert.equal(quote("mail"), '"mail"');
  assert.equal(quote('a"b\\c'), '"a\\"b\\\\c"');
  assert.equal(quote("\x1b[2J\u202e"), '"\\u001b[2J\\u202e"');
  const big = "q".repeat(5_000_000);
  const q = quote(big);
  assert.ok(q.length < 100, q);
  assert.equal(q, `"${"q".repeat(60)}…" (5000000 characters)`);
  // A surrogate pair is never split.
  assert.equal(
    quote("x".repeat(59) + "🙂" + "y".repeat(10)),
    `"${"x".repeat(59)}…" (71 characters)`,
  );
  assert.equal(quote(12), "12");
  // JSON.parse("1e400") is Infinity, which JSON.stringify writes as null.
  assert.equal(quote(JSON.parse("1e400")), "Infinity");
  assert.equal(quote(JSON.parse("-1e400")), "-Infinity");
  assert.equal(quote({ a: "b".repeat(100) }).endsWith("… (108 characters)"), true);
});

Deno.test("oneSafeLine: one line, escaped and cut", () => {
  assert.equal(oneSafeLine("a\nb\x1b"), "a\\nb\\x1b");
  const line = oneSafeLine("z".repeat(10_000), 100);
  assert.equal(line, "z".repeat(100) + "… (10000 characters)");
});
