/**
 * PostgreSQL connection URLs: the printable form (password removed) and the `schema` option that
 * queuectl accepts in the URL (`postgres://user@host/db?schema=team_a`), which postgres.js must not
 * see (it would send it to the server as an unknown setting).
 */
import { InvalidInput } from "../../core/errors.ts";
import { quote } from "../../core/text.ts";

const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

export interface ParsedPgUrl {
  /** The URL handed to the driver: as given, minus queuectl's own `schema` parameter. */
  driverUrl: string;
  /** The schema from `?schema=` (validated), if any. */
  schema?: string;
  /** The password, if the URL has one (to scrub it from driver messages). */
  password?: string;
}

export function parsePgUrl(url: string): ParsedPgUrl {
  const [base, query = ""] = splitQuery(url);
  const params = query === "" ? [] : query.split("&");
  let schema: string | undefined;
  const kept = params.filter((p) => {
    const [key, value = ""] = p.split("=");
    if (key !== "schema") return true;
    schema = validateSchemaName(decodeURIComponent(value));
    return false;
  });
  const match = /^[a-z][a-z0-9+.-]*:\/\/[^:@/]*:([^@/]*)@/i.exec(base);
  const passwordParam = kept.map((p) => p.split("=")).find(([k]) => k === "password")?.[1];
  const password = match?.[1]
    ? decodeURIComponent(match[1])
    : passwordParam
    ? decodeURIComponent(passwordParam)
    : undefined;
  return {
    driverUrl: kept.length > 0 ? `${base}?${kept.join("&")}` : base,
    schema,
    password,
  };
}

/** The URL without its password (in the authority or a `password=` parameter); safe to print. */
export function redactPgUrl(url: string): string {
  const [base, query = ""] = splitQuery(url);
  const clean = base.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):[^@/]*@/i, "$1@");
  const kept = query === "" ? [] : query.split("&").filter((p) => p.split("=")[0] !== "password");
  return kept.length > 0 ? `${clean}?${kept.join("&")}` : clean;
}

export function validateSchemaName(schema: string): string {
  if (!SCHEMA_PATTERN.test(schema)) {
    throw new InvalidInput(
      `Invalid PostgreSQL schema name ${
        quote(schema)
      }: use 1-63 lowercase letters, digits or _, starting with a letter or _`,
    );
  }
  return schema;
}

function splitQuery(url: string): [string, string?] {
  const i = url.indexOf("?");
  return i < 0 ? [url] : [url.slice(0, i), url.slice(i + 1)];
}
