import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadTrainState, saveTrainState, TrainStateError, type TrainState } from '../shared/checkpoint/train-state.js';
import { createMemoryStore } from '../shared/store/memory-store.js';
import { PreconditionFailedError } from '../shared/store/object-store.js';
import { Rng } from '../shared/util/rng.js';
import { withLocalS3 } from './helpers/s3.js';

const s3 = withLocalS3();
const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function sampleState(step: number): TrainState {
  const rng = new Rng(step + 1);
  const arr = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const special = Float32Array.from([0, -0, NaN, Infinity, -Infinity, 1e-45, 3.4028234663852886e38]);
  return {
    step,
    epoch: 2,
    rng: { data: new Rng(7).state(), augment: new Rng(8).state() },
    weights: { 'stem/conv/kernel': arr(3 * 3 * 16), 'stem/bn/gamma': special, 'head/dense/bias': arr(5) },
    optimizerSlots: [arr(144), arr(7), new Float32Array(0), arr(5)],
    meta: { jobId: 'job-1', config: { lr: 0.3, batch: 256 }, losses: [25.1, 24.9] },
  };
}

function expectSameState(got: TrainState, want: TrainState) {
  expect(got.step).toBe(want.step);
  expect(got.epoch).toBe(want.epoch);
  expect(got.rng).toEqual(want.rng);
  expect(got.meta).toEqual(want.meta);
  expect(Object.keys(got.weights)).toEqual(Object.keys(want.weights));
  for (const k of Object.keys(want.weights)) expect(bytesOf(got.weights[k]!).equals(bytesOf(want.weights[k]!)), k).toBe(true);
  expect(got.optimizerSlots).toHaveLength(want.optimizerSlots.length);
  want.optimizerSlots.forEach((s, i) => expect(bytesOf(got.optimizerSlots[i]!).equals(bytesOf(s))).toBe(true));
}

describe('resumable training state on a real s3rver', () => {
  it('round-trips bit-exact (incl. -0, NaN, ±Inf, denormals), replaces the previous snapshot and deletes its blob', async () => {
    const store = s3.current.store;
    expect(await loadTrainState(store, 'jobs/a/state/')).toBeNull();
    const s1 = sampleState(100);
    const r1 = await saveTrainState(store, 'jobs/a/state/', s1);
    expectSameState((await loadTrainState(store, 'jobs/a/state'))!, s1);

    const s2 = sampleState(200);
    const r2 = await saveTrainState(store, 'jobs/a/state', s2);
    const back = (await loadTrainState(store, 'jobs/a/state/'))!;
    expectSameState(back, s2);
    expect(await store.head(r1.pointer.blob.key)).toBeNull();
    expect((await store.list('jobs/a/state/')).map((o) => o.key).sort()).toEqual([r2.pointer.blob.key, 'jobs/a/state/state.json'].sort());

    // A resumed generator continues the same sequence.
    const rngs = back.rng as Record<string, [number, number, number, number]>;
    const resumed = new Rng(rngs['data']!);
    const original = new Rng(7);
    expect([resumed.nextU32(), resumed.nextU32()]).toEqual([original.nextU32(), original.nextU32()]);
  });

  it('refuses a corrupt or truncated blob, naming it', async () => {
    const store = s3.current.store;
    const { pointer } = await saveTrainState(store, 'jobs/b/state/', sampleState(5));
    const got = await store.get(pointer.blob.key);
    const body = (got as { body: Uint8Array }).body;
    const flipped = body.slice();
    flipped[17]! ^= 1;
    await store.put(pointer.blob.key, flipped);
    await expect(loadTrainState(store, 'jobs/b/state/')).rejects.toThrow(new RegExp(`${pointer.blob.key} is corrupt`));
    await store.put(pointer.blob.key, body.slice(0, 100));
    await expect(loadTrainState(store, 'jobs/b/state/')).rejects.toBeInstanceOf(TrainStateError);
    await store.delete(pointer.blob.key);
    await expect(loadTrainState(store, 'jobs/b/state/')).rejects.toThrow(/is missing/);
  });

  it('a second writer that did not see the latest snapshot collides instead of interleaving (CAS store)', async () => {
    const store = createMemoryStore();
    await saveTrainState(store, 'jobs/c/state/', sampleState(1));
    const results = await Promise.allSettled([
      saveTrainState(store, 'jobs/c/state/', sampleState(2)),
      saveTrainState(store, 'jobs/c/state/', sampleState(3)),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toBeInstanceOf(PreconditionFailedError);
  });
});

describe('the snapshot is enough to resume: split run = uninterrupted run', () => {
  // A tiny classifier on real Fashion-MNIST pixels, SGD with momentum, seeded batch order.
  const raw = gunzipSync(readFileSync('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')).subarray(16, 16 + 256 * 784);
  const labels = gunzipSync(readFileSync('/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz')).subarray(8, 8 + 256);

  function makeModel() {
    return tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [784], units: 16, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
        tf.layers.dense({ units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }),
      ],
    });
  }
  function step(model: tf.LayersModel, opt: tf.Optimizer, rng: Rng) {
    const idx = Array.from({ length: 32 }, () => rng.int(256));
    tf.tidy(() => {
      const x = tf.tensor2d(Float32Array.from(idx.flatMap((i) => Array.from(raw.subarray(i * 784, (i + 1) * 784), (v) => v / 255))), [32, 784]);
      const y = tf.oneHot(tf.tensor1d(idx.map((i) => labels[i]!), 'int32'), 10);
      opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar, false, model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val));
    });
  }
  const weightsOf = (m: tf.LayersModel) => m.getWeights().map((w) => w.dataSync() as Float32Array);

  it('6 steps straight vs 3 steps, snapshot to s3rver, fresh process-like restore, 3 steps', async () => {
    const a = makeModel();
    const optA = tf.train.momentum(0.05, 0.9);
    const rngA = new Rng(11);
    for (let i = 0; i < 6; i++) step(a, optA, rngA);

    const b = makeModel();
    const optB = tf.train.momentum(0.05, 0.9);
    const rngB = new Rng(11);
    for (let i = 0; i < 3; i++) step(b, optB, rngB);
    const slots = await optB.getWeights(); // [iterations, momentum per variable]
    await saveTrainState(s3.current.store, 'jobs/resume/state/', {
      step: 3,
      epoch: 0,
      rng: rngB.state(),
      weights: Object.fromEntries(b.weights.map((w, i) => [`${i}:${w.originalName}`, weightsOf(b)[i]!])),
      optimizerSlots: slots.map((s) => s.tensor.dataSync() as Float32Array),
      meta: { lr: 0.05, momentum: 0.9 },
    });
    tf.dispose(slots.map((s) => s.tensor));
    b.dispose();
    optB.dispose();

    const st = (await loadTrainState(s3.current.store, 'jobs/resume/state/'))!;
    const c = makeModel();
    const restored = c.weights.map((w, i) => tf.tensor(Object.values(st.weights)[i]!, w.shape as number[]));
    c.setWeights(restored);
    tf.dispose(restored);
    const optC = tf.train.momentum(st.meta['lr'] as number, st.meta['momentum'] as number);
    const shapes = [[], ...c.trainableWeights.map((w) => w.shape)];
    await optC.setWeights(st.optimizerSlots.map((s, i) => ({ name: i === 0 ? 'iter' : `slot${i}`, tensor: tf.tensor(s, shapes[i] as number[]) })));
    const rngC = new Rng(st.rng as [number, number, number, number]);
    for (let i = st.step; i < 6; i++) step(c, optC, rngC);

    const wa = weightsOf(a);
    const wc = weightsOf(c);
    wa.forEach((w, i) => expect(bytesOf(wc[i]!).equals(bytesOf(w)), `weight ${i}`).toBe(true));
    [a, c].forEach((m) => m.dispose());
    [optA, optC].forEach((o) => o.dispose());
  });
});
