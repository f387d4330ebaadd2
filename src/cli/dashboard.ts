/**
 * `queuectl dashboard [--port 3000] [--host 127.0.0.1] [--open] [--token T]`: serves the web
 * dashboard until Ctrl-C (SIGINT) or SIGTERM. The server module is loaded only here.
 */
import { buildCommand } from "@stricli/core";
import { InvalidInput } from "../core/errors.ts";
import {
  type CliContext,
  type GlobalFlags,
  globalFlags,
  withoutStore,
  withStore,
} from "./context.ts";

interface DashboardFlags extends GlobalFlags {
  port: number;
  host: string;
  open: boolean;
  token?: string;
}

function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d{1,5}$/.test(text.trim()) || n > 65535) {
    // stricli prefixes: Failed to parse "<text>" for port:
    throw new InvalidInput("expected a whole number from 0 to 65535");
  }
  return n;
}

/** Opens `url` in the desktop's browser; failures are only reported. */
async function openBrowser(url: string, note: (s: string) => void): Promise<void> {
  const [cmd, ...args] = Deno.build.os === "windows"
    ? ["cmd", "/c", "start", '""', url]
    : Deno.build.os === "darwin"
    ? ["open", url]
    : ["xdg-open", url];
  try {
    const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "null", stderr: "null" })
      .spawn();
    const status = await child.status;
    if (!status.success) note(`could not open a browser (${cmd} exited ${status.code})`);
  } catch (err) {
    note(`could not open a browser: ${err instanceof Error ? err.message : err}`);
  }
}

/** Resolves on the first SIGINT or SIGTERM (SIGINT only on Windows). */
function untilSignal(): Promise<string> {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  return new Promise((resolve) => {
    const handlers = signals.map((signal) => {
      const handler = () => {
        signals.forEach((s, i) => Deno.removeSignalListener(s, handlers[i]));
        resolve(signal);
      };
      Deno.addSignalListener(signal, handler);
      return handler;
    });
  });
}

export const dashboardCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: DashboardFlags) {
      const token = flags.token ?? this.env("QUEUECTL_DASHBOARD_TOKEN");
      let server: typeof import("../dashboard/server.ts") | undefined;
      // Validate the flags before the database is opened or created.
      await withoutStore(this, flags, async () => {
        const mod = await import("../dashboard/server.ts");
        mod.checkBind({ hostname: flags.host, port: flags.port, token });
        server = mod;
      });
      if (!server) return;
      const { startDashboard } = server;
      await withStore(this, flags, async (app, out) => {
        const dashboard = startDashboard({
          store: app.store,
          clock: app.clock,
          hostname: flags.host,
          port: flags.port,
          token,
        });
        const stopped = untilSignal();
        const link = token ? `${dashboard.url}?token=${encodeURIComponent(token)}` : dashboard.url;
        if (out.json) {
          out.printJson({ url: link, hostname: dashboard.hostname, port: dashboard.port });
        } else out.line(`queuectl dashboard: ${link} (Ctrl-C to stop)`);
        if (flags.open) void openBrowser(link, (s) => out.note(s));
        await stopped;
        await dashboard.shutdown();
      });
    },
    parameters: {
      flags: {
        ...globalFlags,
        port: {
          kind: "parsed",
          parse: parsePort,
          brief: "Port to listen on (0 = any free port)",
          default: "3000",
          placeholder: "n",
        },
        host: {
          kind: "parsed",
          parse: String,
          brief: "Address to bind; anything but loopback requires --token",
          default: "127.0.0.1",
          placeholder: "addr",
        },
        open: { kind: "boolean", brief: "Open the dashboard in a browser", default: false },
        token: {
          kind: "parsed",
          parse: String,
          brief: "Access token every request must carry (default $QUEUECTL_DASHBOARD_TOKEN)",
          optional: true,
          placeholder: "token",
        },
      },
    },
    docs: { brief: "Serve the web dashboard: live counts, jobs, DLQ, workers, enqueue" },
  });
