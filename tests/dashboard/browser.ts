/**
 * Debian's Chromium through playwright-core (never a downloaded browser). Whether a missing
 * Chromium skips or fails the tests is decided by tests/helpers/services.ts.
 */
import type { Browser } from "playwright-core";
import { skipAllowedBecause } from "../helpers/services.ts";

export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Why the browser tests cannot run here, or null when Chromium is installed. */
export function chromiumMissing(): string | null {
  try {
    if (Deno.statSync(CHROMIUM).isFile) return null;
  } catch {
    // fall through
  }
  return `${CHROMIUM} not found (apt-get install -y chromium)`;
}

/**
 * Launches Chromium headless with a new empty profile. playwright-core is imported here, at the
 * first use: at load it probes /proc/sys/fs/binfmt_misc for WSL (a path Deno only lets --allow-all
 * read). `__IS_WSL_TEST__` skips that probe; its answer only matters for opening URLs in a desktop
 * browser, which the tests never do.
 */
export async function launchChromium(): Promise<Browser> {
  Deno.env.set("__IS_WSL_TEST__", "1");
  const { chromium } = await import("playwright-core");
  return await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/**
 * The guard of a Chromium test file: `ignore` for its tests (a line says why when Chromium is
 * missing and skipping is allowed, tests/helpers/services.ts), and `require()`, which a test body
 * calls first: it fails loudly when Chromium is missing and skipping is not allowed (CI).
 */
export function browserGuard(what: string): { ignore: boolean; require(): void } {
  const missing = chromiumMissing();
  const skipBecause = missing ? skipAllowedBecause("browser") : null;
  if (missing && skipBecause) console.log(`skipping ${what}: ${missing} (${skipBecause})`);
  return {
    ignore: missing !== null && skipBecause !== null,
    require() {
      if (missing) {
        throw new Error(
          `${missing}; CI requires it (set QUEUECTL_TEST_NO_BROWSER=1 on runners without it)`,
        );
      }
    },
  };
}
