/** `queuectl --version` prints the version declared in deno.json, through the real CLI. */
import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { runCli } from "../helpers/run_cli.ts";

Deno.test("--version and -v print the version from deno.json", async () => {
  assert.match(denoJson.version, /^\d+\.\d+\.\d+/);
  for (const flag of ["--version", "-v"]) {
    const r = await runCli([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), denoJson.version);
    assert.equal(r.stderr, "");
  }
});
