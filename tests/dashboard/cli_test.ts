/** `queuectl dashboard` run as a user does: a real subprocess of the CLI. */
import assert from "node:assert/strict";
import { type CliProcess, startCli } from "../helpers/cli_process.ts";
import { runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

/** Starts `queuectl dashboard ...` and waits for its first line. */
async function startDashboardCli(
  args: string[],
  opts: { db?: string; env?: Record<string, string>; cwd?: string } = {},
): Promise<CliProcess & { firstLine: string }> {
  const proc = startCli(["dashboard", ...args], opts);
  const [firstLine] = await proc.waitForOutput(/^.*(?=\n)/);
  return Object.assign(proc, { firstLine });
}

/** SIGTERM, then the exit code. */
async function stop(proc: CliProcess): Promise<number> {
  proc.kill(Deno.build.os === "windows" ? undefined : "SIGTERM");
  return (await proc.status).code;
}

const LINE =
  /^queuectl dashboard: (http:\/\/127\.0\.0\.1:(\d+)\/)(\?token=([\w-]+))? \(Ctrl-C to stop\)$/;

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers, redirect: "manual" });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

Deno.test("first start generates a token: 0600 file beside the database, login URL printed once", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const enq = await runCli(["enqueue", '{"command":"echo hi","id":"one"}'], { db });
  assert.equal(enq.code, 0, enq.stderr);
  // Started from another directory: the page is embedded, not read from the working directory.
  await using first = await startDashboardCli(["--port", "0"], { db, cwd: dir.path });
  const m = LINE.exec(first.firstLine);
  assert.ok(m?.[4], `unexpected first line: ${first.firstLine}`);
  const [, base, , , token] = m;
  assert.ok(token.length >= 43, "at least 256 random bits, base64url");
  const file = `${db}-dashboard-token`;
  assert.equal(await Deno.readTextFile(file), `${token}\n`);
  if (Deno.build.os !== "windows") assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
  await waitFor(() => first.stderr().includes("\n"), { what: "the note on stderr" });
  assert.equal(
    first.stderr(),
    `access token: new, kept in ${file} (readable only by you); open the link above once to log in\n`,
  );

  assert.equal((await get(base)).status, 401);
  const bearer = { authorization: `Bearer ${token}` };
  const page = await get(base, bearer);
  assert.equal(page.status, 200);
  assert.match(page.text, /<meta name="csrf-token" content="[\w-]{40,}">/);
  const jobs = JSON.parse((await get(`${base}api/jobs`, bearer)).text);
  assert.deepEqual(jobs.jobs.map((j: { id: string }) => j.id), ["one"]);
  const login = await get(`${base}?token=${token}`);
  assert.equal(login.status, 200);
  const cookie = login.headers.get("set-cookie")!.split(";")[0];
  const css = await get(`${base}assets/style.css`, { cookie });
  assert.match(css.text, /^:root \{/);
  const code = await stop(first);
  if (Deno.build.os !== "windows") assert.equal(code, 0, first.stderr());

  // A second start keeps the token (bookmarks, the browser's cookie) and does not print it.
  await using second = await startDashboardCli(["--port", "0"], { db });
  const again = LINE.exec(second.firstLine);
  assert.ok(again && again[3] === undefined, `token printed again: ${second.firstLine}`);
  assert.equal(
    (await get(again[1], { cookie: cookie.replace(/_\d+=/, `_${again[2]}=`) })).status,
    200,
  );
  assert.equal((await get(`${again[1]}?token=${token}`)).status, 200);
  await waitFor(() => second.stderr().includes("\n"), { what: "the note on stderr" });
  assert.equal(
    second.stderr(),
    `access token: kept in ${file}; \`queuectl dashboard --print-url --port ${
      again[2]
    }\` prints the link that logs in\n`,
  );
  assert.ok(!second.stdout().includes(token) && !second.stderr().includes(token));
});

Deno.test("--print-url prints the login URL on request (creating the token), --json too", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const first = await runCli(["dashboard", "--print-url", "--db", db]);
  assert.equal(first.code, 0, first.stderr);
  const token = (await Deno.readTextFile(`${db}-dashboard-token`)).trim();
  assert.equal(first.stdout, `http://127.0.0.1:3000/?token=${token}\n`);
  assert.equal(
    first.stderr,
    `access token: new, kept in ${db}-dashboard-token (readable only by you)\n`,
  );
  await assert.rejects(Deno.stat(db), Deno.errors.NotFound, "no database is opened");
  const again = await runCli(["dashboard", "--print-url", "--port", "8080", "--host", "::1"], {
    db,
  });
  assert.equal(again.stdout, `http://[::1]:8080/?token=${token}\n`);
  assert.equal(again.stderr, "");
  const json = await runCli(["dashboard", "--print-url", "--json"], { db });
  assert.deepEqual(JSON.parse(json.stdout), {
    url: `http://127.0.0.1:3000/?token=${token}`,
    token_source: "generated",
    token_file: `${db}-dashboard-token`,
    token_created: false,
  });
  // A token from the environment is printed when asked for.
  const fromEnv = await runCli(["dashboard", "--print-url"], {
    db,
    env: { QUEUECTL_DASHBOARD_TOKEN: "env-token-0123456789abc" },
  });
  assert.equal(fromEnv.stdout, "http://127.0.0.1:3000/?token=env-token-0123456789abc\n");
});

Deno.test("a token from the environment or --token-file is used, and never printed", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  const secret = "env-secret-0123456789abcdef";
  const tokenFile = dir.file("token");
  const fileSecret = "file-secret-0123456789abcdef";
  await Deno.writeTextFile(tokenFile, `${fileSecret}\n`, { mode: 0o600 });
  const cases: [string, string[], Record<string, string>, string, RegExp][] = [
    [
      "env",
      [],
      { QUEUECTL_DASHBOARD_TOKEN: secret },
      secret,
      /^access token: from QUEUECTL_DASHBOARD_TOKEN\n$/,
    ],
    [
      "file (beats the environment)",
      ["--token-file", tokenFile],
      { QUEUECTL_DASHBOARD_TOKEN: secret },
      fileSecret,
      new RegExp(`^access token: from ${tokenFile.replaceAll(/[.\\/]/g, "\\$&")}\\n$`),
    ],
  ];
  for (const [what, args, env, token, note] of cases) {
    await using d = await startDashboardCli(["--port", "0", ...args], { db, env });
    const m = LINE.exec(d.firstLine);
    assert.ok(m && m[3] === undefined, `${what}: ${d.firstLine}`);
    assert.equal((await get(`${m[1]}api/stats`)).status, 401, what);
    const ok = await get(`${m[1]}api/stats`, { authorization: `Bearer ${token}` });
    assert.equal(ok.status, 200, what);
    await waitFor(() => d.stderr().includes("\n"), { what: "the note" });
    assert.match(d.stderr(), note, what);
    await stop(d);
    assert.ok(!d.stdout().includes(token) && !d.stderr().includes(token), `${what}: printed`);
  }
  await assert.rejects(Deno.stat(`${db}-dashboard-token`), Deno.errors.NotFound);
  // --json: the clean URL, where the token came from, no token.
  await using j = startCli(["dashboard", "--port", "0", "--json"], {
    db,
    env: { QUEUECTL_DASHBOARD_TOKEN: secret },
  });
  const info = JSON.parse((await j.waitForOutput(/^\{[^]*^\}$/m))[0]);
  assert.deepEqual(info, {
    url: `http://127.0.0.1:${info.port}/`,
    hostname: "127.0.0.1",
    port: info.port,
    token_source: "env",
  });
});

Deno.test("a non-loopback bind uses the token too and warns that HTTP is plain", async () => {
  await using dir = await tempDir();
  await using d = await startDashboardCli(["--port", "0", "--host", "0.0.0.0"], {
    db: dir.file("q.db"),
  });
  const m = /^queuectl dashboard: http:\/\/localhost:(\d+)\/\?token=([\w-]+) /.exec(d.firstLine);
  assert.ok(m, d.firstLine);
  assert.equal((await get(`http://127.0.0.1:${m[1]}/`)).status, 401);
  assert.equal(
    (await get(`http://127.0.0.1:${m[1]}/api/stats`, { authorization: `Bearer ${m[2]}` })).status,
    200,
  );
  await waitFor(() => d.stderr().includes("plain HTTP"), { what: "the warning" });
  assert.match(d.stderr(), /^listening on 0\.0\.0\.0: plain HTTP, so the token and every page/m);
});

Deno.test("queuectl dashboard refuses bad flags and tokens with one error line and creates nothing", async () => {
  await using dir = await tempDir();
  const db = dir.file("never.db");
  const open = dir.file("open-token");
  await Deno.writeTextFile(open, "world-readable-0123456789\n", { mode: 0o644 });
  await Deno.chmod(open, 0o644);
  const empty = dir.file("empty-token");
  await Deno.writeTextFile(empty, "\n", { mode: 0o600 });
  const cases: [string[], Record<string, string>, RegExp][] = [
    [
      ["--token", "abcdefghijklmnop0123"],
      {},
      /^error: --token is not accepted: a token on the command line is visible to every user in ps \(put it in a file only you can read and pass --token-file FILE, or set QUEUECTL_DASHBOARD_TOKEN\)\n$/,
    ],
    [
      ["--token-file", dir.file("missing")],
      {},
      /^error: Cannot read the token file .*missing: it does not exist\n$/,
    ],
    [
      ["--token-file", dir.path],
      {},
      /^error: Cannot read the token file .*: it is not a regular file\n$/,
    ],
    [["--token-file", empty], {}, /^error: Invalid token file .*empty-token: it is empty\n$/],
    [
      [],
      { QUEUECTL_DASHBOARD_TOKEN: "short" },
      /^error: Invalid QUEUECTL_DASHBOARD_TOKEN: Invalid dashboard token: use 16 to 256 letters/,
    ],
    [
      ["--port", "70000"],
      {},
      /^error: Invalid --port: expected a whole number from 0 to 65535, got "70000"/,
    ],
    [["--port", "web"], {}, /^error: Invalid --port: expected a whole number .*, got "web"/],
    [
      ["--print-url", "--port", "0"],
      {},
      /^error: --print-url needs the port the dashboard listens on, not 0/,
    ],
    [
      ["--public-url", "ftp://queue.example.test/"],
      {},
      /^error: Invalid --public-url "ftp:\/\/queue\.example\.test\/": use http:\/\/ or https:\/\//,
    ],
    [
      ["--public-url", "https://queue.example.test/?next=evil"],
      {},
      /^error: Invalid --public-url .*: no query or fragment/,
    ],
    [
      // The password is not echoed.
      ["--public-url", "https://me:hunter2-secret@queue.example.test/"],
      {},
      /^error: Invalid --public-url: no user name or password in it \(give the address/,
    ],
  ];
  if (Deno.build.os !== "windows") {
    cases.push([
      ["--token-file", open],
      {},
      /^error: Refusing the token file .*open-token: every user on this machine may read it \(mode 0644\) \(chmod o-rw .*open-token\)\n$/,
    ]);
  }
  for (const [args, env, message] of cases) {
    const r = await runCli(["dashboard", ...args], { db, env });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1);
    assert.equal(r.stdout, "");
  }
  await assert.rejects(Deno.stat(db), Deno.errors.NotFound);
  await assert.rejects(Deno.stat(`${db}-dashboard-token`), Deno.errors.NotFound);
});

Deno.test({
  name: "a generated token file others could read, or another user's, is refused, not trusted",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const file = `${db}-dashboard-token`;
    await Deno.writeTextFile(file, "planted-token-0123456789\n", { mode: 0o600 });
    await Deno.chmod(file, 0o640);
    const loose = await runCli(["dashboard", "--print-url"], { db });
    assert.equal(loose.code, 2);
    assert.equal(
      loose.stderr,
      `error: The dashboard token file ${file} may be read or changed by other users (mode 0640): the token may have leaked (delete it: a new token is generated at the next start)\n`,
    );
    assert.equal(loose.stdout, "");
    await Deno.remove(file);
    await Deno.symlink(dir.file("elsewhere"), file);
    const link = await runCli(["dashboard", "--print-url"], { db });
    assert.match(link.stderr, /^error: The dashboard token file .* is not a regular file/);
    await Deno.remove(file);
    if (Deno.uid() === 0) {
      // Planted by another user in a directory both can write (e.g. /tmp): root must not use it.
      await Deno.writeTextFile(file, "planted-token-0123456789\n", { mode: 0o600 });
      await Deno.chown(file, 65534, 65534);
      const planted = await runCli(["dashboard", "--print-url"], { db });
      assert.equal(planted.code, 2);
      assert.match(
        planted.stderr,
        /^error: The dashboard token file .* belongs to another user \(uid 65534\)/,
      );
      assert.ok(!planted.stdout.includes("planted-token"));
    }
  },
});

Deno.test({
  name: "--open hands the browser a 0600 file, not a URL with the token on a command line",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const bin = dir.file("bin");
    await Deno.mkdir(bin);
    const record = dir.file("xdg-open.txt");
    // A stand-in for xdg-open: records its argv, environment and the file it was given.
    await Deno.writeTextFile(
      `${bin}/xdg-open`,
      `#!/bin/sh\n{ echo "argv: $*"; env | grep -c QUEUECTL_DASHBOARD_TOKEN; ` +
        `f=$(printf '%s' "$1" | sed 's|^file://||'); stat -c '%a' "$f"; cat "$f"; } > '${record}'\n`,
      { mode: 0o755 },
    );
    const secret = "env-secret-0123456789abcdef";
    await using d = await startDashboardCli(["--port", "0", "--open"], {
      db,
      env: { QUEUECTL_DASHBOARD_TOKEN: secret, PATH: `${bin}:${Deno.env.get("PATH")}` },
    });
    const port = LINE.exec(d.firstLine)![2];
    const text = await waitFor(async () => {
      const t = await Deno.readTextFile(record).catch(() => "");
      return t.includes("</p>") ? t : "";
    }, { what: "xdg-open to be called" });
    const openFile = `${db}-dashboard-open.html`;
    const [argv, inherited, mode, ...html] = text.split("\n");
    assert.equal(argv, `argv: file://${openFile}`);
    assert.equal(inherited, "0", "the browser does not inherit the token variable");
    assert.equal(mode, "600");
    assert.match(
      html.join("\n"),
      new RegExp(`content="0; url=http://127\\.0\\.0\\.1:${port}/\\?token=${secret}"`),
    );
    assert.equal(await stop(d), 0, d.stderr());
    await assert.rejects(Deno.stat(openFile), Deno.errors.NotFound, "removed at shutdown");
  },
});
