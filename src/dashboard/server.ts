/**
 * The dashboard server: `Deno.serve` over src/app/, with the page embedded in the program (text
 * imports are part of the module graph, so `deno compile` carries them).
 *
 * Each request goes through, in order:
 * 1. Host check (DNS rebinding) when no access token is set;
 * 2. the access token, when set (header, cookie, or ?token= which sets the cookie);
 * 3. for /api/: the cross-origin refusal, and for POST the CSRF token header;
 * 4. the route.
 */
import { type Clock, systemClock } from "../core/clock.ts";
import { Conflict, InvalidInput } from "../core/errors.ts";
import type { Ctx } from "../app/queue.ts";
import type { Store } from "../store/store.ts";
import { handleApi, statsPayload } from "./api.ts";
import { StatsHub } from "./events.ts";
import { errorResponse, HttpError, json, withSecurityHeaders } from "./http.ts";
import {
  cookieName,
  crossOriginReason,
  CSRF_HEADER,
  findAccessToken,
  hostOfHeader,
  isLoopbackHost,
  randomToken,
  safeEqual,
  TOKEN_ENV,
  validateAccessToken,
} from "./security.ts";
import INDEX_HTML from "./assets/index.html" with { type: "text" };
import APP_JS from "./assets/app.js" with { type: "text" };
import STYLE_CSS from "./assets/style.css" with { type: "text" };
import FAVICON_SVG from "./assets/favicon.svg" with { type: "text" };

export interface DashboardOptions {
  store: Store;
  clock?: Clock;
  /** Address to bind; default 127.0.0.1. Anything but loopback requires `token`. */
  hostname?: string;
  /** Port; default 3000; 0 picks a free one. */
  port?: number;
  /** Access token every request must carry. */
  token?: string;
  /** How often live stats are pushed to open pages, ms (default 1000). */
  pushIntervalMs?: number;
  /** Where internal errors are logged (default stderr). */
  log?: (line: string) => void;
}

export interface Dashboard {
  /** Base URL, e.g. http://127.0.0.1:3000/ (without the access token). */
  url: string;
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

function asset(body: string, type: string, status = 200): Response {
  const headers = withSecurityHeaders({ "content-type": type, "cache-control": "no-cache" });
  return new Response(body, { status, headers });
}

function urlHost(hostname: string): string {
  if (hostname === "0.0.0.0" || hostname === "::") return "localhost";
  return hostname.includes(":") ? `[${hostname}]` : hostname;
}

/**
 * Validates the bind address, port and access token (empty token = none) before anything is
 * opened: a non-loopback address needs a token.
 */
export function checkBind(
  p: { hostname: string; port: number; token?: string },
): { token: string | undefined } {
  if (!Number.isInteger(p.port) || p.port < 0 || p.port > 65535) {
    throw new InvalidInput(`Invalid port: expected a whole number from 0 to 65535, got ${p.port}`);
  }
  if (p.hostname.trim() === "") throw new InvalidInput("Invalid host: it is empty");
  const token = p.token === undefined || p.token === "" ? undefined : validateAccessToken(p.token);
  if (!isLoopbackHost(p.hostname) && token === undefined) {
    throw new InvalidInput(
      `Refusing to serve the dashboard on ${p.hostname} without an access token`,
      { hint: `pass --token or set ${TOKEN_ENV}, or bind to 127.0.0.1` },
    );
  }
  return { token };
}

/**
 * Starts the dashboard and returns once it listens. Throws InvalidInput for a non-loopback bind
 * without a token, Conflict when the port is taken.
 */
export function startDashboard(opts: DashboardOptions): Dashboard {
  const hostname = opts.hostname ?? "127.0.0.1";
  const { token } = checkBind({ hostname, port: opts.port ?? 3000, token: opts.token });
  const ctx: Ctx = { store: opts.store, clock: opts.clock ?? systemClock };
  const log = opts.log ?? ((line: string) => console.error(line));
  const csrfToken = randomToken();
  const page = INDEX_HTML.replace("{{CSRF_TOKEN}}", csrfToken);
  const hub = new StatsHub(() => statsPayload(ctx), opts.pushIntervalMs ?? 1000, log);
  let port = opts.port ?? 3000;

  const handle = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    try {
      if (token === undefined) {
        const host = req.headers.get("host") ?? "";
        if (!isLoopbackHost(hostOfHeader(host))) {
          throw new HttpError(403, `Unexpected Host header ${JSON.stringify(host)}`);
        }
      }
      let bearer = false;
      if (token !== undefined) {
        const source = findAccessToken(req, url, token, port);
        if (source === null) {
          if (url.pathname.startsWith("/api/")) {
            throw new HttpError(401, "Missing or wrong access token", {
              "www-authenticate": 'Bearer realm="queuectl"',
            });
          }
          return asset(
            "401: this dashboard needs its access token: open /?token=<token> once.\n",
            "text/plain; charset=utf-8",
            401,
          );
        }
        bearer = source === "header";
        if (source === "query" && !url.pathname.startsWith("/api/")) {
          url.searchParams.delete("token");
          const headers = withSecurityHeaders({
            location: url.pathname + url.search,
            "set-cookie": `${cookieName(port)}=${token}; Path=/; HttpOnly; SameSite=Strict`,
            "cache-control": "no-store",
          });
          return new Response(null, { status: 303, headers });
        }
      }
      if (url.pathname === "/api" || url.pathname.startsWith("/api/")) {
        const refused = crossOriginReason(req);
        if (refused) throw new HttpError(403, refused);
        if (req.method === "POST" && !bearer) {
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
  return {
    url: `http://${urlHost(hostname)}:${port}/`,
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
