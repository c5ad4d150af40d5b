import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { activateVersion } from '../shared/checkpoint/publish.js';
import type { ImageDataset } from '../shared/data/dataset.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { createMemoryLogger } from '../shared/log.js';
import type { ApiServer } from '../api/server.js';
import { startTestApi } from './helpers/test-api.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { startTempS3 } from './helpers/s3.js';
import { pool, png, publishFixture } from './helpers/api-fixtures.js';
import { until } from './helpers/poll.js';

let images: ImageDataset;
let pngs: Uint8Array<ArrayBuffer>[];
const GALLERY = 40;
/** Servers and buckets of the running test, closed after it (each test has its own). */
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  await tf.setBackend('wasm');
  images = await loadFashionMnist('test', { limit: 100 });
  pngs = await Promise.all(Array.from({ length: 100 }, (_, i) => png(images, i)));
}, 120_000);

afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

/** A fresh bucket on its own s3rver. */
async function bucket(): Promise<ObjectStore> {
  const s3 = await startTempS3();
  cleanups.push(() => s3.cleanup());
  return s3.store;
}

async function start(store: ObjectStore, opts: { waitForModel?: boolean } = {}) {
  const logger = createMemoryLogger();
  const s = await startTestApi({ store, logger, waitForModel: opts.waitForModel ?? false, settings: { POLL_INTERVAL_MS: 100, BATCH_WAIT_MS: 2 } });
  let closed = false;
  const close = async () => {
    if (!closed) await s.close();
    closed = true;
  };
  cleanups.push(close);
  return { s, logger, close };
}

/** Waits for observable states, bounded only by the test's timeout. */
const POLL = { intervalMs: 50 };

/** Upload the first GALLERY test images as img-<i> with their labels. */
async function uploadGallery(api: ApiServer): Promise<number[]> {
  return pool(Array.from({ length: GALLERY }, (_, i) => i), 8, async (i) => {
    const res = await fetch(`${api.url}/v1/images?id=img-${i}&label=${images.labels![i]}`, { method: 'POST', body: pngs[i], headers: { 'Content-Type': 'image/png' } });
    return res.status;
  });
}

/** A bucket with `version` published and a server serving it with the gallery indexed. */
async function serving(seed = 3) {
  const store = await bucket();
  const version = await publishFixture(store, { seed, activate: true });
  const server = await start(store, { waitForModel: true });
  expect(await uploadGallery(server.s)).toEqual(Array.from({ length: GALLERY }, () => 201));
  return { store, version, ...server };
}

const ready = (api: ApiServer) =>
  until('readyz 200', async () => {
    const res = await fetch(`${api.url}/readyz`);
    return res.status === 200 && ((await res.json()) as { model: { version: string }; indexSize: number });
  }, POLL);

describe('hot-load', () => {
  it('before any model: readyz 503 with the reason; requests 503; gallery uploads are kept', async () => {
    const { s: api } = await start(await bucket());
    const r = await until('readyz: no model has been published', async () => {
      const res = await fetch(`${api.url}/readyz`);
      const body = (await res.json()) as { status: number; detail: string };
      return body.detail?.includes('no model has been published') && { res, body };
    }, POLL);
    expect(r.res.status).toBe(503);
    expect(r.res.headers.get('content-type')).toMatch(/problem\+json/);
    const emb = await fetch(`${api.url}/v1/embeddings`, { method: 'POST', body: pngs[0], headers: { 'Content-Type': 'image/png' } });
    expect(emb.status).toBe(503);
    expect(emb.headers.get('retry-after')).toBeTruthy();
    // Uploads without a model are stored (and indexed when the first model arrives: the next test).
    expect(await uploadGallery(api)).toEqual(Array.from({ length: GALLERY }, () => 201));
    const listed = (await (await fetch(`${api.url}/v1/images?limit=100`)).json()) as { items: { id: string }[] };
    expect(listed.items.map((x) => x.id).sort()).toEqual(Array.from({ length: GALLERY }, (_, i) => `img-${i}`).sort());
  });

  it('the first published model is picked up and the gallery uploaded before it indexed before it serves', async () => {
    const store = await bucket();
    const { s: api } = await start(store);
    expect(await uploadGallery(api)).toEqual(Array.from({ length: GALLERY }, () => 201));
    const v1 = await publishFixture(store, { seed: 3, activate: true });
    const r = await ready(api);
    expect(r.model.version).toBe(v1);
    expect(r.indexSize).toBe(GALLERY);
  });

  it('a new version swaps in while requests stream, with zero failed requests', async () => {
    const { store, version: v1, s: api } = await serving();
    const seen: { loop: number; version: string; status: number }[] = [];
    let stop = false;
    const LOOPS = 6;
    const loops = Array.from({ length: LOOPS }, async (_, loop) => {
      let i = 0;
      while (!stop) {
        const img = pngs[(loop * 13 + i++) % pngs.length]!;
        const res =
          loop % 2 === 0
            ? await fetch(`${api.url}/v1/embeddings`, { method: 'POST', body: img, headers: { 'Content-Type': 'image/png' } })
            : await fetch(`${api.url}/v1/search?k=3`, { method: 'POST', body: img, headers: { 'Content-Type': 'image/png' } });
        const body = (await res.json()) as { model?: { version: string } };
        seen.push({ loop, version: body.model?.version ?? '?', status: res.status });
      }
    });
    const everyLoopSaw = (v: string) => () => Array.from({ length: LOOPS }, (_, l) => l).every((l) => seen.some((s) => s.loop === l && s.version === v));
    // Every client has been answered by v1 before v2 is published, and by v2 before they stop.
    await until(`every client answered by ${v1}`, everyLoopSaw(v1), POLL);
    const v2 = await publishFixture(store, { seed: 4, activate: true, parent: v1 });
    await until(`every client answered by ${v2}`, everyLoopSaw(v2), POLL);
    stop = true;
    await Promise.all(loops);

    expect(seen.filter((s) => s.status !== 200)).toEqual([]);
    // Per client, the version switches once and never goes back.
    for (let loop = 0; loop < LOOPS; loop++) {
      const vs = seen.filter((s) => s.loop === loop).map((s) => s.version);
      const firstV2 = vs.indexOf(v2);
      expect(firstV2).toBeGreaterThan(0);
      expect(vs.slice(0, firstV2).every((v) => v === v1)).toBe(true);
      expect(vs.slice(firstV2).every((v) => v === v2)).toBe(true);
    }
    const cur = (await (await fetch(`${api.url}/v1/models/current`)).json()) as { version: string; indexSize: number };
    expect(cur).toMatchObject({ version: v2, indexSize: GALLERY });
    console.log(`hot-load: ${seen.length} requests while swapping ${v1} → ${v2}, 0 failed`);
  });

  it('a version that fails verification is logged, listed with its error and skipped; the old pair keeps serving', async () => {
    const { store, version: v2, s: api, logger } = await serving(4);
    const v3 = await publishFixture(store, { seed: 5, activate: false, parent: v2 });
    // Corrupt one byte of the published weights: sha256 no longer matches the manifest.
    const key = `models/${v3}/weights.bin`;
    const got = await store.get(key);
    const bytes = (got as { body: Uint8Array }).body.slice();
    bytes[100] = bytes[100]! ^ 0xff;
    await store.put(key, bytes);
    await activateVersion(store, v3);

    const models = await until(`${v3} listed as failed`, async () => {
      const m = (await (await fetch(`${api.url}/v1/models`)).json()) as { current: string; models: { version: string; state: string; error?: string }[] };
      return m.models.find((x) => x.version === v3)?.state === 'failed' && m;
    }, POLL);
    expect(models.current).toBe(v2);
    expect(models.models.find((x) => x.version === v3)!.error).toMatch(/weights\.bin is corrupt: sha256/);
    expect(logger.records.some((r) => r.level === 'error' && r.version === v3)).toBe(true);
    const res = await fetch(`${api.url}/v1/embeddings`, { method: 'POST', body: pngs[1], headers: { 'Content-Type': 'image/png' } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { model: { version: string } }).model.version).toBe(v2);
    expect((await fetch(`${api.url}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${api.url}/metrics`)).text();
    expect(metrics).toContain(`model_load_failures_total{version="${v3}"} 1`);
    // Skipped, not retried on every look at latest.json (two more looks, made here rather than waited for).
    await api.host.refresh();
    await api.host.refresh();
    expect(logger.records.filter((r) => r.level === 'error' && r.version === v3)).toHaveLength(1);
  });

  it('a restart loads the index snapshot instead of re-embedding, and answers the same', async () => {
    const { store, version, s: api, close } = await serving();
    const query = async (url: string) =>
      (await (await fetch(`${url}/v1/search?k=5`, { method: 'POST', body: pngs[77], headers: { 'Content-Type': 'image/png' } })).json()) as {
        model: { version: string };
        results: { id: string; score: number }[];
      };
    const before = await query(api.url);
    await close(); // writes the pending index snapshot
    const again = await start(store, { waitForModel: true });
    const r = await ready(again.s);
    expect(r.indexSize).toBe(GALLERY);
    const loaded = again.logger.records.find((l) => l.msg === 'model ready');
    expect(loaded).toMatchObject({ version, fromSnapshot: true, indexSize: GALLERY });
    // The log says how the model computes: here the compiled serving graph.
    expect(String(loaded!.runtime)).toMatch(/graph/);
    const after = await query(again.s.url);
    expect(after.model.version).toBe(version);
    expect(after.results.map((x) => x.id)).toEqual(before.results.map((x) => x.id));
    after.results.forEach((x, i) => expect(x.score).toBeCloseTo(before.results[i]!.score, 5));
  });
});
