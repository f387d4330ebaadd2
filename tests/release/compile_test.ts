/**
 * The release build: scripts/compile.ts derives each target's `deno compile` command line from the
 * compile task in deno.json (one source of truth for the permission flags), and the release
 * workflow builds exactly the targets the script knows.
 */
import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { binaryName, bundleArgs, compileArgs, RELEASE_TARGETS } from "../../scripts/compile.ts";

const PERMISSION = /^--(allow|deny)-/;

function permissionFlags(words: readonly string[]): string[] {
  return words.filter((w) => PERMISSION.test(w)).toSorted();
}

Deno.test("compileArgs keeps the compile task's permissions, sets target and output", () => {
  const task = denoJson.tasks.compile.command;
  const words = task.split(/\s+/);
  const args = compileArgs(task, "aarch64-apple-darwin", "out/q");

  assert.equal(args[0], "compile");
  assert.deepEqual(permissionFlags(args), permissionFlags(words));
  assert.ok(permissionFlags(args).length > 0, "explicit permission flags");
  assert.ok(!args.includes("-A") && !args.includes("--allow-all"), "never -A");
  assert.equal(args[args.indexOf("--target") + 1], "aarch64-apple-darwin");
  assert.equal(args.filter((w) => w === "--output").length, 1, "the task's --output is replaced");
  assert.equal(args[args.indexOf("--output") + 1], "out/q");
  assert.equal(args.at(-1), words.at(-1), "entry point last");
});

Deno.test("the binary is compiled from the bundle that the build task writes, after building it", () => {
  const bundle = bundleArgs(denoJson.tasks.build, "OUT");
  const outdir = denoJson.tasks.build.split(/\s+/)[
    denoJson.tasks.build.split(/\s+/).indexOf("--outdir") + 1
  ];
  assert.equal(bundle.at(-1), "src/main.ts");
  const args = compileArgs(denoJson.tasks.compile.command, "t", "o");
  assert.equal(args.at(-1), `${outdir}/main.js`);
  assert.deepEqual(denoJson.tasks.compile.dependencies, ["build"]);
  // The chunks loaded with import() are hidden from the graph (scripts/finish_bundle.ts, the
  // build's last step): the binary must embed the whole directory.
  assert.ok(
    denoJson.tasks.build.endsWith(`scripts/finish_bundle.ts ${outdir}`),
    "the build ends with finish_bundle.ts on its --outdir",
  );
  assert.equal(args[args.indexOf("--include") + 1], outdir);
});

Deno.test("bundleArgs: the build task's deno bundle, another --outdir and entry point", () => {
  const args = bundleArgs(denoJson.tasks.build, "/tmp/b");
  assert.equal(args[0], "bundle");
  assert.equal(args[args.indexOf("--outdir") + 1], "/tmp/b");
  assert.equal(args.at(-1), "src/main.ts");
  assert.equal(bundleArgs(denoJson.tasks.build, "/tmp/b", "x.ts").at(-1), "x.ts");
  assert.throws(() => bundleArgs("rm -rf d && deno run x.ts", "o"), /deno bundle/);
  assert.deepEqual(
    bundleArgs("rm -rf d && deno bundle --outdir d x.ts && deno run f.ts d", "o"),
    ["bundle", "--outdir", "o", "x.ts"],
  );
  assert.throws(() => bundleArgs("deno bundle x.ts", "o"), /--outdir/);
});

Deno.test("the compiled binary gets the same permissions as `deno task queuectl`", () => {
  assert.deepEqual(
    permissionFlags(denoJson.tasks.compile.command.split(/\s+/)),
    permissionFlags(denoJson.tasks.queuectl.split(/\s+/)),
  );
});

Deno.test("the compiled binary gets the same V8 flags as `deno task queuectl`", () => {
  const v8 = (task: string) => task.split(/\s+/).filter((w) => w.startsWith("--v8-flags="));
  assert.deepEqual(v8(denoJson.tasks.compile.command), v8(denoJson.tasks.queuectl));
  assert.equal(v8(denoJson.tasks.queuectl).length, 1);
});

Deno.test("compileArgs replaces --output=, -o and --target forms, refuses shell syntax", () => {
  assert.deepEqual(
    compileArgs("deno compile --allow-read --output=x -o y --target z main.ts", "t", "o"),
    ["compile", "--allow-read", "--target", "t", "--output", "o", "main.ts"],
  );
  assert.throws(() => compileArgs("deno compile --allow-read 'src/main.ts'", "t", "o"), /plain/);
  assert.throws(() => compileArgs("deno run src/main.ts", "t", "o"), /deno compile/);
  assert.throws(() => compileArgs("deno compile --allow-read", "t", "o"), /entry point/);
});

Deno.test("binaryName: queuectl-<target>, .exe for Windows", () => {
  assert.equal(binaryName("x86_64-unknown-linux-gnu"), "queuectl-x86_64-unknown-linux-gnu");
  assert.equal(binaryName("x86_64-pc-windows-msvc"), "queuectl-x86_64-pc-windows-msvc.exe");
});

Deno.test("release.yml builds and smoke-tests every release target, through scripts/compile.ts", async () => {
  const yml = await Deno.readTextFile(
    new URL("../../.github/workflows/release.yml", import.meta.url),
  );
  const build = yml.slice(yml.indexOf("\n  build:"), yml.indexOf("\n  smoke:"));
  const smoke = yml.slice(yml.indexOf("\n  smoke:"), yml.indexOf("\n  release:"));
  const listed = [...build.matchAll(/^ {10}- ([\w-]+)$/gm)].map((m) => m[1]);
  assert.deepEqual(listed, [...RELEASE_TARGETS]);
  const smoked = [...smoke.matchAll(/- target: ([\w-]+)$/gm)].map((m) => m[1]);
  assert.deepEqual(smoked, [...RELEASE_TARGETS]);
  assert.match(build, /scripts\/compile\.ts --target \$\{\{ matrix\.target \}\}/);
  assert.match(smoke, /scripts\/smoke\.sh/);
  assert.match(yml, /sha256sum queuectl-\* > SHA256SUMS/);
});
