/**
 * A checkpoint of another shape than Fashion-MNIST's — 64×64×3, `cover` resize, its own per-channel
 * mean/std — served through the API end to end, on onnxruntime and on tfjs, against the model run by
 * hand on the same pixels.
 */
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../api/server.js';
import { startTestApi } from './helpers/test-api.js';
import { buildCheckpointFiles } from '../shared/checkpoint/format.js';
import { MODEL_ONNX, type ManifestFields } from '../shared/checkpoint/manifest.js';
import { publishCheckpoint } from '../shared/checkpoint/publish.js';
import { ModelConfig, representationDim } from '../shared/model/config.js';
import { exportOnnx } from '../shared/model/onnx-export.js';
import { createVicregNet } from '../shared/model/vicreg-net.js';
import { createMemoryLogger } from '../shared/log.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { createMemoryStore } from '../shared/store/memory-store.js';

const MEAN = [0.48, 0.45, 0.4];
const STD = [0.23, 0.22, 0.24];
const cfg = ModelConfig.parse({ backbone: { widths: [8, 16], blocks: [1, 1], inputSize: 64, channels: 3 }, expander: '32-32' });
const servers: ApiServer[] = [];
let model: tf.LayersModel;
let version: string;
const store = createMemoryStore();

beforeAll(async () => {
  await initNodeBackend({ force: 'wasm', threads: 1, log: () => {} });
  const net = createVicregNet(cfg, 21);
  model = net.toLayersModel();
  const fields: ManifestFields = {
    parent: null,
    state: 'active-candidate',
    training: { config: { model: cfg }, seed: 21, steps: 0, epochs: 0, wallSeconds: 0, command: 'test fixture (untrained, 64×64×3)' },
    dataset: { name: 'synthetic', fingerprint: 'c'.repeat(64), n: 0 },
    preprocessing: { inputSize: 64, channels: 3, mean: MEAN, std: STD, resize: 'cover' },
    representationDim: representationDim(cfg.backbone),
    backend: tf.getBackend(),
    metrics: {},
  };
  const { files, manifest } = await buildCheckpointFiles({ model, manifest: fields, extraFiles: new Map([[MODEL_ONNX, exportOnnx(model)]]) });
  await publishCheckpoint(store, files, { activate: true });
  version = manifest.version;
}, 120_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  model?.dispose();
});

/** A 300×200 RGB photo-like JPEG (smooth colour fields and a few shapes). */
async function photo(seed: number): Promise<Uint8Array<ArrayBuffer>> {
  const w = 300;
  const h = 200;
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      px[i] = (x * (seed + 1) + y) % 256;
      px[i + 1] = Math.abs(Math.sin((x + seed * 13) / 23) * 255);
      px[i + 2] = (x - 150) ** 2 + (y - 100) ** 2 < 2500 + seed * 300 ? 230 : (y * 3) % 256;
    }
  return new Uint8Array(await sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 85 }).toBuffer());
}

/** What the API should compute: sharp's cover resize to 64×64 RGB, the manifest's normalisation, the model. */
async function expected(bytes: Uint8Array): Promise<Float32Array> {
  const { data } = await sharp(bytes).resize(64, 64, { fit: 'cover', position: 'centre' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const x = Float32Array.from(data, (v, i) => (v / 255 - MEAN[i % 3]!) / STD[i % 3]!);
  return tf.tidy(() => (model.predict(tf.tensor4d(x, [1, 64, 64, 3])) as tf.Tensor).dataSync() as Float32Array);
}

describe('a 64×64×3 checkpoint with cover resize and its own normalisation', () => {
  for (const engine of ['onnxruntime', 'tfjs'] as const) {
    it(`serves through the API on ${engine}, as the model computes it by hand`, async () => {
      const api = await startTestApi({
        store,
        waitForModel: true,
        logger: createMemoryLogger(),
        settings: { SERVING_ENGINE: engine, SERVING_THREADS: 1, POLL_INTERVAL_MS: 60_000 },
      });
      servers.push(api);
      const current = (await (await fetch(`${api.url}/v1/models/current`)).json()) as { version: string; preprocessing: unknown };
      expect(current).toMatchObject({ version, preprocessing: { inputSize: 64, channels: 3, mean: MEAN, std: STD, resize: 'cover' } });
      for (const seed of [0, 1, 2]) {
        const bytes = await photo(seed);
        const res = await fetch(`${api.url}/v1/embeddings`, { method: 'POST', body: bytes, headers: { 'content-type': 'image/jpeg' } });
        expect(res.status).toBe(200);
        const body = (await res.json()) as { dimension: number; data: { embedding: number[] }[] };
        const want = await expected(bytes);
        expect(body.dimension).toBe(want.length);
        const got = body.data[0]!.embedding;
        expect(Math.max(...got.map((v, i) => Math.abs(v - want[i]!)))).toBeLessThanOrEqual(1e-4);
      }
    });
  }
});
