/**
 * Start-up of a compiled queuectl binary: `<binary> status` on a small database against
 * `deno run empty.ts`, interleaved, medians. The CI workflow runs it on the binary it builds
 * (deno compile cannot fetch its runtime on our own machines, so the figure comes from there).
 *
 * Usage: deno run --allow-read --allow-write --allow-run --allow-env bench/startup_binary.ts <binary> [rounds]
 */
import { fmt, median, timeCommand } from "./util.ts";

const [binary, roundsArg] = Deno.args;
if (!binary) {
  console.error("usage: startup_binary.ts <binary> [rounds]");
  Deno.exit(2);
}
const rounds = Number(roundsArg ?? 21);
const dir = await Deno.makeTempDir({ prefix: "queuectl-startup-" });
try {
  const empty = `${dir}/empty.ts`;
  await Deno.writeTextFile(empty, "");
  const env = { QUEUECTL_DB: `${dir}/small.db`, NO_COLOR: "1" };
  await timeCommand(binary, ["enqueue", '{"command":"true"}'], { env });
  const deno = Deno.execPath();
  const a: number[] = [];
  const b: number[] = [];
  await timeCommand(deno, ["run", empty]);
  await timeCommand(binary, ["status"], { env });
  for (let i = 0; i < rounds; i++) {
    a.push(await timeCommand(deno, ["run", empty]));
    b.push(await timeCommand(binary, ["status"], { env }));
  }
  console.log(
    `start-up: ${binary} status ${fmt(median(b))} ms, deno run empty.ts ${fmt(median(a))} ms, ` +
      `ratio ${fmt(median(b) / median(a), 2)} (target <= 1.4; ${rounds} interleaved runs, medians)`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
