/**
 * Where the database lives by default, on each operating system. The `os` parameter is injected,
 * so every branch runs on every runner (the Windows branch included on Linux and macOS).
 */
import assert from "node:assert/strict";
import { defaultDbPath, ensureDefaultDir } from "../../src/store/location.ts";
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
