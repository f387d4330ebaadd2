/**
 * A network partition of one "host": a network namespace joined to the root namespace by a veth
 * pair. The host's processes (a queuectl supervisor and its workers) run inside the namespace
 * (`ip netns exec`, with a host name of their own through a UTS namespace, so that `worker stop`
 * elsewhere treats them as another machine) and reach a server listening on the root side's
 * address, `gateway`. `cut()` takes the root side's link down: the host's interface loses its
 * carrier, packets in both directions vanish without an error (as with a pulled cable or a dead
 * switch: open TCP connections hang, new ones time out). `heal()` brings the link back; the open
 * connections resume where they stopped if neither side gave up meanwhile.
 *
 * Needs root and iproute2 (`ip`), plus `unshare` (util-linux) and `hostname`. Disposal SIGKILLs
 * every process still in the namespace (by pid, from `ip netns pids`), deletes the namespace and
 * the veth pair: also when the test failed.
 */
import { signal } from "./procs.ts";
import { hasProgram, mustRun, runProgram, uid } from "./run.ts";

export interface Partition extends AsyncDisposable {
  /** The namespace's name (`ip netns exec <name> ...`). */
  readonly name: string;
  /** The address inside the namespace (the host's). */
  readonly hostAddr: string;
  /** The root side's address: a server listening here is reachable from the host. */
  readonly gateway: string;
  /** The host name processes started with {@link argv} see. */
  readonly hostname: string;
  readonly isCut: boolean;
  /** Takes the link down (no error for anyone: packets just vanish). */
  cut(): Promise<void>;
  /** Brings the link back. */
  heal(): Promise<void>;
  /** The argv that runs `argv` inside the namespace with the host's own host name. */
  argv(argv: readonly string[]): string[];
  /** Pids of the processes inside the namespace. */
  pids(): Promise<number[]>;
}

/** Why a partition cannot be made here, or null when it can. */
export async function partitionUnavailable(): Promise<string | null> {
  if (Deno.build.os !== "linux") return "network namespaces are Linux-only";
  if (uid() !== 0) return "network namespaces need root";
  for (const p of ["ip", "unshare", "hostname"]) {
    if (!hasProgram(p)) return `\`${p}\` is not installed (iproute2, util-linux, hostname)`;
  }
  const probe = `qctl-probe-${uniqueTag()}`;
  const r = await runProgram("ip", ["netns", "add", probe]);
  if (r.code !== 0) return `\`ip netns add\` failed: ${r.stderr.trim()}`;
  await runProgram("ip", ["netns", "del", probe]);
  return null;
}

/**
 * A name part no other partition of this machine uses: random, not this process's pid and a
 * counter, since `deno test --parallel` runs several test modules in one process, each with a
 * counter of its own (two modules once both made `qctl-<pid>1`). 8 hex digits keep the veth
 * names within Linux's 15 characters.
 */
function uniqueTag(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(4)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

async function usedPrefixes(): Promise<Set<string>> {
  const r = await runProgram("ip", ["-o", "-4", "addr", "show"]);
  const used = new Set<string>();
  for (const m of r.stdout.matchAll(/inet (\d+)\.(\d+)\.(\d+)\.\d+/g)) {
    used.add(`${m[1]}.${m[2]}.${m[3]}`);
  }
  return used;
}

/** Creates the namespace, the veth pair and the addresses (a /30 in 10.200-249.x.0). */
export async function createPartition(opts: { hostname?: string } = {}): Promise<Partition> {
  const why = await partitionUnavailable();
  if (why !== null) throw new Error(`cannot create a network partition: ${why}`);
  const tag = uniqueTag();
  const name = `qctl-${tag}`;
  const rootIf = `qr${tag}`.slice(0, 15);
  const hostIf = `qh${tag}`.slice(0, 15);
  const hostname = opts.hostname ?? `fault-host-${tag}`;
  const used = await usedPrefixes();
  let prefix = "";
  for (let i = 0; i < 100 && (prefix === "" || used.has(prefix)); i++) {
    prefix = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}`;
  }
  const gateway = `${prefix}.1`;
  const hostAddr = `${prefix}.2`;
  const inNs = (...args: string[]) => mustRun("ip", ["netns", "exec", name, ...args]);

  const destroy = async () => {
    const r = await runProgram("ip", ["netns", "pids", name]);
    for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) signal(pid, "SIGKILL");
    await runProgram("ip", ["netns", "del", name]);
    // Deleting the namespace deletes its end of the pair, which deletes ours; make sure.
    await runProgram("ip", ["link", "del", rootIf]);
  };

  try {
    await mustRun("ip", ["netns", "add", name]);
    await mustRun("ip", ["link", "add", rootIf, "type", "veth", "peer", "name", hostIf]);
    await mustRun("ip", ["link", "set", hostIf, "netns", name]);
    await mustRun("ip", ["addr", "add", `${gateway}/30`, "dev", rootIf]);
    await mustRun("ip", ["link", "set", rootIf, "up"]);
    await inNs("ip", "addr", "add", `${hostAddr}/30`, "dev", hostIf);
    await inNs("ip", "link", "set", hostIf, "up");
    await inNs("ip", "link", "set", "lo", "up");
    // Permanent neighbour entries on both sides: with the link down no ARP query fails, so a
    // connection attempt is not told EHOSTUNREACH after ~3 s; its packets just vanish, as behind
    // a dead router, and it times out.
    const mac = async (args: string[]) =>
      /link\/ether ([0-9a-f:]+)/.exec((await mustRun("ip", args)).stdout)?.[1];
    const rootMac = await mac(["-o", "link", "show", rootIf]);
    const hostMac = await mac(["-n", name, "-o", "link", "show", hostIf]);
    if (!rootMac || !hostMac) throw new Error("cannot read the veth pair's MAC addresses");
    await inNs(
      "ip",
      "neigh",
      "replace",
      gateway,
      "lladdr",
      rootMac,
      "dev",
      hostIf,
      "nud",
      "permanent",
    );
    await mustRun("ip", [
      "neigh",
      "replace",
      hostAddr,
      "lladdr",
      hostMac,
      "dev",
      rootIf,
      "nud",
      "permanent",
    ]);
  } catch (err) {
    await destroy();
    throw err;
  }

  let isCut = false;
  return {
    name,
    hostAddr,
    gateway,
    hostname,
    get isCut() {
      return isCut;
    },
    cut: async () => {
      await mustRun("ip", ["link", "set", rootIf, "down"]);
      isCut = true;
    },
    heal: async () => {
      await mustRun("ip", ["link", "set", rootIf, "up"]);
      isCut = false;
    },
    argv: (argv) => [
      "ip",
      "netns",
      "exec",
      name,
      "unshare",
      "--uts",
      "--",
      "sh",
      "-c",
      'hostname "$0" && exec "$@"',
      hostname,
      ...argv,
    ],
    pids: async () => {
      const r = await runProgram("ip", ["netns", "pids", name]);
      return r.stdout.split(/\s+/).filter(Boolean).map(Number);
    },
    [Symbol.asyncDispose]: destroy,
  };
}
