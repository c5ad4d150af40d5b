import { serve } from '@hono/node-server';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserMissing, CHROMIUM, LAUNCH_ARGS, SHOTS } from './helpers/browser.js';
import { documentationApp } from '../api/docs/document.js';

/**
 * /docs in headless Chromium (playwright-core + Debian's chromium, as test/console-browser.test.ts) with
 * every request to another origin blocked: the reference renders every operation of /openapi.json from
 * local assets alone, with no CSP violation, and "Try it" reaches the API.
 */
const missing = browserMissing('docs-browser.test.ts');


type Playwright = typeof import('playwright-core');
type Context = Awaited<ReturnType<Playwright['chromium']['launchPersistentContext']>>;


describe.skipIf(missing.length > 0)('/docs in headless Chromium, other origins blocked', () => {
  let server: ReturnType<typeof serve>;
  let base: string;
  let context: Context;
  let profile: string;
  const blocked: string[] = [];
  const problems: string[] = [];

  beforeAll(async () => {
    server = await new Promise<ReturnType<typeof serve>>((resolve) => {
      const s = serve({ fetch: documentationApp().fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const { chromium } = (await import('playwright-core')) as Playwright;
    profile = await mkdtemp(path.join(tmpdir(), 'docs-chromium-'));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: LAUNCH_ARGS, viewport: { width: 1280, height: 900 } });
    const origin = new URL(base).origin;
    await context.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith('blob:') || u.startsWith('data:') || new URL(u).origin === origin) return route.continue();
      blocked.push(u);
      return route.abort('blockedbyclient');
    });
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
    await new Promise((r) => server?.close(r));
  });

  it('renders every operation from local assets, and Try it calls the API', async () => {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    await page.goto(`${base}/docs`);
    await page.waitForSelector('html[data-ready]');
    expect(await page.getAttribute('html', 'data-ready')).toBe('true');

    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, Record<string, { operationId: string }>> };
    const ids = Object.values(doc.paths).flatMap((item) => Object.values(item).map((op) => op.operationId));
    const shown = await page.$$eval('section.op', (els) => els.map((e) => (e as HTMLElement).dataset.operationId));
    expect(shown.sort()).toEqual([...ids].sort());
    expect(await page.$$eval('#toc a', (els) => els.length)).toBe(ids.length);
    expect(await page.textContent('#op-searchGallery')).toContain('/v1/search');

    // Try it: GET /healthz from the page.
    const op = page.locator('#op-healthz');
    await op.locator('summary', { hasText: 'Try it' }).click();
    await op.locator('button[type="submit"]').click();
    await expect.poll(() => op.locator('.result').textContent()).toContain('200');
    expect(await op.locator('.result pre').textContent()).toContain('"status": "ok"');

    await mkdir(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, 'api-docs.png') });
    expect(blocked).toEqual([]);
    expect(problems).toEqual([]);
  }, 60_000);
});
