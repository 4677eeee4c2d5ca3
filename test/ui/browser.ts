/**
 * Headless Chromium for the dashboard's tests: Debian's `chromium` package (apt-get install -y chromium) driven
 * by playwright-core, which downloads no browser. LORAPLEX_CHROMIUM names another binary.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';

const CANDIDATES = ['/usr/lib/chromium/chromium', '/usr/bin/chromium', '/usr/bin/chromium-browser'];

/** The browser binary, or null when none is installed. */
export function chromiumPath(): string | null {
  const given = process.env.LORAPLEX_CHROMIUM;
  if (given) return given;
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

/** Why the browser tests skip here, or false when they run (always with LORAPLEX_REQUIRE_CHROMIUM=1, as in CI). */
export function browserSkip(): string | false {
  if (chromiumPath() || process.env.LORAPLEX_REQUIRE_CHROMIUM === '1') return false;
  return 'no chromium here (apt-get install -y chromium, or set LORAPLEX_CHROMIUM)';
}

export function launch(): Promise<Browser> {
  if (!chromiumPath()) throw new Error('LORAPLEX_REQUIRE_CHROMIUM=1 but no chromium: apt-get install -y chromium');
  // --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: chromiumPath()!, args: ['--no-sandbox', '--disable-gpu'] });
}

/** Where screenshots go: LORAPLEX_UI_SCREENSHOTS (docs/figures to refresh the committed ones), else a temp dir. */
export async function screenshotDir(): Promise<string> {
  const dir = process.env.LORAPLEX_UI_SCREENSHOTS ?? join(tmpdir(), 'loraplex-ui-screenshots');
  await mkdir(dir, { recursive: true });
  return dir;
}

/** The text of `selector`'s first match once it is attached. */
export async function textOf(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).first().textContent({ timeout: 60_000 })) ?? '').trim();
}

/**
 * Waits until `selector` matches (Playwright's `:text-is("…")` pins a cell's exact text). The page polls the
 * server every second, so this waits on what the page shows, never on a clock; the timeout only bounds a hang.
 */
export async function shows(page: Page, selector: string, timeout = 60_000): Promise<void> {
  try {
    await page.waitForSelector(selector, { timeout });
  } catch (e) {
    const text = await page
      .locator('main')
      .textContent()
      .catch(() => '');
    throw new Error(`the page never showed ${selector}: ${(e as Error).message.split('\n')[0]}\n--- page ---\n${text}`);
  }
}
