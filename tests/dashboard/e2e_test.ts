/**
 * End-to-end: Debian's Chromium (headless, through playwright-core) drives the dashboard served
 * in-process over a temp SQLite store, while the real CLI changes the queue from outside. It logs
 * in with the login URL as a person does (and through the `--open` file).
 * Skipped with a printed reason when Chromium is missing and tests/helpers/services.ts allows it
 * (CI unset, or QUEUECTL_TEST_NO_BROWSER set); fails otherwise.
 */
import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { ManualClock } from "../../src/core/clock.ts";
import { redirectHtml, startDashboard } from "../../src/dashboard/server.ts";
import { randomToken } from "../../src/dashboard/security.ts";
import { tempStore } from "../helpers/temp.ts";
import { runCli } from "../helpers/run_cli.ts";
import { waitFor } from "../helpers/wait_for.ts";
import { browserGuard, launchChromium } from "./browser.ts";
import { add, claim, deadJob } from "./seed.ts";
import { newJob } from "../store/conformance.ts";
import { SHORT_SEARCH_SCAN } from "../../src/store/store.ts";

const XSS = "<img src=x onerror=alert(1)>";
const guard = browserGuard("dashboard e2e tests");

Deno.test({
  name: "dashboard in Chromium: login, live counts, job detail, DLQ, enqueue, cancel, XSS as text",
  ignore: guard.ignore,
  // playwright-core keeps its own pipes and timers to the browser process.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    guard.require();
    await using temp = await tempStore();
    const { store, dbPath } = temp;
    const dashboard = startDashboard({
      store,
      hostname: "127.0.0.1",
      port: 0,
      token: randomToken(),
      pushIntervalMs: 200,
    });
    let browser: Browser | undefined;
    const dialogs: string[] = [];
    const pageErrors: string[] = [];
    try {
      browser = await launchChromium();
      const page: Page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      page.on("dialog", (d) => {
        dialogs.push(`${d.type()}: ${d.message()}`);
        void d.dismiss();
      });
      page.on("pageerror", (e) => pageErrors.push(e.message));
      page.setDefaultTimeout(10_000);
      const text = (selector: string) => page.locator(selector).first().textContent();

      await t.step(
        "without the token the browser gets the 401 page, not the dashboard",
        async () => {
          const stranger = await browser!.newPage();
          const res = await stranger.goto(dashboard.url);
          assert.equal(res?.status(), 401);
          const body = await stranger.locator("body").textContent() ?? "";
          assert.match(body, /needs its access token/);
          assert.match(body, /queuectl dashboard --print-url --port \d+/);
          const wrong = await stranger.goto(`${dashboard.url}?token=not-the-token-0123456789`);
          assert.equal(wrong?.status(), 401);
          assert.deepEqual(await stranger.context().cookies(), []);
          await stranger.close();
        },
      );

      await t.step(
        "the login URL logs in and leaves neither address bar nor history with the token",
        async () => {
          await page.goto(dashboard.loginUrl);
          await page.waitForURL(dashboard.url);
          await page.locator("#live[data-status=live]").waitFor();
          assert.equal(page.url(), dashboard.url);
          const [cookie] = await page.context().cookies();
          assert.equal(cookie.httpOnly, true);
          assert.equal(cookie.sameSite, "Strict");
          assert.equal(await page.evaluate("document.cookie"), "", "scripts cannot read it");
          // Back leaves the dashboard for the blank start page: the login URL is no history entry.
          await page.goBack();
          assert.ok(!page.url().includes("token"), page.url());
          await page.goForward();
          await page.waitForURL(dashboard.url);
        },
      );

      await t.step(
        "--open's redirect file logs in too (the SameSite=Strict cookie is sent)",
        async () => {
          const file = `${temp.dir.path}/open.html`;
          await Deno.writeTextFile(file, redirectHtml(dashboard.loginUrl), { mode: 0o600 });
          const context = await browser!.newContext();
          const opened = await context.newPage();
          await opened.goto(`file://${file}`);
          await opened.waitForURL(dashboard.url);
          await opened.locator("#live[data-status=live]").waitFor();
          await context.close();
        },
      );

      await t.step("loads the page and goes live", async () => {
        await page.goto(dashboard.url);
        await page.locator("#live[data-status=live]").waitFor();
        assert.equal(await text("#count-pending"), "0");
        assert.equal(await text("#jobs-table tbody"), "No jobs match.");
        // The throughput card says what it shows: the rate over a minute, the chart over ten.
        assert.equal(await text("#rate-window"), "(last minute)");
        assert.equal(await text("#chart-window"), "per 10s, last 10 minutes");
        assert.equal(await page.locator("#chart rect").count(), 60);
      });

      await t.step("counts and the jobs table change after a CLI enqueue", async () => {
        const r = await runCli(["enqueue", '{"id":"from-cli","command":"echo from the CLI"}'], {
          db: dbPath,
        });
        assert.equal(r.code, 0, r.stderr);
        await page.locator("#count-pending", { hasText: /^1$/ }).waitFor();
        await page.locator("#jobs-table tbody tr[data-id='from-cli']").waitFor();
        assert.equal(await text("#count-processing"), "0");
      });

      await t.step("opens a job and shows its details", async () => {
        await page.locator("#jobs-table tbody tr[data-id='from-cli'] a").click();
        await page.locator("#job-command").waitFor();
        assert.equal(await text("#job-command"), "echo from the CLI");
        assert.equal(await text(".detail-head .job-id"), "from-cli");
        assert.equal(await text(".detail-head .badge"), "pending");
        const fields = await text("dl.fields");
        assert.match(fields ?? "", /attempts0 of 4 \(max_retries 3\)/);
        assert.match(await text("#runs") ?? "", /No runs yet/);
        assert.equal(new URL(page.url()).hash, "#job/from-cli");
      });

      await t.step("a delayed job is shown as scheduled, with its run time", async () => {
        const r = await runCli(["enqueue", '{"id":"later","command":"true","delay":"1h"}'], {
          db: dbPath,
        });
        assert.equal(r.code, 0, r.stderr);
        await page.goto(`${dashboard.url}#jobs?search=later`);
        const row = page.locator("#jobs-table tbody tr[data-id='later']");
        await row.waitFor();
        assert.match(
          await row.locator(".scheduled").textContent() ?? "",
          /^ scheduled, runs in (59m \d+s|1h)$/,
        );
        await row.locator("a").click();
        await page.locator(".detail-head .scheduled").waitFor();
        assert.match(await text(".detail-head .scheduled") ?? "", /scheduled, runs in/);
      });

      await t.step("renders a hostile job as text and fires no dialog", async () => {
        const clock = new ManualClock(Date.now());
        const id = await deadJob(store, clock, { id: "xss", command: XSS }, {
          error: "<script>alert(2)</script>",
          stderr: "<b onmouseover=alert(3)>bold</b>",
        });
        await page.goto(`${dashboard.url}#jobs?search=${encodeURIComponent("<img")}`);
        const row = page.locator(`#jobs-table tbody tr[data-id='${id}']`);
        await row.waitFor();
        assert.equal(await row.locator("td.command").textContent(), XSS);
        await row.locator("a").click();
        await page.locator("#job-command", { hasText: XSS }).waitFor();
        assert.equal(await text("#job-command"), XSS);
        assert.equal(await text(".output pre.error-text"), "<script>alert(2)</script>");
        assert.equal(
          await page.locator(".output pre").last().textContent(),
          "<b onmouseover=alert(3)>bold</b>",
        );
        // Evaluated in the page (a string, since this file is not type-checked against the DOM).
        const injected = await page.evaluate(
          'document.querySelectorAll("img, script:not([src]), b[onmouseover]").length',
        );
        assert.equal(injected, 0, "no element was created from job data");
        assert.deepEqual(dialogs, []);
      });

      await t.step("restores a DLQ job by clicking", async () => {
        const clock = new ManualClock(Date.now());
        const id = await deadJob(store, clock, { id: "broken-1", command: "exit 3", queue: "q2" });
        await page.locator(".tabs a[data-view=dlq]").click();
        const row = page.locator(`#dlq-table tbody tr[data-id='${id}']`);
        await row.waitFor();
        await page.locator("#count-dead", { hasText: /^2$/ }).waitFor();
        await row.locator("button", { hasText: "Restore" }).click();
        await page.locator("#notice", { hasText: `Restored ${id} to pending.` }).waitFor();
        await row.waitFor({ state: "detached" });
        assert.equal((await store.getJob({ id }))?.state, "pending");
        await page.locator("#count-dead", { hasText: /^1$/ }).waitFor();
      });

      await t.step("the DLQ shows the end of each job's stderr, escaped, as text", async () => {
        const clock = new ManualClock(Date.now());
        const stderr = "compiling a\ncompiling b\ncompiling c\nwarning: x\n\n" +
          "\x1b[31mError:\x1b[0m disk full \u202eevil\x07\n";
        const id = await deadJob(store, clock, { id: "noisy", command: "make" }, {
          exit_code: 2,
          stderr,
        });
        const row = page.locator(`#dlq-table tbody tr[data-id='${id}']`);
        await row.waitFor();
        assert.equal(
          await row.locator("td.last-error pre.tail").textContent(),
          "…compiling c\nwarning: x\nError: disk full \\u202eevil\\x07",
        );
        // "exit code 2" is the Exit column's; a message of its own is shown under the tail.
        assert.equal(await row.locator("td.last-error .error-text").count(), 0);
        const xss = page.locator("#dlq-table tbody tr[data-id='xss'] td.last-error");
        assert.equal(
          await xss.locator("pre.tail").textContent(),
          "<b onmouseover=alert(3)>bold</b>",
        );
        assert.equal(await xss.locator(".error-text").textContent(), "<script>alert(2)</script>");
        await row.locator("button", { hasText: "Restore" }).click();
        await row.waitFor({ state: "detached" });
      });

      await t.step("enqueues from the form; a mistake shows the server's message", async () => {
        await page.locator(".tabs a[data-view=enqueue]").click();
        const form = page.locator("#enqueue-form");
        // One message at a time: an error replaces the success notice shown before it.
        await form.locator("[name=command]").fill("echo first");
        await form.locator("button[type=submit]").click();
        await page.locator("#notice", { hasText: "Enqueued" }).waitFor();
        await form.locator("[name=command]").fill("echo 'from the form'");
        await form.locator("[name=queue]").fill("web");
        await form.locator("[name=priority]").fill("high");
        await form.locator("button[type=submit]").click();
        await page.locator("#enqueue-error", { hasText: "Invalid priority" }).waitFor();
        assert.equal(await page.locator("#notice").isHidden(), true, "the old notice is gone");
        assert.equal(await store.countJobs({ queue: "web" }), 0);
        await form.locator("[name=priority]").fill("7");
        await form.locator("[name=cwd]").fill("/srv/app");
        await form.locator("[name=env]").fill("STAGE=test\nNOTE=a=b c");
        await form.locator("button[type=submit]").click();
        await page.locator("#notice", { hasText: "Enqueued" }).waitFor();
        const [job] = await store.listJobs({ queue: "web", limit: 5 });
        assert.equal(job.command, "echo 'from the form'");
        assert.equal(job.priority, 7);
        assert.equal(job.cwd, "/srv/app");
        assert.deepEqual(JSON.parse(job.env ?? "null"), { STAGE: "test", NOTE: "a=b c" });
        assert.equal(job.state, "pending");
        assert.equal(await page.locator("#enqueue-error").isHidden(), true);
        await page.locator("#notice a", { hasText: "Open it" }).click();
        await page.locator("#job-command", { hasText: "echo 'from the form'" }).waitFor();
      });

      await t.step("cancels a pending job from its page after a confirmation", async () => {
        const clock = new ManualClock(Date.now());
        const id = await add(store, clock, { id: "to-cancel", command: "sleep 100" });
        await page.goto(`${dashboard.url}#job/${id}`);
        await page.locator("button[data-action=Cancel]").click();
        await page.locator("#cancel-confirm", { hasText: `Cancel job ${id}?` }).waitFor();
        assert.ok(await store.getJob({ id }), "nothing deleted before confirming");
        await page.locator("#cancel-no").click();
        await page.locator("#cancel-confirm").waitFor({ state: "detached" });
        assert.ok(await store.getJob({ id }), "kept");
        await page.locator("button[data-action=Cancel]").click();
        await page.locator("#cancel-yes").click();
        await page.locator("#notice", {
          hasText: `Cancelled ${id}: the job was deleted and will not run.`,
        }).waitFor();
        await waitFor(async () => (await store.getJob({ id })) === null, { what: "job deleted" });
        // Back on the list, which no longer has it; no "No job with id" beside the success.
        await page.waitForURL(/#jobs$/);
        await page.locator("#view-jobs").waitFor();
        await page.locator("#jobs-table tbody tr.clickable").first().waitFor();
        assert.equal(await page.locator(`#jobs-table tbody tr[data-id='${id}']`).count(), 0);
        assert.equal(await page.getByText("No job with id").count(), 0);
        assert.equal(await page.locator("#notice").isVisible(), true);
      });

      await t.step(
        "kills a running job from its page after a confirmation; shows its directory",
        async () => {
          const clock = new ManualClock(Date.now());
          const id = await add(store, clock, {
            id: "to-kill",
            command: "sleep 100",
            cwd: "/srv/x",
          });
          await claim(store, clock, id);
          await page.goto(`${dashboard.url}#job/${id}`);
          await page.locator("dd", { hasText: "/srv/x" }).waitFor();
          await page.locator("button[data-action=Kill]").click();
          await page.locator("#kill-confirm", { hasText: `Kill job ${id}?` }).waitFor();
          assert.equal(
            (await store.getJob({ id }))?.kill_signal,
            null,
            "nothing before confirming",
          );
          await page.locator("#kill-no").click();
          await page.locator("#kill-confirm").waitFor({ state: "detached" });
          assert.equal((await store.getJob({ id }))?.kill_signal, null, "let it run");
          await page.locator("button[data-action=Kill]").click();
          await page.locator("#kill-yes").click();
          await page.locator("#notice", { hasText: `Asked the worker to kill ${id}` }).waitFor();
          await waitFor(async () => (await store.getJob({ id }))?.kill_signal === "SIGTERM", {
            what: "kill requested",
          });
        },
      );

      await t.step("purges the DLQ after an in-page confirmation", async () => {
        await page.locator(".tabs a[data-view=dlq]").click();
        await page.locator("#dlq-table tbody tr[data-id='xss']").waitFor();
        await page.locator("#purge").click();
        await page.locator("#purge-confirm").waitFor();
        assert.equal(await store.countJobs({ state: "dead" }), 1, "nothing before confirming");
        await page.locator("#purge-yes").click();
        await page.locator("#notice", { hasText: "Purged 1 dead job." }).waitFor();
        assert.equal(await store.countJobs({ state: "dead" }), 0);
        await page.locator("#dlq-table tbody tr.empty").waitFor();
      });

      await t.step("lists workers", async () => {
        await store.registerWorker({
          worker: {
            id: "worker-e2e",
            pid: 4242,
            host: "e2e-host",
            queues: ["web"],
            started_at: Date.now(),
            heartbeat_at: Date.now(),
            current_job: "from-cli",
            stop_requested_at: null,
            supervisor_id: "sup-e2e",
          },
        });
        await page.locator(".tabs a[data-view=workers]").click();
        const row = page.locator("#workers-table tbody tr", { hasText: "worker-e2e" });
        await row.waitFor();
        assert.match(await row.textContent() ?? "", /alive.*e2e-host.*4242.*web.*from-cli/);
        await page.locator("#workers-alive", { hasText: /^1$/ }).waitFor();
      });

      await t.step("shows a waiting job, and pauses and resumes a queue by clicking", async () => {
        for (
          const spec of [
            { id: "w-a", command: "true", queue: "e2eq" },
            { id: "w-b", command: "true", queue: "e2eq", after: ["w-a"] },
          ]
        ) {
          const r = await runCli(["enqueue", JSON.stringify(spec)], { db: dbPath });
          assert.equal(r.code, 0, r.stderr);
        }
        await page.goto(`${dashboard.url}#jobs?search=w-b`);
        const row = page.locator("#jobs-table tbody tr[data-id='w-b']");
        await row.waitFor();
        assert.match(await row.textContent() ?? "", /waiting blocked on w-a/);
        await row.locator("a").click();
        await page.locator("dl.fields", { hasText: "runs after" }).waitFor();
        assert.match(await text("dl.fields") ?? "", /runs afterw-a \(pending\)/);

        await page.locator(".tabs a[data-view=queues]").click();
        const queue = page.locator("#queues-table tbody tr[data-queue='e2eq']");
        await queue.waitFor();
        assert.match(await queue.textContent() ?? "", /e2eqrunningnone11/);
        await queue.locator("button", { hasText: "Pause" }).click();
        await page.locator("#notice", { hasText: "e2eq paused" }).waitFor();
        await queue.locator("button", { hasText: "Resume" }).waitFor();
        assert.deepEqual(await store.listQueueControls(), [
          { name: "e2eq", paused: true, max_running: 0 },
        ]);
        await queue.locator("button", { hasText: "Resume" }).click();
        await page.locator("#notice", { hasText: "e2eq resumed" }).waitFor();
        await queue.locator("button", { hasText: "Pause" }).waitFor();
        assert.deepEqual(await store.listQueueControls(), []);
      });

      await t.step("fits a narrow window without sideways scrolling", async () => {
        await page.setViewportSize({ width: 360, height: 800 });
        await page.goto(`${dashboard.url}#jobs`);
        await page.locator("#jobs-table tbody tr.clickable").first().waitFor();
        const overflow = await page.evaluate(
          "document.documentElement.scrollWidth - document.documentElement.clientWidth",
        ) as number;
        assert.ok(overflow <= 0, `page is ${overflow}px wider than the window`);
        assert.equal(await page.locator("#jobs-table th.opt").first().isHidden(), true);
      });

      await t.step(
        "says when a short search stopped before the old jobs, and goes on",
        async () => {
          await page.setViewportSize({ width: 1200, height: 900 });
          // The only match is older than the newest SHORT_SEARCH_SCAN jobs (docs/architecture.md,
          // "Short searches"). "uu": no generated id holds a "u" (core/job.ts BASE32), so the
          // jobs of the steps before cannot match ("qz" could: 2 on the page, once in CI).
          const now = Date.now();
          await store.insertJobs({
            jobs: [{ ...newJob("old-uu", { command: "echo uu" }) }],
            now: now - 60_000,
          });
          await store.insertJobs({
            jobs: Array.from({ length: SHORT_SEARCH_SCAN }, (_, i) => newJob(`n-${i}`)),
            now,
          });
          await page.goto(`${dashboard.url}#jobs?search=uu`);
          const note = page.locator("#jobs-pager .incomplete");
          await note.waitFor();
          assert.match(await note.textContent() ?? "", /Search incomplete.*10,000 jobs/);
          assert.match(await text("#jobs-table tbody tr.empty") ?? "", /No match among the jobs/);
          await page.locator("#jobs-pager button", { hasText: "Older" }).click();
          await page.locator("#jobs-table tbody tr[data-id='old-uu']").waitFor();
          assert.equal(await page.locator("#jobs-pager .incomplete").count(), 0);
          assert.equal(await text("#jobs-pager .range"), "1 on this page");
        },
      );

      await t.step(
        "pages by cursor only: a typed deep page without its cursor shows page 1",
        async () => {
          // The store holds the 10,000+ jobs of the step before: many pages.
          const asked: string[] = [];
          page.on("request", (r) => {
            if (r.url().includes("/api/jobs")) asked.push(r.url());
          });
          const newest = await store.listJobs({ limit: 51 });
          const firstRow = () => page.locator("#jobs-table tbody tr.clickable").first();
          await page.goto(`${dashboard.url}#jobs?page=5`);
          await page.waitForFunction(() => location.hash === "#jobs");
          await page.locator(`#jobs-table tbody tr[data-id='${newest[0].id}']`).waitFor();
          assert.equal(await firstRow().getAttribute("data-id"), newest[0].id);
          assert.match(await text("#jobs-pager .range") ?? "", /^1–50 of /);
          // "Older →" goes on by cursor: the 51st job heads page 2, its cursor in the address.
          await page.locator("#jobs-pager button", { hasText: "Older" }).click();
          await page.locator(`#jobs-table tbody tr[data-id='${newest[50].id}']`).waitFor();
          assert.equal(await firstRow().getAttribute("data-id"), newest[50].id);
          const hash = new URLSearchParams(new URL(page.url()).hash.replace(/^#jobs\?/, ""));
          assert.equal(hash.get("page"), "2");
          assert.equal(hash.get("after"), newest[49].id);
          assert.match(await text("#jobs-pager .range") ?? "", /^51–100 of /);
          // A reload keeps page 2 (its cursor is in the address); "← Newer" then has no cursor
          // for page 1 but needs none.
          await page.reload();
          await page.locator(`#jobs-table tbody tr[data-id='${newest[50].id}']`).waitFor();
          await page.locator("#jobs-pager button", { hasText: "Newer" }).click();
          await page.waitForFunction(() => location.hash === "#jobs");
          await page.locator(`#jobs-table tbody tr[data-id='${newest[0].id}']`).waitFor();
          assert.ok(asked.length >= 3, asked.join("\n"));
          assert.deepEqual(asked.filter((u) => /[?&]offset=/.test(u)), [], "no offset asked for");
        },
      );

      assert.deepEqual(dialogs, []);
      assert.deepEqual(pageErrors, []);
    } finally {
      await browser?.close();
      await dashboard.shutdown();
    }
  },
});
