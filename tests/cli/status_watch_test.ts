/**
 * `status --watch` (issue 17.4): on a terminal (a real pseudo-terminal through util-linux
 * `script`) it redraws every second and ends cleanly on Ctrl-C; `--json` prints a line a second
 * without a terminal; text to a non-terminal is refused with one line.
 */
import assert from "node:assert/strict";
import { quotePosixWord } from "../../src/core/shell_words.ts";
import { cliArgv, runCli } from "../helpers/run_cli.ts";
import { tempDir } from "../helpers/temp.ts";

/** Reads `stream` until `done(text so far)` holds or `ms` pass; returns the text. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  sofar: { text: string },
  done: (text: string) => boolean,
  ms = 15_000,
): Promise<string> {
  const decoder = new TextDecoder();
  const deadline = performance.now() + ms;
  while (!done(sofar.text)) {
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`timed out; output so far:\n${JSON.stringify(sofar.text)}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const chunk = await Promise.race([
      reader.read(),
      new Promise<null>((r) => timer = setTimeout(() => r(null), left)),
    ]);
    clearTimeout(timer);
    if (chunk === null) continue;
    if (chunk.done) throw new Error(`output ended early:\n${JSON.stringify(sofar.text)}`);
    sofar.text += decoder.decode(chunk.value, { stream: true });
  }
  return sofar.text;
}

const count = (text: string, part: string) => text.split(part).length - 1;

Deno.test("status --watch refuses a non-terminal stdout with one line and changes nothing", async () => {
  await using dir = await tempDir();
  const r = await runCli(["status", "--watch"], { db: dir.file("q.db") });
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /^error: status --watch redraws a terminal, and stdout is not one \(/);
  assert.equal(r.stderr.trimEnd().split("\n").length, 1);
  await assert.rejects(Deno.stat(dir.file("q.db")), Deno.errors.NotFound);
});

Deno.test("status --watch --json prints a JSON line a second, showing new jobs, until SIGINT", async () => {
  await using dir = await tempDir();
  const db = dir.file("q.db");
  assert.equal((await runCli(["status"], { db })).code, 0);
  const child = new Deno.Command(Deno.execPath(), {
    args: cliArgv(["status", "--watch", "--json"]),
    env: { QUEUECTL_DB: db, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const out = { text: "" };
  try {
    await readUntil(reader, out, (t) => count(t, "\n") >= 1);
    assert.equal((await runCli(["enqueue", "--", "true"], { db })).code, 0);
    await readUntil(reader, out, (t) => t.includes('"total":1'));
  } finally {
    child.kill("SIGINT");
  }
  reader.releaseLock();
  await child.stdout.cancel();
  const { code } = await child.status;
  const stderr = new TextDecoder().decode((await child.stderr.getReader().read()).value);
  assert.equal(code, 0, stderr);
  const lines = out.text.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines[0].total, 0);
  assert.deepEqual(Object.keys(lines[0]).slice(0, 3), ["at", "counts", "total"]);
  assert.equal(lines.at(-1).counts.pending, 1);
});

Deno.test({
  name: "status --watch on a terminal redraws in place every second and ends cleanly on Ctrl-C",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await using dir = await tempDir();
    const db = dir.file("q.db");
    assert.equal((await runCli(["enqueue", "--", "true"], { db })).code, 0);
    const command = [Deno.execPath(), ...cliArgv(["status", "--watch"])]
      .map(quotePosixWord).join(" ");
    // script: the command on a pseudo-terminal; what we write to its stdin is typed there.
    // script runs it through $SHELL -c; `exec` leaves no shell between the terminal and the
    // command: dash (CI's /bin/sh) does not exec a lone command itself, and Ctrl-C would kill
    // that shell (exit 130) while the command ends cleanly.
    const child = new Deno.Command("script", {
      args: ["-qfec", `exec ${command}`, "/dev/null"],
      env: { QUEUECTL_DB: db, NO_COLOR: "1", TERM: "xterm", SHELL: "/bin/sh" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.getReader();
    const out = { text: "" };
    const writer = child.stdin.getWriter();
    const stderr = new Response(child.stderr).text();
    // Not ended by Ctrl-C within 10 s: killed, and the exit code says so.
    let guard: ReturnType<typeof setTimeout> | undefined;
    try {
      await readUntil(reader, out, (t) => count(t, "workers alive: 0") >= 2);
    } finally {
      await writer.write(new Uint8Array([3])); // Ctrl-C
      guard = setTimeout(() => child.kill("SIGKILL"), 10_000);
    }
    await readUntil(reader, out, (t) => t.endsWith("\x1b[?25h"), 10_000).catch(() => out.text);
    reader.releaseLock();
    // stdin stays open until the command has ended: `script` answers an end of its input by
    // sending an end of file to the terminal, which must not race the Ctrl-C.
    const { code, signal } = await child.status;
    clearTimeout(guard);
    await writer.close().catch(() => {});
    await child.stdout.cancel().catch(() => {});
    assert.equal(
      code,
      0,
      `exit ${code} (signal ${signal}); stderr ${JSON.stringify(await stderr)}; output ends ${
        JSON.stringify(out.text.slice(-400))
      }`,
    );
    // Two frames at least, each from the top of the screen, the cursor hidden then shown again.
    assert.ok(out.text.startsWith("\x1b[?25l"), JSON.stringify(out.text.slice(0, 80)));
    assert.ok(count(out.text, "\x1b[H") >= 2);
    // deno-lint-ignore no-control-regex
    assert.match(out.text, /pending {5}1\x1b\[K\r?\n/);
    assert.match(out.text, /\(Ctrl-C to quit\)/);
    assert.ok(out.text.trimEnd().endsWith("\x1b[?25h"), JSON.stringify(out.text.slice(-80)));
    assert.doesNotMatch(out.text, /error/);
  },
});
