/**
 * How this program starts itself again as a subprocess: `worker start` spawns `worker run` per
 * worker, `worker start --detach` a background `worker start`. Under `deno run` that is deno with
 * the permissions of deno.json's `queuectl` task; in a compiled binary, the binary itself.
 */
import denoJson from "../../deno.json" with { type: "json" };
import { defaultDbPath, isPostgresUrl } from "../store/location.ts";

/** What is needed to start this program again as a subprocess. */
export interface SelfExec {
  /** True in a `deno compile`d binary: the executable is the program. */
  standalone: boolean;
  /** Deno.execPath(): the deno binary, or the compiled program. */
  execPath: string;
  /** The entry module (src/main.ts) as a URL, for `deno run`. */
  mainModule: string;
  /** deno.json to pass with --config (import map, lock file), when it is a local file. */
  configPath: string | null;
  /** The explicit permission flags of deno.json's `queuectl` task. */
  permissionFlags: readonly string[];
}

/**
 * The `--allow-*` / `--deny-*` flags of a deno task command line, and its `--v8-flags=`: the
 * queuectl task's `--max-semi-space-size=2` (MiB) keeps a busy worker's young generation small,
 * about 50 MiB less RSS at no measured CPU cost (BENCHMARKS.md, "Worker memory"); the compile task
 * bakes the same flag into the binary.
 */
export function permissionFlagsFromTask(task: string): string[] {
  return task.split(/\s+/).filter((t) =>
    /^--(allow|deny)-[a-z-]+(=.*)?$/.test(t) || /^--v8-flags=\S+$/.test(t)
  );
}

/** How this process itself runs. */
export function currentSelfExec(): SelfExec {
  // From source this module is src/worker/self_exec.ts: the entry is src/main.ts and deno.json
  // (import map, lock file) is two levels up. From the bundle (`deno task build`) every module is
  // a chunk beside the entry, the main module, and needs no deno.json (dependencies are inlined).
  const fromSource = import.meta.url.endsWith("/src/worker/self_exec.ts");
  const main = fromSource ? new URL("../main.ts", import.meta.url) : new URL(Deno.mainModule);
  const config = fromSource ? new URL("../../deno.json", import.meta.url) : null;
  return {
    standalone: Deno.build.standalone,
    execPath: Deno.execPath(),
    mainModule: main.href,
    // A file URL's pathname is "/C:/..." on Windows: drop that first slash to get a usable path.
    configPath: config?.protocol === "file:"
      ? decodeURIComponent(config.pathname).replace(/^\/([A-Za-z]:)/, "$1")
      : null,
    permissionFlags: permissionFlagsFromTask(denoJson.tasks.queuectl),
  };
}

/**
 * The argv that runs this program with `args`: `[deno, "run", <permissions>, --config <deno.json>,
 * <src/main.ts>, ...args]` under `deno run`, `[<binary>, ...args]` in a compiled binary.
 */
export function selfArgv(self: SelfExec, args: readonly string[]): string[] {
  if (self.standalone) return [self.execPath, ...args];
  return [
    self.execPath,
    "run",
    ...self.permissionFlags,
    ...(self.configPath ? ["--config", self.configPath] : []),
    self.mainModule,
    ...args,
  ];
}

export interface WorkerRunSpec {
  dbUrl: string;
  supervisorId: string;
  index: number;
  queues: readonly string[] | null;
  logFile: string | null;
}

/**
 * How a child process gets the database: `--db <url>`, or QUEUECTL_DB in its environment when
 * the URL holds a password (argv is visible to every user in `ps`).
 */
export function dbArgs(dbUrl: string): { args: string[]; env: Record<string, string> } {
  const secret = isPostgresUrl(dbUrl) && /^[a-z]+:\/\/[^/@]*:[^/@]*@/i.test(dbUrl);
  return secret ? { args: [], env: { QUEUECTL_DB: dbUrl } } : { args: ["--db", dbUrl], env: {} };
}

/** Arguments of the hidden `worker run` command, and the environment to add. */
export function workerRunArgs(
  spec: WorkerRunSpec,
): { args: string[]; env: Record<string, string> } {
  const db = dbArgs(spec.dbUrl);
  const args = [
    "worker",
    "run",
    ...db.args,
    "--supervisor",
    spec.supervisorId,
    "--index",
    String(spec.index),
  ];
  for (const q of spec.queues ?? []) args.push("--queue", q);
  if (spec.logFile) args.push("--log", spec.logFile);
  return { args, env: db.env };
}

/** Where `worker start --detach` writes the log: beside the database file, or in the data dir. */
export function defaultLogFile(
  dbUrl: string,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): string {
  if (isPostgresUrl(dbUrl)) {
    return defaultDbPath(env).replace(/[\\/][^\\/]*$/, "") +
      (Deno.build.os === "windows" ? "\\" : "/") + "queuectl-worker.log";
  }
  return `${dbUrl.replace(/^sqlite:(\/\/)?/i, "")}-worker.log`;
}

/**
 * glibc's malloc tuning a worker process is started with (Linux), unless the user set it: a fixed
 * mmap threshold of 64 KiB. Without it glibc raises the threshold each time a large block is
 * freed, and a worker that spawns jobs all day keeps ~15 MiB more RSS in fragmented heap
 * (BENCHMARKS.md, "Worker memory"). glibc reads it once at start; the worker removes it (and the
 * marker) from its environment at once (see {@link forgetMallocTuning}), so its jobs start with
 * the user's environment as it was.
 */
export const MALLOC_TUNING: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: "65536" };
/** Names the variables the supervisor added for a worker (so the worker removes only those). */
export const MALLOC_TUNED_MARKER = "QUEUECTL_MALLOC_TUNED";

/** The variables to add to a worker's environment: {@link MALLOC_TUNING} that the user left unset. */
export function mallocTuningEnv(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  os: typeof Deno.build.os = Deno.build.os,
): Record<string, string> {
  if (os !== "linux") return {};
  const added = Object.entries(MALLOC_TUNING).filter(([name]) => env(name) === undefined);
  if (added.length === 0) return {};
  return {
    ...Object.fromEntries(added),
    [MALLOC_TUNED_MARKER]: added.map(([name]) => name).join(","),
  };
}

/** In a worker: removes the variables its supervisor added (glibc has read them already). */
export function forgetMallocTuning(): void {
  try {
    const added = Deno.env.get(MALLOC_TUNED_MARKER);
    if (added === undefined) return;
    for (const name of added.split(",")) {
      if (name in MALLOC_TUNING) Deno.env.delete(name);
    }
    Deno.env.delete(MALLOC_TUNED_MARKER);
  } catch {
    // no permission to the environment: nothing was added that we could see
  }
}
