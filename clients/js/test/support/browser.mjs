// Debian's Chromium driven by playwright-core (no browser download). The flags run it headless
// as root in a container (no sandbox, no GPU) and keep it off the network (no QUIC, background
// fetches, component updates or sync): see docs/sdk-js.md, "Tests".

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A fresh Chromium with its own profile; `await browser.stop()` closes it and removes the profile.
 *  `args`: more flags (the benchmark's `--enable-unsafe-webgpu`). */
export async function launchChromium({ args = [] } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'fedgrid-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: [...FLAGS, ...args] });
  return {
    context,
    async newPage() {
      const page = await context.newPage();
      page.consoleMessages = [];
      page.on('console', (message) => page.consoleMessages.push(`${message.type()}: ${message.text()}`));
      page.on('pageerror', (error) => page.consoleMessages.push(`pageerror: ${error.message}`));
      return page;
    },
    async stop() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
