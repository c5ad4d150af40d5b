import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserMissing, CHROMIUM, LAUNCH_ARGS } from './helpers/browser.js';
import { CONSOLE_ASSETS, CONSOLE_CSP, CONSOLE_PATHS } from '../api/console/index.js';
import { buildEdge, startLocalEdge, type LocalEdge } from '../scripts/edge-local.js';
import type { ImageDataset } from '../shared/data/dataset.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { pool, png, publishFixture } from './helpers/api-fixtures.js';

/**
 * The same console from the Worker bundle (wrangler's build, in local workerd): the page and its assets are
 * byte-identical to Node's, and in headless Chromium a search by image and the embedding map work at the
 * edge, with every other origin blocked.
 */
const browser = browserMissing('console-edge.test.ts (its browser part)').length === 0;

const PER_CLASS = 3;
let buildDir: string;
let edge: LocalEdge;
let train: ImageDataset;
let test: ImageDataset;
let version: string;
const ids: string[] = [];

beforeAll(async () => {
  await tf.setBackend('wasm');
  buildDir = await mkdtemp(path.join(tmpdir(), 'console-edge-'));
  [, train, test] = await Promise.all([buildEdge(buildDir), loadFashionMnist('train', { limit: 2000 }), loadFashionMnist('test', { limit: 50 })]);
  edge = await startLocalEdge({ buildDir, vars: { POLL_INTERVAL_MS: '300', LOG_LEVEL: 'warn' } });
  version = await publishFixture(edge.store, { seed: 11, activate: true, headData: train, headN: 1000 });
  const picks: number[] = [];
  const count = new Array(10).fill(0);
  for (let i = 1000; i < train.n && picks.length < PER_CLASS * 10; i++) {
    const y = train.labels![i]!;
    if (count[y]! < PER_CLASS) (count[y]++, picks.push(i));
  }
  // Uploaded through the Worker (its first request loads the model).
  await pool(picks, 4, async (i) => {
    const form = new FormData();
    form.append('image', new Blob([await png(train, i)], { type: 'image/png' }), 'x.png');
    form.append('id', `fm-${i}`);
    form.append('label', train.classNames![train.labels![i]!]!);
    const res = await fetch(`${edge.url}/v1/images`, { method: 'POST', body: form });
    expect(res.status, await res.clone().text()).toBe(201);
    ids.push(`fm-${i}`);
  });
}, 240_000);

afterAll(async () => {
  await edge?.close();
  if (buildDir) await rm(buildDir, { recursive: true, force: true });
});

describe('the console at the edge', () => {
  it('serves the same page and assets as Node', async () => {
    const page = await fetch(`${edge.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    const html = await page.text();
    for (const key of ['js', 'css', 'icon'] as const) {
      expect(html).toContain(CONSOLE_PATHS[key]);
      const res = await fetch(`${edge.url}${CONSOLE_PATHS[key]}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toContain('immutable');
      expect(await res.text()).toBe(CONSOLE_ASSETS[key].body);
    }
  });

  it('projects the gallery on the server: GET /v1/gallery/map has one point per image, through the Durable Object', async () => {
    const res = await fetch(`${edge.url}/v1/gallery/map`);
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(res.headers.get('x-model-version')).toBe(version);
    const map = JSON.parse(text) as { model: { version: string }; total: number; explainedVariance: number[]; points: { id: string; x: number; y: number; label?: string }[] };
    expect(map.model.version).toBe(version);
    expect(map.total).toBe(ids.length);
    expect(map.points.map((p) => p.id)).toEqual([...ids].sort());
    for (const p of map.points) {
      expect(p.label).toBe(train.classNames![train.labels![Number(p.id.slice(3))]!]);
      expect(Number.isFinite(p.x) && Number.isFinite(p.y)).toBe(true);
    }
    expect(map.explainedVariance[0]).toBeGreaterThan(0);
    const bad = await fetch(`${edge.url}/v1/gallery/map?limit=0`);
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it.skipIf(!browser)('searches by image and draws the map in headless Chromium', async () => {
    const { chromium } = await import('playwright-core');
    const profile = await mkdtemp(path.join(tmpdir(), 'console-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: LAUNCH_ARGS,
      viewport: { width: 1024, height: 800 },
    });
    const blocked: string[] = [];
    const errors: string[] = [];
    try {
      const origin = new URL(edge.url).origin;
      await context.route('**/*', (route) => {
        const u = route.request().url();
        if (u.startsWith('blob:') || u.startsWith('data:') || new URL(u).origin === origin) return route.continue();
        blocked.push(u);
        return route.abort('blockedbyclient');
      });
      const page = context.pages()[0] ?? (await context.newPage());
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(`${edge.url}/`);
      await expect.poll(() => page.textContent('#model-version'), { timeout: 30_000 }).toContain(version);
      await page.setInputFiles('#pick', { name: 'q.png', mimeType: 'image/png', buffer: Buffer.from(await png(test, 0)) });
      await page.waitForSelector('#results .card');
      expect(await page.$$eval('#results .card', (els) => els.length)).toBe(10);
      expect(await page.textContent('#answered-by')).toBe(version);

      await page.click('nav a[data-view="map"]');
      await page.waitForSelector('#map .pt', { timeout: 60_000 });
      const points = await page.$$eval('#map .pt', (els) => els.map((e) => (e as SVGElement).dataset.id));
      expect(new Set(points)).toEqual(new Set(ids));
      expect(blocked).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    }
  }, 120_000);
});
