/**
 * Issue 13, item 3: the dashboard's token must not show where other users or logs see it. A
 * dashboard started the documented ways (QUEUECTL_DASHBOARD_TOKEN, --token-file, the generated
 * token on a second start) has no token in any process's command line (`ps`, /proc/<pid>/cmdline,
 * which every user may read) and does not print a token it did not just generate.
 */
import assert from "node:assert/strict";
import { type CliProcess, startCli } from "../helpers/cli_process.ts";
import { runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";

const decoder = new TextDecoder();

/** Every process's command line as `ps` shows it to any user, and /proc/<pid>/cmdline of `pid`. */
async function visibleCommandLines(pid: number): Promise<{ ps: string; cmdline: string }> {
  const ps = await new Deno.Command("ps", { args: ["-ww", "-eo", "pid=,args="] }).output();
  assert.ok(ps.success, "ps runs");
  let cmdline = "";
  if (Deno.build.os === "linux") {
    const cat = await new Deno.Command("cat", { args: [`/proc/${pid}/cmdline`] }).output();
    assert.ok(cat.success);
    cmdline = decoder.decode(cat.stdout).replaceAll("\0", " ");
  }
  return { ps: decoder.decode(ps.stdout), cmdline };
}

async function firstLine(proc: CliProcess): Promise<string> {
  return (await proc.waitForOutput(/^queuectl dashboard: .*$/m))[0];
}

Deno.test({
  name: "the checks see a secret that is on a command line (control)",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const marker = `visible-marker-${crypto.randomUUID()}`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "setTimeout(() => {}, 30_000)", marker],
    }).spawn();
    try {
      const seen = await visibleCommandLines(child.pid);
      assert.ok(seen.ps.includes(marker));
      if (Deno.build.os === "linux") assert.ok(seen.cmdline.includes(marker));
    } finally {
      child.kill("SIGKILL");
      await child.status;
    }
  },
});

Deno.test({
  name: "no token in ps or /proc/<pid>/cmdline, and none printed unless just generated",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const fileToken = `file-token-${crypto.randomUUID()}`;
    const envToken = `env-token-${crypto.randomUUID()}`;
    const tokenFile = dir.file("dashboard-token");
    await Deno.writeTextFile(tokenFile, `${fileToken}\n`, { mode: 0o600 });
    // The generated token exists before: this start reuses it (the first start prints it once).
    const first = await runCli(["dashboard", "--print-url"], { db });
    const generated = new URL(first.stdout.trim()).searchParams.get("token")!;
    assert.ok(generated.length >= 43);

    const starts: [string, string[], Record<string, string>, string][] = [
      ["QUEUECTL_DASHBOARD_TOKEN", [], { QUEUECTL_DASHBOARD_TOKEN: envToken }, envToken],
      ["--token-file", ["--token-file", tokenFile], {}, fileToken],
      ["generated, second start", [], {}, generated],
    ];
    for (const [how, args, env, token] of starts) {
      await using proc = startCli(["dashboard", "--port", "0", ...args], { db, env });
      const line = await firstLine(proc);
      const seen = await visibleCommandLines(proc.pid);
      const own = seen.ps.split("\n").find((l) => l.trim().startsWith(`${proc.pid} `));
      assert.match(own ?? "", /\bdashboard --port 0\b/, `${how}: ps shows the dashboard`);
      assert.ok(!seen.ps.includes(token), `${how}: the token is in ps`);
      assert.ok(!seen.cmdline.includes(token), `${how}: the token is in /proc/<pid>/cmdline`);
      // Nothing printed carries it: not the start-up line, not the note on stderr.
      await proc.waitForOutput(/\n/);
      proc.kill("SIGTERM");
      const status = await proc.status;
      assert.equal(status.code, 0, proc.stderr());
      assert.ok(!line.includes("token="), `${how}: ${line}`);
      assert.match(proc.stderr(), /^access token: (from|kept in) /, how);
      assert.ok(!proc.stdout().includes(token), `${how}: the token is on stdout`);
      assert.ok(!proc.stderr().includes(token), `${how}: the token is on stderr`);
    }
  },
});
