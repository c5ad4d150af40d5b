import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelToFiles } from '../shared/checkpoint/model-files.js';
import type { ImageDataset } from '../shared/data/dataset.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { startModelThread, type ModelThread, type ModelThreadFiles } from '../shared/node/model-thread-client.js';
import { startModelThreadPool } from '../shared/node/model-thread-pool.js';
import { checkpointSource, runInThisThread } from '../api/checkpoint-source.js';
import { runInModelThread } from '../api/node/thread-runner.js';
import { DIM, fixtureBackbone, normalisedBatch, publishFixture } from './helpers/api-fixtures.js';
import { withLocalS3 } from './helpers/s3.js';

const s3 = withLocalS3();
let images: ImageDataset;
let files: ModelThreadFiles;
let model: tf.LayersModel;
const threads: ModelThread[] = [];

beforeAll(async () => {
  await tf.setBackend('wasm');
  images = await loadFashionMnist('test', { limit: 64 });
  model = fixtureBackbone(5);
  files = { ...(await modelToFiles(model)), inputShape: [28, 28, 1], dimension: DIM };
}, 120_000);

afterAll(async () => {
  model?.dispose();
  for (const t of threads) await t.close();
});

async function batch(start: number, n: number): Promise<Float32Array> {
  const x = normalisedBatch(images, start, n);
  const v = (await x.data()) as Float32Array;
  x.dispose();
  return v;
}

describe('model thread', () => {
  it('embeds real images exactly as the same network on this thread does', async () => {
    const t = await startModelThread(files, { backend: 'wasm', threads: 1, env: {} });
    threads.push(t);
    expect(t.backend).toMatch(/wasm/);
    // The checkpoint's network compiles to the fused serving graph, which must agree with predict.
    expect(t.forwardPath).toBe('graph');
    const input = await batch(0, 32);
    const want = (await tf.tidy(() => model.predict(tf.tensor4d(input, [32, 28, 28, 1])) as tf.Tensor).data()) as Float32Array;
    const got = await t.forward(input.slice(), 32);
    expect(got.length).toBe(32 * DIM);
    let maxDiff = 0;
    for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
    expect(maxDiff).toBeLessThan(1e-4);
  });

  it('close() lets the batches already sent finish, then refuses new ones', async () => {
    const t = await startModelThread(files, { backend: 'wasm', threads: 1, env: {} });
    const inFlight = [t.forward(await batch(0, 16), 16), t.forward(await batch(16, 16), 16)];
    expect(t.inFlight).toBe(2);
    const closed = t.close();
    await expect(t.forward(await batch(32, 4), 4)).rejects.toThrow(/closing/);
    const outs = await Promise.all(inFlight);
    expect(outs.map((o) => o.length)).toEqual([16 * DIM, 16 * DIM]);
    await closed;
    await expect(t.forward(await batch(0, 1), 1)).rejects.toThrow(/closed/);
  });

  it('a wrong input size is the caller’s error, and the thread keeps serving', async () => {
    const t = await startModelThread(files, { backend: 'wasm', threads: 1, env: {} });
    threads.push(t);
    await expect(t.forward(new Float32Array(100), 1)).rejects.toThrow(/100 values for 1 images of 28×28×1/);
    expect((await t.forward(await batch(0, 2), 2)).length).toBe(2 * DIM);
  });

  it('weights that do not match model.json fail the start with the reason', async () => {
    const bad = { ...files, weightsBin: files.weightsBin.subarray(0, files.weightsBin.length - 4) };
    await expect(startModelThread(bad, { backend: 'wasm', threads: 1, env: {} })).rejects.toThrow(/weights\.bin|bytes/);
  });

  it('a checkpoint served through the model thread answers like the in-thread runner', async () => {
    const version = await publishFixture(s3.current.store, { seed: 9, activate: true });
    const [inThread, inWorker] = await Promise.all([
      checkpointSource(s3.current.store, { run: runInThisThread }).load(version),
      checkpointSource(s3.current.store, { run: runInModelThread({ backend: 'wasm', threads: 1, env: {} }) }).load(version),
    ]);
    try {
      const input = await batch(0, 8);
      const a = await inThread.forward(input.slice(), 8);
      const b = await inWorker.forward(input.slice(), 8);
      expect(inWorker.dimension).toBe(DIM);
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(1e-4);
    } finally {
      inThread.dispose();
      inWorker.dispose();
    }
  });
  it('a pool of 2 threads embeds exactly as one thread does, with two batches in flight at once', async () => {
    const one = await startModelThread(files, { backend: 'wasm', threads: 1, env: {} });
    const pool = await startModelThreadPool(files, 2, { backend: 'wasm', threads: 1, env: {} });
    threads.push(one, pool);
    expect(pool.size).toBe(2);
    const [a, b] = [await batch(0, 16), await batch(16, 16)];
    const want = [await one.forward(a.slice(), 16), await one.forward(b.slice(), 16)];
    const inFlight = [pool.forward(a.slice(), 16), pool.forward(b.slice(), 16)];
    // One batch on each thread, not both queued on one.
    expect(pool.inFlightByThread).toEqual([1, 1]);
    const got = await Promise.all(inFlight);
    for (let k = 0; k < 2; k++) {
      expect(got[k]!.length).toBe(16 * DIM);
      for (let i = 0; i < got[k]!.length; i++) expect(Math.abs(got[k]![i]! - want[k]![i]!)).toBeLessThan(1e-5);
    }
    expect(pool.inFlight).toBe(0);
  });

  it('a served checkpoint on a pool of 2 reports parallelism 2 and closes after its in-flight batches', async () => {
    const version = await publishFixture(s3.current.store, { seed: 11, activate: true });
    const served = await checkpointSource(s3.current.store, { run: runInModelThread({ backend: 'wasm', threads: 1, poolSize: 2, env: {} }) }).load(version);
    expect(served.parallelism).toBe(2);
    expect(served.runtime).toMatch(/wasm.*× 2 threads; graph$/);
    const inFlight = [served.forward(await batch(0, 8), 8), served.forward(await batch(8, 8), 8)];
    served.dispose();
    expect((await Promise.all(inFlight)).map((o) => o.length)).toEqual([8 * DIM, 8 * DIM]);
  });

  it('a pool that cannot load the weights fails its start with the reason', async () => {
    const bad = { ...files, weightsBin: files.weightsBin.subarray(0, files.weightsBin.length - 4) };
    await expect(startModelThreadPool(bad, 2, { backend: 'wasm', threads: 1, env: {} })).rejects.toThrow(/weights\.bin|bytes/);
  });
});
