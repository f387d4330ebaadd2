/**
 * `queuectl completions bash|zsh|fish` and the hidden `__complete` callback, through the real CLI
 * and real shells. A `queuectl` wrapper on PATH runs src/main.ts, as an installed binary would.
 *
 * The shell tests need bash, zsh and fish. Without CI set, a missing shell skips its test (with a
 * message); with CI set, it fails. On Windows they are ignored: the scripts are for Unix shells.
 */
import assert from "node:assert/strict";
import { cliArgv, runCli } from "../helpers/run_cli.ts";
import { type TempDir, tempDir } from "../helpers/temp.ts";

const IS_WINDOWS = Deno.build.os === "windows";

async function installed(program: string): Promise<boolean> {
  try {
    await new Deno.Command(program, { args: ["--version"], stdout: "null", stderr: "null" })
      .output();
    return true;
  } catch {
    return false;
  }
}

/** A test that runs `shell`: skipped only when the shell is missing and CI is unset. */
async function shellTest(shell: string, name: string, fn: () => Promise<void>): Promise<void> {
  const present = !IS_WINDOWS && await installed(shell);
  const skip = IS_WINDOWS || (!present && !Deno.env.get("CI"));
  if (skip && !IS_WINDOWS) console.log(`skipping "${name}": ${shell} is not installed (CI unset)`);
  Deno.test({
    name,
    ignore: skip,
    fn: async () => {
      if (!present) throw new Error(`${shell} is not installed (CI is set: install it)`);
      await fn();
    },
  });
}

function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** A temp dir holding an executable `queuectl` that runs src/main.ts, and the shell's script. */
async function fixture(
  shell: string,
): Promise<{ dir: TempDir; script: string; env: Record<string, string> }> {
  const dir = await tempDir();
  const wrapper = dir.file("queuectl");
  const argv = [Deno.execPath(), ...cliArgv([])].map(shQuote).join(" ");
  await Deno.writeTextFile(wrapper, `#!/bin/sh\nexec ${argv} "$@"\n`, { mode: 0o755 });
  const r = await runCli(["completions", shell]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  const script = dir.file(`completion.${shell}`);
  await Deno.writeTextFile(script, r.stdout);
  const env = { PATH: `${dir.path}:${Deno.env.get("PATH") ?? ""}`, NO_COLOR: "1" };
  return { dir, script, env };
}

async function run(
  program: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(program, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/** `line => candidates` from driver output lines of the form `<words>=><c1> <c2>...`. */
function parseResults(stdout: string): Map<string, string[]> {
  const results = new Map<string, string[]>();
  for (const line of stdout.split("\n")) {
    const at = line.indexOf("=>");
    if (at < 0) continue;
    const rest = line.slice(at + 2);
    results.set(line.slice(0, at), rest === "" ? [] : rest.split("|"));
  }
  return results;
}

await shellTest(
  "bash",
  "completions bash: loads, registers with complete -p, completes",
  async () => {
    const { dir, script, env } = await fixture("bash");
    await using _ = dir;
    const syntax = await run("bash", ["-n", script]);
    assert.equal(syntax.code, 0, syntax.stderr);

    const driver = dir.file("driver.bash");
    await Deno.writeTextFile(
      driver,
      `source "$1"
complete -p queuectl
comp() {
  COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(x)
  _queuectl
  local words="$*" IFS='|'
  echo "$words=>\${COMPREPLY[*]}"
}
comp queuectl enq
comp queuectl dlq re
comp queuectl list --st
comp queuectl completions ''
comp queuectl nosuchcommand ''
`,
    );
    const r = await run("bash", [driver, script], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^complete -o default -F _queuectl queuectl$/m);
    const results = parseResults(r.stdout);
    assert.deepEqual(results.get("queuectl enq"), ["enqueue"]);
    assert.deepEqual(results.get("queuectl dlq re"), ["restore"]);
    assert.deepEqual(results.get("queuectl list --st"), ["--state"]);
    assert.deepEqual(results.get("queuectl completions "), ["bash", "zsh", "fish"]);
    assert.deepEqual(results.get("queuectl nosuchcommand "), []);
  },
);

await shellTest(
  "zsh",
  "completions zsh: loads, registers with compdef, proposes with briefs",
  async () => {
    const { dir, script, env } = await fixture("zsh");
    await using _ = dir;
    const syntax = await run("zsh", ["-n", script]);
    assert.equal(syntax.code, 0, syntax.stderr);

    // Real compinit and compdef; zsh's _describe only works inside a completion widget, so it is
    // replaced by a function that prints what the script hands it.
    const r = await run("zsh", [
      "-fc",
      `autoload -U compinit && compinit -u -D
source ${shQuote(script)}
print -r -- "registered=$_comps[queuectl]"
_describe() { print -rl -- "\${(@P)\${@[-1]}}" }
words=(queuectl dlq re); CURRENT=3; _queuectl
words=(queuectl list --st); CURRENT=3; _queuectl`,
    ], env);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines[0], "registered=_queuectl");
    assert.match(lines[1], /^restore:Move a dead job/);
    assert.match(lines[2], /^--state:Only jobs in this state/);
    assert.equal(lines.length, 3, r.stdout);
  },
);

await shellTest("fish", "completions fish: loads and completes through complete -C", async () => {
  const { dir, script, env } = await fixture("fish");
  await using _ = dir;
  const syntax = await run("fish", ["--no-execute", script]);
  assert.equal(syntax.code, 0, syntax.stderr);

  const r = await run("fish", [
    "-c",
    `source ${shQuote(script)}
complete -C'queuectl enq'
complete -C'queuectl dlq re'
complete -C'queuectl list --st'`,
  ], env);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  assert.match(lines[0], /^enqueue\tAdd jobs/);
  assert.match(lines[1], /^restore\tMove a dead job/);
  assert.match(lines[2], /^--state\tOnly jobs in this state/);
  assert.equal(lines.length, 3, r.stdout);
});

Deno.test("__complete: proposes exactly the commands that --help lists, and is itself hidden", async () => {
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0, help.stderr);
  const section = help.stdout.split(/^COMMANDS$/m)[1];
  assert.ok(section, help.stdout);
  const listed = [...section.matchAll(/^ {2}(\S+) /gm)].map((m) => m[1]);
  assert.ok(listed.includes("completions"), help.stdout);
  assert.ok(!listed.includes("__complete"));

  const r = await runCli(["__complete", "--", ""]);
  assert.equal(r.code, 0, r.stderr);
  const proposed = r.stdout.trimEnd().split("\n").map((l) => l.split("\t")[0]);
  assert.deepEqual(proposed.toSorted(), listed.toSorted());
});

Deno.test("__complete: flags of a nested command, and nothing for an unknown command", async () => {
  const flags = await runCli(["__complete", "--", "dlq", "restore", "--"]);
  assert.equal(flags.code, 0, flags.stderr);
  assert.ok(flags.stdout.split("\n").some((l) => l.startsWith("--db\t")), flags.stdout);

  const unknown = await runCli(["__complete", "--", "nosuchcommand", ""]);
  assert.equal(unknown.code, 0, unknown.stderr);
  assert.equal(unknown.stdout, "");
});

Deno.test("__complete: flags kept hidden only to be refused are not proposed", async () => {
  for (const words of [["list", "--o"], ["list", "--"], ["dashboard", "--to"]]) {
    const r = await runCli(["__complete", "--", ...words]);
    assert.equal(r.code, 0, r.stderr);
    const proposed = r.stdout.split("\n").map((l) => l.split("\t")[0]);
    assert.ok(!proposed.includes("--offset") && !proposed.includes("--token"), r.stdout);
  }
  // What is proposed beside them still is.
  const r = await runCli(["__complete", "--", "dashboard", "--to"]);
  assert.match(r.stdout, /^--token-file\t/m);
});

Deno.test("completions: an unknown shell is refused with one error line and exit code 2", async () => {
  const r = await runCli(["completions", "powershell"]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^error: .*powershell.*bash\|zsh\|fish/);
});
