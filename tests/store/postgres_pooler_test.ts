/**
 * queuectl behind PgBouncer (docs/architecture.md, "Connection poolers"): one PgBouncer of the
 * test's own, on a spare port, in front of the test server, serving one fresh database twice:
 * `session` (pool_mode = session: supported, workers included) and `transaction` (pool_mode =
 * transaction: refused at once with one line, where `status` used to hang and workers could not
 * connect at all).
 *
 * Needs the test server (QUEUECTL_TEST_PG_URL) and the `pgbouncer` program (Debian package
 * pgbouncer; .ci/run installs it). Under root PgBouncer runs as `postgres` or `nobody` (it refuses
 * root). When either is missing the tests fail if CI is set, and are skipped (saying why) otherwise.
 */
import assert from "node:assert/strict";
import { cliArgv, type CliResult, runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";
import { admin, PG_URL, postgresAvailability, targetOf } from "../helpers/postgres.ts";
import { skipAllowedBecause } from "../helpers/services.ts";
import { freePort, hasProgram } from "../helpers/faults/run.ts";
import { unprivilegedUser } from "../helpers/faults/pg_cluster.ts";

const SUITE = "postgres behind PgBouncer";
const { ignore: noServer } = await postgresAvailability(SUITE);

/** The pgbouncer program, or null (Debian installs it in /usr/sbin, not on every PATH). */
function pgbouncerPath(): string | null {
  for (const p of ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]) {
    try {
      Deno.statSync(p);
      return p;
    } catch {
      // not here
    }
  }
  return hasProgram("pgbouncer") ? "pgbouncer" : null;
}

const PGBOUNCER = pgbouncerPath();
let ignore = noServer;
if (!noServer && PGBOUNCER === null) {
  const why = skipAllowedBecause("postgres");
  if (why === null) {
    Deno.test(`${SUITE}: pgbouncer is installed`, () => {
      throw new Error("the pgbouncer program is missing (Debian: apt-get install pgbouncer)");
    });
  } else {
    console.log(`skipping ${SUITE} tests: the pgbouncer program is missing; ${why}`);
  }
  ignore = true;
}

/** The user name in PG_URL (PgBouncer's clients log in as it), and its password if any. */
function credentials(): { user: string; password?: string } {
  const m = /^postgres(?:ql)?:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?/i.exec(PG_URL);
  return {
    user: decodeURIComponent(m?.[1] || "postgres"),
    ...(m?.[2] ? { password: decodeURIComponent(m[2]) } : {}),
  };
}

interface Bouncer extends AsyncDisposable {
  /** The URL of `database` (session or transaction) through PgBouncer. */
  url(database: "session" | "transaction", params?: string): string;
  /** The fresh database's URL on the server itself (for checks behind PgBouncer's back). */
  direct: string;
  log(): string;
}

/** A fresh database and a PgBouncer serving it as `session` and `transaction`. */
async function startBouncer(): Promise<Bouncer> {
  const dir = await tempDir("queuectl-pgbouncer-");
  const tag = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
  const dbName = `qpool_${tag}`;
  const sql = admin();
  try {
    await sql.unsafe(`CREATE DATABASE "${dbName}"`);
  } finally {
    await sql.end();
  }
  const { hostname, port: serverPort } = targetOf(PG_URL);
  const { user, password } = credentials();
  const port = freePort();
  const server = `host=${hostname} port=${serverPort} dbname=${dbName} user=${user}` +
    (password ? ` password=${password}` : "");
  Deno.writeTextFileSync(dir.file("users.txt"), `"${user}" ""\n`);
  Deno.writeTextFileSync(
    dir.file("pgbouncer.ini"),
    [
      "[databases]",
      `session = ${server} pool_mode=session`,
      `transaction = ${server} pool_mode=transaction`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${dir.file("users.txt")}`,
      "default_pool_size = 40",
      "max_client_conn = 400",
      `logfile = ${dir.file("pgbouncer.log")}`,
      "",
    ].join("\n"),
  );
  const runAs = unprivilegedUser();
  if (runAs) await Deno.chown(dir.path, runAs.uid, runAs.gid);
  for (const f of ["users.txt", "pgbouncer.ini"]) {
    if (runAs) await Deno.chown(dir.file(f), runAs.uid, runAs.gid);
  }
  const argv = [PGBOUNCER!, dir.file("pgbouncer.ini")];
  const child = new Deno.Command(runAs ? "setpriv" : argv[0], {
    args: runAs
      ? [`--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, "--init-groups", "--", ...argv]
      : argv.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const log = () => {
    try {
      return Deno.readTextFileSync(dir.file("pgbouncer.log"));
    } catch {
      return "";
    }
  };
  const dispose = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await child.status;
    const sql = admin();
    try {
      await sql.unsafe(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    } finally {
      await sql.end();
    }
    await dir[Symbol.asyncDispose]();
  };
  try {
    await waitFor(async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return true;
    }, { timeoutMs: 10_000, what: `PgBouncer on port ${port} (its log: ${log()})` });
  } catch (err) {
    await dispose();
    throw err;
  }
  const base = `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}`;
  return {
    url: (database, params) => `${base}/${database}${params ? `?${params}` : ""}`,
    direct: PG_URL.replace(/\/[^/?]*(\?.*)?$/, `/${dbName}`),
    log,
    [Symbol.asyncDispose]: dispose,
  };
}

/** Runs the CLI, killed if it has not ended by the deadline (an old queuectl hung here). */
async function runWithin(args: string[], db: string, ms = 30_000): Promise<CliResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: cliArgv(args),
    env: { NO_COLOR: "1", INIT_CWD: "", QUEUECTL_DB: db },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(ms),
  }).spawn();
  const out = await child.output();
  const decoder = new TextDecoder();
  const r = {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
  assert.ok(
    out.signal === null,
    `queuectl ${args.join(" ")} did not end within ${ms} ms (killed): ${r.stdout}${r.stderr}`,
  );
  return r;
}

/** Runs the CLI (bounded) and checks that it fails with exactly one stderr line like `pattern`. */
async function failsWithOneLine(args: string[], db: string, pattern: RegExp): Promise<void> {
  const r = await runWithin(args, db);
  assert.notEqual(r.code, 0, `queuectl ${args.join(" ")}: ${r.stdout}`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `queuectl ${args.join(" ")}: ${r.stderr}`);
  assert.match(lines[0], pattern);
}

/** The number of jobs in the fresh database, read on the server directly. */
async function jobCount(direct: string): Promise<number> {
  const r = await runCli(["status", "--json"], { db: direct });
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { total: number }).total;
}

Deno.test({
  name: "pgbouncer: through a session pool, enqueue, status and two workers run every job once",
  ignore,
  fn: async () => {
    await using bouncer = await startBouncer();
    await using dir = await tempDir();
    const db = bouncer.url("session");
    const out = dir.file("runs.txt");
    const jobs = Array.from(
      { length: 40 },
      (_, i) => JSON.stringify({ id: `j${i}`, command: `echo j${i} >> '${out}'` }),
    ).join("\n");
    Deno.writeTextFileSync(dir.file("jobs.jsonl"), jobs + "\n");
    const enq = await runWithin(["enqueue", "--file", dir.file("jobs.jsonl")], db);
    assert.equal(enq.code, 0, enq.stderr);
    const work = await runWithin(["worker", "start", "--count", "2", "--until-empty"], db, 60_000);
    assert.equal(work.code, 0, work.stdout + work.stderr);
    // Workers set their statement and lock timeouts after connecting, which PgBouncer allows;
    // as startup parameters it refused them and no worker could register.
    assert.doesNotMatch(work.stdout + work.stderr, /cannot register|unsupported startup/);
    const runs = Deno.readTextFileSync(out).trim().split("\n").sort();
    assert.deepEqual(runs, Array.from({ length: 40 }, (_, i) => `j${i}`).sort());
    const status = await runWithin(["status", "--json"], db);
    assert.equal(status.code, 0, status.stderr);
    const counts = JSON.parse(status.stdout) as { counts: { completed: number }; total: number };
    assert.equal(counts.counts.completed, 40);
    assert.equal(counts.total, 40);
  },
});

Deno.test({
  name: "pgbouncer: a transaction pool is refused at once with one line, and nothing is written",
  ignore,
  fn: async () => {
    await using bouncer = await startBouncer();
    // The schema exists (made on the server directly), so only the pool's refusal is tested.
    assert.equal(await jobCount(bouncer.direct), 0);
    const db = bouncer.url("transaction");
    for (
      const args of [
        ["status"],
        ["list", "--state", "pending"],
        ["enqueue", "--", "echo", "never"],
        ["worker", "start", "--until-empty"],
      ]
    ) {
      await failsWithOneLine(
        args,
        db,
        /shares server sessions between clients \(PgBouncer's transaction or statement pooling\).*pool_mode = session/,
      );
    }
    assert.equal(await jobCount(bouncer.direct), 0);
  },
});

Deno.test({
  name: "pgbouncer: schema= through a pool that refuses search_path fails at once with one line",
  ignore,
  fn: async () => {
    await using bouncer = await startBouncer();
    const db = bouncer.url("session", "schema=qpool_s");
    for (const args of [["status"], ["worker", "start", "--until-empty"]]) {
      await failsWithOneLine(
        args,
        db,
        /refuses the session setting "search_path" .*ALTER ROLE <user> SET search_path/,
      );
    }
  },
});
