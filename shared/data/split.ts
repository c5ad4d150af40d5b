import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng.js';
import type { ImageDataset, Normalisation } from './dataset.js';

export interface Split {
  /** Sorted ascending (sequential reads), disjoint, together 0..n-1. */
  train: Int32Array;
  val: Int32Array;
}

/** Deterministic train/validation split: the same (n, valFraction, seed) always gives the same split. */
export function splitIndices(n: number, valFraction: number, seed: number): Split {
  if (!Number.isInteger(n) || n < 0) throw new Error(`splitIndices: n must be a non-negative integer, got ${n}`);
  if (!(valFraction >= 0 && valFraction < 1)) throw new Error(`splitIndices: valFraction must be in [0, 1), got ${valFraction}`);
  const perm = new Rng(seed).permutation(n);
  const nVal = Math.round(n * valFraction);
  return { val: perm.slice(0, nVal).sort(), train: perm.slice(nVal).sort() };
}

/** Gathers images by index into an [k, h, w, c] float32 tensor scaled to [0, 1]. */
export function batchToTensor(ds: ImageDataset, indices: ArrayLike<number>): tf.Tensor4D {
  const size = ds.height * ds.width * ds.channels;
  const out = new Float32Array(indices.length * size);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!;
    if (!(i >= 0 && i < ds.n)) throw new Error(`batchToTensor: index ${i} is outside the dataset (n=${ds.n})`);
    const src = ds.images.subarray(i * size, (i + 1) * size);
    const o = k * size;
    for (let j = 0; j < size; j++) out[o + j] = src[j]! / 255;
  }
  return tf.tensor4d(out, [indices.length, ds.height, ds.width, ds.channels], 'float32');
}

/** (x − mean_c) / std_c on a [n, h, w, c] tensor in [0, 1]. Caller disposes the result. */
export function normalise(x: tf.Tensor4D, norm: Normalisation): tf.Tensor4D {
  return tf.tidy(() => x.sub(tf.tensor1d(norm.mean)).div(tf.tensor1d(norm.std)) as tf.Tensor4D);
}
