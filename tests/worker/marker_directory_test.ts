/**
 * The supervisor's start-marker directory under a supervisor that runs for weeks: an age-based
 * cleaner of the temporary directory (systemd-tmpfiles, tmpreaper) may delete it, and another local
 * user may then make a directory at the freed path and plant a marker in it. Deleted: the next
 * worker started gets a new directory, so releases of claims never started go on. Replaced: what is
 * at the path is not read, so a planted marker cannot release a started job uncounted
 * (docs/architecture.md, "Claimed, not started"). SQLite only: the directory is the supervisor's,
 * whatever the backend (tests/worker/unstarted_release_test.ts runs the release on both).
 *
 * The planted-marker test needs root (to become nobody with setpriv); CI runs as root. Skipped
 * elsewhere only as tests/helpers/services.ts allows.
 */
import assert from "node:assert/strict";
import type { Store } from "../../src/store/store.ts";
import { openStore } from "../../src/store/mod.ts";
import { startCli } from "../helpers/cli_process.ts";
import { otherUser, runAs } from "../helpers/other_user.ts";
import { runCli } from "../helpers/run_cli.ts";
import { skipAllowedBecause } from "../helpers/services.ts";
import { exists, type TempDir, tempDir } from "../helpers/temp.ts";
import { argvOf } from "../helpers/faults/procs.ts";
import { waitFor } from "../helpers/wait_for.ts";

const UNIX = Deno.build.os !== "windows";

/** A temporary directory for the supervisor, shared like /tmp (sticky, everyone may write). */
async function sharedTmp(dir: TempDir): Promise<string> {
  await Deno.chmod(dir.path, 0o755);
  const tmp = dir.file("tmp");
  await Deno.mkdir(tmp);
  await Deno.chmod(tmp, 0o1777);
  return tmp;
}

/** The `--start-marker` path the worker with `pid` was started with. */
function markerOf(pid: number): string {
  const cmdline = argvOf(pid);
  const at = cmdline.indexOf("--start-marker");
  assert.ok(at > 0, "the worker is given a start marker");
  return cmdline[at + 1];
}

const dirOf = (path: string) => path.replace(/\/[^/]*$/, "");

async function setUp(db: string, log: string, tmp: string) {
  for (const [k, v] of [["lease", "60"], ["max_retries", "0"]]) {
    const r = await runCli(["config", "set", k, v], { db });
    assert.equal(r.code, 0, r.stderr);
  }
  const sup = startCli(["worker", "start", "--count", "1", "--queue", "a", "--log", log], {
    db,
    env: { TMPDIR: tmp },
  });
  const store: Store = await openStore(db);
  /** The record of a live worker other than `not` (a dead worker's record stays until pruned). */
  const worker = (not = "") =>
    waitFor(
      async () => (await store.listWorkers()).find((w) => w.supervisor_id !== null && w.id !== not),
      { what: "a worker record" },
    );
  const job = async (id: string) => {
    const j = await store.getJob({ id });
    return j && { state: j.state, attempts: j.attempts, lease_owner: j.lease_owner };
  };
  return { sup, store, worker, job, logText: () => Deno.readTextFileSync(log) };
}

const lostLine = (dir: string) =>
  `start markers: ${dir} is gone or is no longer this supervisor's directory`;

Deno.test({
  name: "start markers: a marker directory deleted under the supervisor is made anew for the " +
    "next worker, and claims never started are still released uncounted",
  ignore: !UNIX,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const t = await setUp(db, dir.file("w.log"), await sharedTmp(dir));
    await using _sup = t.sup;
    try {
      const first = await t.worker();
      const oldDir = dirOf(markerOf(first.pid));
      // The cleaner of the temporary directory; then the worker dies and is restarted.
      Deno.removeSync(oldDir, { recursive: true });
      Deno.kill(first.pid, "SIGKILL");
      const second = await t.worker(first.id);
      const marker = markerOf(second.pid);
      const newDir = dirOf(marker);
      assert.notEqual(newDir, oldDir);
      assert.equal(Deno.statSync(newDir).mode! & 0o777, 0o700, "a private directory again");
      await waitFor(() => exists(marker), { what: "the new worker's marker" });

      // The release works in the new directory: a claim in the worker's name, never spawned.
      const enq = await runCli(
        ["enqueue", JSON.stringify({ id: "x", command: "true", queue: "b" })],
        { db },
      );
      assert.equal(enq.code, 0, enq.stderr);
      const claimed = await t.store.claimJobs({
        workerId: second.id,
        queues: ["b"],
        now: Date.now(),
        leaseMs: 60_000,
        limit: 1,
      });
      assert.deepEqual(claimed.map((j) => j.id), ["x"]);
      Deno.kill(second.pid, "SIGKILL");
      await waitFor(async () => (await t.job("x"))?.state === "pending", {
        what: "x back to pending",
      });
      assert.deepEqual(await t.job("x"), { state: "pending", attempts: 0, lease_owner: null });
      t.sup.kill("SIGTERM");
      assert.equal((await t.sup.status).code, 0, t.sup.stdout() + t.sup.stderr());
      assert.equal(exists(newDir), false, "the new directory removed at exit");
      assert.ok(t.logText().includes(lostLine(oldDir)), t.logText());
    } finally {
      await t.store.close();
    }
  },
});

Deno.test({
  name: "start markers: a temporary directory that cannot be used is said once, and tried " +
    "again at the next worker's start",
  ignore: !UNIX,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const tmp = dir.file("not-yet");
    const t = await setUp(db, dir.file("w.log"), tmp);
    await using _sup = t.sup;
    try {
      const first = await t.worker();
      await waitFor(
        () => t.logText().includes(`start markers: cannot make a directory for them in ${tmp} (`),
        {
          what: "the line saying so",
        },
      );
      assert.ok(!argvOf(first.pid).includes("--start-marker"), "a worker without a marker");
      Deno.mkdirSync(tmp);
      Deno.kill(first.pid, "SIGKILL");
      const second = await t.worker(first.id);
      const marker = markerOf(second.pid);
      assert.equal(dirOf(dirOf(marker)), tmp, "a marker directory made this time");
      await waitFor(() => exists(marker), { what: "the new worker's marker" });
      t.sup.kill("SIGTERM");
      assert.equal((await t.sup.status).code, 0, t.sup.stdout() + t.sup.stderr());
      assert.equal(t.logText().split("cannot make a directory").length, 2, "said once");
      assert.deepEqual([...Deno.readDirSync(tmp)], [], "removed at exit");
    } finally {
      await t.store.close();
    }
  },
});

const user = otherUser();
const missing = "missing" in user ? user.missing : null;
const skipBecause = missing ? skipAllowedBecause("other-user") : null;
if (missing && skipBecause) {
  console.log(`skipping the planted start marker test: ${missing} (${skipBecause})`);
}

Deno.test({
  name: "start markers: a directory another local user made at the freed path is not read: " +
    "a planted marker releases no started job",
  ignore: !UNIX || (missing !== null && skipBecause !== null),
  fn: async () => {
    if ("missing" in user) {
      throw new Error(
        `${user.missing}; CI requires it (set QUEUECTL_TEST_NO_OTHER_USER=1 on runners without it)`,
      );
    }
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const log = dir.file("w.log");
    const t = await setUp(db, log, await sharedTmp(dir));
    await using _sup = t.sup;
    try {
      const w = await t.worker();
      const marker = markerOf(w.pid);
      const markerDir = dirOf(marker);
      const began = dir.file("y-began");
      const enq = await runCli(
        ["enqueue", JSON.stringify({ id: "y", command: `: > '${began}'; sleep 60`, queue: "a" })],
        { db },
      );
      assert.equal(enq.code, 0, enq.stderr);
      // y has started: its own first act.
      await waitFor(() => exists(began), { what: "y's first act" });
      // The cleaner deletes the directory; nobody makes one at the same path with a marker that
      // names no job (it would say y was never started).
      Deno.removeSync(markerDir, { recursive: true });
      const planted = await runAs(user, [
        "sh",
        "-c",
        'mkdir -m 700 "$1" && printf \'%s\\n\' "$2" > "$3"',
        "sh",
        markerDir,
        JSON.stringify([w.id]),
        marker,
      ]);
      assert.equal(planted.code, 0, planted.stderr);
      assert.equal(Deno.lstatSync(markerDir).uid, user.uid, "the directory is nobody's now");
      // The worker and its job die together.
      Deno.kill(-w.pid, "SIGKILL");
      await waitFor(() => t.logText().includes(`(pid ${w.pid}) was killed`), {
        what: "the supervisor to see the death",
      });
      // A graceful stop waits for the supervisor's look at the dead worker's jobs.
      t.sup.kill("SIGTERM");
      assert.equal((await t.sup.status).code, 0, t.sup.stdout() + t.sup.stderr());
      assert.equal(t.logText().match(/\] released y:/), null, "the planted marker is not read");
      assert.deepEqual(await t.job("y"), { state: "processing", attempts: 1, lease_owner: w.id });
      assert.ok(t.logText().includes(lostLine(markerDir)), t.logText());
      assert.equal(
        Deno.readTextFileSync(marker),
        JSON.stringify([w.id]) + "\n",
        "nobody's directory and file are left alone",
      );
    } finally {
      await t.store.close();
    }
  },
});
