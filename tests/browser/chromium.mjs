// Debian's chromium under playwright-core: this machine cannot download
// Playwright's own browser builds, so the browser is found by its path.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Where screenshots go: target/browser-screenshots, kept with the test output. */
export const SCREENSHOTS = path.resolve(here, '../../target/browser-screenshots');

export function executablePath() {
  for (const p of [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser']) {
    if (p && existsSync(p)) return p;
  }
  throw new Error('no chromium found (set CHROMIUM_PATH, or run scripts/browser-deps)');
}

/** A headless Chromium; close it in the test's `after`. */
export async function launch() {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({
    executablePath: executablePath(),
    headless: true,
    // No sandbox: CI runs as root in a container without user namespaces.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}

/** Saves a full-page screenshot as target/browser-screenshots/<name>.png. */
export async function screenshot(page, name) {
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
