/**
 * What another local user tries against a running dashboard (run by other_user_test.ts as
 * `nobody`; not a test itself). It does what issue 13 did by hand: scrape the CSRF token from the
 * page, then enqueue a command; and it tries the token file, the database and the dashboard's
 * process. Prints one JSON object of what happened.
 *
 *   deno run --allow-net --allow-read --allow-run=cat intruder.ts BASE TOKEN_FILE DB PID
 *
 * With INTRUDER_TOKEN set it sends that token (a user who was given it), to show that the
 * refusals are about the token, not about this user reaching the port at all.
 */
const [base, tokenFile, db, pid] = Deno.args;
const given = Deno.env.get("INTRUDER_TOKEN");
const auth: Record<string, string> = given ? { authorization: `Bearer ${given}` } : {};

async function request(path: string, init: RequestInit = {}) {
  const res = await fetch(new URL(path, base), { redirect: "manual", ...init });
  const text = await res.text();
  return { status: res.status, text };
}

/** The status only (the event stream never ends). */
async function statusOf(path: string, headers: Record<string, string>): Promise<number> {
  const res = await fetch(new URL(path, base), { headers });
  await res.body?.cancel();
  return res.status;
}

async function readable(path: string): Promise<string> {
  try {
    await Deno.readFile(path);
    return "read";
  } catch (err) {
    return (err as Error).name;
  }
}

async function cat(path: string): Promise<{ code: number; text: string }> {
  const out = await new Deno.Command("cat", { args: [path], stderr: "null" }).output();
  return { code: out.code, text: new TextDecoder().decode(out.stdout).replaceAll("\0", " ") };
}

const page = await request("/", { headers: auth });
const csrf = /<meta name="csrf-token" content="([^"]+)">/.exec(page.text)?.[1];
const json = { ...auth, "content-type": "application/json", "x-csrf-token": csrf ?? "none" };
const origin = new URL(base).origin;
const result = {
  uid: Deno.uid(),
  page: page.status,
  csrf_found: csrf !== undefined,
  guessed_login: (await request("/?token=guess-0123456789abcdef")).status,
  app_js: (await request("/assets/app.js", { headers: auth })).status,
  stats: (await request("/api/stats", { headers: auth })).status,
  jobs: (await request("/api/jobs", { headers: auth })).status,
  workers: (await request("/api/workers", { headers: auth })).status,
  events: await statusOf("/api/events", auth),
  enqueue: (await request("/api/jobs", {
    method: "POST",
    headers: { ...json, origin },
    body: JSON.stringify({ id: given ? "allowed" : "pwned", command: "id > /tmp/pwned" }),
  })).status,
  token_file: await readable(tokenFile),
  database: await readable(db),
  cmdline: (await cat(`/proc/${pid}/cmdline`)).text,
  environ_code: (await cat(`/proc/${pid}/environ`)).code,
};
console.log(JSON.stringify(result));
Deno.exit(0);
