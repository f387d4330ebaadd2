/**
 * A PostgreSQL cluster of the test's own: `initdb` + `pg_ctl` in a temporary directory, on a spare
 * port, trust authentication. The fault suite stops it (`-m immediate`: a crash, every backend
 * killed at once; `-m fast`: the administrator's shutdown) and starts it again on the same port and
 * data directory, never touching the machine's own server on 5432.
 *
 * PostgreSQL refuses to run as root: under root every initdb/pg_ctl runs as an unprivileged user
 * (`postgres` if it exists, else `nobody`) through `setpriv`, in a directory that user owns.
 *
 * Disposal stops the server and, should pg_ctl fail, SIGKILLs the postmaster and its children by
 * pid (read from postmaster.pid at start), then removes the directory: also when the test failed.
 */
import postgres from "postgres";
import { childrenOf, processTable, signal } from "./procs.ts";
import { freePort, hasProgram, type Ran, runProgram, uid } from "./run.ts";
import { waitFor } from "../wait_for.ts";

export type StopMode = "immediate" | "fast" | "smart";

export interface PgCluster extends AsyncDisposable {
  readonly port: number;
  /** Addresses the server listens on (TCP). */
  readonly listen: readonly string[];
  readonly dir: string;
  readonly dataDir: string;
  /** `postgres://postgres@<host>:<port>/<db>`; host defaults to the first listen address. */
  url(opts?: { host?: string; db?: string }): string;
  /** The postmaster's pid while running, else null. */
  pid(): number | null;
  running(): boolean;
  /** `pg_ctl stop -m <mode>` (waits until the server is down). */
  stop(mode: StopMode): Promise<void>;
  /** `pg_ctl start` on the same port and data directory (waits until it accepts connections). */
  start(): Promise<void>;
  /** A one-connection admin client (end it with `await sql.end()`). */
  admin(opts?: { host?: string; db?: string }): postgres.Sql;
  /** The server's log so far. */
  log(): string;
}

/** The directory of initdb/pg_ctl: the newest /usr/lib/postgresql/N/bin, pg_config, or PATH. */
export function pgBinDir(): string | null {
  try {
    const versions = [...Deno.readDirSync("/usr/lib/postgresql")]
      .map((e) => e.name).filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const dir = `/usr/lib/postgresql/${v}/bin`;
      try {
        Deno.statSync(`${dir}/initdb`);
        return dir;
      } catch {
        // not this one
      }
    }
  } catch {
    // no Debian layout
  }
  if (hasProgram("pg_config")) {
    const r = new Deno.Command("pg_config", { args: ["--bindir"], stdout: "piped", stderr: "null" })
      .outputSync();
    const dir = new TextDecoder().decode(r.stdout).trim();
    if (r.code === 0 && dir) {
      try {
        Deno.statSync(`${dir}/initdb`);
        return dir;
      } catch {
        // pg_config without the server
      }
    }
  }
  if (hasProgram("initdb")) {
    const r = new Deno.Command("sh", {
      args: ["-c", 'dirname "$(command -v initdb)"'],
      stdout: "piped",
    }).outputSync();
    return new TextDecoder().decode(r.stdout).trim() || null;
  }
  return null;
}

/** The user PostgreSQL runs as when this process is root: {name, uid, gid}; null when not root. */
export function unprivilegedUser(): { name: string; uid: number; gid: number } | null {
  if (uid() !== 0) return null;
  for (const name of ["postgres", "nobody"]) {
    const u = new Deno.Command("id", { args: ["-u", name], stdout: "piped", stderr: "null" })
      .outputSync();
    const g = new Deno.Command("id", { args: ["-g", name], stdout: "piped", stderr: "null" })
      .outputSync();
    if (u.code === 0 && g.code === 0) {
      return {
        name,
        uid: Number(new TextDecoder().decode(u.stdout).trim()),
        gid: Number(new TextDecoder().decode(g.stdout).trim()),
      };
    }
  }
  return null;
}

/** Why an own cluster cannot be made here, or null when it can. */
export function pgClusterUnavailable(): string | null {
  if (Deno.build.os === "windows") return "the own PostgreSQL cluster is Unix-only";
  if (pgBinDir() === null) return "no PostgreSQL server binaries (initdb) found";
  if (uid() === 0) {
    if (!hasProgram("setpriv")) return "running as root without setpriv (util-linux)";
    if (unprivilegedUser() === null) return "running as root and no postgres or nobody user";
  }
  return null;
}

/**
 * Creates and starts a cluster. `listen`: TCP addresses (default 127.0.0.1); they must exist
 * (a partition's address: create the partition first).
 */
export async function startPgCluster(opts: { listen?: string[] } = {}): Promise<PgCluster> {
  const why = pgClusterUnavailable();
  if (why !== null) throw new Error(`cannot start an own PostgreSQL cluster: ${why}`);
  const bin = pgBinDir()!;
  const user = unprivilegedUser();
  const listen = opts.listen ?? ["127.0.0.1"];
  const dir = await Deno.makeTempDir({ prefix: "queuectl-pg-" });
  const dataDir = `${dir}/data`;
  const logFile = `${dir}/server.log`;
  if (user) await Deno.chown(dir, user.uid, user.gid);

  /** Runs a PostgreSQL program, as the unprivileged user under root. */
  const pg = (program: string, args: string[]): Promise<Ran> => {
    const env = { LC_ALL: "C", HOME: dir, PGDATA: dataDir };
    return user
      ? runProgram("setpriv", [
        `--reuid=${user.uid}`,
        `--regid=${user.gid}`,
        "--init-groups",
        "--",
        `${bin}/${program}`,
        ...args,
      ], { env, cwd: dir })
      : runProgram(`${bin}/${program}`, args, { env, cwd: dir });
  };
  const must = async (program: string, args: string[]) => {
    const r = await pg(program, args);
    if (r.code !== 0) {
      let log = "";
      try {
        log = Deno.readTextFileSync(logFile).split("\n").slice(-15).join("\n");
      } catch {
        // no log yet
      }
      throw new Error(
        `${program} ${args.join(" ")} exited ${r.code}: ${(r.stderr || r.stdout).trim()}\n${log}`,
      );
    }
    return r;
  };

  let postmaster: { pid: number; started: string } | null = null;
  const readPid = (): number | null => {
    try {
      const pid = Number(Deno.readTextFileSync(`${dataDir}/postmaster.pid`).split("\n")[0]);
      return pid > 0 ? pid : null;
    } catch {
      return null;
    }
  };
  const isUp = () => {
    if (!postmaster) return false;
    const p = processTable().find((x) => x.pid === postmaster!.pid);
    return !!p && p.started === postmaster.started && !p.stat.startsWith("Z");
  };

  let port = 0;
  const start = async () => {
    await must("pg_ctl", ["-D", dataDir, "-l", logFile, "-w", "-t", "60", "start"]);
    const pid = readPid();
    if (pid === null) throw new Error("pg_ctl start succeeded but postmaster.pid is missing");
    const info = processTable().find((p) => p.pid === pid);
    postmaster = { pid, started: info?.started ?? "" };
  };
  const killByPid = () => {
    if (!postmaster || !isUp()) return;
    const children = childrenOf(postmaster.pid);
    signal(postmaster.pid, "SIGKILL");
    for (const c of children) signal(c.pid, "SIGKILL");
  };

  try {
    await must("initdb", [
      "-D",
      dataDir,
      "-A",
      "trust",
      "-U",
      "postgres",
      "-E",
      "UTF8",
      "--locale=C",
      "--no-sync",
      "--no-instructions",
    ]);
    // Trust from the subnets of the listen addresses too (a partition's host), not only loopback.
    await Deno.writeTextFile(`${dataDir}/pg_hba.conf`, "host all all samenet trust\n", {
      append: true,
    });
    // Settings in postgresql.auto.conf, so that every restart gets them. fsync off: a stop of the
    // server is the fault under test, not a power loss of the machine.
    for (let attempt = 1;; attempt++) {
      port = freePort();
      const conf = [
        `port = ${port}`,
        `listen_addresses = '${listen.join(",")}'`,
        `unix_socket_directories = '${dir}'`,
        "fsync = off",
        "full_page_writes = off",
        "max_connections = 200",
        "log_min_messages = warning",
        "",
      ].join("\n");
      await Deno.writeTextFile(`${dataDir}/postgresql.auto.conf`, conf);
      try {
        await start();
        break;
      } catch (err) {
        // Someone took the port between freePort() and the bind: try another.
        if (attempt >= 5 || !/could not bind|address already in use/i.test(String(err))) {
          throw err;
        }
      }
    }
  } catch (err) {
    killByPid();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }

  const url = (o: { host?: string; db?: string } = {}) =>
    `postgres://postgres@${o.host ?? listen[0]}:${port}/${o.db ?? "postgres"}`;

  return {
    port,
    listen,
    dir,
    dataDir,
    url,
    pid: () => (isUp() ? postmaster!.pid : null),
    running: isUp,
    stop: async (mode) => {
      await must("pg_ctl", ["-D", dataDir, "-m", mode, "-w", "-t", "60", "stop"]);
      await waitFor(() => !isUp(), { timeoutMs: 10_000, what: "the postmaster to exit" });
    },
    start: async () => {
      if (isUp()) return;
      await start();
    },
    admin: (o = {}) =>
      postgres(url(o), { max: 1, onnotice: () => {}, connect_timeout: 5, fetch_types: false }),
    log: () => {
      try {
        return Deno.readTextFileSync(logFile);
      } catch {
        return "";
      }
    },
    [Symbol.asyncDispose]: async () => {
      if (isUp()) {
        await pg("pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "-t", "10", "stop"]);
        if (isUp()) killByPid();
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
