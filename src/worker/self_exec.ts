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
 * about 50 MiB less RSS at no measured CPU cost (BENCHMARKS.md of 3f7235b, "Worker memory"); the
 * compile task bakes the same flag into the binary.
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
 * `codeCache: false` (worker processes, which run with V8 flags of their own: see
 * {@link WORKER_V8_FLAGS}) adds `--no-code-cache`.
 */
export function selfArgv(
  self: SelfExec,
  args: readonly string[],
  opts: { codeCache?: boolean } = {},
): string[] {
  if (self.standalone) return [self.execPath, ...args];
  return [
    self.execPath,
    "run",
    ...(opts.codeCache === false ? ["--no-code-cache"] : []),
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
  /** The worker's start marker (start_marker.ts), or null. */
  startMarker?: string | null;
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
  if (spec.startMarker) args.push("--start-marker", spec.startMarker);
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
 * (BENCHMARKS.md of 3f7235b, "Worker memory"). glibc reads it once at start.
 */
export const MALLOC_TUNING: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: "65536" };

/**
 * V8 flags for worker processes only, given through DENO_V8_FLAGS (which `deno run` and a
 * compiled binary both read, before their own `--v8-flags`): no optimizing compilers (Maglev,
 * TurboFan), which keeps a busy worker's RSS ~8 MiB lower with CPU per job unchanged within the
 * noise (docs/architecture.md, "Worker processes: how jobs are spawned, and memory"). A
 * DENO_V8_FLAGS the user set is appended after these, so the user's flags win where both name the
 * same one.
 *
 * Deno's code cache (the code V8 compiled, kept between runs) is tagged with the V8 flags it was
 * compiled under; a process with other flags rejects it, compiles again and writes its own back,
 * which the next process with the other flags rejects in turn. So a worker started by `deno run`
 * neither reads nor writes it (`--no-code-cache`, {@link selfArgv}): before, each `worker start`
 * left the cache in the workers' flavour, and the next CLI call compiled everything again.
 */
export const WORKER_V8_FLAGS = "--no-opt,--no-maglev";

/** Names the variables the supervisor added or changed for a worker (it undoes only those). */
export const WORKER_TUNED_MARKER = "QUEUECTL_WORKER_TUNED";

/**
 * The variables to add to a worker's environment: {@link MALLOC_TUNING} that the user left unset
 * (Linux), DENO_V8_FLAGS with {@link WORKER_V8_FLAGS} in front of the user's, and the marker that
 * names them. The worker undoes them at once (see {@link forgetWorkerTuning}), so its jobs start
 * with the user's environment as it was.
 */
export function workerTuningEnv(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  os: typeof Deno.build.os = Deno.build.os,
): Record<string, string> {
  const added: Record<string, string> = {};
  if (os === "linux") {
    for (const [name, value] of Object.entries(MALLOC_TUNING)) {
      if (env(name) === undefined) added[name] = value;
    }
  }
  // An empty DENO_V8_FLAGS makes deno itself fail ("V8 did not recognize flag ''"): as unset.
  const user = env("DENO_V8_FLAGS");
  added.DENO_V8_FLAGS = user ? `${WORKER_V8_FLAGS},${user}` : WORKER_V8_FLAGS;
  return { ...added, [WORKER_TUNED_MARKER]: Object.keys(added).join(",") };
}

/**
 * In a worker, before its first job: undoes what its supervisor added (glibc and V8 have read it
 * already): removes the malloc variables, and gives DENO_V8_FLAGS back the user's value (or
 * removes it), so a job that runs deno does not get the worker's V8 flags.
 */
export function forgetWorkerTuning(): void {
  try {
    const added = Deno.env.get(WORKER_TUNED_MARKER);
    if (added === undefined) return;
    for (const name of added.split(",")) {
      if (name in MALLOC_TUNING) Deno.env.delete(name);
      if (name !== "DENO_V8_FLAGS") continue;
      const flags = Deno.env.get(name);
      if (flags?.startsWith(`${WORKER_V8_FLAGS},`)) {
        Deno.env.set(name, flags.slice(WORKER_V8_FLAGS.length + 1));
      } else if (flags === WORKER_V8_FLAGS) {
        Deno.env.delete(name);
      }
    }
    Deno.env.delete(WORKER_TUNED_MARKER);
  } catch {
    // no permission to the environment: nothing was added that we could see
  }
}
