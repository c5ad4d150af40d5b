import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { LinearHeadSchema, predictLinearVector } from '../shared/eval/linear-head.js';
import { evaluateLinearHead, predictLinear, trainLinearProbe } from '../shared/eval/linear-probe.js';
import { Rng } from '../shared/util/rng.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
});

/** Gaussian blobs around random centres, with one big constant offset per dimension (tests standardising). */
function blobs(rng: Rng, centres: Float32Array, n: number, d: number, c: number, spread: number) {
  const y = new Int32Array(n).map(() => rng.int(c));
  const x = new Float32Array(n * d).map((_, i) => 50 + (i % d) + centres[y[Math.floor(i / d)]! * d + (i % d)]! + rng.normal() * spread);
  return { x, y };
}

describe('linear probe', () => {
  const d = 24;
  const c = 5;
  const rng = new Rng(7);
  const centres = new Float32Array(c * d).map(() => rng.normal() * 2);
  const train = blobs(rng, centres, 1500, d, c, 0.5);
  const test = blobs(rng, centres, 500, d, c, 0.5);

  it('separates separable clusters on held-out data (Adam, the reference protocol)', async () => {
    const before = tf.memory().numTensors;
    const losses: number[] = [];
    const lrs: number[] = [];
    // 24 batches × 20 epochs: Adam at lr 1e-3 moves each weight ≤ ~1e-3 per step, so it needs steps.
    const head = await trainLinearProbe({ data: train.x, dim: d }, train.y, {
      numClasses: c,
      epochs: 20,
      batchSize: 64,
      seed: 1,
      onEpoch: (e) => {
        losses.push(e.loss);
        lrs.push(e.lr);
      },
    });
    const r = await evaluateLinearHead(head, { data: test.x, dim: d }, test.y);
    expect(r.top1).toBe(1);
    expect(losses[19]!).toBeLessThan(losses[0]! / 5);
    // Cosine annealing per epoch from lr, as CosineAnnealingLR(T_max = epochs).
    expect(lrs[0]).toBeCloseTo(1e-3, 12);
    expect(lrs[10]).toBeCloseTo(0.5e-3, 12);
    // Standardised with the train statistics: mean ≈ the offsets, std + 1e-6 ≈ the spread.
    expect(head.mean[3]!).toBeGreaterThan(50);
    expect(LinearHeadSchema.parse(JSON.parse(JSON.stringify(head)))).toEqual(head);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('takes exactly the steps of torch Adam (weight decay in the gradient) under the cosine schedule', async () => {
    // Full-batch steps make the update order-free, so a float64 re-derivation can follow it exactly.
    const n = 40;
    const dd = 3;
    const cc = 3;
    const r2 = new Rng(21);
    const x = new Float32Array(n * dd).map(() => r2.normal() * 2 + 1);
    const y = new Int32Array(n).map(() => r2.int(cc));
    const epochs = 4;
    const lr0 = 0.05;
    const wd = 0.01;
    const head = await trainLinearProbe({ data: x, dim: dd }, y, { numClasses: cc, epochs, lr: lr0, weightDecay: wd, batchSize: n, seed: 9 });

    const init = new Rng(9);
    const bound = 1 / Math.sqrt(dd);
    const W = Array.from({ length: dd * cc }, () => init.uniform(-bound, bound));
    const B = Array.from({ length: cc }, () => init.uniform(-bound, bound));
    const mean = [...Array(dd)].map((_, j) => [...Array(n)].reduce((a, _, i) => a + x[i * dd + j]!, 0) / n);
    const std = mean.map((m, j) => Math.sqrt([...Array(n)].reduce((a, _, i) => a + (x[i * dd + j]! - m) ** 2, 0) / (n - 1)) + 1e-6);
    const xs = [...Array(n)].map((_, i) => mean.map((m, j) => (x[i * dd + j]! - m) / std[j]!));
    const params = [W, B];
    const m1 = params.map((p) => p.map(() => 0));
    const m2 = params.map((p) => p.map(() => 0));
    for (let e = 0; e < epochs; e++) {
      const t = e + 1;
      const lr = (lr0 * (1 + Math.cos((Math.PI * e) / epochs))) / 2;
      const gW = W.map(() => 0);
      const gB = B.map(() => 0);
      for (let i = 0; i < n; i++) {
        const z = B.map((b, k) => b + xs[i]!.reduce((a, v, j) => a + v * W[j * cc + k]!, 0));
        const mx = Math.max(...z);
        const ez = z.map((v) => Math.exp(v - mx));
        const s = ez.reduce((a, b) => a + b, 0);
        for (let k = 0; k < cc; k++) {
          const g = (ez[k]! / s - (y[i] === k ? 1 : 0)) / n;
          gB[k]! += g;
          for (let j = 0; j < dd; j++) gW[j * cc + k]! += xs[i]![j]! * g;
        }
      }
      [gW, gB].forEach((g, pi) => {
        const p = params[pi]!;
        for (let q = 0; q < p.length; q++) {
          const gq = g[q]! + wd * p[q]!;
          m1[pi]![q] = 0.9 * m1[pi]![q]! + 0.1 * gq;
          m2[pi]![q] = 0.999 * m2[pi]![q]! + 0.001 * gq * gq;
          const denom = Math.sqrt(m2[pi]![q]! / (1 - 0.999 ** t)) + 1e-8;
          p[q] = p[q]! - (lr / (1 - 0.9 ** t)) * (m1[pi]![q]! / denom);
        }
      });
    }
    head.weights.flat().forEach((w, q) => expect(w).toBeCloseTo(W[q]!, 5));
    head.bias.forEach((b, k) => expect(b).toBeCloseTo(B[k]!, 5));
    head.std.forEach((s, j) => expect(s).toBeCloseTo(std[j]!, 5));
  });

  it('trains with the paper protocol (SGD, momentum 0.9) too', async () => {
    const head = await trainLinearProbe({ data: train.x, dim: d }, train.y, { numClasses: c, epochs: 10, optimizer: 'sgd', seed: 1 });
    const r = await evaluateLinearHead(head, { data: test.x, dim: d }, test.y);
    expect(r.top1).toBe(1);
  });

  it('scores random labels at chance', async () => {
    const yr = new Int32Array(1500).map(() => rng.int(c));
    const yt = new Int32Array(500).map(() => rng.int(c));
    const head = await trainLinearProbe({ data: train.x, dim: d }, yr, { numClasses: c, epochs: 10, seed: 2 });
    const r = await evaluateLinearHead(head, { data: test.x, dim: d }, yt);
    expect(r.top1).toBeGreaterThan(0.12);
    expect(r.top1).toBeLessThan(0.28);
  });

  it('is reproducible from its seed, and tensor and array inputs agree', async () => {
    const xt = tf.tensor2d(train.x, [1500, d]);
    const a = await trainLinearProbe(xt, train.y, { numClasses: c, epochs: 2, seed: 5 });
    const b = await trainLinearProbe({ data: train.x, dim: d }, train.y, { numClasses: c, epochs: 2, seed: 5 });
    xt.dispose();
    expect(a).toEqual(b);
    const other = await trainLinearProbe({ data: train.x, dim: d }, train.y, { numClasses: c, epochs: 2, seed: 6 });
    expect(other.weights).not.toEqual(a.weights);
  });

  it('predicts the same probabilities on the backend and in plain JS', async () => {
    const head = await trainLinearProbe({ data: train.x, dim: d }, train.y, { numClasses: c, epochs: 3, seed: 3 });
    const probs = await predictLinear(head, { data: test.x.subarray(0, 3 * d), dim: d });
    for (let i = 0; i < 3; i++) {
      const p = predictLinearVector(head, test.x.subarray(i * d, (i + 1) * d));
      for (let y = 0; y < c; y++) expect(p[y]!).toBeCloseTo(probs[i * c + y]!, 5);
    }
  });

  it('rejects bad heads and inputs with actionable messages', async () => {
    expect(() => LinearHeadSchema.parse({ mean: [0, 0], std: [1, 1], weights: [[1, 2]], bias: [0, 0] })).toThrow(/weights has 1 rows, expected 2/);
    await expect(trainLinearProbe({ data: train.x, dim: d }, train.y, { numClasses: 3 })).rejects.toThrow(/outside \[0, 3\)/);
  });
});
