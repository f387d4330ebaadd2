/**
 * `queuectl dashboard [--port 3000] [--host 127.0.0.1] [--public-url URL] [--open] [--token-file FILE]
 * [--print-url]`:
 * serves the web dashboard until Ctrl-C (SIGINT) or SIGTERM. Every request needs the access token
 * (src/dashboard/token.ts says where it comes from); the token is printed only when it was just
 * generated, or on request (`--print-url`). The server module is loaded only here.
 */
import { buildCommand } from "@stricli/core";
import { InvalidInput } from "../core/errors.ts";
import { quote } from "../core/text.ts";
import type { AccessToken } from "../dashboard/token.ts";
import type { PublicUrl } from "../dashboard/security.ts";
import {
  type CliContext,
  databaseUrl,
  type GlobalFlags,
  globalFlags,
  REMOVED_FLAG_BRIEF,
  withoutStore,
  withStore,
} from "./context.ts";
import type { Output } from "./render.ts";

interface DashboardFlags extends GlobalFlags {
  port: number;
  host: string;
  open: boolean;
  tokenFile?: string;
  printUrl: boolean;
  /** Where a proxy in front serves it (validated by security.ts parsePublicUrl). */
  publicUrl?: string;
  /** Removed (visible in `ps`); kept hidden only to say so. */
  token?: string;
}

function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d{1,5}$/.test(text.trim()) || n > 65535) {
    throw new InvalidInput(
      `Invalid --port: expected a whole number from 0 to 65535, got ${quote(text)}`,
    );
  }
  return n;
}

const TOKEN_VAR = "QUEUECTL_DASHBOARD_TOKEN";

/**
 * Opens the dashboard in the desktop's browser without putting the token on a command line
 * (xdg-open's and the browser's argv are visible in `ps`): the browser is given a file only this
 * user can read, holding `page`, which moves on to the login URL. Returns the file once written,
 * to remove at shutdown; the launcher runs on in the background. Failures are reported.
 */
async function openBrowser(
  page: string,
  redirectFile: string,
  note: (s: string) => void,
): Promise<string | undefined> {
  try {
    // A fresh file: never one someone else left there for us to write the token into.
    await Deno.remove(redirectFile).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    await Deno.writeTextFile(
      redirectFile,
      page,
      { mode: 0o600, createNew: true },
    );
  } catch (err) {
    note(`could not open a browser: cannot write ${redirectFile}: ${(err as Error).message}`);
    return undefined;
  }
  const fileUrl = fileUrlOf(redirectFile);
  const [cmd, ...args] = Deno.build.os === "windows"
    ? ["cmd", "/c", "start", '""', fileUrl]
    : Deno.build.os === "darwin"
    ? ["open", fileUrl]
    : ["xdg-open", fileUrl];
  // The browser may outlive the dashboard: it inherits no token from our environment.
  const env = Deno.env.toObject();
  delete env[TOKEN_VAR];
  // Not awaited: a launcher that never returns must not hold up Ctrl-C.
  void (async () => {
    try {
      const child = new Deno.Command(cmd, {
        args,
        env,
        clearEnv: true,
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      const status = await child.status;
      if (!status.success) note(`could not open a browser (${cmd} exited ${status.code})`);
    } catch (err) {
      note(`could not open a browser: ${err instanceof Error ? err.message : err}`);
    }
  })();
  return redirectFile;
}

/** `file://` URL of an absolute path (each segment percent-encoded; a drive letter kept). */
function fileUrlOf(path: string): string {
  const parts = path.replaceAll("\\", "/").split("/").map((part, i) =>
    i <= 1 && /^[A-Za-z]:$/.test(part) ? part : encodeURIComponent(part)
  );
  const joined = parts.join("/");
  return `file://${joined.startsWith("/") ? "" : "/"}${joined}`;
}

/**
 * Resolves on the first SIGINT or SIGTERM (SIGINT only on Windows), but a SIGINT ignored since the
 * start (a shell's `cmd &`), which stays ignored (app/signals.ts).
 */
function untilSignal(ignored: ReadonlySet<Deno.Signal>): Promise<string> {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const stopping = signals.filter((s) => !ignored.has(s));
  return new Promise((resolve) => {
    const handlers = stopping.map((signal) => {
      const handler = () => {
        stopping.forEach((s, i) => Deno.removeSignalListener(s, handlers[i]));
        resolve(signal);
      };
      Deno.addSignalListener(signal, handler);
      return handler;
    });
  });
}

/** The flags that make `--print-url` name this dashboard (the same --db is needed too). */
function printUrlCommand(flags: DashboardFlags, port: number): string {
  const words = ["queuectl dashboard --print-url"];
  if (flags.host !== "127.0.0.1") words.push(`--host ${flags.host}`);
  if (port !== 3000) words.push(`--port ${port}`);
  if (flags.publicUrl !== undefined) words.push(`--public-url ${flags.publicUrl}`);
  if (flags.db !== undefined) words.push("--db <same database>");
  return words.join(" ");
}

/** One line for people on where the token came from; never the token itself. */
function tokenNote(origin: AccessToken["origin"], printUrl: string): string {
  switch (origin.kind) {
    case "file":
      return `access token: from ${origin.path}`;
    case "env":
      return `access token: from ${TOKEN_VAR}`;
    case "generated":
      return origin.created
        ? `access token: new, kept in ${origin.path} (readable only by you); ` +
          `open the link above once to log in`
        : `access token: kept in ${origin.path}; \`${printUrl}\` prints the link that logs in`;
  }
}

function tokenJson(origin: AccessToken["origin"]): Record<string, unknown> {
  return {
    token_source: origin.kind,
    ...(origin.kind === "env" ? {} : { token_file: origin.path }),
    ...(origin.kind === "generated" ? { token_created: origin.created } : {}),
  };
}

/** The generated token of the database in force (the default data directory is created). */
async function generated(ctx: CliContext, flags: DashboardFlags): Promise<AccessToken> {
  const { generatedToken } = await import("../dashboard/token.ts");
  return await generatedToken(await databaseUrl(flags, ctx.env), ctx.env);
}

async function printUrl(
  ctx: CliContext,
  flags: DashboardFlags,
  given: AccessToken | undefined,
  publicUrl: PublicUrl | undefined,
  out: Output,
): Promise<void> {
  const server = await import("../dashboard/server.ts");
  const access = given ?? await generated(ctx, flags);
  const base = publicUrl?.href ?? server.dashboardUrl(flags.host, flags.port);
  const url = server.loginUrlOf(base, access.token);
  if (out.json) out.printJson({ url, ...tokenJson(access.origin) });
  else out.line(url);
  if (access.origin.kind === "generated" && access.origin.created) {
    out.note(`access token: new, kept in ${access.origin.path} (readable only by you)`);
  }
}

export const dashboardCommand = () =>
  buildCommand({
    func: async function (this: CliContext, flags: DashboardFlags) {
      let given: AccessToken | undefined;
      let publicUrl: PublicUrl | undefined;
      let ok = false;
      // Validate the flags and an explicit token before the database is opened or created.
      await withoutStore(this, flags, async () => {
        if (flags.token !== undefined) {
          throw new InvalidInput(
            "--token is not accepted: a token on the command line is visible to every user in ps",
            {
              hint:
                `put it in a file only you can read and pass --token-file FILE, or set ${TOKEN_VAR}`,
            },
          );
        }
        const { checkBind } = await import("../dashboard/server.ts");
        checkBind({ hostname: flags.host, port: flags.port });
        if (flags.publicUrl !== undefined) {
          const { parsePublicUrl } = await import("../dashboard/security.ts");
          publicUrl = parsePublicUrl(flags.publicUrl);
        }
        if (flags.printUrl && flags.port === 0) {
          throw new InvalidInput("--print-url needs the port the dashboard listens on, not 0", {
            hint: "pass the --port it was started with",
          });
        }
        const { givenToken } = await import("../dashboard/token.ts");
        given = await givenToken({ tokenFile: flags.tokenFile, env: this.env });
        ok = true;
      });
      if (!ok) return;
      if (flags.printUrl) {
        await withoutStore(this, flags, (out) => printUrl(this, flags, given, publicUrl, out));
        return;
      }
      await withStore(this, flags, async (app, out, dbUrl) => {
        const { dashboardUrl, redirectHtml, startDashboard } = await import(
          "../dashboard/server.ts"
        );
        const { generatedToken } = await import("../dashboard/token.ts");
        const access = given ?? await generatedToken(dbUrl, this.env);
        const dashboard = startDashboard({
          ...(publicUrl === undefined ? {} : { publicUrl }),
          store: app.store,
          clock: app.clock,
          hostname: flags.host,
          port: flags.port,
          token: access.token,
        });
        const { keepIgnoredSignals } = await import("../app/signals.ts");
        const stopped = untilSignal(await keepIgnoredSignals());
        // The token is shown once, when it is new; otherwise only on request (--print-url).
        const fresh = access.origin.kind === "generated" && access.origin.created;
        const printed = fresh ? dashboard.loginUrl : dashboard.url;
        if (out.json) {
          out.printJson({
            url: dashboard.url,
            ...(fresh ? { login_url: dashboard.loginUrl } : {}),
            hostname: dashboard.hostname,
            port: dashboard.port,
            ...(publicUrl === undefined ? {} : { public_url: dashboard.url }),
            ...tokenJson(access.origin),
          });
        } else {
          const local = dashboardUrl(dashboard.hostname, dashboard.port);
          const via = local === dashboard.url ? "" : `served on ${local}; `;
          out.line(`queuectl dashboard: ${printed} (${via}Ctrl-C to stop)`);
          out.note(tokenNote(access.origin, printUrlCommand(flags, dashboard.port)));
        }
        const { isLoopbackHost } = await import("../dashboard/security.ts");
        if (!isLoopbackHost(flags.host)) {
          out.note(
            `listening on ${flags.host}: plain HTTP, so the token and every page cross the ` +
              "network unencrypted (prefer an SSH tunnel, or a TLS proxy in front)",
          );
        }
        let redirect: string | undefined;
        if (flags.open) {
          const { generatedTokenPath } = await import("../dashboard/token.ts");
          const file = generatedTokenPath(dbUrl, this.env).replace(/-token$/, "-open.html");
          const page = redirectHtml(dashboard.loginUrl);
          redirect = await openBrowser(page, file, (s) => out.note(s));
        }
        await stopped;
        await dashboard.shutdown();
        if (redirect) await Deno.remove(redirect).catch(() => {});
      }, { longRunning: true });
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
          brief: "Address to bind",
          default: "127.0.0.1",
          placeholder: "addr",
        },
        publicUrl: {
          kind: "parsed",
          parse: String,
          brief: "Where a proxy in front serves it (https://host/path/): its origin and host are " +
            "accepted, and the printed links name it",
          optional: true,
          placeholder: "url",
        },
        open: {
          kind: "boolean",
          brief: "Open the dashboard in a browser, logged in",
          default: false,
        },
        tokenFile: {
          kind: "parsed",
          parse: String,
          brief:
            "File holding the access token (default $QUEUECTL_DASHBOARD_TOKEN, else generated)",
          optional: true,
          placeholder: "file",
        },
        printUrl: {
          kind: "boolean",
          brief: "Print the URL that logs a browser in (it carries the token) and exit",
          default: false,
        },
        token: {
          kind: "parsed",
          parse: String,
          brief: `${REMOVED_FLAG_BRIEF}visible in ps; use --token-file or QUEUECTL_DASHBOARD_TOKEN`,
          optional: true,
          hidden: true,
          placeholder: "token",
        },
      },
    },
    docs: {
      brief:
        "Serve the web dashboard: live counts, jobs, DLQ, workers, schedules, enqueue; /metrics",
    },
  });
