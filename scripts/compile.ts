/**
 * Builds one standalone queuectl binary for a target with `deno compile`.
 *
 * First `deno task build` bundles src/main.ts into dist/bundle/ (one module per chunk instead of
 * ~45 source modules: a shorter start for every command; scripts/finish_bundle.ts hides the
 * chunks loaded with import() from the start-up graph, so the compile task embeds the directory
 * with `--include dist/bundle`). The permission flags and entry point of
 * `deno compile` come from the `compile` task in deno.json (the one source of truth); this script
 * only sets `--target` and `--output`. (`deno task compile --target ...` cannot do it: deno task
 * appends extra words after the entry point, where they would become arguments baked into the
 * binary.)
 *
 * Usage: deno run --allow-read --allow-run scripts/compile.ts [--target T] [--output PATH]
 *   --target  a Rust target triple, default the host's (Deno.build.target)
 *   --output  default dist/queuectl-<target>, plus .exe for Windows targets
 */

/** The targets a release ships, in the order of the release workflow's build matrix. */
export const RELEASE_TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

/** The release asset name for a target: `queuectl-<target>`, `.exe` on Windows. */
export function binaryName(target: string): string {
  return `queuectl-${target}${target.includes("windows") ? ".exe" : ""}`;
}

/**
 * The `deno compile` arguments (without the leading `deno`) for `target` and `output`, from the
 * compile task's command line: its own --output/-o is replaced, everything else is kept as is.
 */
export function compileArgs(task: string, target: string, output: string): string[] {
  if (/["'`$\\|;&<>]/.test(task)) {
    throw new Error(`the compile task must be plain words (no quotes or shell syntax): ${task}`);
  }
  const words = task.trim().split(/\s+/);
  if (words[0] !== "deno" || words[1] !== "compile") {
    throw new Error(`the compile task must start with "deno compile": ${task}`);
  }
  const rest = words.slice(2);
  const entry = rest.pop();
  if (entry === undefined || entry.startsWith("-") || !/\.[cm]?[jt]sx?$/.test(entry)) {
    throw new Error(`the compile task must end with its entry point: ${task}`);
  }
  const kept: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const w = rest[i];
    if (w === "--output" || w === "-o" || w === "--target") i++; // drop the flag and its value
    else if (!w.startsWith("--output=") && !w.startsWith("--target=")) kept.push(w);
  }
  return ["compile", ...kept, "--target", target, "--output", output, entry];
}

/**
 * The `deno bundle` arguments (without the leading `deno`) of the build task's `deno bundle`
 * command, writing to `outdir`, for `entry` (default: the task's own entry point). For bundles
 * built elsewhere than dist/bundle: the bundle smoke test, the start-up benchmark (both then run
 * scripts/finish_bundle.ts on it, the task's last step).
 */
export function bundleArgs(task: string, outdir: string, entry?: string): string[] {
  const words = task.split("&&").map((c) => c.trim().split(/\s+/)).find((w) =>
    w[0] === "deno" && w[1] === "bundle"
  );
  if (words === undefined) throw new Error(`the build task must run "deno bundle": ${task}`);
  const args = words.slice(1);
  const at = args.indexOf("--outdir");
  if (at < 0) throw new Error(`the build task must set --outdir: ${task}`);
  args[at + 1] = outdir;
  if (entry !== undefined) args[args.length - 1] = entry;
  return args;
}

function option(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  if (at < 0) return undefined;
  const value = args[at + 1];
  if (value === undefined || value.startsWith("-")) throw new Error(`${name} needs a value`);
  return value;
}

if (import.meta.main) {
  try {
    const root = new URL("../", import.meta.url);
    const denoJson = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
    const target = option(Deno.args, "--target") ?? Deno.build.target;
    const output = option(Deno.args, "--output") ?? `dist/${binaryName(target)}`;
    const args = compileArgs(denoJson.tasks.compile.command, target, output);
    const build = await new Deno.Command(Deno.execPath(), { args: ["task", "build"], cwd: root })
      .spawn().status;
    if (!build.success) Deno.exit(build.code);
    console.error(`deno ${args.join(" ")}`);
    const { code } = await new Deno.Command(Deno.execPath(), { args, cwd: root }).spawn().status;
    Deno.exit(code);
  } catch (err) {
    console.error(`error: ${err instanceof Error ? err.message : err}`);
    Deno.exit(2);
  }
}
