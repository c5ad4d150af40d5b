import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { rankMe, representationStats } from '../shared/eval/collapse.js';
import { symmetricEigenvalues } from '../shared/eval/symmetric-eigen.js';
import { Rng } from '../shared/util/rng.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
});

/** Q diag(λ) Qᵀ with Q a random orthogonal matrix (Gram–Schmidt on Gaussian columns). */
function withSpectrum(lambda: number[], rng: Rng): Float64Array {
  const n = lambda.length;
  const q: number[][] = [];
  while (q.length < n) {
    const v = Array.from({ length: n }, () => rng.normal());
    for (const u of q) {
      const dot = u.reduce((a, x, i) => a + x * v[i]!, 0);
      for (let i = 0; i < n; i++) v[i]! -= dot * u[i]!;
    }
    const norm = Math.hypot(...v);
    q.push(v.map((x) => x / norm));
  }
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) a[i * n + j] += q[k]![i]! * lambda[k]! * q[k]![j]!;
  return a;
}

describe('symmetricEigenvalues', () => {
  it('recovers a known spectrum, including repeated and zero eigenvalues', () => {
    const rng = new Rng(11);
    const lambda = [40, 7, 7, 3, 1, 0.5, 0, 0, 0, -2];
    const got = symmetricEigenvalues(withSpectrum(lambda, rng), lambda.length);
    const want = [...lambda].sort((a, b) => b - a);
    got.forEach((g, i) => expect(g).toBeCloseTo(want[i]!, 9));
    expect(Array.from(symmetricEigenvalues([2, 1, 0, 1, 2, 0, 0, 0, 5], 3))).toEqual([5, 3, expect.closeTo(1, 12)]);
  });
});

describe('representationStats', () => {
  async function stats(x: tf.Tensor2D) {
    const s = await representationStats(x);
    x.dispose();
    return s;
  }

  it('reads the rank of low-rank features and ≈ 1 for collapsed ones, without leaking', async () => {
    const before = tf.memory().numTensors;
    for (const r of [1, 5, 20]) {
      // n × r Gaussian times an r × d orthonormal-row map: r equal singular values.
      const x = tf.tidy(() => {
        const q = tf.linalg.qr(tf.randomNormal([64, r], 0, 1, 'float32', r))[0];
        return tf.randomNormal([3000, r], 0, 1, 'float32', 100 + r).matMul(q.transpose());
      }) as tf.Tensor2D;
      const s = await stats(x);
      expect(s.effectiveRank).toBeGreaterThan(r * 0.9);
      expect(s.effectiveRank).toBeLessThan(r + 0.05);
    }
    // Every row the same vector (plus float noise): the VICReg failure mode.
    const collapsed = tf.tidy(() => tf.ones([500, 64]).mul(tf.randomNormal([1, 64], 0, 1, 'float32', 3)).add(tf.randomNormal([500, 64], 0, 1e-6, 'float32', 4))) as tf.Tensor2D;
    const c = await stats(collapsed);
    expect(c.effectiveRank).toBeLessThan(1.05);
    expect(c.std).toBeLessThan(1e-5);
    expect(c.normStd).toBeLessThan(1e-5);
    // Isotropic features: std ≈ 1, normalised std ≈ 1/√d, rank near d.
    const iso = await stats(tf.randomNormal([4000, 64], 0, 1, 'float32', 5) as tf.Tensor2D);
    expect(iso.std).toBeCloseTo(1, 1);
    expect(iso.normStd).toBeCloseTo(1 / 8, 2);
    expect(iso.effectiveRank).toBeGreaterThan(60);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('uses the n × n Gram when there are fewer rows than dimensions', async () => {
    const x = tf.tidy(() => tf.randomNormal([30, 4], 0, 1, 'float32', 8).matMul(tf.randomNormal([4, 500], 0, 1, 'float32', 9))) as tf.Tensor2D;
    const s = await stats(x);
    expect(s.singularValues.length).toBe(30);
    expect(s.singularValues.filter((v) => v > 0).length).toBe(4);
  });

  it('RankMe is the exponential of the entropy of normalised singular values', () => {
    expect(rankMe([3, 3, 3, 3])).toBeCloseTo(4, 5);
    expect(rankMe([5, 0, 0])).toBeCloseTo(1, 5);
    expect(rankMe([0, 0])).toBe(1);
  });
});
