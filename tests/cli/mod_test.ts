/**
 * appFor(args) builds only the route the first argument names; whatever stricli prints for that
 * route (help, flag errors, sub-route corrections) must be exactly what the whole tree prints.
 */
import assert from "node:assert/strict";
import type { Application } from "@stricli/core";
import { appFor, fullApp } from "../../src/cli/mod.ts";
import type { CliContext } from "../../src/cli/context.ts";
import { runInProcess } from "../helpers/in_process.ts";

// A database that cannot be opened: no argv below may reach a command body unnoticed.
const ENV = { QUEUECTL_DB: "/nonexistent-dir/queuectl.db", NO_COLOR: "1" };
const runWith = (app: Application<CliContext>, args: string[]) => runInProcess(app, args, ENV);

const TOP_LEVEL = [
  "enqueue",
  "list",
  "ls",
  "show",
  "logs",
  "status",
  "retry",
  "cancel",
  "purge",
  "wait",
  "dlq",
  "worker",
  "dashboard",
  "config",
  "completions",
  "__complete",
];

const CASES: string[][] = [
  ...TOP_LEVEL.map((route) => [route, "--help"]),
  ...TOP_LEVEL.map((route) => [route, "-h"]),
  ["dlq", "retry", "--help"],
  ["dlq", "ls", "--help"],
  ["dlq", "lst"],
  ["dlq"],
  ["worker", "start", "--bogus"],
  ["worker", "stp"],
  ["worker", "run", "--help"],
  ["config", "set"],
  ["config", "get", "--help"],
  ["list", "--state"],
  ["list", "--limit", "x"],
  ["status", "extra"],
  ["show"],
  ["enqueue", "--max-retries", "--help"],
  ["completions", "tcsh"],
  ["--version"],
  ["-v"],
  ["--version", "status"],
  ["-v", "--help"],
];

for (const args of CASES) {
  Deno.test(`appFor matches the whole tree: queuectl ${args.join(" ")}`, async () => {
    const narrow = await runWith(appFor(args), args);
    const whole = await runWith(fullApp(), args);
    assert.deepEqual(narrow, whole);
    assert.ok(narrow.stdout !== "" || narrow.stderr !== "", "printed nothing");
  });
}

Deno.test("appFor builds one route for a route name, the whole tree otherwise", () => {
  for (
    const args of [[], ["--help"], ["--version", "x"], ["stauts"], ["constructor"], ["toString"]]
  ) {
    assert.equal(appFor(args), fullApp(), `queuectl ${args.join(" ")}`);
  }
  assert.notEqual(appFor(["status"]), fullApp());
  // --version alone needs no route: stricli answers it at the root.
  assert.notEqual(appFor(["--version"]), fullApp());
  assert.notEqual(appFor(["-v"]), fullApp());
});
