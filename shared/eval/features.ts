import * as tf from '@tensorflow/tfjs';
import type { ImageDataset, Normalisation } from '../data/dataset.js';
import { batchToTensor, normalise } from '../data/split.js';

/**
 * Features as evaluation accepts them: a backend tensor (n × d), or a row-major Float32Array with its
 * dimension (what JSON files, the index and other runtimes hand over).
 */
export type FeatureInput = tf.Tensor2D | { data: Float32Array; dim: number };

/** A labelled feature set. Labels are class indices in [0, numClasses). */
export interface LabelledFeatures {
  features: FeatureInput;
  labels: Int32Array;
}

export function featureShape(f: FeatureInput): [number, number] {
  if (f instanceof tf.Tensor) return [f.shape[0], f.shape[1]];
  if (!Number.isInteger(f.dim) || f.dim <= 0 || f.data.length % f.dim !== 0) {
    throw new Error(`features: data length ${f.data.length} is not a multiple of dim ${f.dim}`);
  }
  return [f.data.length / f.dim, f.dim];
}

/**
 * A tensor view of `f`. `owned` says whether the caller must dispose it (true when we created it from an
 * array; false when it is the caller's own tensor, which we never dispose).
 */
export function toTensor2D(f: FeatureInput): { tensor: tf.Tensor2D; owned: boolean } {
  if (f instanceof tf.Tensor) {
    if (f.rank !== 2) throw new Error(`features: expected a rank-2 tensor, got shape [${f.shape}]`);
    return { tensor: f.dtype === 'float32' ? f : (f.toFloat() as tf.Tensor2D), owned: f.dtype !== 'float32' };
  }
  const [n, d] = featureShape(f);
  return { tensor: tf.tensor2d(f.data, [n, d]), owned: true };
}

/** Checks labels against the feature count and class count; the message names the offending entry. */
export function checkLabels(labels: Int32Array, n: number, numClasses: number, what: string): void {
  if (labels.length !== n) throw new Error(`${what}: ${labels.length} labels for ${n} feature rows`);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    if (y < 0 || y >= numClasses) {
      throw new Error(`${what}: label ${y} at row ${i} is outside [0, ${numClasses}); set numClasses`);
    }
  }
}

/** Top-1 / top-5 accuracy from per-row class rankings (rank[i*r + j] = j-th best class of row i). */
export function topKAccuracy(ranking: Int32Array, r: number, labels: Int32Array): { top1: number; top5: number } {
  const n = labels.length;
  if (n === 0) return { top1: NaN, top5: NaN };
  let c1 = 0;
  let c5 = 0;
  const m = Math.min(5, r);
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    if (ranking[i * r] === y) c1++;
    for (let j = 0; j < m; j++) {
      if (ranking[i * r + j] === y) {
        c5++;
        break;
      }
    }
  }
  return { top1: c1 / n, top5: c5 / n };
}

/** Representations of a whole dataset, normalised with `norm`, in batches of `batch` (leak-free). */
export async function extractFeatures(
  represent: (x: tf.Tensor4D) => tf.Tensor2D,
  ds: ImageDataset,
  norm: Normalisation,
  batch = 500,
): Promise<{ data: Float32Array; dim: number }> {
  let out: Float32Array | null = null;
  let dim = 0;
  for (let from = 0; from < ds.n; from += batch) {
    const idx = Int32Array.from({ length: Math.min(batch, ds.n - from) }, (_, i) => from + i);
    const x = batchToTensor(ds, idx);
    const r = tf.tidy(() => represent(normalise(x, norm)));
    x.dispose();
    const vals = (await r.data()) as Float32Array;
    dim = r.shape[1];
    r.dispose();
    out ??= new Float32Array(ds.n * dim);
    out.set(vals, from * dim);
  }
  return { data: out ?? new Float32Array(), dim };
}
