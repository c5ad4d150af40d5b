import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { FASHION_MNIST_NORM, type ImageDataset } from '../shared/data/dataset.js';
import { batchToTensor } from '../shared/data/split.js';
import { loadTrainState, saveTrainState } from '../shared/checkpoint/train-state.js';
import { ModelConfig } from '../shared/model/config.js';
import { MemoryStore } from '../shared/store/memory-store.js';
import { NonFiniteLossError, runTrainingLoop, stepRng, type ProgressEvent } from '../shared/train/loop.js';
import { createTrainSession, type TrainSessionOptions } from '../shared/train/session.js';

// A tiny network so the whole file runs in seconds on one wasm thread.
const TINY = ModelConfig.parse({ backbone: { widths: [8, 16], blocks: [1, 1] }, expander: '64-64' });
let data: ImageDataset;

beforeAll(async () => {
  await initNodeBackend({ force: 'wasm', threads: 1, log: () => {} });
  data = await loadFashionMnist('train', { limit: 512 });
});

function session(over: Partial<TrainSessionOptions> = {}) {
  return createTrainSession({
    model: TINY,
    recipe: 'small',
    norm: FASHION_MNIST_NORM,
    ablation: { lambda: 25, mu: 25, nu: 1 },
    seed: 7,
    batchSize: 64,
    stepsPerEpoch: 8,
    ...over,
  });
}

describe('training loop on real Fashion-MNIST images', () => {
  it('50 steps on 512 images: finite losses, diagnostics, and a flat tensor count (step 10 vs step 50)', async () => {
    const s = session();
    const counts = new Map<number, number>();
    const events: ProgressEvent[] = [];
    const r = await runTrainingLoop(s.parts, {
      dataset: data,
      batchSize: 64,
      epochs: 7,
      maxSteps: 50,
      seed: 7,
      diagnosticsEvery: 25,
      onProgress: (e) => {
        events.push(e);
        counts.set(e.step, tf.memory().numTensors);
      },
    });
    s.dispose();
    expect(r).toMatchObject({ stoppedBy: 'completed', steps: 50, totalSteps: 50, stepsPerEpoch: 8 });
    expect(events.every((e) => Number.isFinite(e.loss) && Number.isFinite(e.lr))).toBe(true);
    expect(events.at(-1)!.epoch).toBe(7);
    // Diagnostics at steps 25 and 50.
    expect(events.filter((e) => e.effectiveRank !== undefined).map((e) => e.step)).toEqual([25, 50]);
    expect(r.diagnostics.effectiveRank).toBeGreaterThan(1);
    expect(counts.get(50)).toBe(counts.get(10));
    // Warm-up then decay: the learning rate rises, peaks, and ends lower than its peak.
    const lrs = events.map((e) => e.lr);
    expect(Math.max(...lrs)).toBeGreaterThan(lrs[0]!);
    expect(lrs.at(-1)!).toBeLessThan(Math.max(...lrs));
  });

  it('one step lowers the loss on a fixed batch', async () => {
    const s = session();
    const x = batchToTensor(data, Int32Array.from({ length: 64 }, (_, i) => i));
    const [a, b] = s.parts.makeViews(x, stepRng(3, 0));
    const first = await s.parts.step(a, b, 0.05);
    const second = await s.parts.step(a, b, 0.05);
    tf.dispose([x, a, b]);
    s.dispose();
    expect(second.loss).toBeLessThan(first.loss);
  });

  it('resumed from a snapshot, training ends with the same weights as an uninterrupted run', async () => {
    const opts = { dataset: data, batchSize: 64, epochs: 1, maxSteps: 6, seed: 11 };
    const straight = session({ seed: 11 });
    await runTrainingLoop(straight.parts, opts);
    const want = straight.exportState(6, 0, {}).weights;

    const store = new MemoryStore();
    const first = session({ seed: 11 });
    let stop = false;
    const r1 = await runTrainingLoop(first.parts, {
      ...opts,
      snapshotEvery: 3,
      snapshot: async (step) => {
        await saveTrainState(store, 'run/', first.exportState(step, 0, {}));
        stop = true; // "crash" right after the snapshot
      },
      shouldStop: () => (stop ? 'stop' : null),
    });
    expect(r1).toMatchObject({ stoppedBy: 'stopped', steps: 3 });
    first.dispose();

    const snap = await loadTrainState(store, 'run/');
    expect(snap?.step).toBe(3);
    const resumed = session({ seed: 11 });
    resumed.importState(snap!);
    const r2 = await runTrainingLoop(resumed.parts, { ...opts, startStep: snap!.step });
    expect(r2).toMatchObject({ stoppedBy: 'completed', steps: 6 });
    const got = resumed.exportState(6, 0, {}).weights;
    // Same tensors in the same order (names may carry per-instance layer counters), bit for bit.
    const g = Object.values(got);
    const w = Object.values(want);
    expect(g.length).toBe(w.length);
    w.forEach((t, i) => expect(g[i], Object.keys(want)[i]).toEqual(t));
    straight.dispose();
    resumed.dispose();
  });

  it('stops on request before the next step, and a diverging run names its step', async () => {
    const s = session();
    let n = 0;
    const r = await runTrainingLoop(s.parts, {
      dataset: data,
      batchSize: 64,
      epochs: 2,
      seed: 1,
      onProgress: () => void (n += 1),
      shouldStop: () => (n >= 2 ? 'cancel' : null),
    });
    expect(r).toMatchObject({ stoppedBy: 'cancelled', steps: 2 });
    s.dispose();

    const wild = session({ baseLr: 1e30 });
    const err = await runTrainingLoop(wild.parts, { dataset: data, batchSize: 64, epochs: 2, seed: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteLossError);
    expect((err as Error).message).toMatch(/loss is (NaN|Infinity|-Infinity) at step \d+/);
    wild.dispose();
  });
});
