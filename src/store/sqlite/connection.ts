/**
 * One connection to a queuectl SQLite database: opening (pragmas, schema migrations), the
 * statement cache, and the transaction discipline every write of the Store goes through.
 *
 * - WAL journal: readers (status, list, the dashboard) never block the writer and vice versa.
 * - synchronous=NORMAL: in WAL mode a commit is durable against a process crash; a power loss
 *   may lose the last commits but never corrupts the database.
 * - busy_timeout: concurrent writers (many worker processes) wait for the lock instead of
 *   failing with "database is locked".
 * - Workers' claims and settles ({@link SqliteConnection.hotWrite}) also take a lock file beside
 *   the database (see {@link HotLock}): they queue for each other in the kernel rather than retry.
 * - Per-state job counters: a transaction sums its changes ({@link SqliteConnection.count}) and
 *   writes each counter once before it commits.
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { QueueError, StorageError } from "../../core/errors.ts";
import type { JobState } from "../../core/job.ts";
import { isFull, isLocked, storageError } from "./errors.ts";
import { diagnose, ensureFile, readOnlyFallback, writeFailure } from "./file.ts";
import { HotLock } from "./hot_lock.ts";
import { MIGRATIONS } from "./migrations.ts";

const BUSY_TIMEOUT_MS = 10_000;
/**
 * Workers' claim and settle transactions (after the lock file, see {@link HotLock}) first try to
 * take the write lock without waiting, and while another process holds it (for a fraction of a
 * millisecond: one claim or settle) try again on the next turn of the event loop, for up to this
 * long; then they wait in SQLite's busy handler like any other write. That handler sleeps 1 ms,
 * then 2, 5... at its first retry: with two busy workers about one transaction in ten met the
 * other's lock and slept 1-3 ms, for a lock held ~0.1 ms.
 */
const LOCK_RETRY_MS = 3;
/** The longest sleep between two tries of a write that met another writer's lock. */
const MAX_LOCK_SLEEP_MS = 32;
/** The automatic checkpoint's threshold (pages) once a write met a full disk (default 1000). */
const SMALL_WAL_PAGES = 100;
/**
 * Workers' connections checkpoint the WAL themselves (see {@link SqliteConnection.hotWrite}):
 * a passive checkpoint after this many of their own claim/settle commits (~12 pages each; with
 * two busy workers about SQLite's default of 1000 pages between checkpoints).
 */
export const HOT_CHECKPOINT_COMMITS = 40;
/**
 * A WAL longer than this (pages) after a passive checkpoint did not restart (other workers kept
 * writing while it ran): the next checkpoint is taken under the lock file, so that it completes
 * and the next write starts the WAL over. Bounds the WAL at a few times this.
 */
export const HOT_WAL_RESET_PAGES = 1500;
/**
 * SQLite's automatic checkpoint stays on for workers' connections as a backstop, at this many
 * pages (16 MiB) instead of 1000: with many workers, each far from its own
 * {@link HOT_CHECKPOINT_COMMITS}, the WAL still stops growing here.
 */
export const HOT_WAL_MAX_PAGES = 4000;
/** "QCTL": marks the file as a queuectl database. */
const APPLICATION_ID = 0x5143544c;

type Row = Record<string, SQLInputValue>;

/** A file's device and inode: which file a path names. */
interface FileIdentity {
  dev: number;
  ino: number;
}

/** The identity of the file at `path`; null when there is none (or no inodes, as on Windows). */
function fileIdentity(path: string): FileIdentity | null {
  try {
    return identityOf(Deno.statSync(path));
  } catch {
    return null;
  }
}

function identityOf(st: Deno.FileInfo): FileIdentity | null {
  return st.ino === null ? null : { dev: st.dev, ino: st.ino };
}

/** The value of the first column of the first row of `sql`. */
function firstValue(db: DatabaseSync, sql: string): unknown {
  const row = db.prepare(sql).get() as Row | undefined;
  return row ? Object.values(row)[0] : undefined;
}

/**
 * Rolls back the transaction of `db` if one is open: also after a failed COMMIT (disk full, I/O
 * error), since a transaction left open would keep its snapshot, and no checkpoint could ever
 * complete past it.
 */
function rollback(db: DatabaseSync): void {
  try {
    if (db.isTransaction) db.exec("ROLLBACK");
  } catch {
    // SQLite rolled it back itself
  }
}

/** Deletes a private read-only snapshot's directory (see file.ts readOnlyFallback). */
function removeSnapshot(dir: string): void {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch {
    // already gone
  }
}

/** A database just opened, with what {@link SqliteConnection} keeps of it. */
interface OpenedDatabase {
  db: DatabaseSync;
  identity: FileIdentity | null;
  journals: { file: string; id: FileIdentity | null }[];
  snapshotDir: string | null;
}

/**
 * Opens the database at `path` for {@link SqliteConnection} (created when missing, migrated when
 * behind; read-only when this user may not write it). A top-level function rather than the
 * constructor's body: the build compiles top-level functions with their chunk, kept in the code
 * cache, where a method is compiled again on every run (docs/architecture.md, start-up).
 */
function openDatabase(path: string, options: SqliteOptions): OpenedDatabase {
  // What was at the path before SQLite opened it (see identity below).
  let found: Deno.FileInfo | null = null;
  let db: DatabaseSync;
  try {
    if (path !== ":memory:" && options.create !== false) found = ensureFile(path);
    db = new DatabaseSync(path);
  } catch (err) {
    throw err instanceof StorageError
      ? err
      : diagnose(path, err, "open") ?? storageError(path, err);
  }
  try {
    db.exec(
      `PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; ` +
        "PRAGMA synchronous = NORMAL;",
    );
    migrate(db, path);
    // The file ensureFile saw, when there was one (one stat(2) fewer per open): a file replaced
    // between that stat and the open is then reported as replaced by the first call, where a stat
    // taken after the open would have missed it.
    const identity = found !== null ? identityOf(found) : fileIdentity(path);
    const journals = identity === null ? [] : [`${path}-wal`, `${path}-shm`].map((file) => ({
      file,
      id: fileIdentity(file),
    }));
    return { db, identity, journals, snapshotDir: null };
  } catch (err) {
    db.close();
    if (err instanceof StorageError) throw err;
    // Not writable by this user: read-only, so that status, list, show... still work.
    const fallback = readOnlyFallback(path, err);
    if (!fallback) throw diagnose(path, err, "open") ?? storageError(path, err);
    let readOnly: DatabaseSync | undefined;
    try {
      readOnly = new DatabaseSync(fallback.path, { readOnly: true });
      readOnly.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      const version = firstValue(readOnly, "PRAGMA user_version") as number;
      if (version !== MIGRATIONS.length) {
        throw writeFailure(path) ?? storageError(path, err);
      }
      return { db: readOnly, identity: null, journals: [], snapshotDir: fallback.snapshotDir };
    } catch (e) {
      try {
        if (readOnly?.isOpen) readOnly.close();
      } catch {
        // closing twice is harmless
      }
      if (fallback.snapshotDir !== null) removeSnapshot(fallback.snapshotDir);
      throw e instanceof StorageError ? e : diagnose(path, e, "open") ?? storageError(path, e);
    }
  }
}

/** Brings the schema of `db` (at `location`) to {@link MIGRATIONS}' version. */
function migrate(db: DatabaseSync, location: string): void {
  const version = firstValue(db, "PRAGMA user_version") as number;
  if (version === MIGRATIONS.length) return;
  if (version > MIGRATIONS.length) {
    throw new StorageError(
      `The database ${location} has schema version ${version}, newer than this queuectl (${MIGRATIONS.length})`,
      { hint: "upgrade queuectl to use this database" },
    );
  }
  const appId = firstValue(db, "PRAGMA application_id") as number;
  if (version === 0 && appId !== 0 && appId !== APPLICATION_ID) {
    throw new StorageError(`${location} belongs to another application`, {
      hint: "choose another path with --db",
    });
  }
  if (version === 0 && appId === 0) {
    const tables = firstValue(db, "SELECT count(*) FROM sqlite_schema") as number;
    if (tables > 0) {
      throw new StorageError(`${location} is an SQLite database of another application`, {
        hint: "choose another path with --db",
      });
    }
  }
  // BEGIN IMMEDIATE takes the write lock up front (waiting in the busy handler, as any write of
  // the CLI does); the connection's own transaction() adds nothing before it is in use.
  db.exec("BEGIN IMMEDIATE");
  try {
    // Re-read inside the write lock: another process may have migrated meanwhile.
    const current = firstValue(db, "PRAGMA user_version") as number;
    // Prepared after the first migration ran (on a new database it creates the table).
    let record: StatementSync | undefined;
    for (let v = current + 1; v <= MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v - 1]);
      record ??= db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)");
      record.run(v, Date.now());
      db.exec(`PRAGMA user_version = ${v}`);
    }
    db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    db.exec("COMMIT");
  } catch (err) {
    rollback(db);
    throw err;
  }
}

export interface SqliteOptions {
  /** Create the database file if missing (default true). */
  create?: boolean;
}

/** Opened with the path's database created (mode 0600) when missing, and migrated. */
export class SqliteConnection {
  readonly location: string;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  #hotLock: HotLock | undefined;
  /**
   * busy_timeout is 0 (set once this connection took the lock file: a worker's): every call tries
   * the database's lock without waiting and waits for it with timers, not in SQLite's busy
   * handler (see {@link run}).
   */
  #failFast = false;
  /** Hot commits since this connection's last checkpoint (see {@link HOT_CHECKPOINT_COMMITS}). */
  #hotCommits = 0;
  /** The last passive checkpoint left a long WAL: take the next one under the lock file. */
  #checkpointLocked = false;
  /** A passive checkpoint is scheduled (see {@link #scheduleCheckpoint}). */
  #checkpointTimer: ReturnType<typeof setTimeout> | undefined;
  /** Counter changes of the open write transaction (see {@link count}). */
  readonly #counts = new Map<string, number>();
  /** The opened file's identity (null: not a file, or no inodes here); see {@link #checkFile}. */
  #identity: FileIdentity | null = null;
  /** The -wal and -shm files this connection uses, as they were once it was open. */
  #journals: { file: string; id: FileIdentity | null }[] = [];
  /** Set once the file at the path is not the one this connection opened. */
  #gone: StorageError | null = null;
  /**
   * #checkFile found the file in place during this synchronous run of code (cleared by a
   * microtask): the calls a command starts together (`status`: four of them) share one stat(2).
   */
  #checkedNow = false;

  /** A private snapshot read instead of a database this user may not write (see file.ts). */
  #snapshotDir: string | null = null;

  constructor(path: string, options: SqliteOptions) {
    this.location = path;
    const opened = openDatabase(path, options);
    this.#db = opened.db;
    this.#identity = opened.identity;
    this.#journals = opened.journals;
    this.#snapshotDir = opened.snapshotDir;
  }

  /** The prepared statement of `sql`, kept for the connection's life. */
  stmt(sql: string): StatementSync {
    let s = this.#statements.get(sql);
    if (!s) {
      s = this.#db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }

  /** The first column of the first row of `sql`, or undefined when there is no row. */
  value(sql: string, ...params: SQLInputValue[]): unknown {
    const row = this.stmt(sql).get(...params) as Row | undefined;
    return row ? Object.values(row)[0] : undefined;
  }

  /** Runs `fn` in a write transaction (BEGIN IMMEDIATE takes the lock up front). */
  transaction<T>(fn: () => T): T {
    this.stmt("BEGIN IMMEDIATE").run();
    try {
      const result = fn();
      this.#writeCounts();
      this.stmt("COMMIT").run();
      if (this.#afterFull) this.#checkpoint(200);
      return result;
    } catch (err) {
      this.#counts.clear();
      rollback(this.#db);
      this.#afterFailure(err);
      throw err;
    }
  }

  /** A write failed for want of space, and no checkpoint has completed since. */
  #afterFull = false;
  /** When the last checkpoint attempt after a full disk was (performance.now()). */
  #checkpointedAt = -Infinity;

  /**
   * After a write failed for want of space: give the WAL's space back as soon as a checkpoint can
   * complete (see {@link #checkpoint}).
   */
  #afterFailure(err: unknown): void {
    if (!isFull(err)) return;
    if (!this.#afterFull) {
      try {
        // From now on keep the WAL small (checkpoint at ~400 KB instead of ~4 MB): a disk that
        // was full once is tight, and a WAL that fills it cannot be checkpointed (the database
        // file cannot grow), so every write would fail until someone frees space again.
        this.#db.exec(`PRAGMA wal_autocheckpoint = ${SMALL_WAL_PAGES}`);
      } catch {
        // closed meanwhile
      }
    }
    this.#afterFull = true;
    this.#checkpoint(1000);
  }

  /**
   * Tries a checkpoint that copies the whole WAL into the database file and truncates it, without
   * waiting (busy_timeout 0: a reader or writer in the way makes it partial), at most once per
   * `everyMs`; done once one completed. Why: the WAL only stops growing once a checkpoint has
   * copied all of it, and the automatic checkpoint starts only once the WAL holds ~4 MB (1000
   * pages). On a small disk that never comes: when space was freed after a full disk, the WAL
   * (which grew until the disk was full) took it all again within seconds, and then the database
   * file could not grow for the checkpoint either (issue 12, fault 5). So after a full disk, every
   * successful commit tries, the first one right after space came back.
   */
  #checkpoint(everyMs: number): void {
    const now = performance.now();
    if (now - this.#checkpointedAt < everyMs) return;
    this.#checkpointedAt = now;
    try {
      if (!this.#failFast) this.#db.exec("PRAGMA busy_timeout = 0");
      const r = this.#db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get() as
        | { busy: number }
        | undefined;
      if (r?.busy === 0) this.#afterFull = false;
    } catch {
      // still full: the next failure or commit tries again
    } finally {
      try {
        if (!this.#failFast) this.#db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      } catch {
        // closed meanwhile
      }
    }
  }

  /**
   * A write transaction whose body awaits (a bulk enqueue reading its input): BEGIN IMMEDIATE
   * takes the write lock up front, waiting for it as {@link run} does, and keeps it until `fn`
   * settles.
   * Any error of `fn` rolls back everything and passes through as it is (the caller maps driver
   * errors); errors of BEGIN and COMMIT become StorageError.
   */
  async transactionAsync<T>(fn: () => Promise<T>): Promise<T> {
    // run(): the wait for the lock every other call of this connection has.
    await this.run(() => this.stmt("BEGIN IMMEDIATE").run());
    let result: T;
    try {
      result = await fn();
    } catch (err) {
      this.#counts.clear();
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw err;
    }
    try {
      this.#writeCounts();
      this.stmt("COMMIT").run();
      return result;
    } catch (err) {
      this.#counts.clear();
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw this.#mapError(err);
    }
  }

  /**
   * A write transaction of the workers' hot path: see {@link LOCK_RETRY_MS}. `fn` may run more
   * than once (each failed attempt is rolled back), so it must have no effect outside the
   * database. `serialized`: first take the lock file (see {@link HotLock}), as workers' claims and
   * settles do, so that they wait for each other in the kernel instead of retrying.
   *
   * Never waits in SQLite's busy handler (it sleeps on the event loop's thread: no heartbeat, no
   * timer, no signal handled meanwhile): after the first {@link LOCK_RETRY_MS} of tries on each
   * turn of the event loop, it tries again after growing sleeps, for up to
   * {@link BUSY_TIMEOUT_MS} in all, then fails with a transient "locked" error.
   */
  async hotWrite<T>(fn: () => T, serialized = false): Promise<T> {
    this.#checkFile();
    if (serialized) {
      const done = await this.#lockedWrite(fn);
      if (done) return done.value;
    }
    const started = performance.now();
    let delay = 1;
    for (;;) {
      const done = this.#tryWrite(fn);
      if (done) return done.value;
      const waited = performance.now() - started;
      if (waited >= BUSY_TIMEOUT_MS) throw this.#mapError(new Error("database is locked"));
      if (waited < LOCK_RETRY_MS) await new Promise((next) => setImmediate(next));
      else {
        await new Promise((next) => setTimeout(next, delay));
        delay = Math.min(delay * 2, MAX_LOCK_SLEEP_MS);
      }
    }
  }

  /** One attempt at the write transaction without waiting; undefined if the lock was held. */
  #tryWrite<T>(fn: () => T): { value: T } | undefined {
    const failFast = this.#failFast;
    if (!failFast) this.stmt("PRAGMA busy_timeout = 0").get();
    try {
      return { value: this.transaction(fn) };
    } catch (err) {
      if (!isLocked(err)) throw this.#mapError(err);
      return undefined;
    } finally {
      // Before any await: other calls (a heartbeat) may run meanwhile and must wait as usual
      // (on a #failFast connection, they set the wait themselves).
      if (!failFast) this.stmt(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`).get();
    }
  }

  /**
   * #tryWrite under the lock file, held only for that synchronous attempt (never across an await:
   * another store of this process may want it). Undefined when there is no lock file, its holder
   * looks frozen (see {@link HotLock}), or the database's lock was held by a writer that does not
   * take it (CLI, dashboard, a heartbeat): the caller then retries like those writers do.
   *
   * A connection that takes the lock file does little else than these writes, so from then on
   * it keeps busy_timeout at 0 (see #failFast) instead of setting it around each of them.
   */
  async #lockedWrite<T>(fn: () => T): Promise<{ value: T } | undefined> {
    let lock = this.#hotLock;
    if (lock === undefined) {
      lock = this.#hotLock = HotLock.open(this.location);
      if (lock.usable) {
        this.stmt("PRAGMA busy_timeout = 0").get();
        this.#failFast = true;
        // Checkpoints are this connection's own, outside the commit (see #afterHotCommit).
        if (!this.#afterFull) this.#db.exec(`PRAGMA wal_autocheckpoint = ${HOT_WAL_MAX_PAGES}`);
      }
    }
    if (!(await lock.acquire())) return undefined;
    let done: { value: T } | undefined;
    try {
      done = this.#tryWrite(fn);
      if (done) this.#afterHotCommit(true);
      return done;
    } finally {
      lock.release();
    }
  }

  /**
   * Workers' checkpoints (their connections keep SQLite's automatic checkpoint only as a backstop,
   * at {@link HOT_WAL_MAX_PAGES}). The automatic
   * one runs inside the COMMIT that crosses 1000 pages, while the worker holds the lock file: the
   * other workers waited for its whole copy (10-20 ms every ~80 jobs) with nothing to do. Instead,
   * every {@link HOT_CHECKPOINT_COMMITS} commits, a passive checkpoint runs once this turn of the
   * event loop is over (a worker has spawned its next job by then), without the lock file, while
   * the other workers go on writing. Frames they append meanwhile keep the WAL from restarting;
   * when it is longer than {@link HOT_WAL_RESET_PAGES} afterwards, the next checkpoint is taken
   * under the lock file, right after a commit (`locked`), where it completes: it has only the
   * frames since the last one to copy, and the next write starts the WAL over. After a full disk
   * the connection is back on SQLite's automatic checkpoint (see #afterFailure).
   */
  #afterHotCommit(locked: boolean): void {
    if (this.#afterFull || !this.#failFast) return;
    if (++this.#hotCommits < HOT_CHECKPOINT_COMMITS) return;
    // Also when the scheduled one never got its turn (a caller that never yields to timers).
    if (locked && (this.#checkpointLocked || this.#hotCommits >= 2 * HOT_CHECKPOINT_COMMITS)) {
      this.#hotCommits = 0;
      this.#checkpointLocked = false;
      this.#passiveCheckpoint();
      return;
    }
    if (this.#checkpointTimer !== undefined) return;
    this.#checkpointTimer = setTimeout(() => {
      this.#checkpointTimer = undefined;
      if (!this.#db.isOpen || this.#afterFull) return;
      this.#hotCommits = 0;
      const log = this.#passiveCheckpoint();
      if (log !== null && log > HOT_WAL_RESET_PAGES) this.#checkpointLocked = true;
    }, 0);
  }

  /** PRAGMA wal_checkpoint(PASSIVE): never waits; the WAL's length in pages, null on failure. */
  #passiveCheckpoint(): number | null {
    try {
      const r = this.stmt("PRAGMA wal_checkpoint(PASSIVE)").get() as { log: number } | undefined;
      return r?.log ?? null;
    } catch {
      return null; // the next one tries again
    }
  }

  /**
   * Throws, from now on, once the file at the path is not the one this connection opened
   * (deleted, or replaced: a backup restored with `mv`, another database copied over it). Work
   * done on the old file would be seen by nobody, and would vanish with it (issue 12, fault 6):
   * workers stop instead (a `gone` StorageError, see core/errors.ts). One stat(2) per call, or
   * per batch of calls started in the same synchronous run of code (no await between them: the
   * file is looked at once, right before the first of them runs).
   *
   * The old file's -wal and -shm are left at the path when it was replaced; opened with the new
   * file, SQLite would replay the old WAL into it and corrupt it. So they are deleted here when
   * they are still the very files this connection uses (same device and inode).
   */
  #checkFile(): void {
    if (this.#gone !== null) throw this.#gone;
    const opened = this.#identity;
    if (opened === null || this.#checkedNow) return;
    const now = fileIdentity(this.location);
    if (now !== null && now.dev === opened.dev && now.ino === opened.ino) {
      this.#checkedNow = true;
      queueMicrotask(() => this.#checkedNow = false);
      return;
    }
    const what = now === null
      ? "was deleted (there is no file at that path now)"
      : "was replaced by another file";
    this.#gone = new StorageError(
      `The database ${this.location} ${what} while this process was using it; stopping, so ` +
        "that no job runs on a file nobody else sees",
      { hint: "start the workers again to use the file now at that path", gone: true },
    );
    for (const { file, id } of this.#journals) {
      const there = fileIdentity(file);
      if (id === null || there === null || there.dev !== id.dev || there.ino !== id.ino) continue;
      try {
        Deno.removeSync(file);
      } catch {
        // gone meanwhile, or not ours to remove
      }
    }
    throw this.#gone;
  }

  #mapError(err: unknown): Error {
    if (err instanceof QueueError) return err;
    return storageError(this.location, err);
  }

  /**
   * Maps driver errors to StorageError; QueueErrors pass through. `fn` runs at once (before this
   * returns). On a #failFast connection (a worker's) a lock held by another writer is waited for
   * as in {@link hotWrite}, never in SQLite's busy handler, so `fn` may run more than once: each
   * attempt that met the lock changed nothing (a statement outside a transaction either ran or
   * not; a transaction is rolled back), and callers pass single statements, transactions, or
   * repeatable updates. Elsewhere (CLI, dashboard, supervisor) `fn` waits in the busy handler.
   */
  run<T>(fn: () => T): Promise<T> {
    try {
      this.#checkFile();
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#failFast) return this.#runWaitingAsync(fn);
    try {
      return Promise.resolve(fn());
    } catch (err) {
      this.#afterFailure(err);
      return Promise.reject(this.#mapError(err));
    }
  }

  async #runWaitingAsync<T>(fn: () => T): Promise<T> {
    const started = performance.now();
    let delay = 1;
    for (;;) {
      try {
        return fn();
      } catch (err) {
        if (!isLocked(err) || performance.now() - started >= BUSY_TIMEOUT_MS) {
          this.#afterFailure(err);
          throw this.#mapError(err);
        }
      }
      await new Promise((next) => setTimeout(next, delay));
      delay = Math.min(delay * 2, MAX_LOCK_SLEEP_MS);
    }
  }

  /**
   * Adjusts the counter of `queue` and `state` (table job_counts, docs/architecture.md "Reads at
   * a million jobs"); callers are inside the write transaction, which writes the sum of its
   * changes to each counter once, before it commits (a settle and the claim that follows it move
   * one job out of processing and one in: no write for that counter at all).
   */
  count(queue: string, state: JobState, delta: number): void {
    const key = `${queue}\0${state}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + delta);
  }

  #writeCounts(): void {
    if (this.#counts.size === 0) return;
    const update = this.stmt(
      "INSERT INTO job_counts (queue, state, n) VALUES (?, ?, ?) " +
        "ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n",
    );
    for (const [key, delta] of this.#counts) {
      if (delta === 0) continue;
      const cut = key.lastIndexOf("\0");
      update.run(key.slice(0, cut), key.slice(cut + 1), delta);
    }
    this.#counts.clear();
  }

  /** An uncached statement, for SQL that varies with its input (e.g. the number of ids). */
  prepare(sql: string): StatementSync {
    return this.#db.prepare(sql);
  }

  close(): void {
    // Only when one was set: the first call of clearTimeout in a process loads Deno's timers
    // (~20M instructions, +20% on a `status` call that never set a timer).
    if (this.#checkpointTimer !== undefined) clearTimeout(this.#checkpointTimer);
    this.#hotLock?.close();
    try {
      if (this.#db?.isOpen) this.#db.close();
    } catch {
      // closing twice is harmless
    }
    if (this.#snapshotDir !== null) {
      removeSnapshot(this.#snapshotDir);
      this.#snapshotDir = null;
    }
  }
}
