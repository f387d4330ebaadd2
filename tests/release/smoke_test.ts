/**
 * scripts/smoke.sh, which the release workflow runs against each compiled binary, passes against
 * the program run from source. (deno compile needs to download its runtime, so the compiled binary
 * itself is smoke-tested on GitHub: .github/workflows/ci.yml and release.yml.)
 */
import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { cliArgv } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";

const SMOKE = new URL("../../scripts/smoke.sh", import.meta.url);

Deno.test({
  name:
    "scripts/smoke.sh passes: --version, enqueue, worker start --until-empty, status, DLQ exit code",
  // The wrapper below is a POSIX sh script; Windows runs smoke.sh on the compiled .exe in CI.
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await using dir = await tempDir();
    const wrapper = dir.file("queuectl");
    const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    const argv = [Deno.execPath(), ...cliArgv([])].map(quote).join(" ");
    await Deno.writeTextFile(wrapper, `#!/bin/sh\nexec ${argv} "$@"\n`, { mode: 0o755 });

    const out = await new Deno.Command("bash", {
      args: [SMOKE.pathname, wrapper, denoJson.version],
      cwd: dir.path,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const d = new TextDecoder();
    const stdout = d.decode(out.stdout);
    const stderr = d.decode(out.stderr);
    assert.equal(out.code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, /^smoke: ok /m);

    // A wrong expected version must make the script fail: it really checks.
    const wrong = await new Deno.Command("bash", {
      args: [SMOKE.pathname, wrapper, "0.0.0-not-this"],
      cwd: dir.path,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.notEqual(wrong.code, 0);
    assert.match(d.decode(wrong.stderr), /smoke: FAILED: --version/);
  },
});
