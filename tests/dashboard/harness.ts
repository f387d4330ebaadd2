/** A dashboard on a temp SQLite store, served in-process on a free port, and a small client. */
import { ManualClock } from "../../src/core/clock.ts";
import type { Clock } from "../../src/core/clock.ts";
import { type Dashboard, startDashboard } from "../../src/dashboard/server.ts";
import { cookieName, randomToken } from "../../src/dashboard/security.ts";
import type { Store } from "../../src/store/store.ts";
import { tempStore } from "../helpers/temp.ts";

export interface Harness extends AsyncDisposable {
  store: Store;
  dbPath: string;
  clock: ManualClock;
  dashboard: Dashboard;
  /** Internal errors the server logged. */
  logs: string[];
  /** The origin a browser on the page would send. */
  origin: string;
  /** The access token, and the `name=value` cookie a logged-in browser sends. */
  token: string;
  cookie: string;
}

export async function harness(
  opts: { token?: string; clock?: Clock; pushIntervalMs?: number; store?: Store } = {},
): Promise<Harness> {
  const temp = await tempStore();
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 0));
  const logs: string[] = [];
  const token = opts.token ?? randomToken();
  const dashboard = startDashboard({
    store: opts.store ?? temp.store,
    clock: opts.clock ?? clock,
    hostname: "127.0.0.1",
    port: 0,
    token,
    pushIntervalMs: opts.pushIntervalMs ?? 50,
    log: (line) => logs.push(line),
  });
  return {
    store: temp.store,
    dbPath: temp.dbPath,
    clock,
    dashboard,
    logs,
    origin: `http://127.0.0.1:${dashboard.port}`,
    token,
    cookie: `${cookieName(dashboard.port)}=${token}`,
    [Symbol.asyncDispose]: async () => {
      await dashboard.shutdown();
      await temp[Symbol.asyncDispose]();
    },
  };
}

export interface ApiResult {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  body: any;
}

export interface CallOptions {
  method?: string;
  body?: unknown;
  /** Raw body text (sent as is). */
  raw?: string;
  headers?: Record<string, string>;
  /** Send the headers a same-origin page sends: Origin, Sec-Fetch-Site, X-CSRF-Token (default). */
  browser?: boolean;
  /** The credential sent: the login cookie (default, as a logged-in page), the bearer header, none. */
  auth?: "cookie" | "bearer" | "none";
}

/** Calls the API the way the logged-in page does (cookie, same origin, CSRF header) unless told otherwise. */
export async function call(h: Harness, path: string, opts: CallOptions = {}): Promise<ApiResult> {
  const method = opts.method ?? "GET";
  const headers: Record<string, string> = {};
  const auth = opts.auth ?? "cookie";
  if (auth === "cookie") headers["cookie"] = h.cookie;
  if (auth === "bearer") headers["authorization"] = `Bearer ${h.token}`;
  if (opts.browser !== false) {
    headers["sec-fetch-site"] = "same-origin";
    if (method !== "GET") {
      headers["origin"] = h.origin;
      headers["x-csrf-token"] = h.dashboard.csrfToken;
    }
  }
  let body: string | undefined = opts.raw;
  if (opts.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  const res = await fetch(new URL(path, h.dashboard.url), {
    method,
    headers: { ...headers, ...opts.headers },
    body,
    redirect: "manual",
  });
  const text = await res.text();
  let parsed: unknown = text;
  if ((res.headers.get("content-type") ?? "").startsWith("application/json")) {
    parsed = JSON.parse(text);
  }
  return { status: res.status, headers: res.headers, body: parsed };
}
