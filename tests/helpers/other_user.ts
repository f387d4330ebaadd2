/**
 * Runs a program as another local user (`nobody`), the way a hostile user on the same machine
 * would attack: it needs root, to drop to nobody with `setpriv` (Linux) or `sudo -u` (macOS).
 * Whether a missing capability skips or fails the tests is decided by tests/helpers/services.ts.
 */

export interface OtherUser {
  uid: number;
  gid: number;
  /** The argv prefix that runs the rest of the argv as this user, without supplementary groups. */
  prefix: string[];
}

function idOf(flag: "-u" | "-g", user: string): number | null {
  try {
    const out = new Deno.Command("id", { args: [flag, user], stderr: "null" }).outputSync();
    const n = Number(new TextDecoder().decode(out.stdout).trim());
    return out.success && Number.isInteger(n) ? n : null;
  } catch {
    return null;
  }
}

function runs(argv: string[]): boolean {
  try {
    const out = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdout: "null",
      stderr: "null",
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin", HOME: "/nonexistent" },
    }).outputSync();
    return out.success;
  } catch {
    return false;
  }
}

/**
 * `nobody`, ready to run Deno (this test runner's executable), or why not: not root, no such user,
 * no way to switch, or nobody cannot execute Deno where it is installed.
 */
export function otherUser(): OtherUser | { missing: string } {
  if (Deno.build.os === "windows") return { missing: "Windows has no setpriv or nobody" };
  if (Deno.uid() !== 0) return { missing: "not running as root (needed to become nobody)" };
  const uid = idOf("-u", "nobody");
  const gid = idOf("-g", "nobody");
  if (uid === null || gid === null) return { missing: "no user nobody" };
  const prefix = Deno.build.os === "linux"
    ? ["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups"]
    : ["sudo", "-n", "-u", "nobody"];
  if (!runs([...prefix, "true"])) return { missing: `${prefix[0]} cannot switch to nobody` };
  if (!runs([...prefix, Deno.execPath(), "--version"])) {
    return { missing: `nobody cannot execute ${Deno.execPath()}` };
  }
  return { uid, gid, prefix };
}

/** Runs `argv` as `user` with a minimal environment (plus `env`); returns code and output. */
export async function runAs(
  user: OtherUser,
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const full = [...user.prefix, ...argv];
  const out = await new Deno.Command(full[0], {
    args: full.slice(1),
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin", HOME: "/nonexistent", NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}
