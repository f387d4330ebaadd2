/**
 * Test fixture for the executor's session mode, which needs a process that leads its own session
 * (executor_test.ts starts this one with `detached`, i.e. setsid). Reads one JSON request per
 * stdin line and answers one JSON line on stdout:
 * - `{"op":"leads"}` → `{"leads": <leadsOwnSession()>, "pid": <pid>}`
 * - `{"op":"exec", "command", "timeoutMs"?, "graceMs"?, "abortWhenFile"?, "abortAtOnce"?}` →
 *   the ExecResult of execute({groupVia: "session", outputLimit: 65536, ...}). `abortWhenFile`:
 *   abort once that file exists; `abortAtOnce`: abort right after the spawn.
 */
import { execute, leadsOwnSession } from "../../src/worker/executor.ts";

interface Request {
  op: "leads" | "exec";
  command?: string;
  timeoutMs?: number;
  graceMs?: number;
  abortWhenFile?: string;
  abortAtOnce?: boolean;
}

async function exec(req: Request): Promise<unknown> {
  const controller = new AbortController();
  const running = execute({
    command: req.command ?? "true",
    outputLimit: 65536,
    timeoutMs: req.timeoutMs,
    graceMs: req.graceMs,
    signal: controller.signal,
    groupVia: "session",
  });
  if (req.abortAtOnce) controller.abort();
  let done = false;
  const watch = req.abortWhenFile
    ? (async () => {
      while (!done) {
        try {
          await Deno.stat(req.abortWhenFile!);
          controller.abort();
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    })()
    : Promise.resolve();
  const result = await running;
  done = true;
  await watch;
  return result;
}

const encoder = new TextEncoder();
const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
let buffer = "";
for await (const chunk of lines) {
  buffer += chunk;
  let nl: number;
  while ((nl = buffer.indexOf("\n")) >= 0) {
    const req = JSON.parse(buffer.slice(0, nl)) as Request;
    buffer = buffer.slice(nl + 1);
    const answer = req.op === "leads"
      ? { leads: await leadsOwnSession(), pid: Deno.pid }
      : await exec(req);
    await Deno.stdout.write(encoder.encode(JSON.stringify(answer) + "\n"));
  }
}
