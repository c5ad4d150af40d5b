import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import type { LinearHeadFile, ManifestFields } from '../../shared/checkpoint/manifest.js';

/** Fixtures for the checkpoint tests: real Fashion-MNIST pixels, a small backbone, manifest fields. */
const FMNIST = '/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz';

/** The first n Fashion-MNIST test images, normalised like the manifest says, as [n, 28, 28, 1]. */
export function fashionBatch(n: number): { x: tf.Tensor4D; pixels: Uint8Array } {
  const raw = gunzipSync(readFileSync(FMNIST));
  const pixels = new Uint8Array(raw.buffer, raw.byteOffset + 16, n * 784).slice();
  const x = tf.tidy(() => tf.tensor4d(pixels, [n, 28, 28, 1], 'int32').toFloat().div(255).sub(0.286).div(0.353));
  return { x: x as tf.Tensor4D, pixels };
}

/** A small backbone with the checkpoint contract: [null,28,28,1] → [null,16]; BN adds non-trainable weights. */
export function smallBackbone(seed = 1, dim = 16, size = 28): tf.LayersModel {
  const input = tf.input({ shape: [size, size, 1] });
  let h = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', kernelInitializer: tf.initializers.glorotNormal({ seed }) }).apply(input) as tf.SymbolicTensor;
  h = tf.layers.batchNormalization({ movingMeanInitializer: 'randomNormal' }).apply(h) as tf.SymbolicTensor;
  h = tf.layers.reLU().apply(h) as tf.SymbolicTensor;
  h = tf.layers.globalAveragePooling2d({}).apply(h) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: dim, kernelInitializer: tf.initializers.glorotNormal({ seed: seed + 1 }) }).apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

export function fields(over: Partial<ManifestFields> = {}): ManifestFields {
  return {
    parent: null,
    state: 'active-candidate',
    training: { config: { expander: '64-64' }, seed: 7, steps: 10, epochs: 0.1, wallSeconds: 1.5, command: 'npm run train -- --steps 10' },
    dataset: { name: 'fashion-mnist:test[0:32]', fingerprint: 'a'.repeat(64), n: 32 },
    preprocessing: { inputSize: 28, channels: 1, mean: [0.286], std: [0.353], resize: 'fill' },
    representationDim: 16,
    backend: tf.getBackend(),
    metrics: { knn_top1: 0.5 },
    ...over,
  };
}

export function head(dim = 16, classes = 3): LinearHeadFile {
  return {
    classNames: Array.from({ length: classes }, (_, i) => `class-${i}`),
    mean: Array.from({ length: dim }, (_, i) => i / 10),
    std: Array.from({ length: dim }, () => 1.5),
    weights: Array.from({ length: dim }, (_, d) => Array.from({ length: classes }, (_, c) => Math.sin(d * 7 + c))),
    bias: Array.from({ length: classes }, (_, c) => c * 0.1),
  };
}

