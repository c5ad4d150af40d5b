/**
 * The Node API's serving engines: onnxruntime where the checkpoint carries model.onnx, tfjs otherwise,
 * and the same embeddings from both on real images.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../api/server.js';
import { startTestApi } from './helpers/test-api.js';
import { ensureModelPublished } from '../scripts/bundled-checkpoint.js';
import type { ImageDataset } from '../shared/data/dataset.js';
import { createMemoryLogger } from '../shared/log.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { createMemoryStore } from '../shared/store/memory-store.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { png, publishFixture } from './helpers/api-fixtures.js';

const BUNDLED = path.resolve(import.meta.dirname, '../checkpoints/bundled');

let test: ImageDataset;
const servers: ApiServer[] = [];

beforeAll(async () => {
  await initNodeBackend({ force: 'wasm', threads: 1, log: () => {} });
  test = await loadFashionMnist('test', { limit: 32 });
}, 120_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function serve(store: ObjectStore, engine: 'auto' | 'onnxruntime' | 'tfjs') {
  const logger = createMemoryLogger();
  const api = await startTestApi({
    store,
    waitForModel: true,
    logger,
    settings: { SERVING_ENGINE: engine, SERVING_THREADS: 1, POLL_INTERVAL_MS: 60_000 },
  });
  servers.push(api);
  return { api, logger };
}

async function embed(api: ApiServer, images: Uint8Array<ArrayBuffer>[]): Promise<number[][]> {
  const form = new FormData();
  images.forEach((b, i) => form.append('image', new Blob([b], { type: 'image/png' }), `${i}.png`));
  const res = await fetch(`${api.url}/v1/embeddings`, { method: 'POST', body: form });
  expect(res.status).toBe(200);
  return ((await res.json()) as { data: { embedding: number[] }[] }).data.map((d) => d.embedding);
}

const runtimeOf = (logger: ReturnType<typeof createMemoryLogger>) => logger.records.find((r) => r.msg === 'model ready')?.runtime as string | undefined;

describe('serving engines', () => {
  it('the bundled checkpoint serves on onnxruntime by default, with the embeddings tfjs gives (≤ 1e-4)', async () => {
    const store = createMemoryStore();
    await ensureModelPublished(store, BUNDLED);
    const [auto, tfjs] = await Promise.all([serve(store, 'auto'), serve(store, 'tfjs')]);
    expect(runtimeOf(auto.logger)).toMatch(/^onnxruntime/);
    expect(runtimeOf(tfjs.logger)).not.toMatch(/onnxruntime/);
    const images = await Promise.all(Array.from({ length: 24 }, (_, i) => png(test, i)));
    const [a, b] = await Promise.all([embed(auto.api, images), embed(tfjs.api, images)]);
    let worst = 0;
    a.forEach((v, i) => v.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - b[i]![j]!)))));
    expect(worst).toBeLessThanOrEqual(1e-4);
  });

  it('a checkpoint without model.onnx serves on tfjs under auto, and is refused (and reported) when onnxruntime is required', async () => {
    const store = createMemoryStore();
    const version = await publishFixture(store, { seed: 4, activate: true });
    const auto = await serve(store, 'auto');
    expect(runtimeOf(auto.logger)).toBeDefined();
    expect(runtimeOf(auto.logger)).not.toMatch(/onnxruntime/);
    expect((await embed(auto.api, [await png(test, 0)]))[0]).toHaveLength(64);

    const strict = await serve(store, 'onnxruntime');
    const ready = await fetch(`${strict.api.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { detail: string }).detail).toMatch(new RegExp(`${version} failed to load: .*no model\\.onnx`));
  });
});
