// A real browser for tests: Debian's chromium (apt; never a browser download) driven by playwright-core, offline.
// Every page opened through `openGuarded` records console errors, page errors and requests outside the allowed
// origins, so a test can assert that a page loaded cleanly and touched nothing it should not.
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Chromium's path: `MOCO_TEST_CHROMIUM`, else Debian's `/usr/bin/chromium`. */
export const CHROMIUM = process.env.MOCO_TEST_CHROMIUM ?? '/usr/bin/chromium';

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `browser tests need chromium at ${CHROMIUM}: apt-get install -y chromium (or set MOCO_TEST_CHROMIUM)`,
    );
  // --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
}

export interface GuardedPage {
  page: Page;
  /** Console messages of type error, page errors (uncaught exceptions) and failed requests, in order. */
  errors: string[];
  /** URLs requested outside `allow` (they are aborted, so the page cannot reach the network). */
  blocked: string[];
}

/**
 * Opens a page in a fresh context whose requests are limited to URLs for which `allow(url)` is true (by default
 * `data:`, `blob:` and `file:` only); anything else is aborted and recorded in `blocked`.
 */
export async function openGuarded(
  browser: Browser,
  opts: { allow?: (url: string) => boolean; viewport?: { width: number; height: number } } = {},
): Promise<GuardedPage> {
  const allow = opts.allow ?? ((u: string) => /^(data|blob|file):/.test(u));
  const context = await browser.newContext({ viewport: opts.viewport ?? { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors: string[] = [];
  const blocked: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => {
    if (!blocked.includes(r.url())) errors.push(`requestfailed: ${r.url()} ${r.failure()?.errorText ?? ''}`);
  });
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (allow(url)) return route.continue();
    blocked.push(url);
    return route.abort('blockedbyclient');
  });
  return { page, errors, blocked };
}
