/**
 * What the fault suite needs from the machine, and the skip-or-fail rule of
 * tests/helpers/services.ts applied to it: Linux (a platform: elsewhere the tests are skipped with a
 * line saying so); an own PostgreSQL cluster needs the server binaries (service "postgres"); a
 * partition or a tmpfs needs root (service "root"). Outside CI a test
 * whose needs are missing is skipped with a line saying why; in CI (unless the runner declares it
 * lacks the service) a test named "<suite>: <need> is available" fails instead.
 */
import { skipAllowedBecause } from "../services.ts";
import { partitionUnavailable } from "./partition.ts";
import { pgClusterUnavailable } from "./pg_cluster.ts";
import { tmpfsUnavailable } from "./tmpfs.ts";

export type Need = "pg-cluster" | "partition" | "tmpfs" | "linux";

const SERVICE = {
  "pg-cluster": "postgres",
  partition: "root",
  tmpfs: "root",
  linux: null,
} as const;

async function missing(need: Need): Promise<string | null> {
  switch (need) {
    case "linux":
      return Deno.build.os === "linux"
        ? null
        : "the fault harness reads Linux's process and lock tables (ps -o sid, /proc/locks)";
    case "pg-cluster":
      return pgClusterUnavailable();
    case "partition":
      return await partitionUnavailable();
    case "tmpfs":
      return tmpfsUnavailable();
  }
}

/**
 * Checks `needs` once for a test file: `{ ignore: false }` when all are met; else skips (a line
 * says why) when allowed, or registers a failing test and ignores the rest.
 */
export async function faultNeeds(suite: string, needs: Need[]): Promise<{ ignore: boolean }> {
  for (const need of needs) {
    const why = await missing(need);
    if (why === null) continue;
    const service = SERVICE[need];
    // A platform, not a service: skipped everywhere else, like the reliability tests on Windows.
    const allowed = service === null ? `this is ${Deno.build.os}` : skipAllowedBecause(service);
    if (allowed === null) {
      Deno.test(`${suite}: ${need} is available`, () => {
        throw new Error(`${need}: ${why}; CI requires it`);
      });
    } else {
      console.log(`skipping ${suite}: ${why}; ${allowed}`);
    }
    return { ignore: true };
  }
  return { ignore: false };
}
