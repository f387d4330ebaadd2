/**
 * Where the dashboard's access token comes from (every bind needs one), first match wins:
 *
 * 1. `--token-file FILE`: the first line of FILE. Refused when every user may read or write it.
 * 2. `QUEUECTL_DASHBOARD_TOKEN` (empty counts as unset).
 * 3. Generated: 32 random bytes (base64url), kept in a file only its owner can read, so that a
 *    second start, bookmarks and `--open` keep working: `<database>-dashboard-token` beside an
 *    SQLite database, `queuectl-dashboard-token` in queuectl's data directory for PostgreSQL.
 *    Created atomically (a hard link of a complete 0600 file), so two dashboards starting at once
 *    share one token. An existing file is trusted only if it is a regular file of this user with
 *    no permission for anyone else; otherwise the start is refused (the token may have leaked).
 *
 * Never on the command line: `ps` shows argv to every user.
 */
import { InvalidInput, StorageError } from "../core/errors.ts";
import { defaultDbPath, isPostgresUrl } from "../store/location.ts";
import { randomToken, TOKEN_ENV, validateAccessToken } from "./security.ts";

export type TokenOrigin =
  | { kind: "file"; path: string }
  | { kind: "env" }
  | { kind: "generated"; path: string; created: boolean };

export interface AccessToken {
  token: string;
  origin: TokenOrigin;
}

/** A token file is one short line; anything longer is not one. */
const MAX_FILE_BYTES = 4096;

const isWindows = () => Deno.build.os === "windows";

function separator(): string {
  return isWindows() ? "\\" : "/";
}

function dirOf(path: string): string {
  const cut = path.replace(/[\\/][^\\/]*$/, "");
  return cut === "" ? "/" : cut;
}

/** `path` made absolute against the working directory. */
export function absolutePath(p: string, cwd = Deno.cwd()): string {
  if (p.startsWith("/") || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith("\\\\")) return p;
  return `${cwd}${separator()}${p}`;
}

/** Where the generated token of the database `dbUrl` is kept. */
export function generatedTokenPath(
  dbUrl: string,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  cwd = Deno.cwd(),
): string {
  if (isPostgresUrl(dbUrl)) {
    return `${dirOf(defaultDbPath(env))}${separator()}queuectl-dashboard-token`;
  }
  return `${absolutePath(dbUrl.replace(/^sqlite:(\/\/)?/i, ""), cwd)}-dashboard-token`;
}

function octal(mode: number): string {
  return "0" + (mode & 0o777).toString(8).padStart(3, "0");
}

/** The token on the first line of an open file (after its checks), or throws `bad(reason)`. */
async function readToken(file: Deno.FsFile, size: number, bad: (why: string) => Error) {
  if (size > MAX_FILE_BYTES) throw bad(`it is ${size} bytes, not one line`);
  const buf = new Uint8Array(size);
  let off = 0;
  while (off < size) {
    const n = await file.read(buf.subarray(off));
    if (n === null) break;
    off += n;
  }
  const text = new TextDecoder().decode(buf.subarray(0, off));
  const token = (text.split(/\r?\n/)[0] ?? "").trim();
  if (token === "") throw bad("it is empty");
  try {
    return validateAccessToken(token);
  } catch {
    throw bad("its first line is not a valid token (16 to 256 letters, digits or . _ ~ + / = -)");
  }
}

function ioError(action: string, path: string, err: unknown): Error {
  if (err instanceof Deno.errors.NotFound) {
    return new InvalidInput(
      `Cannot ${action} ${path}: the directory ${dirOf(path)} does not exist`,
    );
  }
  if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable) {
    return new StorageError(`Cannot ${action} ${path}: permission denied`);
  }
  return new StorageError(`Cannot ${action} ${path}: ${(err as Error).message}`);
}

/** Reads a token file the user named with --token-file. */
export async function readGivenTokenFile(path: string): Promise<string> {
  const where = `the token file ${path}`;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new InvalidInput(`Cannot read ${where}: it does not exist`);
    }
    throw ioError("read", path, err);
  }
  try {
    const info = await file.stat();
    if (!info.isFile) throw new InvalidInput(`Cannot read ${where}: it is not a regular file`);
    if (info.mode !== null && (info.mode & 0o006) !== 0) {
      throw new InvalidInput(
        `Refusing ${where}: every user on this machine may ${
          info.mode & 0o004 ? "read" : "change"
        } it (mode ${octal(info.mode)})`,
        { hint: `chmod o-rw ${path}` },
      );
    }
    return await readToken(
      file,
      info.size,
      (why) => new InvalidInput(`Invalid token file ${path}: ${why}`),
    );
  } finally {
    file.close();
  }
}

/** The token from QUEUECTL_DASHBOARD_TOKEN, or undefined when it is unset or empty. */
export function tokenFromEnv(env: (name: string) => string | undefined): string | undefined {
  const value = env(TOKEN_ENV);
  if (value === undefined || value === "") return undefined;
  try {
    return validateAccessToken(value.trim());
  } catch (err) {
    throw new InvalidInput(`Invalid ${TOKEN_ENV}: ${(err as InvalidInput).message}`, {
      hint: (err as InvalidInput).hint,
    });
  }
}

/** The user's own id, or null where there is none (Windows). Needs --allow-sys=uid. */
function myUid(): number | null {
  return Deno.uid();
}

/** Reads an existing generated token file, refusing one that others could have read or planted. */
async function readGeneratedFile(path: string): Promise<string> {
  const where = `The dashboard token file ${path}`;
  const hint = "delete it: a new token is generated at the next start";
  const link = await Deno.lstat(path);
  if (link.isSymlink || !link.isFile) {
    throw new InvalidInput(`${where} is not a regular file`, { hint });
  }
  const file = await Deno.open(path, { read: true });
  try {
    const info = await file.stat();
    const uid = myUid();
    if (uid !== null && info.uid !== null && info.uid !== uid) {
      throw new InvalidInput(`${where} belongs to another user (uid ${info.uid})`, { hint });
    }
    if (info.mode !== null && (info.mode & 0o077) !== 0) {
      throw new InvalidInput(
        `${where} may be read or changed by other users (mode ${
          octal(info.mode)
        }): the token may have leaked`,
        { hint },
      );
    }
    return await readToken(
      file,
      info.size,
      (why) => new InvalidInput(`${where}: ${why}`, { hint }),
    );
  } finally {
    file.close();
  }
}

function randomSuffix(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(6)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/**
 * The generated token kept at `path`: read when the file exists, else created (mode 0600).
 * `created` says whether this call made it.
 */
export async function loadOrCreateTokenFile(
  path: string,
): Promise<{ token: string; created: boolean }> {
  try {
    return { token: await readGeneratedFile(path), created: false };
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      if (err instanceof InvalidInput) throw err;
      throw ioError("read", path, err);
    }
  }
  const token = randomToken();
  const temp = `${path}.${randomSuffix()}.tmp`;
  try {
    const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
    try {
      const bytes = new TextEncoder().encode(token + "\n");
      let off = 0;
      while (off < bytes.length) off += await file.write(bytes.subarray(off));
      await file.sync();
    } finally {
      file.close();
    }
    // A link never replaces an existing name: of two dashboards starting at once, one wins.
    await Deno.link(temp, path);
    return { token, created: true };
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      return { token: await readGeneratedFile(path), created: false };
    }
    throw ioError("create the dashboard token file", path, err);
  } finally {
    await Deno.remove(temp).catch(() => {});
  }
}

/**
 * The token given explicitly (--token-file, then the environment), or undefined when the
 * dashboard should use its generated one. Validates before any database is opened.
 */
export async function givenToken(
  p: { tokenFile?: string; env: (name: string) => string | undefined },
): Promise<AccessToken | undefined> {
  if (p.tokenFile !== undefined) {
    const path = absolutePath(p.tokenFile);
    return { token: await readGivenTokenFile(path), origin: { kind: "file", path } };
  }
  const fromEnv = tokenFromEnv(p.env);
  return fromEnv === undefined ? undefined : { token: fromEnv, origin: { kind: "env" } };
}

/** The generated token of the database `dbUrl` (the data directory is created for PostgreSQL). */
export async function generatedToken(
  dbUrl: string,
  env: (name: string) => string | undefined,
): Promise<AccessToken> {
  const path = generatedTokenPath(dbUrl, env);
  if (isPostgresUrl(dbUrl)) await Deno.mkdir(dirOf(path), { recursive: true, mode: 0o700 });
  const { token, created } = await loadOrCreateTokenFile(path);
  return { token, origin: { kind: "generated", path, created } };
}
