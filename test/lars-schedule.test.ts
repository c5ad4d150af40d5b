import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { LARS } from '../shared/train/lars.js';
import { defaultWarmupSteps, learningRateAt, peakLearningRate } from '../shared/train/schedule.js';

function close(got: ArrayLike<number>, want: number[], tol = 1e-6): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `index ${i}: ${got[i]} vs ${want[i]}`).toBeLessThanOrEqual(tol);
}

describe('LARS on wasm', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
    await tf.ready();
  });

  it('matches a hand-computed update: trust ratio and decay for weights, plain momentum SGD for biases', () => {
    const w = tf.variable(tf.tensor2d([[3, 4]]));
    const b = tf.variable(tf.tensor1d([1, 2]));
    const opt = new LARS({ learningRate: 0.5, eta: 0.03, weightDecay: 0.1 });
    const gw = tf.tensor2d([[0.6, 0.8]]);
    const gb = tf.tensor1d([0.5, -0.5]);
    opt.applyGradients([w, b], [gw, gb]);
    // w: g + wd·w = [0.9, 1.2], ‖·‖ = 1.5, ‖w‖ = 5, q = 0.03·5/1.5 = 0.1 → μ = [0.09, 0.12]; w − 0.5μ.
    close(w.dataSync(), [2.955, 3.94]);
    // b: no decay, no trust ratio → μ = g; b − 0.5g.
    close(b.dataSync(), [0.75, 2.25]);
    opt.applyGradients([w, b], [gw, gb]);
    // Step 2, weights: recompute with the new w.
    const w1 = [2.955, 3.94];
    const d = [0.6 + 0.1 * w1[0]!, 0.8 + 0.1 * w1[1]!];
    const q = (0.03 * Math.hypot(...w1)) / Math.hypot(...d);
    const mu = [0.9 * 0.09 + q * d[0]!, 0.9 * 0.12 + q * d[1]!];
    close(w.dataSync(), [w1[0]! - 0.5 * mu[0]!, w1[1]! - 0.5 * mu[1]!]);
    // Step 2, biases: μ = 0.9g + g = 1.9g.
    close(b.dataSync(), [0.75 - 0.5 * 1.9 * 0.5, 2.25 + 0.5 * 1.9 * 0.5]);
    tf.dispose([w, b, gw, gb]);
    opt.dispose();
  });

  it('uses a trust ratio of 1 when the weight or the update is zero', () => {
    const w = tf.variable(tf.zeros([2, 2]));
    const opt = new LARS({ learningRate: 1, momentum: 0, eta: 0.001, weightDecay: 0.5 });
    const g = tf.tensor2d([[1, -2], [0, 3]]);
    opt.applyGradients([w], [g]);
    close(w.dataSync(), [-1, 2, 0, -3]);
    tf.dispose([w, g]);
    opt.dispose();
  });

  it('follows the learning rate it is given', () => {
    const b = tf.variable(tf.tensor1d([0]));
    const g = tf.tensor1d([1]);
    const opt = new LARS({ learningRate: 0.1, momentum: 0, eta: 0.02, weightDecay: 0 });
    opt.applyGradients([b], [g]);
    opt.setLearningRate(0.01);
    expect(opt.learningRate).toBe(0.01);
    opt.applyGradients([b], [g]);
    close(b.dataSync(), [-0.11]);
    expect(() => opt.setLearningRate(Number.NaN)).toThrow(/finite/);
    tf.dispose([b, g]);
    opt.dispose();
  });

  it('resumes from saved slots exactly as an uninterrupted run, without leaking tensors', () => {
    const init = [tf.randomNormal([3, 4], 0, 1, 'float32', 1), tf.randomNormal([4], 0, 1, 'float32', 2)];
    const grads = (k: number) => [tf.randomNormal([3, 4], 0, 1, 'float32', 10 + k), tf.randomNormal([4], 0, 1, 'float32', 20 + k)];
    const opts = { learningRate: 0.2, eta: 0.02, weightDecay: 1e-4 };

    const varsA = init.map((t) => tf.variable(t));
    const a = new LARS(opts);
    for (let k = 0; k < 2; k++) {
      const g = grads(k);
      a.applyGradients(varsA, g);
      tf.dispose(g);
    }
    const slots = a.getSlots();
    expect(slots.map((s) => s.length)).toEqual([12, 4]);
    const varsB = varsA.map((v) => tf.variable(v.clone()));
    const b = new LARS(opts);
    b.setSlots(slots);
    const before = tf.memory().numTensors;
    for (let k = 2; k < 6; k++) {
      const g = grads(k);
      a.applyGradients(varsA, g);
      b.applyGradients(varsB, g);
      tf.dispose(g);
      if (k === 2) expect(tf.memory().numTensors).toBe(before + 2); // b's two momentum buffers, created once
    }
    expect(tf.memory().numTensors).toBe(before + 2);
    for (let i = 0; i < varsA.length; i++) close(varsB[i]!.dataSync(), Array.from(varsA[i]!.dataSync()), 0);
    expect(b.getSlots()).toEqual(a.getSlots());
    expect(() => b.setSlots([new Float32Array(3)])).toThrow(/slots given/);
    tf.dispose([...init, ...varsA, ...varsB]);
    a.dispose();
    b.dispose();
  });
});

describe('learning-rate schedule', () => {
  const s = { batchSize: 256, totalSteps: 1000, warmupSteps: 100 };

  it('scales the base rate by batch/256 and defaults to base 0.3', () => {
    expect(peakLearningRate({ batchSize: 512 })).toBeCloseTo(0.6, 12);
    expect(peakLearningRate({ baseLr: 0.2, batchSize: 128 })).toBeCloseTo(0.1, 12);
  });

  it('warms up linearly, then decays by a cosine to finalRatio × peak', () => {
    expect(learningRateAt(0, s)).toBe(0);
    expect(learningRateAt(50, s)).toBeCloseTo(0.15, 12);
    expect(learningRateAt(100, s)).toBeCloseTo(0.3, 12);
    expect(learningRateAt(550, s)).toBeCloseTo((0.3 + 0.0003) / 2, 12);
    expect(learningRateAt(1000, s)).toBeCloseTo(0.0003, 12);
    expect(learningRateAt(5000, s)).toBeCloseTo(0.0003, 12);
    expect(learningRateAt(1000, { ...s, finalRatio: 0 })).toBeCloseTo(0, 12);
    let prev = Infinity;
    for (let k = 100; k <= 1000; k += 10) {
      const lr = learningRateAt(k, s);
      expect(lr).toBeLessThanOrEqual(prev);
      prev = lr;
    }
  });

  it('defaults warm-up to a tenth of the run, at most two epochs', () => {
    expect(defaultWarmupSteps(2340, 234)).toBe(234);
    expect(defaultWarmupSteps(10 * 234, 50)).toBe(100);
    expect(defaultWarmupSteps(7, 234)).toBe(0);
    // No warm-up: the first step already runs at the peak.
    expect(learningRateAt(0, { ...s, warmupSteps: 0 })).toBeCloseTo(0.3, 12);
  });
});
