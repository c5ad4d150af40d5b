import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activateVersion } from '../shared/checkpoint/publish.js';
import type { ImageDataset } from '../shared/data/dataset.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { createMemoryLogger } from '../shared/log.js';
import { startApiServer, type ApiServer } from '../api/server.js';
import { withLocalS3 } from './helpers/s3.js';
import { pool, png, publishFixture } from './helpers/api-fixtures.js';

const s3 = withLocalS3();
let images: ImageDataset;
let pngs: Uint8Array<ArrayBuffer>[];
const servers: ApiServer[] = [];
const GALLERY = 40;

beforeAll(async () => {
  await tf.setBackend('wasm');
  images = await loadFashionMnist('test', { limit: 100 });
  pngs = await Promise.all(Array.from({ length: 100 }, (_, i) => png(images, i)));
}, 120_000);

afterAll(async () => {
  for (const s of servers) await s.close();
});

async function start(logger = createMemoryLogger()) {
  const s = await startApiServer({ env: {}, store: s3.current.store, port: 0, initBackend: false, logger, settings: { POLL_INTERVAL_MS: 100, BATCH_WAIT_MS: 2 } });
  servers.push(s);
  return { s, logger };
}

async function until<T>(f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('hot-load', () => {
  let api: ApiServer;
  let v1: string;
  let v2: string;
  let logger: ReturnType<typeof createMemoryLogger>;

  it('before any model: readyz 503 with the reason; requests 503; gallery uploads are kept', async () => {
    ({ s: api, logger } = await start());
    const r = await until(async () => {
      const res = await fetch(`${api.url}/readyz`);
      const body = (await res.json()) as { status: number; detail: string };
      return body.detail?.includes('no model has been published') ? { res, body } : undefined;
    });
    expect(r.res.status).toBe(503);
    expect(r.res.headers.get('content-type')).toMatch(/problem\+json/);
    const emb = await fetch(`${api.url}/v1/embeddings`, { method: 'POST', body: pngs[0], headers: { 'Content-Type': 'image/png' } });
    expect(emb.status).toBe(503);
    expect(emb.headers.get('retry-after')).toBeTruthy();
    // Uploads without a model are stored and indexed when the first model arrives.
    const statuses = await pool(Array.from({ length: GALLERY }, (_, i) => i), 8, async (i) => {
      const res = await fetch(`${api.url}/v1/images?id=img-${i}&label=${images.labels![i]}`, { method: 'POST', body: pngs[i], headers: { 'Content-Type': 'image/png' } });
      return res.status;
    });
    expect(statuses.every((s) => s === 201)).toBe(true);
  });

  it('the first published model is picked up and the gallery indexed before it serves', async () => {
    v1 = await publishFixture(s3.current.store, { seed: 3, activate: true });
    const ready = await until(async () => {
      const res = await fetch(`${api.url}/readyz`);
      return res.status === 200 ? ((await res.json()) as { model: { version: string }; indexSize: number }) : undefined;
    });
    expect(ready.model.version).toBe(v1);
    expect(ready.indexSize).toBe(GALLERY);
  });

  it('a new version swaps in while requests stream, with zero failed requests', async () => {
    const seen: { loop: number; version: string; status: number }[] = [];
    let stop = false;
    const loops = Array.from({ length: 6 }, async (_, loop) => {
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
    await new Promise((r) => setTimeout(r, 300));
    v2 = await publishFixture(s3.current.store, { seed: 4, activate: true, parent: v1 });
    await until(async () => (seen.filter((s) => s.version === v2).length > 30 ? true : undefined));
    stop = true;
    await Promise.all(loops);

    expect(seen.filter((s) => s.status !== 200)).toEqual([]);
    expect(seen.some((s) => s.version === v1)).toBe(true);
    // Per client, the version switches once and never goes back.
    for (let loop = 0; loop < 6; loop++) {
      const vs = seen.filter((s) => s.loop === loop).map((s) => s.version);
      const firstV2 = vs.indexOf(v2);
      expect(firstV2).toBeGreaterThan(-1);
      expect(vs.slice(firstV2).every((v) => v === v2)).toBe(true);
    }
    const cur = (await (await fetch(`${api.url}/v1/models/current`)).json()) as { version: string; indexSize: number };
    expect(cur).toMatchObject({ version: v2, indexSize: GALLERY });
    console.log(`hot-load: ${seen.length} requests while swapping ${v1} → ${v2}, 0 failed`);
  });

  it('a version that fails verification is logged, listed with its error and skipped; the old pair keeps serving', async () => {
    const v3 = await publishFixture(s3.current.store, { seed: 5, activate: false, parent: v2 });
    // Corrupt one byte of the published weights: sha256 no longer matches the manifest.
    const key = `models/${v3}/weights.bin`;
    const got = await s3.current.store.get(key);
    const bytes = (got as { body: Uint8Array }).body.slice();
    bytes[100] = bytes[100]! ^ 0xff;
    await s3.current.store.put(key, bytes);
    await activateVersion(s3.current.store, v3);

    const models = await until(async () => {
      const m = (await (await fetch(`${api.url}/v1/models`)).json()) as { current: string; models: { version: string; state: string; error?: string }[] };
      return m.models.find((x) => x.version === v3)?.state === 'failed' ? m : undefined;
    });
    expect(models.current).toBe(v2);
    expect(models.models.find((x) => x.version === v3)!.error).toMatch(/weights\.bin is corrupt: sha256/);
    expect(logger.records.some((r) => r.level === 'error' && r.version === v3)).toBe(true);
    const res = await fetch(`${api.url}/v1/embeddings`, { method: 'POST', body: pngs[1], headers: { 'Content-Type': 'image/png' } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { model: { version: string } }).model.version).toBe(v2);
    expect((await fetch(`${api.url}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${api.url}/metrics`)).text();
    expect(metrics).toContain(`model_load_failures_total{version="${v3}"} 1`);
    // Skipped, not retried on every poll.
    await new Promise((r) => setTimeout(r, 400));
    expect(logger.records.filter((r) => r.level === 'error' && r.version === v3)).toHaveLength(1);
    await activateVersion(s3.current.store, v2);
  });

  it('a restart loads the index snapshot instead of re-embedding, and answers the same', async () => {
    const query = async (url: string) =>
      (await (await fetch(`${url}/v1/search?k=5`, { method: 'POST', body: pngs[77], headers: { 'Content-Type': 'image/png' } })).json()) as {
        model: { version: string };
        results: { id: string; score: number }[];
      };
    const before = await query(api.url);
    await api.close();
    servers.splice(servers.indexOf(api), 1);
    const again = await start();
    await until(async () => ((await fetch(`${again.s.url}/readyz`)).status === 200 ? true : undefined));
    const ready = again.logger.records.find((r) => r.msg === 'model ready');
    expect(ready).toMatchObject({ version: v2, fromSnapshot: true, indexSize: GALLERY });
    // The log says how the model computes: here the compiled serving graph.
    expect(String(ready!.runtime)).toMatch(/graph/);
    const after = await query(again.s.url);
    expect(after.model.version).toBe(v2);
    expect(after.results.map((r) => r.id)).toEqual(before.results.map((r) => r.id));
    after.results.forEach((r, i) => expect(r.score).toBeCloseTo(before.results[i]!.score, 5));
  });
});
