import assert from "node:assert/strict";
import { parseProcStat } from "../../src/core/liveness.ts";

/** A stat line with `comm` and fields 3..52 as given (field 22, the start time, is index 19). */
function line(pid: number, comm: string, state: string, session: number, start: number): string {
  const rest = Array.from({ length: 50 }, (_, i) => String(i + 3));
  rest[0] = state;
  rest[3] = String(session);
  rest[19] = String(start);
  return `${pid} (${comm}) ${rest.join(" ")}\n`;
}

Deno.test("parseProcStat: fields after the last ')', whatever the command name holds", () => {
  assert.deepEqual(parseProcStat(line(42, "deno", "S", 42, 123456)), {
    pid: 42,
    state: "S",
    session: 42,
    startTime: "123456",
  });
  // A name with spaces and parentheses (a process may name itself anything, up to 15 bytes).
  assert.deepEqual(parseProcStat(line(7, "a) b (c) Z 1", "Z", 3, 99)), {
    pid: 7,
    state: "Z",
    session: 3,
    startTime: "99",
  });
});

Deno.test("parseProcStat: null for what is not a whole stat line", () => {
  assert.equal(parseProcStat(""), null);
  assert.equal(parseProcStat("no parentheses here"), null);
  assert.equal(parseProcStat("12 (sh) S 1 12 12"), null); // cut before the start time
  assert.equal(parseProcStat(line(42, "x", "S", 1, 5).replace(/^42/, "pid")), null);
});

Deno.test(
  "parseProcStat: real /proc/<pid>/stat lines (Linux): this process, and a session leader's",
  { ignore: Deno.build.os !== "linux" },
  async () => {
    const read = async (cmd: string, args: string[]) => {
      const out = await new Deno.Command(cmd, { args }).output();
      assert.ok(out.success, `${cmd} ${args.join(" ")} failed`);
      return parseProcStat(new TextDecoder().decode(out.stdout));
    };
    const own = await read("cat", [`/proc/${Deno.pid}/stat`]);
    assert.equal(own?.pid, Deno.pid);
    assert.ok(own && /^[A-Za-z]$/.test(own.state), `state ${own?.state}`);
    // 0 when the session's leader lives outside this PID namespace, or when no ancestor ever
    // started a session (a runner's init that never called setsid): CI read 0 here.
    assert.ok(own && Number.isInteger(own.session) && own.session >= 0, `session ${own?.session}`);
    assert.match(own?.startTime ?? "", /^\d+$/);
    // `setsid` execs cat as the leader of a new session: the session field is cat's own pid.
    const leader = await read("setsid", ["cat", "/proc/self/stat"]);
    assert.ok(leader && leader.pid > 0 && leader.session === leader.pid, JSON.stringify(leader));
  },
);
