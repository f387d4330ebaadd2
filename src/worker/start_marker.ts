/**
 * A supervised worker's start marker: the job it last reached the spawn of, so that its supervisor
 * can tell, once the worker died (SIGKILL, the OOM killer, a crash), whether the job the worker
 * held may have started. A job the marker does not name was never spawned: it goes back to pending
 * without counting an attempt. The job it names may have started (the worker may have died inside
 * the spawn call) and is left to the lease rescue, which counts it (a job that kills its worker
 * must still reach the DLQ). See docs/architecture.md, "Claimed, not started".
 *
 * One small file per worker process, in a private directory of its supervisor (mode 0700), written
 * in place by the worker right before each spawn call (seek and write: no new block once the first
 * record is written; no fsync: it must survive the worker's death, not the machine's) and read by
 * the supervisor only after the worker has been reaped. One line of JSON:
 * `["<worker id>", "<job id>", <attempts>, <started_at>]`, or `["<worker id>"]` before the first
 * job; a job spawned while the one before it is still being settled (a job claimed ahead, see
 * docs/architecture.md "Claimed ahead") names that one too: `[..., "<id>", <attempts>,
 * <started_at>]` once more. Whatever cannot be read as such means "unknown": the jobs are left to
 * the lease rescue, as without a marker.
 */

import type { Job } from "../core/job.ts";
import { release } from "../core/transitions.ts";
import type { Store } from "../store/store.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Room written at open, so that later records overwrite allocated blocks (a full disk). */
const RESERVED_BYTES = 1024;

/** The identity of one claim of a job: a new claim of the same job differs in one of these. */
export interface ClaimIdentity {
  id: string;
  attempts: number;
  started_at: number | null;
}

/** What a start marker says, read back (see {@link readStartMarker}). */
export interface StartMarkerRecord {
  worker: string;
  /** The job whose spawn the worker reached last; null: none yet. */
  job: ClaimIdentity | null;
  /** The job that had run before it and was not settled yet at that spawn, if any. */
  unsettled?: ClaimIdentity;
}

/** The worker's side: the open marker file. */
export class StartMarker {
  #file: Deno.FsFile | null;
  readonly #worker: string;

  private constructor(file: Deno.FsFile, worker: string) {
    this.#file = file;
    this.#worker = worker;
  }

  /**
   * Creates the marker at `path`, which must not exist yet, and records `worker` with no job yet.
   * Null when that fails: the worker runs without a marker (its jobs are then rescued by their lease, counted).
   */
  static open(path: string, worker: string): StartMarker | null {
    let file: Deno.FsFile | null = null;
    try {
      // A new file only (O_EXCL): the supervisor names a fresh one, and a mistaken or planted
      // path (an existing file, a symlink) is refused instead of overwritten.
      file = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
      const marker = new StartMarker(file, worker);
      file.writeSync(new Uint8Array(RESERVED_BYTES).fill(0x20));
      if (!marker.#put([worker])) return null;
      return marker;
    } catch {
      file?.close();
      return null;
    }
  }

  /**
   * Records that `job` is about to be spawned. Called right before the spawn call, once nothing
   * else can stop the job from starting: a death before this call leaves the previous record, and
   * the job, never spawned, is released without counting an attempt; a death after it counts the
   * attempt, even when it came inside the spawn call before the child existed (the worker cannot
   * tell). Never the other way round: a job that was spawned is never released uncounted.
   */
  record(job: ClaimIdentity, unsettled: ClaimIdentity | null = null): void {
    const also = unsettled ? [unsettled.id, unsettled.attempts, unsettled.started_at] : [];
    this.#put([this.#worker, job.id, job.attempts, job.started_at, ...also]);
  }

  /** Writes one record at the start of the file; on failure the marker says nothing any more. */
  #put(value: unknown[]): boolean {
    const file = this.#file;
    if (file === null) return false;
    try {
      const bytes = encoder.encode(JSON.stringify(value) + "\n");
      file.seekSync(0, Deno.SeekMode.Start);
      let done = 0;
      while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
      return true;
    } catch {
      // A stale record would say "not started" of a job that may run next: make it unreadable.
      try {
        file.truncateSync(0);
      } catch {
        // nothing more can be done; the supervisor reads whatever is left
      }
      this.close();
      return false;
    }
  }

  close(): void {
    try {
      this.#file?.close();
    } catch {
      // already closed
    }
    this.#file = null;
  }
}

/** Age of the marker directory after which the supervisor touches it and its markers. */
export const MARKER_TOUCH_AFTER_MS = 24 * 3600 * 1000;

/**
 * A supervisor's private directory of start markers (mode 0700, in the temporary directory), and
 * what it was when made. A directory at that path is trusted only while it is still that one: same
 * device, inode, owner and mode. Age-based cleaners of the temporary directory (systemd-tmpfiles,
 * tmpreaper) may delete it, or the markers in it, under a supervisor that runs for weeks; another
 * local user may then make a directory at the freed path and plant a marker there that would
 * release a started job uncounted. So the supervisor checks it every heartbeat ({@link look}):
 * keeps it and its markers fresh, and starts a new one when it is gone or replaced; and a marker
 * is read only from a directory that is still ours (see docs/architecture.md, "Claimed, not
 * started").
 */
export class MarkerDirectory {
  readonly path: string;
  readonly #made: Deno.FileInfo;

  private constructor(path: string, made: Deno.FileInfo) {
    this.path = path;
    this.#made = made;
  }

  /** A new directory (`$TMPDIR/queuectl-starts-*`, mode 0700); throws when it cannot be made. */
  static make(): MarkerDirectory {
    // Mode 0700: no other local user can plant a marker that would release a started job.
    const path = Deno.makeTempDirSync({ prefix: "queuectl-starts-" });
    try {
      return new MarkerDirectory(path, Deno.lstatSync(path));
    } catch (err) {
      try {
        Deno.removeSync(path);
      } catch {
        // left in the temporary directory
      }
      throw err;
    }
  }

  #now(): Deno.FileInfo | null {
    try {
      return Deno.lstatSync(this.path);
    } catch {
      return null;
    }
  }

  #same(info: Deno.FileInfo | null): boolean {
    const made = this.#made;
    return info !== null && info.isDirectory && info.dev === made.dev && info.ino === made.ino &&
      info.uid === made.uid && info.mode === made.mode;
  }

  /** True while the directory at {@link path} is the one this made. */
  isOurs(): boolean {
    return this.#same(this.#now());
  }

  /**
   * The heartbeat's check: false when the directory is gone or replaced. While it is ours and was
   * last modified more than {@link MARKER_TOUCH_AFTER_MS} ago, touches it and `markers` (the live
   * workers' marker files), so that no age-based cleaner takes them.
   */
  look(markers: readonly string[], now = Date.now()): boolean {
    const info = this.#now();
    if (!this.#same(info)) return false;
    const modified = info!.mtime?.getTime() ?? now;
    if (now - modified > MARKER_TOUCH_AFTER_MS) {
      const at = new Date(now);
      for (const path of [...markers, this.path]) {
        try {
          Deno.utimeSync(path, at, at);
        } catch {
          // not created yet (the worker is starting), or gone: nothing to keep
        }
      }
    }
    return true;
  }

  /** Removes the directory and the markers in it, if it is still ours. */
  remove(): void {
    if (!this.isOurs()) return;
    try {
      Deno.removeSync(this.path, { recursive: true });
    } catch {
      // left in the temporary directory
    }
  }
}

/**
 * Reads a marker back (the supervisor, after the worker was reaped); null when it is missing or
 * says nothing readable.
 */
export function readStartMarker(path: string): StartMarkerRecord | null {
  let text: string;
  try {
    text = decoder.decode(Deno.readFileSync(path));
  } catch {
    return null;
  }
  const end = text.indexOf("\n");
  if (end < 0) return null;
  let value: unknown;
  try {
    value = JSON.parse(text.slice(0, end));
  } catch {
    return null;
  }
  if (!Array.isArray(value) || typeof value[0] !== "string") return null;
  if (value.length === 1) return { worker: value[0], job: null };
  if (value.length !== 4 && value.length !== 7) return null;
  const job = claimAt(value, 1);
  const unsettled = value.length === 7 ? claimAt(value, 4) : null;
  if (job === null || (value.length === 7 && unsettled === null)) return null;
  return unsettled ? { worker: value[0], job, unsettled } : { worker: value[0], job };
}

/** The claim identity at `value[at..at+2]`, or null when it is not one. */
function claimAt(value: unknown[], at: number): ClaimIdentity | null {
  const [id, attempts, startedAt] = value.slice(at, at + 3);
  if (
    typeof id !== "string" || !Number.isInteger(attempts) ||
    !(startedAt === null || Number.isInteger(startedAt))
  ) return null;
  return { id, attempts: attempts as number, started_at: startedAt as number | null };
}

/** True when `job` is the very claim the marker names (so it may have started). */
export function sameClaim(marked: ClaimIdentity | null, job: ClaimIdentity): boolean {
  return marked !== null && marked.id === job.id && marked.attempts === job.attempts &&
    marked.started_at === job.started_at;
}

/**
 * After the death of the worker `record` names: each processing job still leased to it that the
 * marker does not name was never spawned, and goes back to pending without counting an attempt
 * (guarded by its lease owner: a rescue that got there first wins). The jobs the marker names are
 * left alone: they may have started (the lease rescue counts them). Returns the jobs released.
 */
export async function releaseUnstarted(
  store: Store,
  now: number,
  record: StartMarkerRecord,
): Promise<Job[]> {
  const released: Job[] = [];
  for (const job of await store.listLeased({ worker: record.worker })) {
    if (sameClaim(record.job, job) || sameClaim(record.unsettled ?? null, job)) continue;
    if (await store.applyChange({ change: release(job, now, record.worker, null) })) {
      released.push(job);
    }
  }
  return released;
}
