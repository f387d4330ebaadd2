/**
 * Where the database lives by default, on each operating system. The `os` parameter is injected,
 * so every branch runs on every runner (the Windows branch included on Linux and macOS).
 */
import assert from "node:assert/strict";
import { defaultDbPath, ensureDefaultDir } from "../../src/store/location.ts";
import { InvalidInput } from "../../src/core/errors.ts";
import { skipAllowedBecause } from "../helpers/services.ts";
import { tempDir } from "../helpers/temp.ts";

function envOf(vars: Record<string, string>): (name: string) => string | undefined {
  return (name) => vars[name];
}

for (const os of ["linux", "darwin"] as const) {
  Deno.test(`defaultDbPath (${os}): $XDG_DATA_HOME/queuectl/queuectl.db when set`, () => {
    const env = envOf({ HOME: "/home/ann", XDG_DATA_HOME: "/data/ann" });
    assert.equal(defaultDbPath(env, os), "/data/ann/queuectl/queuectl.db");
  });

  Deno.test(`defaultDbPath (${os}): ~/.local/share/queuectl/queuectl.db otherwise`, () => {
    assert.equal(
      defaultDbPath(envOf({ HOME: "/home/ann" }), os),
      "/home/ann/.local/share/queuectl/queuectl.db",
    );
    // The XDG spec says a relative (or empty) XDG_DATA_HOME is invalid and must be ignored.
    for (const xdg of ["relative/dir", ""]) {
      assert.equal(
        defaultDbPath(envOf({ HOME: "/home/ann", XDG_DATA_HOME: xdg }), os),
        "/home/ann/.local/share/queuectl/queuectl.db",
        `XDG_DATA_HOME=${JSON.stringify(xdg)}`,
      );
    }
  });
}

Deno.test("defaultDbPath (windows): %LOCALAPPDATA%\\queuectl\\queuectl.db", () => {
  const env = envOf({
    LOCALAPPDATA: "C:\\Users\\Ann\\AppData\\Local",
    USERPROFILE: "C:\\Users\\Ann",
    // Unix variables that may be set (Git Bash, MSYS) must not win on Windows.
    HOME: "/home/ann",
    XDG_DATA_HOME: "/data/ann",
  });
  assert.equal(
    defaultDbPath(env, "windows"),
    "C:\\Users\\Ann\\AppData\\Local\\queuectl\\queuectl.db",
  );
});

Deno.test("defaultDbPath (windows): falls back to %USERPROFILE%\\AppData\\Local", () => {
  assert.equal(
    defaultDbPath(envOf({ USERPROFILE: "C:\\Users\\Ann" }), "windows"),
    "C:\\Users\\Ann\\AppData\\Local\\queuectl\\queuectl.db",
  );
});

Deno.test("defaultDbPath: the real environment gives an absolute path ending in queuectl.db", () => {
  const path = defaultDbPath();
  assert.match(path, /queuectl[\\/]queuectl\.db$/);
  const absolute = Deno.build.os === "windows" ? /^([A-Za-z]:)?\\/ : /^\//;
  assert.match(path, absolute);
});

Deno.test("ensureDefaultDir creates the parent directory (0700 on Unix), and is idempotent", async () => {
  await using dir = await tempDir();
  const sep = Deno.build.os === "windows" ? "\\" : "/";
  const db = [dir.path, "data", "queuectl", "queuectl.db"].join(sep);
  await ensureDefaultDir(db);
  await ensureDefaultDir(db);
  const info = await Deno.stat([dir.path, "data", "queuectl"].join(sep));
  assert.ok(info.isDirectory);
  if (Deno.build.os !== "windows") assert.equal(info.mode! & 0o777, 0o700);
});

Deno.test("defaultDbPath (unix): no HOME (or a relative one) and no XDG_DATA_HOME is refused, never a shared directory", () => {
  for (const env of [envOf({}), envOf({ HOME: "" }), envOf({ HOME: "relative/home" })]) {
    assert.throws(
      () => defaultDbPath(env, "linux"),
      (err: unknown) =>
        err instanceof InvalidInput && /^No default database: HOME is not set/.test(err.message) &&
        /--db PATH or QUEUECTL_DB/.test(err.hint ?? ""),
    );
  }
  // XDG_DATA_HOME alone is enough.
  assert.equal(
    defaultDbPath(envOf({ XDG_DATA_HOME: "/data/ann" }), "linux"),
    "/data/ann/queuectl/queuectl.db",
  );
});

Deno.test({
  name:
    "ensureDefaultDir refuses a data directory another user could swap: theirs, or under one of theirs, or world-writable",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    if (Deno.uid() !== 0) {
      const why = skipAllowedBecause("root");
      if (why === null) throw new Error("needs root to give a directory to another user");
      console.log(`skipped: needs root to give a directory to another user (${why})`);
      return;
    }
    await using dir = await tempDir();
    // Another user made the path first (as in a shared /tmp): their directory, ours inside it.
    const theirs = dir.file("theirs");
    Deno.mkdirSync(theirs, { mode: 0o777 });
    Deno.chmodSync(theirs, 0o777);
    Deno.chownSync(theirs, 65534, 65534);
    const under = `${theirs}/share/queuectl/queuectl.db`;
    await assert.rejects(
      () => ensureDefaultDir(under),
      (err: unknown) =>
        err instanceof InvalidInput &&
        new RegExp(`"${theirs}" is not safe \\(it is owned by uid 65534\\)`).test(err.message),
    );
    // Their directory as the data directory itself.
    const planted = dir.file("planted");
    Deno.mkdirSync(planted, { mode: 0o700 });
    Deno.chownSync(planted, 65534, 65534);
    await assert.rejects(() => ensureDefaultDir(`${planted}/queuectl.db`), /owned by uid 65534/);
    // Ours, but writable by everyone and not sticky.
    const open = dir.file("open");
    Deno.mkdirSync(open);
    Deno.chmodSync(open, 0o777);
    await assert.rejects(
      () => ensureDefaultDir(`${open}/queuectl/queuectl.db`),
      /"[^"]*open" is not safe \(everyone may write to it\)/,
    );
    // Sticky and world-writable (as /tmp itself), with our own directory inside: accepted.
    const sticky = dir.file("sticky");
    Deno.mkdirSync(sticky);
    Deno.chmodSync(sticky, 0o1777);
    await ensureDefaultDir(`${sticky}/mine/queuectl/queuectl.db`);
  },
});
