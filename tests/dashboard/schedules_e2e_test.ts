/** The schedules tab in Chromium: the list, pause/resume and run now, hostile text shown as text. */
import assert from "node:assert/strict";
import type { Browser } from "playwright-core";
import { systemClock } from "../../src/core/clock.ts";
import { addSchedule } from "../../src/app/schedules.ts";
import { startDashboard } from "../../src/dashboard/server.ts";
import { randomToken } from "../../src/dashboard/security.ts";
import { tempStore } from "../helpers/temp.ts";
import { waitFor } from "../helpers/wait_for.ts";
import { browserGuard, launchChromium } from "./browser.ts";

const XSS = "<img src=x onerror=alert(1)>";
const guard = browserGuard("the schedules e2e test");

Deno.test({
  name: "dashboard in Chromium: the schedules tab lists, pauses, resumes and runs a schedule",
  ignore: guard.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    guard.require();
    await using temp = await tempStore();
    const { store } = temp;
    await addSchedule({ store, clock: systemClock }, {
      name: "nightly",
      cron: "0 4 * * *",
      tz: "UTC",
      job: { command: `echo '${XSS}'` },
    });
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
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      page.on("dialog", (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      page.on("pageerror", (e) => pageErrors.push(e.message));
      page.setDefaultTimeout(10_000);
      await page.goto(dashboard.loginUrl);
      await page.waitForURL(dashboard.url);
      await page.click(".tabs a[data-view=schedules]");
      const row = page.locator("#schedules-table tr[data-name=nightly]");
      await row.waitFor();
      const cells = await row.locator("td").allTextContents();
      assert.equal(cells[0], "nightly");
      assert.equal(cells[1], "0 4 * * * (UTC)");
      assert.match(cells[2], /^in \d+/);
      assert.equal(cells[3], "–");
      assert.equal(cells[4], `echo '${XSS}'`, "the command is shown as text");
      assert.equal(await page.locator("#schedules-table img").count(), 0);

      await row.getByRole("button", { name: "Pause" }).click();
      await row.locator(".badge", { hasText: "paused" }).waitFor();
      assert.equal((await store.getSchedule({ name: "nightly" }))?.paused, true);
      await row.getByRole("button", { name: "Resume" }).click();
      await row.getByRole("button", { name: "Pause" }).waitFor();
      assert.equal((await store.getSchedule({ name: "nightly" }))?.paused, false);

      await row.getByRole("button", { name: "Run now" }).click();
      await page.locator("#notice", { hasText: "Schedule nightly enqueued" }).waitFor();
      const id = await page.locator("#notice a").textContent();
      const job = await store.getJob({ id: id! });
      assert.equal(job?.command, `echo '${XSS}'`);
      await waitFor(
        async () => (await row.locator("td").nth(3).textContent())?.includes(id!) ?? false,
        { what: "the last run shows the job" },
      );
      assert.deepEqual(dialogs, []);
      assert.deepEqual(pageErrors, []);
    } finally {
      await browser?.close();
      await dashboard.shutdown();
    }
  },
});
