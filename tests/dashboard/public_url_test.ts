/**
 * The dashboard behind a proxy (`--public-url`, README "Behind a proxy"): the proxy either keeps
 * the browser's Host (Caddy's default) or sends its own upstream address (nginx's default), serves
 * it under a path prefix it strips, and speaks HTTPS to the browser, so the page's Origin is never
 * `http://<Host>`. Without --public-url the first kind was refused outright (DNS-rebinding check)
 * and every state change through either was refused as cross-origin.
 *
 * The last test drives Debian's Chromium through such a proxy (a path prefix, nginx's Host); it is
 * skipped with a printed reason when Chromium is missing and tests/helpers/services.ts allows it.
 */
import assert from "node:assert/strict";
import { startDashboard } from "../../src/dashboard/server.ts";
import { cookieName, parsePublicUrl, randomToken } from "../../src/dashboard/security.ts";
import { InvalidInput } from "../../src/core/errors.ts";
import { tempStore } from "../helpers/temp.ts";
import { runCli } from "../helpers/run_cli.ts";
import { browserGuard, CHROMIUM, CHROMIUM_ARGS } from "./browser.ts";

const PUBLIC = "https://queue.example.test/q/";

Deno.test("--public-url: an http(s) address without credentials, query or fragment", () => {
  assert.deepEqual(parsePublicUrl("https://queue.example.test/q"), {
    href: "https://queue.example.test/q/",
    origin: "https://queue.example.test",
    host: "queue.example.test",
  });
  assert.deepEqual(parsePublicUrl("http://Queue.Example.test:8443/"), {
    href: "http://queue.example.test:8443/",
    origin: "http://queue.example.test:8443",
    host: "queue.example.test:8443",
  });
  for (
    const [bad, why] of [
      ["queue.example.test", /not a URL/],
      ["ftp://queue.example.test/", /use http:\/\/ or https:\/\//],
      ["https://me:secret@queue.example.test/", /no user name or password/],
      ["https://queue.example.test/?a=1", /no query or fragment/],
      ["https://queue.example.test/#top", /no query or fragment/],
      ["https://queue.example.test/?", /no query or fragment/],
    ] as const
  ) {
    assert.throws(() => parsePublicUrl(bad), (err: unknown) => {
      assert.ok(err instanceof InvalidInput);
      assert.match(err.message, why, bad);
      return true;
    });
  }
});

/** One raw HTTP/1.1 request (fetch will not let us choose the Host header); the status code. */
async function raw(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body = "",
): Promise<{ status: number; text: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
  const length = body ? `content-length: ${new TextEncoder().encode(body).length}\r\n` : "";
  await conn.write(
    new TextEncoder().encode(
      `${method} ${path} HTTP/1.1\r\n${lines}${length}Connection: close\r\n\r\n${body}`,
    ),
  );
  const text = await new Response(conn.readable).text();
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text };
}

async function dashboardWith(publicUrl?: string) {
  const temp = await tempStore();
  const token = randomToken();
  const dashboard = startDashboard({
    store: temp.store,
    hostname: "127.0.0.1",
    port: 0,
    token,
    ...(publicUrl === undefined ? {} : { publicUrl: parsePublicUrl(publicUrl) }),
    log: () => {},
  });
  return {
    dashboard,
    temp,
    cookie: `${cookieName(dashboard.port)}=${token}`,
    token,
    [Symbol.asyncDispose]: async () => {
      await dashboard.shutdown();
      await temp[Symbol.asyncDispose]();
    },
  };
}

/** What a logged-in page's pause click sends, as a proxy forwards it with the given Host. */
function pause(d: Awaited<ReturnType<typeof dashboardWith>>, host: string, origin: string) {
  return raw(d.dashboard.port, "POST", "/api/queues/reports/pause", {
    host,
    cookie: d.cookie,
    origin,
    "sec-fetch-site": "same-origin",
    "x-csrf-token": d.dashboard.csrfToken,
    "content-type": "application/json",
  }, "{}");
}

Deno.test("behind a proxy that keeps the Host (Caddy): reads and clicks work with --public-url only", async () => {
  const viaProxy = { host: "queue.example.test", origin: "https://queue.example.test" };
  {
    await using d = await dashboardWith();
    const page = await raw(d.dashboard.port, "GET", "/", { host: viaProxy.host, cookie: d.cookie });
    assert.equal(page.status, 403, "without --public-url: a foreign Host (DNS rebinding check)");
    assert.equal((await pause(d, viaProxy.host, viaProxy.origin)).status, 403);
  }
  await using d = await dashboardWith(PUBLIC);
  assert.equal(d.dashboard.url, PUBLIC);
  assert.ok(d.dashboard.loginUrl.startsWith(`${PUBLIC}?token=`));
  const page = await raw(d.dashboard.port, "GET", "/", { host: viaProxy.host, cookie: d.cookie });
  assert.equal(page.status, 200, page.text);
  // The page's own addresses are relative, so the proxy's prefix /q/ stays in front of them.
  assert.match(page.text, /src="assets\/app\.js"/);
  assert.doesNotMatch(page.text, /(src|href)="\//);
  const stats = await raw(d.dashboard.port, "GET", "/api/stats", {
    host: viaProxy.host,
    cookie: d.cookie,
    "sec-fetch-site": "same-origin",
  });
  assert.equal(stats.status, 200, stats.text);
  const paused = await pause(d, viaProxy.host, viaProxy.origin);
  assert.equal(paused.status, 200, paused.text);
  assert.deepEqual(await d.temp.store.listQueueControls(), [
    { name: "reports", paused: true, max_running: 0 },
  ]);
  // Still refused: another name (DNS rebinding), another origin (CSRF), and the public name
  // with another port or scheme.
  for (const host of ["evil.example", "queue.example.test:444", "queue.example.test.evil"]) {
    const r = await raw(d.dashboard.port, "GET", "/api/stats", { host, cookie: d.cookie });
    assert.equal(r.status, 403, host);
  }
  for (
    const origin of [
      "https://evil.example",
      "https://queue.example.test.evil",
      "https://queue.example.test:8443",
    ]
  ) {
    const r = await pause(d, viaProxy.host, origin);
    assert.equal(r.status, 403, origin);
    assert.match(r.text, /cross-origin request refused/);
  }
});

Deno.test("behind a proxy that sends its own Host (nginx): clicks work with --public-url only", async () => {
  const origin = "https://queue.example.test";
  {
    await using d = await dashboardWith();
    const r = await pause(d, `127.0.0.1:${d.dashboard.port}`, origin);
    assert.equal(r.status, 403, "without --public-url: the page's Origin is not http://<Host>");
    assert.match(r.text, /cross-origin request refused \(Origin: https:\/\/queue\.example\.test\)/);
  }
  await using d = await dashboardWith(PUBLIC);
  const r = await pause(d, `127.0.0.1:${d.dashboard.port}`, origin);
  assert.equal(r.status, 200, r.text);
  const evil = await pause(d, `127.0.0.1:${d.dashboard.port}`, "https://evil.example");
  assert.equal(evil.status, 403);
  // The login link answers with a relative move, which keeps the proxy's prefix.
  const login = await raw(d.dashboard.port, "GET", `/?token=${encodeURIComponent(d.token)}`, {
    host: `127.0.0.1:${d.dashboard.port}`,
  });
  assert.equal(login.status, 200);
  assert.match(login.text, /content="0; url=\.\/"/);
});

const guard = browserGuard("the dashboard-behind-a-proxy browser test");

/**
 * A reverse proxy like `location /q/ { proxy_pass http://127.0.0.1:<port>/; }`: strips the prefix,
 * sends the upstream's own Host, passes everything else on (the event stream included).
 */
function prefixProxy(upstreamPort: () => number): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    if (!url.pathname.startsWith("/q/")) return new Response("not here", { status: 404 });
    const headers = new Headers(req.headers);
    headers.delete("host");
    const upstream = `http://127.0.0.1:${upstreamPort()}${url.pathname.slice(2)}${url.search}`;
    const res = await fetch(upstream, {
      method: req.method,
      headers,
      body: req.body,
      redirect: "manual",
    });
    return new Response(res.body, { status: res.status, headers: res.headers });
  });
}

Deno.test({
  name: "dashboard in Chromium behind a proxy with a path prefix: login, live counts, a click",
  ignore: guard.ignore,
  // playwright-core keeps its own pipes and timers to the browser process.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    guard.require();
    await using temp = await tempStore();
    const r = await runCli(["enqueue", "--queue", "e2eq", "--", "true"], { db: temp.dbPath });
    assert.equal(r.code, 0, r.stderr);
    let upstream = 0;
    const proxy = prefixProxy(() => upstream);
    // The public name resolves to 127.0.0.1 in this browser only, where the proxy listens.
    const name = "queue.example.test";
    const publicUrl = `http://${name}:${proxy.addr.port}/q/`;
    const dashboard = startDashboard({
      store: temp.store,
      hostname: "127.0.0.1",
      port: 0,
      token: randomToken(),
      pushIntervalMs: 100,
      publicUrl: parsePublicUrl(publicUrl),
      log: () => {},
    });
    upstream = dashboard.port;
    Deno.env.set("__IS_WSL_TEST__", "1");
    const { chromium } = await import("playwright-core");
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [...CHROMIUM_ARGS, `--host-resolver-rules=MAP ${name} 127.0.0.1`],
    });
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(10_000);
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      assert.ok(dashboard.loginUrl.startsWith(`${publicUrl}?token=`));
      await page.goto(dashboard.loginUrl);
      await page.waitForURL(publicUrl);
      // The event stream and the API answer through the proxy's prefix.
      await page.locator("#live[data-status=live]").waitFor();
      await page.locator("#count-pending", { hasText: /^1$/ }).waitFor();
      // A state change (POST with the page's Origin, the proxy's Host) by clicking.
      await page.locator(".tabs a[data-view=queues]").click();
      const queue = page.locator("#queues-table tbody tr[data-queue='e2eq']");
      await queue.locator("button", { hasText: "Pause" }).click();
      await page.locator("#notice", { hasText: "e2eq paused" }).waitFor();
      assert.deepEqual(await temp.store.listQueueControls(), [
        { name: "e2eq", paused: true, max_running: 0 },
      ]);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await dashboard.shutdown();
      await proxy.shutdown();
    }
  },
});
