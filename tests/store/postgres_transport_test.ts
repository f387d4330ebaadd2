/**
 * The PostgreSQL driver's transport (src/store/postgres/driver/polyfills.js: postgres.js over
 * Deno.connect, TLS through node:tls) against an own cluster that asks for passwords: SCRAM-SHA-256
 * and MD5 logins (right and wrong password), a Unix socket, and TLS (`sslmode=require`, checked
 * in pg_stat_ssl), each through the store that queuectl opens.
 */
import assert from "node:assert/strict";
import { openPostgresStore } from "../../src/store/postgres/mod.ts";
import { StorageError } from "../../src/core/errors.ts";
import { type PgCluster, startPgCluster } from "../helpers/faults/pg_cluster.ts";
import { faultNeeds } from "../helpers/faults/requirements.ts";
import { runProgram } from "../helpers/faults/run.ts";
import { waitFor } from "../helpers/wait_for.ts";
// @ts-types="postgres"
import postgres from "../../src/store/postgres/driver/src/index.js";

const needs = await faultNeeds("postgres transport: own cluster", ["linux", "pg-cluster"]);

/** Password logins on TCP (the superuser stays trusted for the admin connection), TLS on. */
async function prepare(pg: PgCluster): Promise<void> {
  const sql = pg.admin();
  try {
    await sql`SET password_encryption = 'scram-sha-256'`;
    await sql.unsafe(`CREATE ROLE scram_user LOGIN PASSWORD 'scram pw' SUPERUSER`);
    await sql`SET password_encryption = 'md5'`;
    await sql.unsafe(`CREATE ROLE md5_user LOGIN PASSWORD 'md5 pw' SUPERUSER`);
  } finally {
    await sql.end();
  }
  const cert = `${pg.dataDir}/server.crt`;
  const key = `${pg.dataDir}/server.key`;
  const made = await runProgram("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  assert.equal(made.code, 0, made.stderr);
  const owner = await Deno.stat(pg.dataDir);
  for (const f of [cert, key]) {
    await Deno.chmod(f, 0o600);
    if (owner.uid !== null && owner.gid !== null) await Deno.chown(f, owner.uid, owner.gid);
  }
  await Deno.writeTextFile(
    `${pg.dataDir}/pg_hba.conf`,
    [
      "local all all trust",
      "host all postgres all trust",
      "host all scram_user all scram-sha-256",
      "host all md5_user all md5",
      "",
    ].join("\n"),
  );
  await Deno.writeTextFile(`${pg.dataDir}/postgresql.auto.conf`, "ssl = on\n", { append: true });
  const reload = pg.admin();
  try {
    await reload`SELECT pg_reload_conf()`;
    await waitFor(async () => (await reload`SHOW ssl`)[0].ssl === "on", {
      timeoutMs: 10_000,
      what: "ssl = on after the reload",
    });
  } finally {
    await reload.end();
  }
}

const at = (pg: PgCluster, who: string, query = "") =>
  `postgres://${who}@127.0.0.1:${pg.port}/postgres${query}`;

Deno.test({
  name: "postgres transport: SCRAM-SHA-256, MD5, Unix socket and TLS logins open the store",
  ignore: needs.ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using pg = await startPgCluster();
    await prepare(pg);

    for (const who of ["scram_user:scram%20pw", "md5_user:md5%20pw"]) {
      const store = await openPostgresStore(at(pg, who), { schema: "transport_t" });
      try {
        const stats = await store.stats({ now: Date.now() });
        assert.equal(stats.counts.pending, 0, who);
      } finally {
        await store.close();
      }
    }

    for (const who of ["scram_user:wrong", "md5_user:wrong"]) {
      await assert.rejects(
        () => openPostgresStore(at(pg, who), { schema: "transport_t" }),
        (err: unknown) => err instanceof StorageError && /password/i.test(err.message),
        who,
      );
    }

    // TLS: sslmode=require encrypts (without verifying the self-signed certificate).
    const tlsSql = postgres(at(pg, "scram_user:scram%20pw", "?sslmode=require"), {
      max: 1,
      fetch_types: false,
    });
    try {
      const [row] = await tlsSql`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`;
      assert.equal(row.ssl, true);
    } finally {
      await tlsSql.end();
    }
    const plainSql = postgres(at(pg, "scram_user:scram%20pw"), { max: 1, fetch_types: false });
    try {
      const [row] = await plainSql`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`;
      assert.equal(row.ssl, false);
    } finally {
      await plainSql.end();
    }

    // The Unix socket in the cluster's directory.
    const unixSql = postgres({
      host: pg.dir,
      port: pg.port,
      user: "postgres",
      database: "postgres",
      max: 1,
      fetch_types: false,
    });
    try {
      const [row] = await unixSql`SELECT inet_client_addr() AS addr`;
      assert.equal(row.addr, null, "a Unix-socket session has no client address");
    } finally {
      await unixSql.end();
    }
  },
});

Deno.test("postgres transport: a refused connection is a transient StorageError naming the cause", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close(); // nothing listens there now
  await assert.rejects(
    () => openPostgresStore(`postgres://postgres@127.0.0.1:${port}/postgres`),
    (err: unknown) =>
      err instanceof StorageError && err.transient === true &&
      /Cannot reach PostgreSQL/.test(err.message) && /refused/i.test(err.message),
  );
});
