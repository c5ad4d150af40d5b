/**
 * The compiled serving graph (shared/model/serving-graph.ts) against LayersModel.predict on real
 * Fashion-MNIST images (wasm): same outputs for every backbone shape, no leaked tensors, and predict kept
 * for models it does not know.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { FASHION_MNIST_NORM, type ImageDataset } from '../shared/data/dataset.js';
import { batchToTensor } from '../shared/data/split.js';
import { ModelConfig } from '../shared/model/config.js';
import { compileServingGraph, servingForward } from '../shared/model/serving-graph.js';
import { createVicregNet } from '../shared/model/vicreg-net.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { loadFashionMnist } from '../shared/node/datasets.js';

let ds: ImageDataset;

beforeAll(async () => {
  await initNodeBackend({ force: 'wasm', log: () => {} });
  ds = await loadFashionMnist('test', { limit: 64 });
});

/** n real images at `size` px and `channels`, normalised. */
function images(n: number, size = 28, channels = 1): tf.Tensor4D {
  return tf.tidy(() => {
    let x = batchToTensor(ds, Array.from({ length: n }, (_, i) => i)) as tf.Tensor4D;
    x = tf.div(tf.sub(x, FASHION_MNIST_NORM.mean[0]!), FASHION_MNIST_NORM.std[0]!) as tf.Tensor4D;
    if (size !== 28) x = tf.image.resizeBilinear(x, [size, size]);
    if (channels === 3) x = tf.concat([x, tf.mul(x, 0.5), tf.neg(x)], 3) as tf.Tensor4D;
    return x;
  });
}

/** Give every batch norm non-trivial statistics, as a trained model has (a fresh one is the identity). */
function randomiseBatchNorms(model: tf.LayersModel, seed: number): void {
  let s = seed;
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const c = layer.getWeights()[0]!.shape[0]!;
    const u = () => tf.randomUniform([c], 0, 1, 'float32', s++);
    layer.setWeights([tf.add(u(), 0.5), tf.sub(u(), 0.5), tf.mul(tf.sub(u(), 0.5), 0.4), tf.add(u(), 0.3)]);
  }
}

function maxRelDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.div(tf.max(tf.abs(tf.sub(a, b))), tf.add(tf.max(tf.abs(b)), 1e-12)).dataSync()[0]!);
}

describe('serving graph (fused conv + folded batch norm)', () => {
  const shapes: [string, unknown][] = [
    ['default CPU network (small stem, basic blocks)', {}],
    ['large stem with max-pool, two blocks per stage, RGB 64 px', { backbone: { stem: 'large', blocks: [2, 1], widths: [8, 16], inputSize: 64, channels: 3 } }],
    ['bottleneck blocks', { backbone: { block: 'bottleneck', widths: [8, 16, 32], blocks: [1, 2, 1] } }],
  ];
  for (const [name, cfg] of shapes) {
    it(`matches predict on real images: ${name}`, () => {
      const config = ModelConfig.parse(cfg);
      const model = createVicregNet(config, 3).toLayersModel();
      randomiseBatchNorms(model, 11);
      const b = config.backbone;
      const x = images(16, b.inputSize, b.channels);
      const graph = compileServingGraph(model);
      expect(graph).toBeDefined();
      // Fewer kernels than layers: each pad → conv → BN → ReLU chain is one op.
      expect(graph!.ops).toBeLessThan(model.layers.length / 2);
      const before = tf.memory().numTensors;
      const want = model.predict(x) as tf.Tensor;
      const got = graph!.run(x);
      expect(got.shape).toEqual(want.shape);
      expect(maxRelDiff(got, want)).toBeLessThan(1e-5);
      tf.dispose([want, got]);
      expect(tf.memory().numTensors).toBe(before);
      graph!.dispose();
      tf.dispose([x]);
      model.dispose();
    });
  }

  it('servingForward picks the graph when it agrees and leaks nothing across many calls', () => {
    const model = createVicregNet(ModelConfig.parse({}), 5).toLayersModel();
    randomiseBatchNorms(model, 3);
    const start = tf.memory().numTensors;
    const net = servingForward(model, [28, 28, 1]);
    expect(net.path).toBe('graph');
    const x = images(8);
    for (let i = 0; i < 5; i++) tf.dispose(net.run(x));
    x.dispose();
    net.dispose();
    expect(tf.memory().numTensors).toBe(start);
    model.dispose();
  });

  it('compiles a conv with its own ReLU, a batch norm it cannot fold, pooling, flatten and a dense head; matches predict', () => {
    const input = tf.input({ shape: [28, 28, 1] });
    let h = tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', useBias: true, activation: 'relu' }).apply(input) as tf.SymbolicTensor;
    h = tf.layers.batchNormalization({}).apply(h) as tf.SymbolicTensor;
    h = tf.layers.averagePooling2d({ poolSize: 2 }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.flatten().apply(h) as tf.SymbolicTensor;
    h = tf.layers.dense({ units: 5, activation: 'relu' }).apply(h) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 3 }).apply(h) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    randomiseBatchNorms(model, 21);
    const graph = compileServingGraph(model)!;
    expect(graph).toBeDefined();
    const x = images(8);
    const want = model.predict(x) as tf.Tensor;
    const got = graph.run(x);
    expect(maxRelDiff(got, want)).toBeLessThan(1e-5);
    tf.dispose([x, want, got]);
    graph.dispose();
    model.dispose();
  });

  it('keeps predict for a model with a layer it does not handle', () => {
    const input = tf.input({ shape: [28, 28, 1] });
    const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
    const dense = tf.layers.dense({ units: 4 }).apply(flat) as tf.SymbolicTensor;
    const out = tf.layers.activation({ activation: 'sigmoid' }).apply(dense) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    // The dense layer's weights are copied before the sigmoid stops the compile: the copies are freed.
    const before = tf.memory().numTensors;
    expect(compileServingGraph(model)).toBeUndefined();
    expect(tf.memory().numTensors).toBe(before);
    const net = servingForward(model, [28, 28, 1]);
    expect(net.path).toBe('predict');
    const x = images(2);
    const y = net.run(x);
    expect(y.shape).toEqual([2, 4]);
    tf.dispose([x, y]);
    model.dispose();
  });
});
