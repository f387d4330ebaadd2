/**
 * Security: a hostile job cannot drive the terminal of whoever looks at the queue. A job whose
 * command and output carry `ESC]0;title BEL` (set the window title), `ESC[2J` (clear the screen),
 * SGR colours, a C1 CSI and U+202E (right-to-left override) is run and shown through a real
 * pseudo-terminal (`script` from util-linux); the bytes that reach the terminal must hold none of
 * them raw, only their visible escapes. The worker's log file is checked the same way.
 */
import assert from "node:assert/strict";
import { cliArgv, runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";

const ESC = "\x1b";
const BEL = "\x07";
const RLO = "\u202e";
const CSI8 = "\x9b"; // the 8-bit CSI: some terminals obey it like ESC [

/** Shell words: each argument in single quotes. */
function shellQuote(args: readonly string[]): string {
  return args.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
}

function hasScript(): boolean {
  try {
    return new Deno.Command("script", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/**
 * Runs `queuectl <args>` with its stdin, stdout and stderr on a pseudo-terminal; returns every
 * byte the terminal received (stdout and stderr together, as a user sees them).
 */
async function onTerminal(args: readonly string[], db: string): Promise<string> {
  const command = `exec ${shellQuote([Deno.execPath(), ...cliArgv(args)])}`;
  const out = await new Deno.Command("script", {
    args: ["-q", "-e", "-c", command, "/dev/null"],
    env: { QUEUECTL_DB: db, NO_COLOR: "1", TERM: "xterm" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(new TextDecoder().decode(out.stderr), "", "script itself said nothing");
  return text;
}

/** Asserts no raw control or bidi character but CR/LF/TAB reached the terminal. */
function assertNothingRaw(what: string, text: string): void {
  for (const [name, bad] of [["ESC", ESC], ["BEL", BEL], ["U+202E", RLO], ["C1 CSI", CSI8]]) {
    assert.ok(
      !text.includes(bad),
      `${what}: raw ${name} reached the terminal:\n${JSON.stringify(text)}`,
    );
  }
  // deno-lint-ignore no-control-regex
  const other = text.match(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2066-\u2069\u202a-\u202e]/);
  assert.equal(other, null, `${what}: raw ${JSON.stringify(other?.[0])} reached the terminal`);
}

Deno.test({
  name: "security: escape sequences of a hostile job never reach the terminal raw",
  ignore: Deno.build.os === "windows",
  fn: async (t) => {
    if (!hasScript()) {
      // util-linux's `script` is on every Linux (bsdutils is essential on Debian); say so loudly.
      throw new Error("`script` (util-linux) is needed to run commands on a pseudo-terminal");
    }
    await using dir = await tempDir();
    const db = dir.file("q.db");
    const hostile = `${ESC}]0;pwned${BEL}${ESC}[2J${RLO}gnp.exe${CSI8}2J`;
    const command =
      `printf '%s\\n' '${hostile}'; printf '%s' '${ESC}[31mred${ESC}]0;err${BEL}' >&2; exit 3`;
    for (const [id, queue] of [["evil", "tty"], ["evil-log", "file"]]) {
      const r = await runCli(
        ["enqueue", JSON.stringify({ id, queue, command, max_retries: 0 })],
        { db },
      );
      assert.equal(r.code, 0, r.stderr);
    }

    await t.step("worker event lines on the terminal", async () => {
      const text = await onTerminal(["worker", "start", "--until-empty", "--queue", "tty"], db);
      assertNothingRaw("worker start", text);
      assert.match(text, /started evil: printf .*\\x1b\]0;pwned\\x07\\x1b\[2J\\u202egnp\.exe/);
      assert.match(text, /evil moved to DLQ/);
    });

    await t.step("the worker's log file (what `worker start --detach` writes)", async () => {
      const log = dir.file("worker.log");
      const r = await runCli(
        ["worker", "start", "--until-empty", "--queue", "file", "--log", log],
        { db },
      );
      assert.equal(r.code, 6, r.stderr); // a job reached the DLQ
      const text = await Deno.readTextFile(log);
      assertNothingRaw("worker log", text);
      assert.match(text, /started evil-log: printf .*\\x1b\]0;pwned\\x07/);
    });

    const views: [string, string[], RegExp][] = [
      ["list", ["list"], /evil .*printf '%s\\n' '\\x1b\]0;pwned\\x07\\x1b\[2J\\u202egnp\.exe/],
      ["show", ["show", "evil"], /stdout\s+\\x1b\]0;pwned\\x07\\x1b\[2J\\u202egnp\.exe\\x9b2J/],
      ["dlq list", ["dlq", "list"], /evil .*printf/],
      ["status", ["status"], /dead\s+2/],
      ["logs (on a terminal)", ["logs", "evil"], /\\x1b\[31mred\\x1b\]0;err\\x07/],
      ["an error line quoting the value", ["show", hostile], /Invalid job id "\\u001b\]0;pwned/],
    ];
    for (const [name, args, shown] of views) {
      await t.step(name, async () => {
        const text = await onTerminal(args, db);
        assertNothingRaw(name, text);
        assert.match(text, shown);
      });
    }

    await t.step("`logs` piped passes the job's bytes on unchanged", async () => {
      const r = await runCli(["logs", "evil"], { db });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, hostile + "\n");
      assert.equal(r.stderr, `${ESC}[31mred${ESC}]0;err${BEL}`);
    });

    await t.step("--json escapes them too (C1 and bidi as \\u escapes)", async () => {
      const text = await onTerminal(["show", "evil", "--json"], db);
      assertNothingRaw("show --json", text);
      const job = JSON.parse(text.replaceAll("\r\n", "\n"));
      assert.equal(job.stdout, hostile + "\n");
    });
  },
});
