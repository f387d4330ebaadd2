/**
 * scripts/smoke.sh, which the release workflow runs against each compiled binary, passes against
 * the program run from source and against the bundle that `deno task build` writes (what the
 * binary is compiled from). (deno compile needs to download its runtime, so the compiled binary
 * itself is smoke-tested on GitHub: .github/workflows/ci.yml and release.yml.)
 */
import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { cliArgv, PERMISSIONS } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { bundleArgs } from "../../scripts/compile.ts";
import { finishBundle } from "../../scripts/finish_bundle.ts";

const ROOT = new URL("../../", import.meta.url);
const SMOKE = new URL("scripts/smoke.sh", ROOT);
const decoder = new TextDecoder();

/** Runs smoke.sh against a wrapper script that execs `argv`; asserts that it passes. */
async function smoke(dir: string, argv: string[]): Promise<void> {
  const wrapper = `${dir}/queuectl`;
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  await Deno.writeTextFile(wrapper, `#!/bin/sh\nexec ${argv.map(quote).join(" ")} "$@"\n`, {
    mode: 0o755,
  });
  const out = await new Deno.Command("bash", {
    args: [SMOKE.pathname, wrapper, denoJson.version],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = decoder.decode(out.stdout);
  assert.equal(out.code, 0, `${stdout}\n${decoder.decode(out.stderr)}`);
  assert.match(stdout, /^smoke: ok /m);

  // A wrong expected version must make the script fail: it really checks.
  const wrong = await new Deno.Command("bash", {
    args: [SMOKE.pathname, wrapper, "0.0.0-not-this"],
    cwd: dir,
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.notEqual(wrong.code, 0);
  assert.match(decoder.decode(wrong.stderr), /smoke: FAILED: --version/);
}

// The wrappers are POSIX sh scripts; Windows runs smoke.sh on the compiled .exe in CI.
const ignore = Deno.build.os === "windows";

Deno.test({
  name:
    "scripts/smoke.sh passes from source: --version, enqueue, worker start --until-empty, status, DLQ exit code",
  ignore,
  fn: async () => {
    await using dir = await tempDir();
    await smoke(dir.path, [Deno.execPath(), ...cliArgv([])]);
  },
});

Deno.test({
  name: "scripts/smoke.sh passes against the bundle of `deno task build` (workers self-exec it)",
  ignore,
  fn: async () => {
    await using dir = await tempDir();
    const outdir = `${dir.path}/bundle`;
    const built = await new Deno.Command(Deno.execPath(), {
      args: bundleArgs(denoJson.tasks.build, outdir),
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(built.success, decoder.decode(built.stderr));
    assert.ok(await finishBundle(outdir) > 0, "dynamic imports hidden from the start-up graph");
    // The bundle stands alone: run it from another directory, with no deno.json in reach.
    await smoke(dir.path, [Deno.execPath(), "run", "--quiet", ...PERMISSIONS, `${outdir}/main.js`]);
  },
});
