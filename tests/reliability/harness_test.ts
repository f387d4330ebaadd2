/**
 * Self-tests of the fault suite's harness (tests/helpers/faults/): each fault it injects is real
 * and each cleanup leaves nothing behind. The fault tests themselves are under
 * tests/reliability/faults/ (`deno task test:faults`).
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { createPartition } from "../helpers/faults/partition.ts";
import { startPgCluster } from "../helpers/faults/pg_cluster.ts";
import {
  alive,
  fileLocks,
  freeze,
  holdsFlock,
  holdsSqliteWriteLock,
  stopped,
  thaw,
} from "../helpers/faults/procs.ts";
import { faultNeeds } from "../helpers/faults/requirements.ts";
import { runProgram } from "../helpers/faults/run.ts";
import { startHost } from "../helpers/faults/host.ts";
import { configure, enqueueAll } from "../helpers/faults/queue.ts";
import { mountTmpfs } from "../helpers/faults/tmpfs.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

const linux = await faultNeeds("fault harness", ["linux"]);
const cluster = await faultNeeds("fault harness: own PostgreSQL cluster", ["linux", "pg-cluster"]);
const partition = await faultNeeds("fault harness: partition", [
  "linux",
  "pg-cluster",
  "partition",
]);
const tmpfs = await faultNeeds("fault harness: tmpfs", ["linux", "tmpfs"]);

Deno.test({
  name: "fault harness: own PostgreSQL cluster stops (-m immediate, -m fast) and restarts",
  ignore: cluster.ignore,
  fn: async () => {
    let pid: number | null;
    let dir: string;
    {
      await using pg = await startPgCluster();
      dir = pg.dir;
      assert.notEqual(pg.port, 5432, "never the machine's own server");
      pid = pg.pid();
      assert.ok(pid !== null && alive(pid));
      const sql = pg.admin();
      await sql`CREATE TABLE t (x int)`;
      await sql`INSERT INTO t VALUES (1)`;

      // -m immediate: an open connection breaks, a new one is refused.
      await pg.stop("immediate");
      assert.equal(pg.pid(), null);
      await assert.rejects(sql`SELECT 1`);
      await sql.end({ timeout: 1 }).catch(() => {});
      const refused = pg.admin();
      await assert.rejects(refused`SELECT 1`, /ECONNREFUSED|connect/i);
      await refused.end({ timeout: 1 }).catch(() => {});

      // Same port, same data.
      await pg.start();
      const again = pg.admin();
      assert.deepEqual([...await again`SELECT x FROM t`], [{ x: 1 }]);
      await again`INSERT INTO t VALUES (2)`;
      await pg.stop("fast");
      await again.end({ timeout: 1 }).catch(() => {});
      await pg.start();
      const third = pg.admin();
      assert.deepEqual([...await third`SELECT count(*)::int AS n FROM t`], [{ n: 2 }]);
      await third.end();
      pid = pg.pid();
      assert.ok(pid !== null);
    }
    // Disposed: the postmaster is gone and its directory removed.
    assert.ok(!alive(pid!), "postmaster stopped by the disposal");
    await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
  },
});

Deno.test({
  name: "fault harness: own cluster is cleaned up by pid when pg_ctl cannot stop it",
  ignore: cluster.ignore,
  fn: async () => {
    let pid: number | null;
    {
      await using pg = await startPgCluster();
      pid = pg.pid();
      // Make pg_ctl fail: it finds no data directory to stop.
      await Deno.rename(pg.dataDir, `${pg.dataDir}.moved`);
    }
    await waitFor(() => !alive(pid!), { what: "the postmaster to be killed by pid" });
  },
});

/** A client inside the namespace: connects once, sends a byte every 100 ms, prints each echo. */
const PING_CLIENT = (host: string, port: number) => `
  const c = await Deno.connect({ hostname: "${host}", port: ${port} });
  console.log("connected " + Deno.hostname());
  setInterval(() => c.write(new Uint8Array([1])).catch(() => {}), 100);
  const buf = new Uint8Array(64);
  let n = 0;
  for (;;) {
    const r = await c.read(buf);
    if (r === null) { console.log("eof"); break; }
    n += r;
    console.log(Date.now() + " pong " + n);
  }`;

Deno.test({
  name: "fault harness: a partition cuts open TCP connections and new ones; healing resumes them",
  ignore: partition.ignore,
  fn: async () => {
    await using net = await createPartition({ hostname: "fault-host-a" });
    await using pg = await startPgCluster({ listen: ["127.0.0.1", net.gateway] });
    const echo = Deno.listen({ hostname: net.gateway, port: 0 });
    const echoPort = (echo.addr as Deno.NetAddr).port;
    (async () => {
      for await (const c of echo) c.readable.pipeTo(c.writable).catch(() => {});
    })();
    const argv = net.argv([Deno.execPath(), "eval", PING_CLIENT(net.gateway, echoPort)]);
    const client = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let out = "";
    const reading = (async () => {
      for await (const t of client.stdout.pipeThrough(new TextDecoderStream())) out += t;
    })();
    const pongsAfter = (t: number) =>
      out.split("\n").filter((l) => / pong /.test(l) && Number(l.split(" ")[0]) > t).length;
    const psql = (connectTimeout: number) => {
      const url = `postgres://postgres@${net.gateway}:${pg.port}/postgres`;
      const argv = net.argv([
        "psql",
        `${url}?connect_timeout=${connectTimeout}`,
        "-Atc",
        "SELECT 42",
      ]);
      return runProgram(argv[0], argv.slice(1));
    };
    try {
      await waitFor(() => pongsAfter(0) >= 3, { what: "pongs before the cut" });
      assert.match(out, /connected fault-host-a/, "the host has a host name of its own");
      assert.equal((await psql(5)).stdout.trim(), "42", "the host reaches the cluster");

      await net.cut();
      const cutAt = Date.now();
      // A new connection neither succeeds nor is refused nor told "unreachable" (no ARP query
      // fails after ~3 s): it times out.
      const during = await psql(4);
      assert.notEqual(during.code, 0);
      assert.match(during.stderr, /timeout|timed out/i, during.stderr);
      assert.doesNotMatch(during.stderr, /unreachable|no route/i);
      assert.ok(Date.now() - cutAt >= 3900, "the connection attempt hung until its timeout");
      assert.equal(pongsAfter(cutAt + 300), 0, "no byte crossed the cut");
      assert.doesNotMatch(out, /eof/, "the open connection did not see an error");

      await net.heal();
      const healedAt = Date.now();
      await waitFor(() => pongsAfter(healedAt) >= 3, {
        timeoutMs: 15_000,
        what: "the same connection to resume after the heal",
      });
      assert.equal(out.match(/connected/g)?.length, 1, "no reconnect: the connection resumed");
      assert.equal((await psql(5)).stdout.trim(), "42");
      assert.deepEqual(await net.pids(), [client.pid]);
    } finally {
      client.kill("SIGKILL");
      await client.status;
      await reading;
      echo.close();
    }
  },
});

Deno.test({
  name: "fault harness: a partition's disposal kills what runs inside and deletes it",
  ignore: partition.ignore,
  fn: async () => {
    let name: string;
    let pid: number;
    {
      await using net = await createPartition();
      name = net.name;
      const argv = net.argv(["sleep", "600"]);
      const child = new Deno.Command(argv[0], { args: argv.slice(1) }).spawn();
      pid = child.pid;
      await waitFor(async () => (await net.pids()).includes(pid), { what: "sleep in the netns" });
      child.status.then(() => {});
    }
    await waitFor(() => !alive(pid), { what: "the process inside to be killed" });
    const list = await runProgram("ip", ["netns", "list"]);
    assert.doesNotMatch(list.stdout, new RegExp(`^${name}\\b`, "m"));
  },
});

Deno.test({
  name: "fault harness: a small tmpfs fills up (ENOSPC for everyone), frees and unmounts",
  ignore: tmpfs.ignore,
  fn: async () => {
    let path: string;
    {
      await using disk = await mountTmpfs(2 * 1024 * 1024);
      path = disk.path;
      const written = await disk.fill();
      assert.ok(written > 1.5 * 1024 * 1024 && written <= 2 * 1024 * 1024, `${written} bytes`);
      assert.ok(await disk.availableBytes() < 8192);
      assert.throws(
        () => Deno.writeFileSync(disk.file("more"), new Uint8Array(64 * 1024)),
        /No space left|ENOSPC|os error 28/i,
      );
      await disk.free();
      assert.ok(await disk.availableBytes() > 1.5 * 1024 * 1024);
    }
    const mounts = await runProgram("cat", ["/proc/mounts"]);
    assert.ok(!mounts.stdout.includes(path), "unmounted");
  },
});

Deno.test({
  name: "fault harness: freeze and thaw; who holds an flock and SQLite's WAL write lock",
  ignore: linux.ignore,
  fn: async () => {
    await using dir = await tempDir();
    const lockFile = dir.file("q.db-lock");
    await Deno.writeTextFile(lockFile, "");
    const holder = new Deno.Command("flock", { args: [lockFile, "sleep", "600"] }).spawn();
    try {
      await waitFor(() => holdsFlock(holder.pid, lockFile), { what: "flock to hold the lock" });
      assert.ok(!holdsFlock(Deno.pid, lockFile));
      assert.ok(freeze(holder.pid));
      await waitFor(() => stopped(holder.pid), { what: "the process to stop" });
      assert.ok(holdsFlock(holder.pid, lockFile), "a frozen process keeps its lock");
      assert.ok(thaw(holder.pid));
      await waitFor(() => !stopped(holder.pid), { what: "the process to run again" });
    } finally {
      holder.kill("SIGKILL");
      await holder.status;
    }

    // SQLite's write lock (a POSIX lock on byte 120 of <db>-shm) while a writer is inside
    // BEGIN IMMEDIATE, and not once it committed.
    const db = dir.file("q.db");
    const setup = new DatabaseSync(db);
    setup.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x)");
    const writer = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { DatabaseSync } from "node:sqlite";
         const db = new DatabaseSync(${JSON.stringify(db)});
         db.exec("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)");
         console.log("in");
         await new Promise((r) => setTimeout(r, 1500));
         db.exec("COMMIT");
         console.log("out");
         await new Promise((r) => setTimeout(r, 60000));`,
      ],
      stdout: "piped",
    }).spawn();
    let out = "";
    const reading = (async () => {
      for await (const t of writer.stdout.pipeThrough(new TextDecoderStream())) out += t;
    })();
    try {
      await waitFor(() => out.includes("in"), { what: "the writer's transaction" });
      assert.ok(holdsSqliteWriteLock(writer.pid, db), JSON.stringify(fileLocks()));
      assert.ok(!holdsSqliteWriteLock(Deno.pid, db));
      await waitFor(() => out.includes("out"), { what: "the commit" });
      assert.ok(!holdsSqliteWriteLock(writer.pid, db));
    } finally {
      writer.kill("SIGKILL");
      await writer.status;
      await reading;
      setup.close();
    }
  },
});

Deno.test({
  name: "fault harness: a host's processes, frozen or not, are cleaned up by pid",
  ignore: linux.ignore,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    await configure(db, { lease: 2 });
    await enqueueAll(db, [
      { id: "hang1", command: `echo $$ > ${dir.file("hang1.pid")}; sleep 600` },
      { id: "hang2", command: `echo $$ > ${dir.file("hang2.pid")}; sleep 600` },
    ], dir.file("jobs.jsonl"));
    let pids: number[];
    {
      await using host = startHost({ name: "a", db, count: 2, logFile: dir.file("a.log") });
      const jobs = await waitFor(async () => {
        // The shell creates the file before `echo` writes to it: an empty read is "not yet".
        try {
          const read = [
            Number(await Deno.readTextFile(dir.file("hang1.pid"))),
            Number(await Deno.readTextFile(dir.file("hang2.pid"))),
          ];
          return read.every((pid) => pid > 0) ? read : null;
        } catch {
          return null;
        }
      }, { timeoutMs: 30_000, what: "both jobs to run" });
      const workers = host.workers();
      assert.equal(workers.length, 2);
      pids = [host.pid, ...workers.map((w) => w.pid), ...jobs];
      const seen = host.processes().map((p) => p.pid);
      for (const pid of pids) assert.ok(seen.includes(pid), `${pid} is one of the host's`);
      freeze(workers[0].pid);
      freeze(host.pid);
    }
    await waitFor(() => pids.every((p) => !alive(p)), { what: "every process of the host gone" });
  },
});
