import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { browserMissing, CHROMIUM, LAUNCH_ARGS, SHOTS } from './helpers/browser.js';
import type { ApiServer } from '../api/server.js';
import { startTestApi } from './helpers/test-api.js';
import type { ImageDataset } from '../shared/data/dataset.js';
import { createMemoryLogger } from '../shared/log.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { createMemoryStore, type MemoryStore } from '../shared/store/memory-store.js';
import { pool, png, publishFixture } from './helpers/api-fixtures.js';

/**
 * The web console driven in a real headless Chromium (playwright-core + Debian's chromium): search by an
 * uploaded Fashion-MNIST image, browse and edit the gallery, the embedding map, a tiny retrain watched to
 * `succeeded`. Every request to another origin is blocked and must not happen. Screenshots of each view
 * are written to docs/console/.
 */
const missing = browserMissing('console-browser.test.ts');

const TOKEN = 'console-admin-token-0123456789';
const PER_CLASS = 10;

type Playwright = typeof import('playwright-core');
type Context = Awaited<ReturnType<Playwright['chromium']['launchPersistentContext']>>;
type Page = Awaited<ReturnType<Context['newPage']>>;


describe.skipIf(missing.length > 0)('web console in headless Chromium', () => {
  let store: MemoryStore;
  let api: ApiServer;
  let train: ImageDataset;
  let test: ImageDataset;
  let context: Context;
  let page: Page;
  let profile: string;
  const blocked: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    await tf.setBackend('wasm');
    [train, test] = await Promise.all([loadFashionMnist('train', { limit: 3000 }), loadFashionMnist('test', { limit: 200 })]);
    store = createMemoryStore();
    await publishFixture(store, { seed: 11, activate: true, headData: train, headN: 2000 });
    api = await startTestApi({
      store,
      waitForModel: true,
      logger: createMemoryLogger(),
      settings: { ADMIN_TOKEN: TOKEN, POLL_INTERVAL_MS: 300 },
    });
    // A labelled gallery: the first PER_CLASS training images of each class.
    const picks: number[] = [];
    const count = new Array(10).fill(0);
    for (let i = 2000; i < train.n && picks.length < PER_CLASS * 10; i++) {
      const y = train.labels![i]!;
      if (count[y]! < PER_CLASS) (count[y]++, picks.push(i));
    }
    await pool(picks, 8, async (i) => {
      const form = new FormData();
      form.append('image', new Blob([await png(train, i)], { type: 'image/png' }), `fm-${i}.png`);
      form.append('id', `fm-${String(i).padStart(5, '0')}`);
      form.append('label', train.classNames![train.labels![i]!]!);
      form.append('metadata', JSON.stringify({ index: i, split: 'train' }));
      const res = await fetch(`${api.url}/v1/images`, { method: 'POST', body: form });
      expect(res.status, await res.clone().text()).toBe(201);
    });

    const { chromium } = (await import('playwright-core')) as Playwright;
    profile = await mkdtemp(path.join(tmpdir(), 'console-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: LAUNCH_ARGS,
      viewport: { width: 1280, height: 900 },
    });
    const origin = new URL(api.url).origin;
    await context.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith('blob:') || u.startsWith('data:') || new URL(u).origin === origin) return route.continue();
      blocked.push(u);
      return route.abort('blockedbyclient');
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('dialog', (d) => void d.accept());
    await mkdir(SHOTS, { recursive: true });
  }, 240_000);

  afterAll(async () => {
    await context?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
    await api?.close();
  });

  // Every test, on its own: no request left for another origin, no script error on the page.
  afterEach(() => {
    expect(blocked.splice(0)).toEqual([]);
    expect(pageErrors.splice(0)).toEqual([]);
  });

  /** The console freshly loaded: each test starts here, whatever the one before left on the page. */
  async function openConsole(): Promise<void> {
    await page.goto(`${api.url}/`);
    await page.waitForSelector('html[data-ready="true"]');
  }

  /** The version serving now (a test may run after the retrain one). */
  const serving = async () => ((await (await fetch(`${api.url}/v1/models/current`)).json()) as { version: string }).version;

  /** Every gallery id, paged from the API. */
  async function allGalleryIds(): Promise<string[]> {
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: { id: string }[]; nextCursor: string | null } = await (await fetch(`${api.url}/v1/images?limit=100${cursor ? `&cursor=${cursor}` : ''}`)).json();
      ids.push(...page.items.map((x) => x.id));
      cursor = page.nextCursor;
    } while (cursor);
    return ids;
  }

  /** A test image whose nearest gallery image (asked of the API directly) has its true label. */
  async function wellSeparatedQuery(): Promise<{ i: number; label: string }> {
    for (let i = 0; i < test.n; i++) {
      const res = await fetch(`${api.url}/v1/search?k=1`, { method: 'POST', body: await png(test, i), headers: { 'Content-Type': 'image/png' } });
      const top = ((await res.json()) as { results: { label: string }[] }).results[0]!;
      const label = test.classNames![test.labels![i]!]!;
      if (top.label === label) return { i, label };
    }
    throw new Error('no test image finds its own class: the fixture model is broken');
  }

  it('searches by an uploaded image: nearest neighbours with the right label, predictions, the model version', async () => {
    const version = await serving();
    await openConsole();
    expect(await page.title()).toBe('VICReg console');
    await expect.poll(() => page.textContent('#model-version')).toContain(version);

    // Every form control has an accessible name (a <label> or aria-label).
    const unnamed = await page.$$eval('input, select, textarea, button', (els) =>
      els.filter((e) => !((e as HTMLInputElement).labels?.length || e.getAttribute('aria-label') || (e.textContent ?? '').trim())).map((e) => e.outerHTML),
    );
    expect(unnamed).toEqual([]);

    const q = await wellSeparatedQuery();
    await page.setInputFiles('#pick', { name: 'query.png', mimeType: 'image/png', buffer: Buffer.from(await png(test, q.i)) });
    await page.waitForSelector('#results li');
    const labels = await page.$$eval('#results .card', (els) => els.map((e) => (e as HTMLElement).dataset.label));
    expect(labels).toHaveLength(10);
    expect(labels[0]).toBe(q.label);
    expect(await page.textContent('#answered-by')).toBe(version);
    expect(await page.$$eval('#pred-knn li[data-label]', (els) => els.length)).toBeGreaterThan(0);
    expect(await page.$$eval('#pred-linear li[data-label]', (els) => els.length)).toBeGreaterThan(0);
    await page.screenshot({ path: path.join(SHOTS, 'search-desktop.png'), fullPage: true });

    // Click a result: the search starts again from that gallery image (searched by id: it is left out).
    const first = await page.getAttribute('#results .card >> nth=0', 'data-id');
    await page.click('#results .card >> nth=0');
    await expect.poll(() => page.getAttribute('#query-img', 'alt')).toContain(first!);
    await expect.poll(() => page.textContent('#search-status')).toMatch(/nearest images/);
    const ids = await page.$$eval('#results .card', (els) => els.map((e) => (e as HTMLElement).dataset.id));
    expect(ids).not.toContain(first);

    // Drop and paste reach the same search.
    const bytes = Buffer.from(await png(test, q.i)).toString('base64');
    for (const how of ['drop', 'paste'] as const) {
      await page.$eval('#results', (el) => el.replaceChildren());
      await page.evaluate(
        ([b64, kind]) => {
          const data = Uint8Array.from(atob(b64!), (ch) => ch.charCodeAt(0));
          const dt = new DataTransfer();
          dt.items.add(new File([data], 'q.png', { type: 'image/png' }));
          if (kind === 'drop') document.querySelector('#drop')!.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
          else document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
        },
        [bytes, how],
      );
      await page.waitForSelector('#results .card');
      expect(await page.getAttribute('#results .card >> nth=0', 'data-label'), how).toBe(q.label);
    }

    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: path.join(SHOTS, 'search-phone.png'), fullPage: true });
    // Nothing overflows sideways on a phone-sized screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('browses the gallery with paging and a label filter, adds several images and deletes one', async () => {
    await openConsole();
    await page.click('nav a[data-view="gallery"]');
    await expect.poll(() => page.$$eval('#gal-grid li.card', (els) => els.length)).toBe(24);
    const firstPage = await page.$$eval('#gal-grid li.card', (els) => els.map((e) => (e as HTMLElement).dataset.id));
    await page.click('#gal-next');
    await expect.poll(() => page.textContent('#gal-page')).toBe('page 2');
    const second = await page.$$eval('#gal-grid li.card', (els) => els.map((e) => (e as HTMLElement).dataset.id));
    expect(second.some((id) => firstPage.includes(id))).toBe(false);
    await page.click('#gal-prev');
    await expect.poll(() => page.textContent('#gal-page')).toBe('page 1');

    await page.fill('#gal-label', 'Trouser');
    await page.dispatchEvent('#gal-label', 'change');
    await expect.poll(() => page.$$eval('#gal-grid li.card .label', (els) => els.map((e) => e.textContent))).toEqual(new Array(PER_CLASS).fill('Trouser'));
    await page.screenshot({ path: path.join(SHOTS, 'gallery.png'), fullPage: true });

    await page.click('#add-panel summary');
    await page.setInputFiles('#add-files', [
      { name: 'a.png', mimeType: 'image/png', buffer: Buffer.from(await png(test, 1)) },
      { name: 'b.png', mimeType: 'image/png', buffer: Buffer.from(await png(test, 2)) },
    ]);
    await page.fill('#add-label', 'Trouser');
    await page.fill('#add-id', 'console-upload');
    await page.fill('#add-meta', '{"source": "console test"}');
    await page.click('#add-form button[type="submit"]');
    await expect.poll(() => page.textContent('#add-status'), { timeout: 30_000 }).toBe('Added 2 of 2 images.');
    const added = (await (await fetch(`${api.url}/v1/images/console-upload-2`)).json()) as { label: string; metadata: unknown };
    expect(added).toMatchObject({ label: 'Trouser', metadata: { source: 'console test' } });

    // Delete one (the confirm dialog is accepted).
    await page.fill('#gal-label', '');
    await page.dispatchEvent('#gal-label', 'change');
    await page.waitForSelector('#gal-grid li.card[data-id="console-upload-1"]');
    await page.click('#gal-grid li.card[data-id="console-upload-1"] button.danger');
    await expect.poll(() => page.textContent('#gal-status')).toBe('Deleted console-upload-1.');
    expect((await fetch(`${api.url}/v1/images/console-upload-1`)).status).toBe(404);
  });

  it('draws the embedding map: one point per gallery image, coloured by label; hover shows the image, click searches', async () => {
    const [version, galleryIds] = [await serving(), await allGalleryIds()];
    await openConsole();
    // The server projects the gallery (GET /v1/gallery/map); the page embeds nothing itself.
    const calls: string[] = [];
    const onRequest = (r: { method(): string; url(): string }) => void calls.push(`${r.method()} ${new URL(r.url()).pathname}`);
    page.on('request', onRequest);
    await page.click('nav a[data-view="map"]');
    await page.waitForSelector('#map .pt', { timeout: 60_000 });
    page.off('request', onRequest);
    expect(calls).toContain('GET /v1/gallery/map');
    expect(calls.filter((c) => c.includes('/v1/embeddings'))).toEqual([]);
    const points = await page.$$eval('#map .pt', (els) => els.map((e) => (e as SVGElement).dataset.id));
    expect(points.length).toBe(galleryIds.length);
    expect(new Set(points)).toEqual(new Set(galleryIds));
    // Drawn from the API's coordinates: the point with the smallest x there is at the left edge.
    const served = (await (await fetch(`${api.url}/v1/gallery/map?limit=5000`)).json()) as { points: { id: string; x: number }[] };
    const leftmost = served.points.reduce((a, b) => (b.x < a.x ? b : a)).id;
    const cx: Record<string, number> = await page.$$eval('#map .pt', (els) => Object.fromEntries(els.map((e) => [(e as SVGElement).dataset.id!, Number(e.getAttribute('cx'))])));
    expect(cx[leftmost]).toBe(Math.min(...Object.values(cx)));
    const colours = await page.$$eval('#map .pt', (els) => new Set(els.map((e) => e.getAttribute('fill'))).size);
    expect(colours).toBe(10);
    await expect.poll(() => page.textContent('#map-status')).toContain(version);
    await page.hover('#map .pt >> nth=3');
    await page.waitForSelector('#map-tip:not([hidden]) img');
    await page.screenshot({ path: path.join(SHOTS, 'map.png'), fullPage: true });
    const id = await page.getAttribute('#map .pt >> nth=3', 'data-id');
    await page.click('#map .pt >> nth=3');
    await expect.poll(() => page.getAttribute('#query-img', 'alt')).toContain(id!);
    expect(new URL(page.url()).hash).toBe('#search');

    // Keyboard: the map is one tab stop; arrows move between points, Enter searches from one.
    await page.click('nav a[data-view="map"]');
    await page.focus('#map .pt[tabindex="0"]');
    await page.keyboard.press('ArrowRight');
    const focused = await page.evaluate(() => (document.activeElement as SVGElement | null)?.dataset.id);
    expect(focused).toBe(points[1]);
    await page.waitForSelector('#map-tip:not([hidden])');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getAttribute('#query-img', 'alt')).toContain(focused!);
  });

  it('starts a tiny retrain with the admin token, watches it reach succeeded, and lists the new version', async () => {
    await openConsole();
    await page.click('nav a[data-view="training"]');
    await page.fill('#admin-token', TOKEN);
    await page.click('#token-form button');
    await expect.poll(() => page.textContent('#token-status')).toMatch(/accepted/);
    await page.fill('#rt-limit', '256');
    await page.fill('#rt-epochs', '1');
    await page.fill('#rt-steps', '3');
    await page.fill('#rt-batch', '64');
    await page.fill('#rt-widths', '8,16');
    await page.fill('#rt-blocks', '1,1');
    await page.fill('#rt-expander', '64-64');
    await page.check('#rt-force');
    await page.click('#retrain-form button[type="submit"]');
    await expect.poll(() => page.textContent('#rt-status')).toMatch(/^Queued job /);
    const jobId = (await page.textContent('#job-id'))!;
    await expect.poll(() => page.textContent('#job-state')).toMatch(/queued/);

    // Imported here: the rest of the console is testable while the worker is being changed.
    const { workerConfigFromEnv } = await import('../gpu-worker/config.js');
    const { startWorker } = await import('../gpu-worker/worker.js');
    const backend = await initNodeBackend({ force: 'wasm', threads: 1, log: () => {} });
    const outcomes: { state: string; version?: string }[] = [];
    const config = workerConfigFromEnv({
      POLL_INTERVAL_MS: '50',
      PROGRESS_INTERVAL_MS: '200',
      DIAGNOSTICS_EVERY_STEPS: '1',
      EXIT_WHEN_IDLE: 'true',
      EVAL_TRAIN_LIMIT: '256',
      EVAL_TEST_LIMIT: '200',
      PROBE_EPOCHS: '3',
      GATE_MIN_RANK: '1.01',
      GATE_MIN_STD: '0.0001',
      GATE_MIN_EMBEDDING_STD: '0.01',
      LOG_LEVEL: 'warn',
    });
    const worker = startWorker({ store, config, backend, logger: createMemoryLogger(), onJobDone: (o) => outcomes.push(o) });
    await worker.done;
    expect(outcomes[0], JSON.stringify(outcomes)).toMatchObject({ state: 'succeeded' });
    const fresh = outcomes[0]!.version!;

    await expect.poll(() => page.textContent('#job-state'), { timeout: 30_000 }).toMatch(/^succeeded/);
    expect(await page.textContent('#job-id')).toBe(jobId);
    const stats = await page.$$eval('#job-stats dt', (els) => els.map((e) => e.textContent));
    expect(stats).toEqual(expect.arrayContaining(['Loss', 'Invariance', 'Variance', 'Covariance', 'Learning rate', 'Std', 'Effective rank', 'ETA']));
    expect(await page.textContent('#job-result')).toContain(fresh);
    await page.waitForSelector(`#models tr[data-version="${fresh}"]`, { timeout: 30_000 });
    await page.screenshot({ path: path.join(SHOTS, 'training.png'), fullPage: true });
    await expect.poll(() => page.textContent('#model-version'), { timeout: 40_000 }).toContain(fresh);
  }, 300_000);
});
