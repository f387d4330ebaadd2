/**
 * Issue 13, item 1, as the attacker did it: another local user (`nobody`) goes at a dashboard
 * started the documented way (`queuectl dashboard`, loopback, generated token). It must get 401 on
 * the page, the assets, the API and the event stream, find no CSRF token, create no job, and
 * read neither the token file nor the database. The same client given the token gets through,
 * so the refusals are the token's doing.
 *
 * Needs root (to become nobody with setpriv); CI runs as root. Skipped elsewhere only as
 * tests/helpers/services.ts allows (CI unset, or the runner declares QUEUECTL_TEST_NO_OTHER_USER).
 */
import assert from "node:assert/strict";
import { startCli } from "../helpers/cli_process.ts";
import { otherUser, runAs } from "../helpers/other_user.ts";
import { runCli } from "../helpers/run_cli.ts";
import { skipAllowedBecause } from "../helpers/services.ts";
import { tempDir } from "../helpers/temp.ts";

const user = otherUser();
const missing = "missing" in user ? user.missing : null;
const skipBecause = missing ? skipAllowedBecause("other-user") : null;
if (missing && skipBecause) {
  console.log(`skipping the other-user dashboard test: ${missing} (${skipBecause})`);
}

Deno.test({
  name: "another local user gets 401 everywhere, no CSRF token, no job, no token file",
  ignore: missing !== null && skipBecause !== null,
  fn: async () => {
    if ("missing" in user) {
      throw new Error(
        `${user.missing}; CI requires it (set QUEUECTL_TEST_NO_OTHER_USER=1 on runners without it)`,
      );
    }
    await using dir = await tempDir();
    // Everyone may enter the directory: only the files' own modes protect them.
    await Deno.chmod(dir.path, 0o755);
    const db = dir.file("q.db");
    const client = dir.file("intruder.ts");
    await Deno.copyFile(new URL("./intruder.ts", import.meta.url), client);
    await Deno.chmod(client, 0o644);

    await using dashboard = startCli(["dashboard", "--port", "0"], { db });
    const [, base, token] = await dashboard.waitForOutput(
      /^queuectl dashboard: (http:\/\/127\.0\.0\.1:\d+\/)\?token=([\w-]+) /m,
    );
    const tokenFile = `${db}-dashboard-token`;
    assert.equal((await Deno.stat(tokenFile)).mode! & 0o777, 0o600);

    const attack = async (env: Record<string, string> = {}) => {
      const r = await runAs(user, [
        Deno.execPath(),
        "run",
        "--quiet",
        "--no-prompt",
        "--allow-net=127.0.0.1",
        "--allow-read",
        "--allow-run=cat",
        "--allow-sys=uid",
        "--allow-env=INTRUDER_TOKEN",
        client,
        base,
        tokenFile,
        db,
        String(dashboard.pid),
      ], env);
      assert.equal(r.code, 0, `the client failed: ${r.stderr}`);
      return JSON.parse(r.stdout);
    };

    const refused = await attack();
    assert.equal(refused.uid, user.uid, "the client ran as nobody");
    assert.deepEqual(
      {
        page: refused.page,
        csrf_found: refused.csrf_found,
        guessed_login: refused.guessed_login,
        app_js: refused.app_js,
        stats: refused.stats,
        jobs: refused.jobs,
        workers: refused.workers,
        events: refused.events,
        enqueue: refused.enqueue,
        token_file: refused.token_file,
        database: refused.database,
      },
      {
        page: 401,
        csrf_found: false,
        guessed_login: 401,
        app_js: 401,
        stats: 401,
        jobs: 401,
        workers: 401,
        events: 401,
        enqueue: 401,
        token_file: "PermissionDenied",
        database: "PermissionDenied",
      },
    );
    if (Deno.build.os === "linux") {
      // Every user may read a process's command line, and it holds no token; its environment
      // is the owner's alone.
      assert.match(refused.cmdline, /\bdashboard --port 0\b/);
      assert.ok(!refused.cmdline.includes(token), "no token on the command line");
      assert.notEqual(refused.environ_code, 0, "nobody cannot read /proc/<pid>/environ");
    }
    const listed = await runCli(["list", "--json"], { db });
    assert.deepEqual(JSON.parse(listed.stdout), [], "no job was created");

    // The same client, given the token, gets in: the refusals came from the missing token.
    const allowed = await attack({ INTRUDER_TOKEN: token });
    assert.equal(allowed.uid, user.uid);
    assert.deepEqual(
      [allowed.page, allowed.csrf_found, allowed.stats, allowed.events, allowed.enqueue],
      [200, true, 200, 200, 201],
    );
    const after = await runCli(["list", "--json"], { db });
    assert.deepEqual(JSON.parse(after.stdout).map((j: { id: string }) => j.id), ["allowed"]);
  },
});
