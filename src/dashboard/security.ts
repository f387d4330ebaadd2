/**
 * The dashboard's defences, as small pure functions:
 *
 * - Access token, on every bind: every request must carry it, as `Authorization: Bearer <token>`
 *   or as the cookie the server sets when a page is opened once as `/?token=<token>` (the login
 *   URL). Where the token comes from (generated into a 0600 file, --token-file, the environment)
 *   is src/dashboard/token.ts.
 * - DNS rebinding: on a loopback bind, the Host header must name a loopback address, or the host
 *   of the public URL the owner gave (`--public-url`: a proxy in front that keeps the Host).
 * - CSRF: state changes are POST only, refused when the browser says the request is cross-origin
 *   (Origin, Sec-Fetch-Site), and must carry the per-server CSRF token (embedded in the page) in
 *   the `X-CSRF-Token` header. A custom header cannot be sent cross-origin without a CORS
 *   preflight, which this server never grants.
 */
import { InvalidInput } from "../core/errors.ts";
import { quote } from "../core/text.ts";

export const CSRF_HEADER = "x-csrf-token";
export const TOKEN_ENV = "QUEUECTL_DASHBOARD_TOKEN";
const TOKEN_PATTERN = /^[A-Za-z0-9._~+\/=-]{16,256}$/;

/** True for names and addresses that only this machine can reach. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  return h === "localhost" || h.endsWith(".localhost") || h === "::1" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** The access token must be long enough to resist guessing and safe in a header and a cookie. */
export function validateAccessToken(token: string): string {
  if (!TOKEN_PATTERN.test(token)) {
    throw new InvalidInput(
      "Invalid dashboard token: use 16 to 256 letters, digits or . _ ~ + / = -",
      { hint: "for example: openssl rand -hex 24" },
    );
  }
  return token;
}

/** 32 random bytes, base64url. */
export function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

/** Compares two secrets in time independent of where they differ. */
export function safeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** The host part of a Host header: `localhost:3000` → `localhost`, `[::1]:80` → `::1`. */
export function hostOfHeader(host: string): string {
  const bracket = /^\[([^\]]*)\](?::\d+)?$/.exec(host);
  if (bracket) return bracket[1];
  return host.replace(/:\d+$/, "");
}

export function cookieName(port: number): string {
  return `queuectl_token_${port}`;
}

export function readCookie(header: string | null, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export type Credential = "header" | "cookie";

/**
 * Where the request carries the access token (`Authorization: Bearer`, or the login cookie), or
 * null. A wrong token in either place counts as none.
 */
export function findAccessToken(req: Request, token: string, port: number): Credential | null {
  const auth = req.headers.get("authorization");
  if (auth !== null && /^Bearer /i.test(auth) && safeEqual(auth.slice(7).trim(), token)) {
    return "header";
  }
  const cookie = readCookie(req.headers.get("cookie"), cookieName(port));
  if (cookie !== undefined && safeEqual(cookie, token)) return "cookie";
  return null;
}

/** The Set-Cookie value that logs a browser in: session cookie, script-proof, never cross-site. */
export function loginCookie(token: string, port: number): string {
  return `${cookieName(port)}=${token}; Path=/; HttpOnly; SameSite=Strict`;
}

/** The address people open when a proxy serves the dashboard (`--public-url`). */
export interface PublicUrl {
  /** The URL, its path ending in "/": `https://queue.example.com/queue/`. */
  href: string;
  /** What browsers send as Origin: `https://queue.example.com`. */
  origin: string;
  /** What a proxy that keeps the Host header sends: `queue.example.com` (with a port if any). */
  host: string;
}

/**
 * Validates `--public-url`: an http(s) URL with no user, password, query or fragment; its path is
 * where the proxy serves the dashboard's root (a trailing "/" is added).
 */
export function parsePublicUrl(text: string): PublicUrl {
  // A URL holding a password is not echoed (the error line may end up in a log).
  const bad = (why: string, shown = ` ${quote(text)}`) =>
    new InvalidInput(`Invalid --public-url${shown}: ${why}`, {
      hint: "give the address your proxy serves it at, e.g. https://queue.example.com/",
    });
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad("not a URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw bad("use http:// or https://");
  if (url.username || url.password) throw bad("no user name or password in it", "");
  if (url.search || url.hash || text.includes("?") || text.includes("#")) {
    throw bad("no query or fragment");
  }
  const path = url.pathname.endsWith("/") ? url.pathname : `${url.pathname}/`;
  return { href: `${url.origin}${path}`, origin: url.origin, host: url.host };
}

/**
 * Why a request must be refused as cross-origin, or null when it is same-origin (or comes from a
 * program that sends neither Origin nor Sec-Fetch-Site, such as curl). Same origin: the Origin is
 * `http://<Host>`, or the public URL's origin (the page was served through the proxy, which may
 * have rewritten the Host and speaks HTTPS to the browser).
 */
export function crossOriginReason(req: Request, publicOrigin?: string): string | null {
  const site = req.headers.get("sec-fetch-site");
  // "none": the user typed the address or opened a bookmark.
  if (site !== null && site !== "same-origin" && site !== "none") {
    return `cross-origin request refused (Sec-Fetch-Site: ${site})`;
  }
  const origin = req.headers.get("origin");
  if (origin !== null) {
    const host = req.headers.get("host");
    const same = (host !== null && origin === `http://${host}`) || origin === publicOrigin;
    if (!same) {
      return `cross-origin request refused (Origin: ${origin})`;
    }
  }
  return null;
}
