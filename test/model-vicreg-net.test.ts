/**
 * The VICReg network on real Fashion-MNIST images (wasm backend): parameter layout, the fast batch norm
 * against plain tfjs ops, LayersModel export, weight round trips, and a leak-free train step.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { batchToTensor } from '../shared/data/split.js';
import { FASHION_MNIST_NORM, type ImageDataset } from '../shared/data/dataset.js';
import { DEFAULT_CPU_MODEL, ModelConfig } from '../shared/model/config.js';
import { createVicregNet } from '../shared/model/vicreg-net.js';
import { batchNormTrain } from '../shared/model/batchnorm.js';
import { createTrainStep } from '../shared/train/step.js';
import { vicregLoss } from '../shared/loss/vicreg.js';
import { LARS } from '../shared/train/lars.js';

let ds: ImageDataset;

/** n real images, normalised as the training pipeline does. */
function images(n: number, offset = 0): tf.Tensor4D {
  return tf.tidy(() => {
    const x = batchToTensor(ds, Array.from({ length: n }, (_, i) => offset + i));
    return tf.div(tf.sub(x, FASHION_MNIST_NORM.mean[0]!), FASHION_MNIST_NORM.std[0]!) as tf.Tensor4D;
  });
}

function maxRelDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.div(tf.max(tf.abs(tf.sub(a, b))), tf.add(tf.max(tf.abs(b)), 1e-12)).dataSync()[0]!);
}

beforeAll(async () => {
  await initNodeBackend({ force: 'wasm', log: () => {} });
  ds = await loadFashionMnist('train', { limit: 512 });
});

describe('VicregNet layout', () => {
  it('default config has the PyTorch reference network’s 900,144 parameters, stable names, deterministic init', () => {
    const a = createVicregNet(DEFAULT_CPU_MODEL, 7);
    const b = createVicregNet(DEFAULT_CPU_MODEL, 7);
    const c = createVicregNet(DEFAULT_CPU_MODEL, 8);
    try {
      expect(a.parameterCount()).toBe(900_144);
      expect(a.trainableNames()).toEqual(b.trainableNames());
      expect(new Set(a.trainableNames()).size).toBe(a.trainableNames().length);
      expect(a.trainableNames()[0]).toBe('stem.conv.w');
      expect(a.stateNames()).toContain('layer4.0.shortcut.bn.var');
      const wa = a.getWeights();
      expect(wa['stem.conv.w']).toEqual(b.getWeights()['stem.conv.w']);
      expect(wa['stem.conv.w']).not.toEqual(c.getWeights()['stem.conv.w']);
      // torch's default bound 1/√fan_in for the 3×3×1 stem
      const stem = wa['stem.conv.w']!;
      expect(Math.max(...stem.map(Math.abs))).toBeLessThanOrEqual(1 / 3);
      expect(Math.max(...stem.map(Math.abs))).toBeGreaterThan(0.25);
    } finally {
      [a, b, c].forEach((n) => n.dispose());
    }
  });

  it('builds the large stem and bottleneck blocks', () => {
    const cfg = ModelConfig.parse({ backbone: { stem: 'large', block: 'bottleneck', widths: [8, 16], blocks: [1, 2], inputSize: 32, channels: 3 }, expander: '64-32' });
    const net = createVicregNet(cfg, 1);
    try {
      const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
      const { representation, embedding } = tf.tidy(() => net.forward(x, true));
      expect(representation.shape).toEqual([4, 64]);
      expect(embedding.shape).toEqual([4, 32]);
      const model = net.toLayersModel();
      const viaLayers = model.predict(x) as tf.Tensor;
      const direct = net.representation(x);
      expect(maxRelDiff(viaLayers, direct)).toBeLessThan(1e-4);
      tf.dispose([x, representation, embedding, viaLayers, direct]);
      model.dispose();
    } finally {
      net.dispose();
    }
  });
});

describe('fast batch norm', () => {
  for (const relu of [true, false]) {
    it(`matches plain tfjs ops in value and gradients (relu=${relu})`, () => {
      const x = tf.tidy(() => tf.add(tf.mul(tf.randomNormal([8, 6, 5, 4], 0, 1, 'float32', 11), 3), 1.5)) as tf.Tensor4D;
      const gamma = tf.tensor1d([0.5, 1, 1.5, -2]);
      const beta = tf.tensor1d([0.1, -0.2, 0.3, 0]);
      const r = tf.randomNormal([8, 6, 5, 4], 0, 1, 'float32', 12);
      const reference = (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => {
        const { mean, variance } = tf.moments(xx, [0, 1, 2]);
        const y = tf.add(tf.mul(tf.div(tf.sub(xx, mean), tf.sqrt(tf.add(variance, 1e-5))), gg), bb);
        return tf.sum(tf.mul(relu ? tf.relu(y) : y, r));
      };
      const fast = (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(batchNormTrain(xx as tf.Tensor4D, gg as tf.Tensor1D, bb as tf.Tensor1D, relu), r));
      const before = tf.memory().numTensors;
      const ref = tf.valueAndGrads(reference)([x, gamma, beta]);
      const got = tf.valueAndGrads(fast)([x, gamma, beta]);
      expect(maxRelDiff(got.value, ref.value)).toBeLessThan(1e-4);
      for (let i = 0; i < 3; i++) expect(maxRelDiff(got.grads[i]!, ref.grads[i]!)).toBeLessThan(1e-4);
      tf.dispose([ref.value, got.value, ...ref.grads, ...got.grads]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, gamma, beta, r]);
    });
  }
});

describe('VicregNet on real images', () => {
  it('toLayersModel equals representation() after running statistics moved; weights round-trip', () => {
    const net = createVicregNet(DEFAULT_CPU_MODEL, 3);
    const other = createVicregNet(DEFAULT_CPU_MODEL, 4);
    try {
      // A few training-mode passes move the BN running statistics away from (0, 1).
      for (let i = 0; i < 3; i++) {
        const x = images(64, i * 64);
        tf.dispose(net.forward(x, true));
        x.dispose();
      }
      const w = net.getWeights();
      expect(Array.from(w['stem.conv.bn.mean']!).some((m) => Math.abs(m) > 1e-3)).toBe(true);

      const x = images(32, 300);
      const direct = net.representation(x);
      expect(direct.shape).toEqual([32, 128]);
      const model = net.toLayersModel();
      expect(model.inputs[0]!.shape).toEqual([null, 28, 28, 1]);
      expect(model.outputs[0]!.shape).toEqual([null, 128]);
      expect(model.layers.map((l) => l.getClassName()).every((n) =>
        ['InputLayer', 'ZeroPadding2D', 'Conv2D', 'BatchNormalization', 'ReLU', 'Add', 'GlobalAveragePooling2D'].includes(n),
      )).toBe(true);
      const viaLayers = model.predict(x) as tf.Tensor;
      expect(maxRelDiff(viaLayers, direct)).toBeLessThan(1e-4);

      const otherBefore = other.representation(x);
      expect(maxRelDiff(otherBefore, direct)).toBeGreaterThan(1e-2);
      other.setWeights(w);
      const otherAfter = other.representation(x);
      expect(maxRelDiff(otherAfter, direct)).toBeLessThan(1e-6);
      expect(() => other.setWeights({ ...w, 'stem.conv.w': new Float32Array(3) })).toThrow(/stem\.conv\.w/);
      tf.dispose([x, direct, viaLayers, otherBefore, otherAfter]);
      model.dispose();
    } finally {
      net.dispose();
      other.dispose();
    }
  });

  it('train step on a fixed batch: finite, leak-free, and lowers the loss', () => {
    const net = createVicregNet(DEFAULT_CPU_MODEL, 5);
    const opt = new LARS({ learningRate: 0.2, eta: 0.02, weightDecay: 1e-4 });
    const step = createTrainStep(net, opt, (a, b) => vicregLoss(a, b));
    // Two different crops stand in for two views: the images themselves and their horizontal flips.
    const a = images(64, 100);
    const b = tf.tidy(() => tf.reverse(a, 2)) as tf.Tensor4D;
    try {
      const first = step(a, b);
      const tensorsAfterFirst = tf.memory().numTensors;
      let last = first;
      for (let i = 0; i < 5; i++) last = step(a, b);
      for (const v of Object.values(last)) expect(Number.isFinite(v)).toBe(true);
      expect(tf.memory().numTensors).toBe(tensorsAfterFirst);
      expect(last.loss).toBeLessThan(first.loss);
      expect(last.loss).toBeCloseTo(25 * last.invariance + 25 * last.variance + last.covariance, 3);
    } finally {
      tf.dispose([a, b]);
      opt.dispose();
      net.dispose();
    }
  });
});
