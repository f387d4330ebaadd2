/**
 * The PostgreSQL test server: its URL, an admin connection, and the skip-or-fail rule every
 * PostgreSQL test file applies (tests/helpers/services.ts): when the server is unreachable a test
 * named "<suite>: test server is reachable" fails, unless skipping is allowed, then a line says why.
 */
import postgres from "postgres";
import { skipAllowedBecause } from "./services.ts";

export const PG_URL = Deno.env.get("QUEUECTL_TEST_PG_URL") ??
  "postgres://postgres@127.0.0.1:5432/test";
/** PG_URL without its password, for messages. */
export const SAFE_URL = PG_URL.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1@");

/** A one-connection admin client (end it with `await sql.end()`). */
export function admin(): postgres.Sql {
  return postgres(PG_URL, { max: 1, onnotice: () => {}, connect_timeout: 5, fetch_types: false });
}

async function unreachableReason(): Promise<string | null> {
  const sql = admin();
  try {
    await sql`SELECT 1`;
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/**
 * Checks the server once for a test file. Returns `ignore` for the file's tests: false when the
 * server answers; true when it does not and skipping is allowed (a line says why); when skipping
 * is not allowed (CI without QUEUECTL_TEST_NO_PG) it registers a failing test and returns true.
 */
export async function postgresAvailability(suite: string): Promise<{ ignore: boolean }> {
  const reason = await unreachableReason();
  if (reason === null) return { ignore: false };
  const why = skipAllowedBecause("postgres");
  if (why === null) {
    Deno.test(`${suite}: test server is reachable`, () => {
      throw new Error(`PostgreSQL at ${SAFE_URL} is unreachable (${reason}); CI requires it`);
    });
  } else {
    console.log(`skipping ${suite} tests: ${SAFE_URL} is unreachable (${reason}); ${why}`);
  }
  return { ignore: true };
}

/** `url` with `?schema=` (and more parameters) added. */
export function withParams(url: string, params: Record<string, string>): string {
  const query = Object.entries(params).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
  return `${url}${url.includes("?") ? "&" : "?"}${query}`;
}

/** `PG_URL` with its host and port replaced (to go through a proxy), optionally a password. */
export function viaPort(port: number, password?: string): string {
  return PG_URL.replace(
    /^(postgres(?:ql)?:\/\/)(?:([^:@/]*)(?::[^@/]*)?@)?[^/?]*/i,
    (_, scheme, user) =>
      `${scheme}${user ?? "postgres"}${password ? `:${password}` : ""}@127.0.0.1:${port}`,
  );
}

export function targetOf(url: string): { hostname: string; port: number } {
  const authority = /^postgres(?:ql)?:\/\/(?:[^@/]*@)?([^/?]*)/i.exec(url)?.[1] ?? "";
  const m = /^(\[[^\]]+\]|[^:]*)(?::(\d+))?$/.exec(authority);
  return {
    hostname: (m?.[1] || "127.0.0.1").replace(/^\[|\]$/g, ""),
    port: Number(m?.[2] ?? 5432),
  };
}
