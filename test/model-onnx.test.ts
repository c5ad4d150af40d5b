/**
 * ONNX export (shared/model/onnx-export.ts) run by onnxruntime (shared/node/onnx-runtime.ts) against
 * tfjs's LayersModel.predict (wasm) on real Fashion-MNIST images: the bundled checkpoint, a fresh network
 * of another shape (large stem, bottleneck blocks, 64×64×3, batch-norm statistics and affines moved off
 * their defaults so folding matters) and the API tests' fixture network (same-padded convs with ReLU,
 * average pooling, Flatten, Dense). One session serves several batch sizes; unknown layers throw.
 */
import * as tf from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';
import type { onnx as O } from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpointFiles, type OpenedCheckpoint } from '../shared/checkpoint/format.js';
import type { ImageDataset } from '../shared/data/dataset.js';
import { ModelConfig } from '../shared/model/config.js';
import { exportOnnx, ONNX_INPUT, ONNX_OUTPUT, ONNX_OPSET } from '../shared/model/onnx-export.js';
import { createVicregNet } from '../shared/model/vicreg-net.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { readCheckpointDir } from '../shared/node/checkpoint-dir.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { createOnnxRunner, type OnnxRunner } from '../shared/node/onnx-runtime.js';
import { fixtureBackbone } from './helpers/api-fixtures.js';

const { onnx } = onnxProto;
const N = 64;
let ds: ImageDataset;

beforeAll(async () => {
  await initNodeBackend({ force: 'wasm', threads: 1, log: () => {} });
  ds = await loadFashionMnist('test', { limit: N });
});

/** n real images, normalised with mean / std as api/preprocess.ts does, as float32 NHWC [n, 28, 28, 1]. */
function normalised(n: number, mean: number, std: number): Float32Array {
  const px = ds.images.subarray(0, n * 28 * 28);
  return Float32Array.from(px, (v) => v * (1 / (255 * std)) - mean / std);
}

/** The same images at `size` px and 3 channels (channel 2 and 3 derived, so they differ). */
function rgb(x: Float32Array, n: number, size: number): Float32Array {
  return tf.tidy(() => {
    let t = tf.tensor4d(x, [n, 28, 28, 1]);
    t = tf.image.resizeBilinear(t, [size, size]);
    return tf.concat([t, tf.mul(t, 0.5), tf.neg(t)], 3).dataSync() as Float32Array;
  });
}

function predict(model: tf.LayersModel, x: Float32Array, shape: [number, number, number, number]): Float32Array {
  return tf.tidy(() => (model.predict(tf.tensor4d(x, shape)) as tf.Tensor).dataSync() as Float32Array);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** Export, run the batch through onnxruntime and tfjs, return the max abs difference (and log it). */
async function parity(label: string, model: tf.LayersModel, x: Float32Array, n: number, hwc: [number, number, number]) {
  const bytes = exportOnnx(model);
  const runner = await createOnnxRunner(bytes, { threads: 1 });
  try {
    const want = predict(model, x, [n, ...hwc]);
    const got = await runner.forward(x, n, hwc);
    const diff = maxAbsDiff(got, want);
    console.log(`[onnx parity] ${label}: ${n} images, D=${want.length / n}, max |tfjs| ${maxAbs(want).toFixed(3)}, max abs diff ${diff.toExponential(2)}, ${bytes.byteLength} bytes`);
    return { bytes, runner, want, diff };
  } catch (err) {
    await runner.dispose();
    throw err;
  }
}

describe('ONNX export of the bundled checkpoint', () => {
  let cp: OpenedCheckpoint;
  let runner: OnnxRunner | undefined;
  afterAll(async () => {
    await runner?.dispose();
    cp?.model.dispose();
  });

  it('agrees with tfjs on 64 real images to 1e-4, and one session serves batches of 1 and 7', async () => {
    cp = await openCheckpointFiles(await readCheckpointDir('checkpoints/bundled'));
    const p = cp.manifest.preprocessing;
    const hwc: [number, number, number] = [p.inputSize, p.inputSize, p.channels];
    const x = normalised(N, p.mean[0]!, p.std[0]!);
    const r = await parity('bundled', cp.model, x, N, hwc);
    runner = r.runner;
    expect(r.diff).toBeLessThanOrEqual(1e-4);
    expect(r.want.length).toBe(N * cp.manifest.representationDim);
    expect(runner.dim).toBe(cp.manifest.representationDim);

    const d = cp.manifest.representationDim;
    const per = 28 * 28;
    for (const n of [1, 7]) {
      const got = await runner.forward(x.subarray(3 * per, (3 + n) * per), n, hwc);
      expect(got.length).toBe(n * d);
      expect(maxAbsDiff(got, r.want.subarray(3 * d, (3 + n) * d))).toBeLessThanOrEqual(1e-4);
    }
    await expect(runner.forward(x.subarray(0, 10), 1, hwc)).rejects.toThrow(/10 values/);
  });

  it('is a valid ModelProto: IR 8 / opset 17, symbolic batch, NHWC documented, batch norm folded', () => {
    const m = onnx.ModelProto.decode(exportOnnx(cp.model));
    expect(Number(m.irVersion)).toBe(8);
    expect(m.opsetImport.map((o) => Number(o.version))).toEqual([ONNX_OPSET]);
    const g = m.graph as O.GraphProto;
    expect(g.input.map((i) => i.name)).toEqual([ONNX_INPUT]);
    expect(g.output.map((o) => o.name)).toEqual([ONNX_OUTPUT]);
    const dims = g.input[0]!.type!.tensorType!.shape!.dim!.map((dd) => dd.dimParam || Number(dd.dimValue));
    expect(dims).toEqual(['N', 28, 28, 1]);
    expect(g.output[0]!.type!.tensorType!.shape!.dim!.map((dd) => dd.dimParam || Number(dd.dimValue))).toEqual(['N', cp.manifest.representationDim]);
    expect(m.docString).toMatch(/NHWC/);
    const ops = new Set(g.node.map((nd) => nd.opType));
    expect([...ops].sort()).toEqual(['Add', 'Conv', 'Flatten', 'GlobalAveragePool', 'Relu', 'Transpose']);
    expect(g.node.filter((nd) => nd.opType === 'Conv')).toHaveLength(cp.model.layers.filter((l) => l.getClassName() === 'Conv2D').length);
    // Deterministic bytes (the manifest covers model.onnx by sha256).
    expect(Buffer.from(exportOnnx(cp.model)).equals(Buffer.from(onnx.ModelProto.encode(m).finish()))).toBe(true);
  });
});

describe('ONNX export of other networks', () => {
  it('a fresh large-stem bottleneck network at 64×64×3 with moved batch-norm statistics', async () => {
    const cfg = ModelConfig.parse({
      backbone: { stem: 'large', block: 'bottleneck', widths: [8, 16], blocks: [1, 2], inputSize: 64, channels: 3 },
      expander: '32-16',
    });
    const net = createVicregNet(cfg, 11);
    const x = rgb(normalised(N, 0.286, 0.353), N, 64);
    try {
      // Training-mode passes move the running statistics; random γ, β make the affine non-trivial.
      for (let i = 0; i < 4; i++) {
        tf.tidy(() => {
          const xi = tf.tensor4d(x.subarray(i * 16 * 64 * 64 * 3, (i + 1) * 16 * 64 * 64 * 3), [16, 64, 64, 3]);
          net.forward(xi, true);
        });
      }
      const w = net.getWeights();
      let seed = 1;
      const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
      for (const [name, v] of Object.entries(w)) {
        if (name.endsWith('.gamma')) v.forEach((_, i) => (v[i] = 0.5 + rand()));
        if (name.endsWith('.beta')) v.forEach((_, i) => (v[i] = 0.4 * (rand() - 0.5)));
      }
      const moved = (suffix: string, from: number) =>
        Object.entries(w).filter(([k]) => k.endsWith(suffix)).reduce((m, [, v]) => Math.max(m, ...Array.from(v, (a) => Math.abs(a - from))), 0);
      expect(moved('.mean', 0)).toBeGreaterThan(0.05);
      expect(moved('.var', 1)).toBeGreaterThan(0.05);
      net.setWeights(w);
      const model = net.toLayersModel();
      try {
        const { runner, diff, bytes } = await parity('fresh 64×64×3 large/bottleneck', model, x, N, [64, 64, 3]);
        await runner.dispose();
        expect(diff).toBeLessThanOrEqual(1e-4);
        const ops = (onnx.ModelProto.decode(bytes).graph as O.GraphProto).node.map((nd) => nd.opType);
        expect(ops).toContain('MaxPool');
        expect(ops).toContain('Pad');
        expect(ops).not.toContain('BatchNormalization');
      } finally {
        model.dispose();
      }
    } finally {
      net.dispose();
    }
  });

  it('the API fixture network (same-padded convs with ReLU, average pooling, Flatten, Dense)', async () => {
    const model = fixtureBackbone(5);
    try {
      const x = normalised(N, 0.286, 0.353);
      const { runner, diff, want } = await parity('api fixture', model, x, N, [28, 28, 1]);
      try {
        expect(diff).toBeLessThanOrEqual(1e-4);
        const got7 = await runner.forward(x.subarray(0, 7 * 784), 7, [28, 28, 1]);
        expect(maxAbsDiff(got7, want.subarray(0, 7 * 64))).toBeLessThanOrEqual(1e-4);
      } finally {
        await runner.dispose();
      }
    } finally {
      model.dispose();
    }
  });

  it('throws naming a layer it cannot express', () => {
    const input = tf.input({ shape: [8, 8, 1] });
    let h = tf.layers.conv2d({ filters: 4, kernelSize: 3, name: 'conv_ok' }).apply(input) as tf.SymbolicTensor;
    h = tf.layers.upSampling2d({ size: [2, 2], name: 'upsample_here' }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.globalAveragePooling2d({}).apply(h) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: h });
    expect(() => exportOnnx(model)).toThrow(/layer upsample_here \(UpSampling2D\) is not supported/);
    model.dispose();

    const input2 = tf.input({ shape: [8, 8, 1] });
    const c = tf.layers.conv2d({ filters: 4, kernelSize: 3, activation: 'sigmoid', name: 'conv_sigmoid' }).apply(input2) as tf.SymbolicTensor;
    const model2 = tf.model({ inputs: input2, outputs: tf.layers.flatten().apply(c) as tf.SymbolicTensor });
    expect(() => exportOnnx(model2)).toThrow(/conv_sigmoid: activation sigmoid/);
    model2.dispose();
  });
});
