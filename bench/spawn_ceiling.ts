/**
 * The spawn ceiling of a Deno program (issue 15.1): what one process that does nothing but run
 * `sh -c <cmd>` through `Deno.Command` (stdin null, stdout and stderr piped and read to the end,
 * as a worker spawns a job), `--parallel` at a time, reaches. bench/workers.ts runs it in the same
 * rounds as `xargs -P 2` and queuectl: the ratio queuectl could reach if its own work cost nothing.
 *
 *   deno run --allow-run bench/spawn_ceiling.ts <n> [--parallel=2] [--cmd=true]
 */
const n = Number(Deno.args[0] ?? 2000);
const arg = (name: string, def: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const parallel = Number(arg("parallel", "2"));
const cmd = arg("cmd", "true");

let started = 0;
let failed = 0;
async function lane(): Promise<void> {
  while (started < n) {
    started++;
    const child = new Deno.Command("sh", {
      args: ["-c", cmd],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const [status] = await Promise.all([
      child.status,
      new Response(child.stdout).arrayBuffer(),
      new Response(child.stderr).arrayBuffer(),
    ]);
    if (!status.success) failed++;
  }
}
await Promise.all(Array.from({ length: parallel }, lane));
if (failed > 0) {
  console.error(`${failed} of ${n} runs failed`);
  Deno.exit(1);
}
