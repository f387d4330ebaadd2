/**
 * Issue 13.2, as an attacker would try it: a job that runs `env` must not see queuectl's
 * credentials (the database URL with its password, PGPASSWORD, the dashboard token), neither in
 * its output as `logs`, `show --json` and the database keep it. Real CLI, real workers, on
 * SQLite and on PostgreSQL (a URL with a password: the supervisor hands it to its workers in
 * QUEUECTL_DB, which is exactly what a job must not inherit).
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { admin, PG_URL, postgresAvailability } from "../helpers/postgres.ts";
import { runCli, runCliJson } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";

const TOKEN = "dashtok_9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const PG_PASSWORD = "pgpw_s3cret_0451";

/** Everything a job could have leaked, checked in every place its output is kept. */
async function assertNoSecrets(db: string, id: string, secrets: readonly string[]) {
  const logs = await runCli(["logs", id], { db });
  assert.equal(logs.code, 0, logs.stderr);
  const shown = await runCliJson<{ stdout: string; state: string }>(["show", id], { db });
  assert.equal(shown.state, "completed");
  // The job did print its environment (so the check below means something).
  assert.match(logs.stdout, /^QUEUECTL_JOB_ID=leak$/m);
  assert.match(logs.stdout, /^PATH=/m);
  for (const secret of secrets) {
    assert.ok(!logs.stdout.includes(secret), `logs show ${secret}`);
    assert.ok(!logs.stderr.includes(secret), `logs show ${secret}`);
    assert.ok(!shown.stdout.includes(secret), `show --json shows ${secret}`);
  }
  for (const name of ["QUEUECTL_DB", "QUEUECTL_DASHBOARD_TOKEN", "PGPASSWORD"]) {
    assert.doesNotMatch(logs.stdout, new RegExp(`^${name}=`, "m"), `${name} reached the job`);
  }
}

Deno.test("sqlite: a job running env sees neither QUEUECTL_DB, PGPASSWORD nor the dashboard token; an explicit --env still works", async () => {
  await using dir = await tempDir();
  const db = dir.file("secret-named.db");
  const enq = async (args: string[]) => {
    const r = await runCli(["enqueue", ...args], { db });
    assert.equal(r.code, 0, r.stderr);
  };
  await enq(["--id", "leak", "--", "env"]);
  await enq(["--id", "asked", "--env", `PGPASSWORD=${PG_PASSWORD}`, "--", "env"]);
  const w = await runCli(["worker", "start", "--until-empty"], {
    db,
    env: { QUEUECTL_DASHBOARD_TOKEN: TOKEN, PGPASSWORD: PG_PASSWORD },
  });
  assert.equal(w.code, 0, w.stderr);
  await assertNoSecrets(db, "leak", [TOKEN, PG_PASSWORD, db]);
  // The database file itself keeps no secret either.
  const sqlite = new DatabaseSync(db, { readOnly: true });
  try {
    const row = sqlite.prepare("SELECT stdout FROM job_runs WHERE job_id = 'leak'").get() as {
      stdout: string;
    };
    assert.ok(!row.stdout.includes(TOKEN) && !row.stdout.includes(PG_PASSWORD));
  } finally {
    sqlite.close();
  }
  // A variable the user gives a job explicitly is the user's choice (README "What a job gets").
  const asked = await runCli(["logs", "asked"], { db });
  assert.match(asked.stdout, new RegExp(`^PGPASSWORD=${PG_PASSWORD}$`, "m"));
});

const { ignore } = await postgresAvailability("job environment secrets");

Deno.test({
  name:
    "postgres: a job running env does not see the database URL with its password, PGPASSWORD or the token",
  ignore,
  async fn() {
    const schema = `qs_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
    // (Output lives in the jobs row on PostgreSQL.) The test server trusts local connections, so any password is accepted: give it one.
    const password = "s3cretpw";
    const withPassword = PG_URL.replace(
      /^(postgres(?:ql)?:\/\/[^:@/]+)(?::[^@/]*)?@/,
      `$1:${password}@`,
    );
    assert.ok(withPassword.includes(`:${password}@`), "the URL carries the password");
    const db = `${withPassword}${withPassword.includes("?") ? "&" : "?"}schema=${schema}`;
    try {
      const r = await runCli(["enqueue", "--id", "leak", "--", "env"], { db });
      assert.equal(r.code, 0, r.stderr);
      // --db on the command line: the supervisor gives it to its workers in QUEUECTL_DB.
      const w = await runCli(["worker", "start", "--until-empty", "--db", db], {
        env: { QUEUECTL_DASHBOARD_TOKEN: TOKEN, PGPASSWORD: PG_PASSWORD },
      });
      assert.equal(w.code, 0, w.stderr);
      assert.ok(!w.stdout.includes(password) && !w.stderr.includes(password), "worker log");
      await assertNoSecrets(db, "leak", [password, TOKEN, PG_PASSWORD]);
      const sql = admin();
      try {
        const rows = await sql.unsafe(
          `SELECT count(*)::int AS n FROM "${schema}".job_runs
           WHERE stdout LIKE '%' || $1 || '%' OR stdout LIKE '%' || $2 || '%'`,
          [password, TOKEN],
        );
        assert.equal(rows[0].n, 0, "stored output holds a secret");
      } finally {
        await sql.end();
      }
    } finally {
      const sql = admin();
      try {
        await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await sql.end();
      }
    }
  },
});
