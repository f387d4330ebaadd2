/**
 * Signals ignored from the start stay ignored (worker/ignored_signals.ts): `nohup queuectl worker
 * start &` must outlive the terminal that started it (SIGHUP), as must `worker run` and the
 * dashboard; without nohup a SIGHUP still stops them, and SIGTERM always does.
 */
import assert from "node:assert/strict";
import { keepIgnoredSignals } from "../../src/worker/ignored_signals.ts";
import { startCli } from "../helpers/cli_process.ts";
import { runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";

const skip = Deno.build.os !== "linux"; // /proc/self/status, nohup

async function enqueue(db: string, id: string): Promise<void> {
  const r = await runCli(["enqueue", JSON.stringify({ id, command: "echo hi" })], { db });
  assert.equal(r.code, 0, r.stderr);
}

Deno.test({
  name:
    "keepIgnoredSignals: reads what the process was started ignoring (nohup: SIGHUP); none without cat",
  ignore: skip,
  fn: async () => {
    assert.equal((await keepIgnoredSignals()).has("SIGHUP"), false, "this test process: none");
    const probe = `import { keepIgnoredSignals } from ${
      JSON.stringify(new URL("../../src/worker/ignored_signals.ts", import.meta.url).href)
    }; console.log(JSON.stringify([...await keepIgnoredSignals()]));`;
    const out = await new Deno.Command("nohup", {
      args: [Deno.execPath(), "eval", probe],
      stdout: "piped",
      stderr: "null",
    }).output();
    assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), ["SIGHUP"]);
    // No `cat` to read the mask with: nothing is taken as ignored (listened to as before).
    const blind = await new Deno.Command("nohup", {
      args: ["env", "PATH=/nonexistent", Deno.execPath(), "eval", probe],
      stdout: "piped",
      stderr: "null",
    }).output();
    assert.deepEqual(JSON.parse(new TextDecoder().decode(blind.stdout)), []);
  },
});

Deno.test({
  name:
    "nohup worker start: a SIGHUP (the terminal closed) is ignored, jobs still run; SIGTERM stops it",
  ignore: skip,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    await using sup = startCli(["worker", "start"], { db, via: ["nohup"] });
    await sup.waitForOutput(/starting 1 worker/);
    sup.kill("SIGHUP");
    await enqueue(db, "after-hup");
    await sup.waitForOutput(/completed after-hup/);
    assert.doesNotMatch(sup.stdout(), /stopping/);
    sup.kill("SIGTERM");
    assert.equal((await sup.status).code, 0);
    assert.match(sup.stdout(), /stopping \(SIGTERM received/);
  },
});

Deno.test({
  name: "worker start without nohup: a SIGHUP stops it gracefully, as before",
  ignore: skip,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    await using sup = startCli(["worker", "start"], { db });
    await sup.waitForOutput(/starting 1 worker/);
    sup.kill("SIGHUP");
    assert.equal((await sup.status).code, 0);
    assert.match(sup.stdout(), /stopping \(SIGHUP received/);
  },
});

Deno.test({
  name: "nohup worker run (unsupervised): a SIGHUP is ignored; SIGTERM stops it",
  ignore: skip,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    await using worker = startCli(["worker", "run"], { db, via: ["nohup"] });
    await enqueue(db, "before-hup");
    await worker.waitForOutput(/completed before-hup/);
    worker.kill("SIGHUP");
    await enqueue(db, "after-hup");
    await worker.waitForOutput(/completed after-hup/);
    worker.kill("SIGTERM");
    assert.equal((await worker.status).code, 0);
    assert.match(worker.stdout(), /stopping \(SIGTERM received/);
  },
});

Deno.test({
  name: "nohup dashboard: a SIGHUP is ignored, it still answers; SIGTERM stops it",
  ignore: skip,
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    await using dashboard = startCli(["dashboard", "--port", "0"], { db, via: ["nohup"] });
    const [, base] = await dashboard.waitForOutput(
      /^queuectl dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/m,
    );
    dashboard.kill("SIGHUP");
    // Still serving after the signal (without the token: refused, but answered).
    await waitFor(async () => {
      const r = await fetch(`${base}api/stats`);
      await r.body?.cancel();
      return r.status === 401;
    }, { what: "the dashboard to answer after SIGHUP" });
    dashboard.kill("SIGTERM");
    assert.equal((await dashboard.status).code, 0);
  },
});
