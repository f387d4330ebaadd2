/** `queuectl dashboard` run as a user does: a real subprocess of the CLI. */
import assert from "node:assert/strict";
import { cliArgv, runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";

/** Starts `queuectl dashboard ...` and reads stdout until `until` matches (default: a line). */
async function startCli(
  args: string[],
  env: Record<string, string>,
  until = /\n/,
  cwd?: string,
) {
  const child = new Deno.Command(Deno.execPath(), {
    args: cliArgv(["dashboard", ...args]),
    cwd,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!until.test(out)) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  return { child, reader, out, firstLine: out.split("\n")[0] };
}

Deno.test("queuectl dashboard --port 0 serves the page and API, stops on SIGTERM", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const enq = await runCli(["enqueue", '{"command":"echo hi","id":"one"}'], { db });
  assert.equal(enq.code, 0, enq.stderr);
  // Started from another directory: the page is embedded, not read from the working directory.
  const { child, reader, firstLine } = await startCli(
    ["--port", "0"],
    { QUEUECTL_DB: db },
    /\n/,
    dir.path,
  );
  try {
    const m = /^queuectl dashboard: (http:\/\/127\.0\.0\.1:(\d+)\/) \(Ctrl-C to stop\)$/.exec(
      firstLine,
    );
    assert.ok(m, `unexpected first line: ${firstLine}`);
    const page = await fetch(m[1]);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<meta name="csrf-token" content="[\w-]{40,}">/);
    const jobs = await (await fetch(`${m[1]}api/jobs`)).json();
    assert.deepEqual(jobs.jobs.map((j: { id: string }) => j.id), ["one"]);
    const css = await fetch(`${m[1]}assets/style.css`);
    assert.match(await css.text(), /^:root \{/);
  } finally {
    child.kill(Deno.build.os === "windows" ? undefined : "SIGTERM");
    await reader.cancel();
  }
  const status = await child.status;
  const stderr = await new Response(child.stderr).text();
  if (Deno.build.os !== "windows") assert.equal(status.code, 0, stderr);
});

Deno.test("queuectl dashboard with a token prints a link carrying it and needs it", async () => {
  await using dir = await tempDir();
  const token = "cli-token-0123456789abc";
  const { child, reader, out } = await startCli(["--port", "0", "--json"], {
    QUEUECTL_DB: dir.file("q.db"),
    QUEUECTL_DASHBOARD_TOKEN: token,
  }, /^\}$/m);
  try {
    const info = JSON.parse(out);
    assert.equal(info.url, `http://127.0.0.1:${info.port}/?token=${token}`);
    const bare = await fetch(`http://127.0.0.1:${info.port}/api/stats`);
    await bare.body?.cancel();
    assert.equal(bare.status, 401);
    const ok = await fetch(`http://127.0.0.1:${info.port}/api/stats`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).total, 0);
  } finally {
    child.kill(Deno.build.os === "windows" ? undefined : "SIGTERM");
    await reader.cancel();
    await child.stderr.cancel();
    await child.status;
  }
});

Deno.test("queuectl dashboard refuses bad flags with one error line and creates nothing", async () => {
  await using dir = await tempDir();
  const db = dir.file("never.db");
  const cases: [string[], RegExp][] = [
    [
      ["--host", "0.0.0.0"],
      /^error: Refusing to serve the dashboard on 0\.0\.0\.0 without an access token \(pass --token or set QUEUECTL_DASHBOARD_TOKEN, or bind to 127\.0\.0\.1\)\n$/,
    ],
    [["--token", "short"], /^error: Invalid dashboard token: use 16 to 256 letters/],
    [
      ["--port", "70000"],
      /^error: Failed to parse "70000" for port: expected a whole number from 0 to 65535/,
    ],
    [["--port", "web"], /^error: Failed to parse "web" for port/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(["dashboard", ...args], { db });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1);
    assert.equal(r.stdout, "");
  }
  await assert.rejects(Deno.stat(db), Deno.errors.NotFound);
});
