/**
 * The dashboard server: `Deno.serve` over src/app/, with the page embedded in the program (text
 * imports are part of the module graph, so `deno compile` carries them).
 *
 * Each request goes through, in order:
 * 1. on a loopback bind, the Host check (DNS rebinding): a loopback name, or the public URL's host;
 * 2. the access token, on every path: `Authorization: Bearer`, or the login cookie, which a GET
 *    of a page with `?token=<token>` sets before moving on to the same page without it;
 * 3. for /api/: the cross-origin refusal, and for POST the CSRF token header (unless the token
 *    came in the Authorization header);
 * 4. the route.
 */
import { type Clock, systemClock } from "../core/clock.ts";
import { Conflict, InvalidInput } from "../core/errors.ts";
import type { Ctx } from "../app/queue.ts";
import type { Store } from "../store/store.ts";
import { handleApi, statsPayload } from "./api.ts";
import { METRICS_CONTENT_TYPE, prometheusMetrics } from "../app/metrics.ts";
import { StatsHub } from "./events.ts";
import { errorResponse, HttpError, json, withSecurityHeaders } from "./http.ts";
import {
  crossOriginReason,
  CSRF_HEADER,
  findAccessToken,
  hostOfHeader,
  isLoopbackHost,
  loginCookie,
  type PublicUrl,
  randomToken,
  safeEqual,
  validateAccessToken,
} from "./security.ts";
import INDEX_HTML from "./assets/index.html" with { type: "text" };
import APP_JS from "./assets/app.js" with { type: "text" };
import STYLE_CSS from "./assets/style.css" with { type: "text" };
import FAVICON_SVG from "./assets/favicon.svg" with { type: "text" };
import { quote } from "../core/text.ts";

export interface DashboardOptions {
  store: Store;
  clock?: Clock;
  /** Address to bind; default 127.0.0.1. */
  hostname?: string;
  /** Port; default 3000; 0 picks a free one. */
  port?: number;
  /** Access token every request must carry (src/dashboard/token.ts says where it comes from). */
  token: string;
  /** How often live stats are pushed to open pages, ms (default 1000). */
  pushIntervalMs?: number;
  /** Where internal errors are logged (default stderr). */
  log?: (line: string) => void;
  /**
   * The address people open when a proxy serves the dashboard (`--public-url`, parsed by
   * security.ts `parsePublicUrl`): its Origin and Host are accepted, and `url` / `loginUrl` name it.
   */
  publicUrl?: PublicUrl;
}

export interface Dashboard {
  /** Base URL, e.g. http://127.0.0.1:3000/ or the public URL (without the access token). */
  url: string;
  /** The URL that logs a browser in: `url` with `?token=<token>`. A secret: print it only on request. */
  loginUrl: string;
  hostname: string;
  port: number;
  /** The per-server CSRF token embedded in the page. */
  csrfToken: string;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
  shutdown(): Promise<void>;
}

const ASSETS: Record<string, { body: string; type: string }> = {
  "/assets/app.js": { body: APP_JS, type: "text/javascript; charset=utf-8" },
  "/assets/style.css": { body: STYLE_CSS, type: "text/css; charset=utf-8" },
  "/favicon.svg": { body: FAVICON_SVG, type: "image/svg+xml" },
};

function asset(body: string, type: string, status = 200, extra: HeadersInit = {}): Response {
  const headers = withSecurityHeaders({ "content-type": type, "cache-control": "no-cache" });
  for (const [k, v] of new Headers(extra)) headers.set(k, v);
  return new Response(body, { status, headers });
}

function urlHost(hostname: string): string {
  if (hostname === "0.0.0.0" || hostname === "::") return "localhost";
  return hostname.includes(":") ? `[${hostname}]` : hostname;
}

/** The base URL people open for a bind address and port. */
export function dashboardUrl(hostname: string, port: number): string {
  return `http://${urlHost(hostname)}:${port}/`;
}

/** The login URL: the base URL carrying the access token. */
export function loginUrlOf(baseUrl: string, token: string): string {
  return `${baseUrl}?token=${encodeURIComponent(token)}`;
}

/** Validates the bind address and port before anything is opened. */
export function checkBind(p: { hostname: string; port: number }): void {
  if (!Number.isInteger(p.port) || p.port < 0 || p.port > 65535) {
    throw new InvalidInput(`Invalid port: expected a whole number from 0 to 65535, got ${p.port}`);
  }
  if (p.hostname.trim() === "") throw new InvalidInput("Invalid host: it is empty");
}

const WWW_AUTHENTICATE = { "www-authenticate": 'Bearer realm="queuectl"' };

/**
 * What a person who opens the dashboard without its token reads: how the owner gets the login
 * URL. It names no path and no secret (anyone who can reach the port reads it).
 */
function loginHelp(hostname: string, port: number, publicUrl?: PublicUrl): string {
  const flags = [
    ...(hostname === "127.0.0.1" ? [] : ["--host", hostname]),
    ...(port === 3000 ? [] : ["--port", String(port)]),
    ...(publicUrl === undefined ? [] : ["--public-url", publicUrl.href]),
  ];
  return [
    "401 Unauthorized: this queuectl dashboard needs its access token.",
    "",
    "Open the link that `queuectl dashboard` printed when it started, or print it again, as the",
    "user who started it (with the same --db):",
    "",
    `    queuectl dashboard --print-url${flags.length ? " " + flags.join(" ") : ""}`,
    "",
    "The generated token is kept in the file <database>-dashboard-token beside an SQLite database",
    "(queuectl-dashboard-token in queuectl's data directory for PostgreSQL), readable only by that",
    "user; a token given with --token-file or QUEUECTL_DASHBOARD_TOKEN is in that file or variable.",
    "",
  ].join("\n");
}

function escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll('"', "&quot;").replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;");
}

/**
 * The answer to the login URL: the cookie, and a page that moves on at once to `target` (the same
 * page without the token), replacing the login URL in the tab's history. Not a 303: after a
 * redirect, a navigation that started on another site (the `--open` file, a link in a web mail)
 * is still cross-site, and the browser would not send the SameSite=Strict cookie it just got.
 */
function loggedIn(target: string, cookie: string): Response {
  const href = escapeHtml(target);
  const headers = withSecurityHeaders({
    "content-type": "text/html; charset=utf-8",
    "set-cookie": cookie,
    "cache-control": "no-store",
  });
  const body = `<!doctype html>\n<meta http-equiv="refresh" content="0; url=${href}">\n` +
    `<title>queuectl</title>\n<p>Logged in. <a href="${href}">Continue to the dashboard</a></p>\n`;
  return new Response(body, { headers });
}

/** The page of `dashboard --open`'s file: it moves on at once to `url` (the login URL). */
export function redirectHtml(url: string): string {
  const href = escapeHtml(url);
  return `<!doctype html>\n<meta http-equiv="refresh" content="0; url=${href}">\n` +
    `<title>queuectl dashboard</title>\n<p><a href="${href}">Open the queuectl dashboard</a></p>\n`;
}

/**
 * Starts the dashboard and returns once it listens. Throws InvalidInput for a bad address, port or
 * token, Conflict when the port is taken.
 */
export function startDashboard(opts: DashboardOptions): Dashboard {
  const hostname = opts.hostname ?? "127.0.0.1";
  checkBind({ hostname, port: opts.port ?? 3000 });
  const token = validateAccessToken(opts.token);
  const loopback = isLoopbackHost(hostname);
  const publicUrl = opts.publicUrl;
  const ctx: Ctx = { store: opts.store, clock: opts.clock ?? systemClock };
  const log = opts.log ?? ((line: string) => console.error(line));
  const csrfToken = randomToken();
  const page = INDEX_HTML.replace("{{CSRF_TOKEN}}", csrfToken);
  const hub = new StatsHub(() => statsPayload(ctx), opts.pushIntervalMs ?? 1000, log);
  let port = opts.port ?? 3000;
  const refuse = () =>
    asset(loginHelp(hostname, port, publicUrl), "text/plain; charset=utf-8", 401, {
      ...WWW_AUTHENTICATE,
      "cache-control": "no-store",
    });

  const handle = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const isApi = url.pathname === "/api" || url.pathname.startsWith("/api/");
    try {
      // A page of another site whose name was rebound to 127.0.0.1 sends its own name.
      if (loopback) {
        const host = req.headers.get("host") ?? "";
        const viaProxy = publicUrl !== undefined && host.toLowerCase() === publicUrl.host;
        if (!viaProxy && !isLoopbackHost(hostOfHeader(host))) {
          throw new HttpError(403, `Unexpected Host header ${quote(host)}`);
        }
      }
      // The login URL: exchange ?token= for the cookie, then show the same page without it.
      const offered = url.searchParams.get("token");
      if (!isApi && offered !== null && (req.method === "GET" || req.method === "HEAD")) {
        if (!safeEqual(offered, token)) return refuse();
        url.searchParams.delete("token");
        // Relative ("./" and the last segment of the path): behind a proxy the page's path has a
        // prefix this server never sees (`/queue/` served as `/`).
        const page = `./${url.pathname.slice(url.pathname.lastIndexOf("/") + 1)}`;
        return loggedIn(page + url.search, loginCookie(token, port));
      }
      const credential = findAccessToken(req, token, port);
      if (credential === null) {
        if (isApi) throw new HttpError(401, "Missing or wrong access token", WWW_AUTHENTICATE);
        return refuse();
      }
      if (isApi) {
        const refused = crossOriginReason(req, publicUrl?.origin);
        if (refused) throw new HttpError(403, refused);
        if (req.method === "POST" && credential !== "header") {
          const sent = req.headers.get(CSRF_HEADER);
          if (sent === null || !safeEqual(sent, csrfToken)) {
            throw new HttpError(403, "Missing or wrong X-CSRF-Token header (reload the page)");
          }
        }
        if (url.pathname === "/api/events") {
          if (req.method !== "GET") {
            throw new HttpError(405, `Method ${req.method} not allowed here`, { allow: "GET" });
          }
          const headers = withSecurityHeaders({
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-store",
          });
          return new Response(hub.subscribe(), { headers });
        }
        return await handleApi(ctx, req, url);
      }
      if (req.method !== "GET" && req.method !== "HEAD") {
        throw new HttpError(405, `Method ${req.method} not allowed here`, { allow: "GET" });
      }
      if (url.pathname === "/metrics") {
        // Prometheus scrapes with the same token (Authorization: Bearer), README "Metrics".
        const headers = withSecurityHeaders({
          "content-type": METRICS_CONTENT_TYPE,
          "cache-control": "no-store",
        });
        const body = req.method === "HEAD" ? null : await prometheusMetrics(ctx);
        return new Response(body, { headers });
      }
      if (url.pathname === "/" || url.pathname === "/index.html") {
        const headers = withSecurityHeaders({
          "content-type": "text/html; charset=utf-8",
          "cache-control": "no-store",
        });
        return new Response(page, { headers });
      }
      const found = ASSETS[url.pathname];
      if (found) return asset(found.body, found.type);
      return json(404, { error: `Not found: ${url.pathname}` });
    } catch (err) {
      return errorResponse(err, log);
    }
  };

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({ hostname, port, onListen: () => {} }, handle);
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) {
      throw new Conflict(`Port ${port} on ${hostname} is already in use`, {
        hint: "choose another with --port",
      });
    }
    if (err instanceof Deno.errors.AddrNotAvailable || err instanceof TypeError) {
      throw new InvalidInput(`Cannot listen on ${hostname}:${port}: ${(err as Error).message}`);
    }
    throw err;
  }
  port = server.addr.port;
  let stopping: Promise<void> | undefined;
  const base = publicUrl?.href ?? dashboardUrl(hostname, port);
  return {
    url: base,
    loginUrl: loginUrlOf(base, token),
    hostname,
    port,
    csrfToken,
    finished: server.finished,
    shutdown: () => {
      stopping ??= (async () => {
        hub.close();
        await server.shutdown();
      })();
      return stopping;
    },
  };
}
