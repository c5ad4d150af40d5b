import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** Debian's Chromium (playwright-core cannot download a browser here); CHROMIUM_PATH to use another. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Flags that let headless Chromium run as root on a machine with no network but loopback. */
export const LAUNCH_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Where the browser tests write their screenshots (the README shows them). */
export const SHOTS = path.resolve(import.meta.dirname, '../../docs/console');

/** What a browser test lacks on this machine (empty: it can run); warns, naming the test, when skipped. */
export function browserMissing(test: string): string[] {
  let playwright = true;
  try {
    createRequire(import.meta.url).resolve('playwright-core');
  } catch {
    playwright = false;
  }
  const missing = [
    playwright ? null : 'the npm package playwright-core (a devDependency: npm ci)',
    existsSync(CHROMIUM) ? null : `Chromium at ${CHROMIUM} (Debian: apt-get install -y chromium; or set CHROMIUM_PATH)`,
  ].filter((x): x is string => x !== null);
  if (missing.length) console.warn(`${test} SKIPPED: the browser test needs ${missing.join(' and ')}.`);
  return missing;
}
