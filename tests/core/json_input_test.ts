import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeUtf8Lines, findDuplicateKey } from "../../src/core/json_input.ts";

Deno.test("findDuplicateKey: JSON.stringify never repeats a key, so nothing is found", () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      assert.equal(findDuplicateKey(JSON.stringify(v)), null);
      assert.equal(findDuplicateKey(JSON.stringify(v, null, 2)), null);
    }),
  );
});

Deno.test("findDuplicateKey: a key repeated in any object of a document is found", () => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.string(), fc.jsonValue(), (inner, key, value) => {
      const text = JSON.stringify({ wrap: [inner, { a: 1 }] }).replace(
        '{"a":1}',
        () => `{${JSON.stringify(key)}:1, ${JSON.stringify(key)} : ${JSON.stringify(value)}}`,
      );
      JSON.parse(text); // still valid JSON
      assert.equal(findDuplicateKey(text)?.key, key);
    }),
  );
});

Deno.test("findDuplicateKey: strings that look like keys inside values and arrays are not keys", () => {
  assert.equal(findDuplicateKey('{"a":"\\"a\\":1","b":["a","a"],"c":{"a":1}}'), null);
  assert.deepEqual(findDuplicateKey('{"a":1,"\\u0061":2}'), { key: "a", offset: 7 });
});

Deno.test("decodeUtf8Lines: text, or the line of the first invalid sequence", () => {
  const enc = new TextEncoder();
  assert.deepEqual(decodeUtf8Lines(enc.encode("é\n€\n")), { text: "é\n€\n" });
  assert.deepEqual(decodeUtf8Lines(new Uint8Array([0x61, 0x0a, 0x62, 0x0a, 0xc3])), {
    badLine: 3,
  });
  // A sequence cut by a newline is invalid on its own line.
  assert.deepEqual(decodeUtf8Lines(new Uint8Array([0x0a, 0xe2, 0x82, 0x0a, 0xac])), {
    badLine: 2,
  });
  assert.deepEqual(decodeUtf8Lines(new Uint8Array([0xed, 0xa0, 0x80])), { badLine: 1 }); // surrogate
});
