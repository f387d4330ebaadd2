/** Where the dashboard's access token comes from and how its file is kept (src/dashboard/token.ts). */
import assert from "node:assert/strict";
import { InvalidInput } from "../../src/core/errors.ts";
import {
  generatedToken,
  generatedTokenPath,
  givenToken,
  loadOrCreateTokenFile,
  readGivenTokenFile,
  tokenFromEnv,
} from "../../src/dashboard/token.ts";
import { tempDir } from "../helpers/temp.ts";

const posix = Deno.build.os !== "windows";
const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("the generated token lives beside an SQLite database, in the data dir for PostgreSQL", () => {
  const env = envOf({ HOME: "/home/me" });
  assert.equal(generatedTokenPath("/srv/q.db", env), "/srv/q.db-dashboard-token");
  assert.equal(generatedTokenPath("sqlite:///srv/q.db", env), "/srv/q.db-dashboard-token");
  assert.equal(generatedTokenPath("q.db", env, "/work"), "/work/q.db-dashboard-token");
  if (posix) {
    assert.equal(
      generatedTokenPath("postgres://u:pw@db.example/queue", env),
      "/home/me/.local/share/queuectl/queuectl-dashboard-token",
    );
    assert.equal(
      generatedTokenPath("postgresql://x/y", envOf({ XDG_DATA_HOME: "/data" })),
      "/data/queuectl/queuectl-dashboard-token",
    );
  }
});

Deno.test("a token file is created once, mode 0600, and read back on the next start", async () => {
  await using dir = await tempDir();
  const path = dir.file("q.db-dashboard-token");
  const first = await loadOrCreateTokenFile(path);
  assert.equal(first.created, true);
  assert.match(first.token, /^[\w-]{43}$/, "256 random bits, base64url");
  assert.equal(await Deno.readTextFile(path), `${first.token}\n`);
  if (posix) assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  assert.deepEqual(await loadOrCreateTokenFile(path), { token: first.token, created: false });
  const other = await loadOrCreateTokenFile(dir.file("other-token"));
  assert.notEqual(other.token, first.token);
  const names = [];
  for await (const e of Deno.readDir(dir.path)) names.push(e.name);
  assert.deepEqual(names.sort(), ["other-token", "q.db-dashboard-token"], "no temp file left");
});

Deno.test("dashboards starting at once share one generated token", async () => {
  await using dir = await tempDir();
  const path = dir.file("q.db-dashboard-token");
  const results = await Promise.all(
    Array.from({ length: 12 }, () => loadOrCreateTokenFile(path)),
  );
  assert.equal(new Set(results.map((r) => r.token)).size, 1);
  assert.equal(results.filter((r) => r.created).length, 1);
  assert.equal((await Deno.readTextFile(path)).trim(), results[0].token);
});

Deno.test("a damaged generated token file is refused with what to do, never echoed", async () => {
  await using dir = await tempDir();
  const path = dir.file("t");
  for (const [content, reason] of [["", "it is empty"], ["bad token!\n", "not a valid token"]]) {
    await Deno.writeTextFile(path, content, { mode: 0o600 });
    await assert.rejects(loadOrCreateTokenFile(path), (err: unknown) => {
      assert.ok(err instanceof InvalidInput);
      assert.ok(err.message.includes(reason), err.message);
      assert.equal(err.hint, "delete it: a new token is generated at the next start");
      assert.ok(!err.message.includes("bad token"));
      return true;
    });
  }
  await Deno.remove(path);
  await Deno.mkdir(path);
  await assert.rejects(loadOrCreateTokenFile(path), /is not a regular file/);
  await assert.rejects(
    loadOrCreateTokenFile(dir.file("missing-dir/t")),
    /Cannot create the dashboard token file .*: the directory .*missing-dir does not exist/,
  );
});

Deno.test("--token-file: the first line, trimmed; long, empty or shared files refused", async () => {
  await using dir = await tempDir();
  const path = dir.file("token");
  await Deno.writeTextFile(path, "  given-token-0123456789  \r\nsecond line\n", { mode: 0o600 });
  assert.equal(await readGivenTokenFile(path), "given-token-0123456789");
  assert.deepEqual(await givenToken({ tokenFile: path, env: envOf({}) }), {
    token: "given-token-0123456789",
    origin: { kind: "file", path },
  });
  await Deno.writeTextFile(path, "x".repeat(5000), { mode: 0o600 });
  await assert.rejects(readGivenTokenFile(path), /it is 5000 bytes, not one line/);
  if (posix) {
    await Deno.writeTextFile(path, "group-readable-0123456789\n");
    await Deno.chmod(path, 0o640);
    assert.equal(
      await readGivenTokenFile(path),
      "group-readable-0123456789",
      "a group may share it",
    );
    await Deno.chmod(path, 0o602);
    await assert.rejects(readGivenTokenFile(path), /every user on this machine may change it/);
    await assert.rejects(readGivenTokenFile("/dev/null"), /it is not a regular file/);
  }
});

Deno.test("QUEUECTL_DASHBOARD_TOKEN: empty is unset, a bad one is named", async () => {
  assert.equal(tokenFromEnv(envOf({})), undefined);
  assert.equal(tokenFromEnv(envOf({ QUEUECTL_DASHBOARD_TOKEN: "" })), undefined);
  assert.equal(
    tokenFromEnv(envOf({ QUEUECTL_DASHBOARD_TOKEN: "env-token-0123456789\n" })),
    "env-token-0123456789",
  );
  assert.throws(
    () => tokenFromEnv(envOf({ QUEUECTL_DASHBOARD_TOKEN: "short" })),
    /^InvalidInput: Invalid QUEUECTL_DASHBOARD_TOKEN: Invalid dashboard token/,
  );
  assert.equal(await givenToken({ env: envOf({}) }), undefined);
});

Deno.test({
  name: "PostgreSQL: the data directory is created (0700) for the generated token",
  ignore: !posix,
  fn: async () => {
    await using dir = await tempDir();
    const env = envOf({ XDG_DATA_HOME: dir.path });
    const access = await generatedToken("postgres://u@h/db", env);
    const path = `${dir.path}/queuectl/queuectl-dashboard-token`;
    assert.deepEqual(access.origin, { kind: "generated", path, created: true });
    assert.equal((await Deno.stat(`${dir.path}/queuectl`)).mode! & 0o777, 0o700);
    assert.equal((await generatedToken("postgres://u@h/other", env)).token, access.token);
  },
});
