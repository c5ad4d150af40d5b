import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointSource, runInThisThread } from '../api/checkpoint-source.js';
import { EdgeHost } from '../api/edge/edge-host.js';
import type { GalleryIndexStub } from '../api/edge/gallery-index-do.js';
import { Gallery } from '../api/gallery.js';
import { ApiMetrics } from '../api/metrics.js';
import { judgeOutputs, MIN_RELATIVE_SPREAD, PROBE_IMAGES, probeBatch } from '../api/model-sanity.js';
import type { ApiServer } from '../api/server.js';
import { startTestApi } from './helpers/test-api.js';
import { buildCheckpointFiles } from '../shared/checkpoint/format.js';
import type { ManifestFields } from '../shared/checkpoint/manifest.js';
import { publishCheckpoint, readLatest } from '../shared/checkpoint/publish.js';
import type { ImageDataset } from '../shared/data/dataset.js';
import { createMemoryLogger } from '../shared/log.js';
import { readCheckpointDir } from '../shared/node/checkpoint-dir.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import type { ImageDecoder } from '../shared/image/decoder.js';
import { MemoryStore } from '../shared/store/memory-store.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { DIM, fixtureBackbone, png, publishFixture } from './helpers/api-fixtures.js';

/**
 * Hardening items 2 and 3: a checkpoint whose files match their sha256 but whose network is broken (NaN
 * weights, or the same output for every input) is refused by the sanity probe before a swap, as a
 * checksum failure is; and an admin can activate a gate-rejected version with {"force": true}, which
 * still goes through that probe.
 */

const TOKEN = 'test-admin-token-0123456789';
const admin = { Authorization: `Bearer ${TOKEN}` };
const logger = createMemoryLogger();
const store = new MemoryStore();
let api: ApiServer;
let images: ImageDataset;
let shoe: Uint8Array<ArrayBuffer>;

type Breakage = 'nan' | 'constant' | 'none';

function fields(seed: number, rejected: string | null): ManifestFields {
  return {
    parent: null,
    state: rejected ? 'rejected' : 'active-candidate',
    ...(rejected ? { rejectedReason: rejected } : {}),
    training: { config: { fixture: 'api-model-sanity', seed }, seed, steps: 0, epochs: 0, wallSeconds: 0, command: 'test fixture (untrained)' },
    dataset: { name: 'fashion-mnist:train', fingerprint: 'c'.repeat(64), n: 0 },
    preprocessing: { inputSize: 28, channels: 1, mean: [0.286], std: [0.353], resize: 'fill' },
    representationDim: DIM,
    backend: tf.getBackend(),
    metrics: { knn_top1: 0 },
  };
}

/**
 * Publish the fixture network, broken as asked, as a checkpoint whose files all match their sha256:
 * 'nan' sets every weight to NaN; 'constant' zeroes the last layer's kernel (its bias, 0.5, is then the
 * output for every image).
 */
async function publishBroken(s: ObjectStore, seed: number, breakage: Breakage, opts: { activate: boolean; rejected?: string }): Promise<string> {
  const model = fixtureBackbone(seed);
  try {
    if (breakage === 'nan') model.setWeights(model.getWeights().map((w) => tf.fill(w.shape, NaN)));
    if (breakage === 'constant') {
      const last = model.layers[model.layers.length - 1]!;
      const [kernel, bias] = last.getWeights();
      last.setWeights([tf.zerosLike(kernel!), tf.fill(bias!.shape, 0.5)]);
    }
    const { files, manifest } = await buildCheckpointFiles({ model, manifest: fields(seed, opts.rejected ?? null) });
    await publishCheckpoint(s, files, { activate: opts.activate });
    return manifest.version;
  } finally {
    model.dispose();
  }
}

beforeAll(async () => {
  await tf.setBackend('wasm');
  images = await loadFashionMnist('test', { limit: 10 });
  shoe = await png(images, 0);
  await publishFixture(store, { seed: 3, activate: true });
  api = await startTestApi({
    store,
    waitForModel: true,
    logger,
    settings: { ADMIN_TOKEN: TOKEN, POLL_INTERVAL_MS: 60_000, BATCH_WAIT_MS: 2 },
  });
}, 180_000);

afterAll(async () => {
  await api?.close();
});

const url = (p: string) => `${api.url}${p}`;
const activate = (version: string, body?: string, type?: string) =>
  fetch(url(`/admin/models/${version}/activate`), {
    method: 'POST',
    ...(body !== undefined ? { body } : {}),
    headers: { ...admin, ...(type ? { 'Content-Type': type } : {}) },
  });

async function problem(res: Response, status: number, detail?: RegExp): Promise<{ detail: string; errors?: { field: string }[] }> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(text) as { detail: string; errors?: { field: string }[] };
  if (detail) expect(body.detail).toMatch(detail);
  return body;
}

/** Serving version per /v1/embeddings (what a client sees). */
async function servedBy(): Promise<string> {
  const res = await fetch(url('/v1/embeddings'), { method: 'POST', body: shoe, headers: { 'Content-Type': 'image/png' } });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { model: { version: string }; data: { embedding: number[] }[] };
  const e = body.data[0]!.embedding;
  expect(e.length).toBe(DIM);
  expect(e.every(Number.isFinite) && e.some((x) => x !== 0)).toBe(true);
  return body.model.version;
}

/** After latest moved to `bad`: the old model keeps serving and every channel says why `bad` was refused. */
async function expectRefused(bad: string, serving: string, why: RegExp): Promise<void> {
  await api.host.refresh();
  expect(await servedBy()).toBe(serving);
  const models = (await (await fetch(url('/v1/models'))).json()) as { current: string; models: { version: string; state: string; latest: boolean; error?: string }[] };
  expect(models.current).toBe(serving);
  const entry = models.models.find((m) => m.version === bad)!;
  expect(entry).toMatchObject({ state: 'failed', latest: true });
  expect(entry.error).toMatch(why);
  const ready = await fetch(url('/readyz'));
  expect(ready.status).toBe(200);
  const readyBody = (await ready.json()) as { model: { version: string }; failures: { version: string; error: string }[] };
  expect(readyBody.model.version).toBe(serving);
  expect(readyBody.failures.find((f) => f.version === bad)?.error).toMatch(why);
  expect(await (await fetch(url('/metrics'))).text()).toContain(`model_load_failures_total{version="${bad}"} 1`);
  expect(logger.records.some((r) => r.level === 'error' && r.version === bad)).toBe(true);
  // Skipped from now on, not retried on every poll.
  await api.host.refresh();
  expect(logger.records.filter((r) => r.level === 'error' && r.version === bad)).toHaveLength(1);
}

describe('the sanity probe', () => {
  it('judges outputs: non-finite and collapsed are refused with the reason; varied outputs pass', () => {
    const n = PROBE_IMAGES;
    const nan = new Float32Array(n * DIM).fill(NaN);
    expect(judgeOutputs(nan, n, DIM).reason).toBe(`model outputs are not finite (NaN in ${n * DIM} of ${n * DIM} values)`);
    const someInf = Float32Array.from({ length: n * DIM }, (_, i) => (i === 5 ? Infinity : i));
    expect(judgeOutputs(someInf, n, DIM).reason).toMatch(/not finite \(±Infinity in 1 of 512 values\)/);
    expect(judgeOutputs(new Float32Array(n * DIM), n, DIM).reason).toMatch(/^model outputs are the same for every input \(collapsed\)/);
    const constant = Float32Array.from({ length: n * DIM }, (_, i) => (i % DIM) * 0.1 - 3);
    expect(judgeOutputs(constant, n, DIM).reason).toMatch(/collapsed/);
    const varied = Float32Array.from({ length: n * DIM }, (_, i) => Math.sin(i * 1.7));
    expect(judgeOutputs(varied, n, DIM).reason).toBeNull();
    expect(judgeOutputs(varied, n, DIM + 1).reason).toMatch(/512 output values for 8 images of dimension 65/);
  });

  it('the probe batch is structured (no constant image) and normalised as the manifest says', () => {
    const pre = { inputSize: 28, channels: 1 as const, mean: [0.5], std: [0.25] };
    const x = probeBatch(pre);
    expect(x.length).toBe(PROBE_IMAGES * 28 * 28);
    expect(probeBatch(pre)).toEqual(x); // deterministic
    for (let k = 0; k < PROBE_IMAGES; k++) {
      const img = x.subarray(k * 784, (k + 1) * 784);
      expect(Math.max(...img) - Math.min(...img)).toBeGreaterThan(1);
      expect(Math.min(...img)).toBeGreaterThanOrEqual(-2 - 1e-6);
      expect(Math.max(...img)).toBeLessThanOrEqual(2 + 1e-6);
    }
    expect(probeBatch({ inputSize: 32, channels: 3, mean: [0.4, 0.5, 0.6], std: [0.2, 0.2, 0.2] }).length).toBe(PROBE_IMAGES * 32 * 32 * 3);
  });

  it('the bundled checkpoint and the test fixture pass with a wide margin', async () => {
    const s = new MemoryStore();
    const { manifest } = await publishCheckpoint(s, await readCheckpointDir('checkpoints/bundled'), { activate: false });
    const spreads: Record<string, number> = {};
    for (const [name, v] of [
      ['bundled', manifest.version],
      ['fixture', await publishFixture(s, { seed: 3, activate: false })],
    ] as const) {
      const m = await checkpointSource(s, { run: runInThisThread }).load(v);
      const r = judgeOutputs(await m.forward(probeBatch(m.preprocessing), PROBE_IMAGES), PROBE_IMAGES, m.dimension);
      m.dispose();
      expect(r.reason).toBeNull();
      spreads[name] = r.stats!.spread;
    }
    console.log(`sanity probe spread (threshold ${MIN_RELATIVE_SPREAD}): ${JSON.stringify(spreads)}`);
    for (const spread of Object.values(spreads)) expect(spread).toBeGreaterThan(100 * MIN_RELATIVE_SPREAD);
  });

  it('load refuses NaN and constant networks with the reason and frees them', async () => {
    const s = new MemoryStore();
    const source = checkpointSource(s, { run: runInThisThread });
    const nan = await publishBroken(s, 21, 'nan', { activate: false });
    const constant = await publishBroken(s, 22, 'constant', { activate: false });
    const tensors = tf.memory().numTensors;
    await expect(source.load(nan)).rejects.toThrow(
      new RegExp(`^model ${nan} refused by the sanity probe: model outputs are not finite \\(NaN in ${PROBE_IMAGES * DIM} of ${PROBE_IMAGES * DIM} values\\)$`),
    );
    await expect(source.load(constant)).rejects.toThrow(/model outputs are the same for every input \(collapsed\)/);
    expect(tf.memory().numTensors).toBe(tensors);
  });
});

describe('the server refuses a broken model before the swap', () => {
  it('NaN weights: the old model keeps serving; /v1/models, /readyz and metrics say why', async () => {
    const serving = await servedBy();
    const bad = await publishBroken(store, 31, 'nan', { activate: true });
    await expectRefused(bad, serving, /model outputs are not finite \(NaN in 512 of 512 values\)/);
  });

  it('constant outputs (last layer zeroed): refused as collapsed', async () => {
    const serving = await servedBy();
    const bad = await publishBroken(store, 32, 'constant', { activate: true });
    await expectRefused(bad, serving, /model outputs are the same for every input \(collapsed\)/);
  });

  it('a sane version then swaps in', async () => {
    const v2 = await publishFixture(store, { seed: 4, activate: true });
    await api.host.refresh();
    expect(await servedBy()).toBe(v2);
    expect(logger.records.some((r) => r.level === 'error' && r.version === v2)).toBe(false);
  });
});

describe('POST /admin/models/{version}/activate with force', () => {
  it('a gate-rejected version: 409 without force (saying how to force), 202 with {"force": true}, then serves', async () => {
    const rejected = await publishBroken(store, 41, 'none', { activate: false, rejected: 'embedding std 0.05 below the collapse floor 0.1' });
    await problem(await activate(rejected), 409, /rejected \(embedding std 0\.05 below the collapse floor 0\.1\).*\{"force": true\}/);
    await problem(await activate(rejected, JSON.stringify({ force: false }), 'application/json'), 409, /rejected/);
    expect((await readLatest(store))!.version).not.toBe(rejected);

    const res = await activate(rejected, JSON.stringify({ force: true }), 'application/json');
    expect(res.status, await res.clone().text()).toBe(202);
    expect(await res.json()).toMatchObject({ latest: rejected });
    expect((await readLatest(store))!.version).toBe(rejected);
    await api.host.refresh();
    expect(await servedBy()).toBe(rejected);
    expect(logger.records.some((r) => r.msg === 'model activated' && r.version === rejected && r.force === true)).toBe(true);
  });

  it('a forced NaN version: 202 and latest moves, but the probe refuses it; the old model keeps serving', async () => {
    const serving = await servedBy();
    const nan = await publishBroken(store, 42, 'nan', { activate: false, rejected: 'embeddings are not finite' });
    await problem(await activate(nan), 409, /force/);
    const res = await activate(nan, JSON.stringify({ force: true }), 'application/json; charset=utf-8');
    expect(res.status, await res.clone().text()).toBe(202);
    expect((await readLatest(store))!.version).toBe(nan);
    await expectRefused(nan, serving, /not finite/);
  });

  it('no body, an empty body or {} mean no force; a sane version activates', async () => {
    const v = await publishFixture(store, { seed: 5, activate: false });
    expect((await activate(v)).status).toBe(202);
    expect((await activate(v, '', 'application/json')).status).toBe(202);
    expect((await activate(v, '{}', 'application/json')).status).toBe(202);
    await api.host.refresh();
    expect(await servedBy()).toBe(v);
  });

  it('a bad body is 400 naming the field; a non-JSON body is 415', async () => {
    const v = (await readLatest(store))!.version;
    const wrongType = await problem(await activate(v, JSON.stringify({ force: 'yes' }), 'application/json'), 400, /body\.force/);
    expect(wrongType.errors?.map((e) => e.field)).toContain('body.force');
    await problem(await activate(v, JSON.stringify({ forse: true }), 'application/json'), 400, /forse/);
    await problem(await activate(v, '{"force": tru', 'application/json'), 400, /not valid JSON/);
    await problem(await activate(v, 'force=true', 'application/x-www-form-urlencoded'), 415, /application\/json/);
  });

  it('OpenAPI documents the optional body', async () => {
    const doc = (await (await fetch(url('/openapi.json'))).json()) as {
      paths: Record<string, { post: { requestBody?: { required?: boolean; content: Record<string, { schema: { $ref?: string } }> }; responses: Record<string, unknown> } }>;
      components: { schemas: Record<string, { properties?: Record<string, { type?: string }> }> };
    };
    const op = doc.paths['/admin/models/{version}/activate']!.post;
    expect(op.requestBody?.required).toBe(false);
    expect(op.requestBody?.content['application/json']!.schema.$ref).toBe('#/components/schemas/ActivateRequest');
    expect(doc.components.schemas.ActivateRequest!.properties!.force!.type).toBe('boolean');
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['202', '400', '409', '415']));
  });
});

describe('the edge host refuses a broken model the same way', () => {
  it('a collapsed version named by latest is skipped with the reason; the old model keeps serving', async () => {
    const s = new MemoryStore();
    const metrics = new ApiMetrics();
    const edgeLogger = createMemoryLogger();
    // An empty gallery: the Durable Object only has to open a version's index.
    const index = { open: async () => ({ size: 0, pending: 0 }), pendingItems: async () => [] } as unknown as GalleryIndexStub;
    const host = new EdgeHost({
      source: checkpointSource(s, { run: runInThisThread }),
      gallery: new Gallery(s),
      decoder: {} as ImageDecoder,
      index: () => index,
      metrics,
      logger: edgeLogger,
      maxBatch: 8,
      pollMs: 0,
      now: Date.now,
    });
    const good = await publishFixture(s, { seed: 6, activate: true });
    await host.refresh();
    expect(host.status().serving).toBe(good);
    const bad = await publishBroken(s, 51, 'constant', { activate: true });
    await host.refresh();
    const st = host.status();
    expect(st).toMatchObject({ ready: true, serving: good, latest: bad });
    expect(st.failures.find((f) => f.version === bad)?.error).toMatch(/model outputs are the same for every input \(collapsed\)/);
    expect(metrics.render()).toContain(`model_load_failures_total{version="${bad}"} 1`);
    host.current?.retire();
  });
});
