/** HTTP helpers of the dashboard: JSON responses, error mapping, security headers, bodies. */
import { ExitCodes, QueueError } from "../core/errors.ts";

/** Headers on every response: no sniffing, no framing, no referrer, scripts from us only. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; " +
    "frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

export function withSecurityHeaders(headers: HeadersInit = {}): Headers {
  const h = new Headers(headers);
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) h.set(k, v);
  return h;
}

export function json(status: number, body: unknown, headers: HeadersInit = {}): Response {
  const h = withSecurityHeaders(headers);
  h.set("content-type", "application/json; charset=utf-8");
  h.set("cache-control", "no-store");
  return new Response(JSON.stringify(body), { status, headers: h });
}

/** An HTTP error with its status, turned into `{ "error": "..." }`. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: HeadersInit = {}) {
    super(message);
    this.name = "HttpError";
  }
}

/** Maps a QueueError's exit code to an HTTP status. */
export function statusOf(err: QueueError): number {
  switch (err.exitCode) {
    case ExitCodes.invalidInput:
      return 400;
    case ExitCodes.notFound:
      return 404;
    case ExitCodes.conflict:
      return 409;
    case ExitCodes.storage:
      return 503;
    default:
      return 500;
  }
}

/**
 * The response for any error: QueueErrors and HttpErrors say what happened; anything else is a bug,
 * logged on the server and answered with a bare 500 (no message, no stack trace).
 */
export function errorResponse(err: unknown, log: (line: string) => void): Response {
  if (err instanceof HttpError) return json(err.status, { error: err.message }, err.headers);
  if (err instanceof QueueError) {
    const status = statusOf(err);
    if (status === 500) log(`dashboard: ${err.stack ?? err.message}`);
    return json(status, { error: err.message, ...(err.hint ? { hint: err.hint } : {}) });
  }
  log(`dashboard: internal error: ${err instanceof Error ? err.stack : String(err)}`);
  return json(500, { error: "internal error (see the dashboard's log)" });
}

export const MAX_BODY_BYTES = 1024 * 1024;

/** Reads a JSON request body: content type application/json, at most 1 MiB. */
export async function readJsonBody(req: Request): Promise<unknown> {
  const type = req.headers.get("content-type") ?? "";
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new HttpError(415, "Send the body as JSON with Content-Type: application/json");
  }
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, "Request body over 1 MiB");
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (req.body) {
    for await (const chunk of req.body) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) throw new HttpError(413, "Request body over 1 MiB");
      chunks.push(chunk);
    }
  }
  const bytes = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    bytes.set(c, off);
    off += c.length;
  }
  const text = new TextDecoder().decode(bytes);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `Invalid JSON: ${(err as Error).message}`);
  }
}
