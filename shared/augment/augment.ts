import * as tf from '@tensorflow/tfjs';
import type { Normalisation } from '../data/dataset.js';
import type { Rng } from '../util/rng.js';
import { blurKernelSize, recipeByName, type AugmentConfig, type AugmentRecipe } from './config.js';
import { sampleAugmentParams, type AugmentParams } from './params.js';

/** ITU-R BT.601 luma, as torchvision's rgb_to_grayscale. */
const LUMA = [0.299, 0.587, 0.114] as const;

/**
 * One augmented view of a batch: x is [n, h, w, c] float in [0, 1] (c = 1 or 3); the result has the same
 * shape, normalised by `norm` (unless view.normalize is false). The caller owns (and disposes) both.
 */
export function augmentBatch(x: tf.Tensor4D, view: AugmentConfig, rng: Rng, norm: Normalisation): tf.Tensor4D {
  return augmentBatchWithParams(x, view, rng, norm).x;
}

/** augmentBatch that also returns the sampled per-sample parameters. */
export function augmentBatchWithParams(
  x: tf.Tensor4D,
  view: AugmentConfig,
  rng: Rng,
  norm: Normalisation,
): { x: tf.Tensor4D; params: AugmentParams } {
  const [n, h, w, c] = x.shape;
  if (c !== 1 && c !== 3) throw new Error(`augment: images must have 1 or 3 channels, got ${c}`);
  if (h < 2 || w < 2) throw new Error(`augment: images must be at least 2×2, got ${h}×${w}`);
  if (view.normalize && (norm.mean.length !== c || norm.std.length !== c)) {
    throw new Error(`augment: normalisation has ${norm.mean.length} means / ${norm.std.length} stds for ${c}-channel images`);
  }
  const params = sampleAugmentParams(n, h, w, view, rng);
  return { x: applyAugmentParams(x, params, view, norm), params };
}

/** Two views of the same images with the recipe's two configurations (view 1's draws come first). */
export function makeViews(
  x: tf.Tensor4D,
  recipe: AugmentRecipe | string,
  rng: Rng,
  norm: Normalisation,
): [tf.Tensor4D, tf.Tensor4D] {
  const r = typeof recipe === 'string' ? recipeByName(recipe) : recipe;
  const a = augmentBatch(x, r.views[0], rng, norm);
  try {
    return [a, augmentBatch(x, r.views[1], rng, norm)];
  } catch (err) {
    a.dispose();
    throw err;
  }
}

/** The tensor half: applies already-drawn parameters, batched on the compute backend. */
export function applyAugmentParams(x: tf.Tensor4D, p: AugmentParams, view: AugmentConfig, norm: Normalisation): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  if (p.n !== n) throw new Error(`augment: parameters for ${p.n} samples, batch has ${n}`);
  return tf.tidy(() => {
    const perSample = (v: Float32Array | Uint8Array) => tf.tensor4d(Float32Array.from(v), [n, 1, 1, 1]);
    // Crop and flip in one resampling: per-sample boxes, flipped boxes have x1 > x2.
    let y = tf.image.cropAndResize(x, tf.tensor2d(p.boxes, [n, 4]), tf.range(0, n, 1, 'int32') as tf.Tensor1D, [h, w], 'bilinear');

    if (p.jitter.some((v) => v === 1)) {
      // Fixed order brightness → contrast → saturation → hue (torchvision shuffles the order per image;
      // a fixed order keeps the batch as a handful of tensor ops).
      y = tf.clipByValue(tf.mul(y, perSample(p.brightness)), 0, 1) as tf.Tensor4D;
      const mean = tf.mean(gray(y), [1, 2, 3], true);
      y = tf.clipByValue(tf.add(tf.mul(tf.sub(y, mean), perSample(p.contrast)), mean), 0, 1) as tf.Tensor4D;
      if (c === 3) {
        const g = gray(y);
        y = tf.clipByValue(tf.add(g, tf.mul(tf.sub(y, g), perSample(p.saturation))), 0, 1) as tf.Tensor4D;
        if (p.hue.some((v) => v !== 0)) y = tf.clipByValue(hueRotate(y, p.hue), 0, 1);
      }
    }
    if (c === 3 && p.grayscale.some((v) => v === 1)) {
      y = tf.add(y, tf.mul(tf.sub(gray(y), y), perSample(p.grayscale)));
    }
    if (p.blur.some((v) => v === 1)) y = gaussianBlur(y, p, blurKernelSize(view, h, w));
    if (p.solarize.some((v) => v === 1)) {
      // x ← 1 − x where selected and x ≥ threshold, as x + m·(1 − 2x).
      const m = tf.mul(perSample(p.solarize), tf.cast(tf.greaterEqual(y, view.solarizeThreshold), 'float32'));
      y = tf.add(y, tf.mul(m, tf.sub(1, tf.mul(y, 2))));
    }
    if (view.normalize) {
      y = tf.div(tf.sub(y, tf.tensor1d(norm.mean)), tf.tensor1d(norm.std));
    }
    return y as tf.Tensor4D;
  });
}

/** Luma as [n, h, w, 1] (identity for one channel). */
function gray(x: tf.Tensor4D): tf.Tensor4D {
  if (x.shape[3] === 1) return x;
  return tf.sum(tf.mul(x, tf.tensor1d([...LUMA])), 3, true);
}

/**
 * Hue shift by a rotation of the chroma plane in YIQ space, one 3×3 matrix per sample applied as a batched
 * matMul. It equals a hue rotation on the colour wheel up to the YIQ/HSV difference; greys are unchanged.
 */
function hueRotate(x: tf.Tensor4D, hue: Float32Array): tf.Tensor4D {
  const [n, h, w] = x.shape;
  const toYiq = [
    [0.299, 0.587, 0.114],
    [0.596, -0.274, -0.322],
    [0.211, -0.523, 0.312],
  ];
  const toRgb = [
    [1, 0.956, 0.621],
    [1, -0.272, -0.647],
    [1, -1.106, 1.703],
  ];
  // Row-vector convention: y = x · Mᵀ with M = toRgb · R(θ) · toYiq; store Mᵀ per sample.
  const mats = new Float32Array(n * 9);
  for (let i = 0; i < n; i++) {
    const t = 2 * Math.PI * hue[i]!;
    const cs = Math.cos(t);
    const sn = Math.sin(t);
    const rot = [
      [1, 0, 0],
      [0, cs, -sn],
      [0, sn, cs],
    ];
    const m = mul3(toRgb, mul3(rot, toYiq));
    for (let r = 0; r < 3; r++) for (let k = 0; k < 3; k++) mats[i * 9 + k * 3 + r] = m[r]![k]!;
  }
  const flat = tf.reshape(x, [n, h * w, 3]) as tf.Tensor3D;
  return tf.reshape(tf.matMul(flat, tf.tensor3d(mats, [n, 3, 3])), [n, h, w, 3]);
}

function mul3(a: number[][], b: number[][]): number[][] {
  return a.map((row) => [0, 1, 2].map((k) => row[0]! * b[0]![k]! + row[1]! * b[1]![k]! + row[2]! * b[2]![k]!));
}

/**
 * Per-sample Gaussian blur with reflect padding: the batch is moved into channels ([1, h, w, n·c]) so one
 * separable pair of depthwise convolutions applies every sample's own kernel (a delta where not blurred).
 */
function gaussianBlur(x: tf.Tensor4D, p: AugmentParams, kernelSize: number): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  // Reflect padding needs radius < side: tiny images get a smaller kernel.
  const r = Math.min((kernelSize - 1) / 2, Math.min(h, w) - 1);
  const k = 2 * r + 1;
  const kernel = new Float32Array(k * n * c);
  for (let i = 0; i < n; i++) {
    const weights = new Float64Array(k);
    if (p.blur[i]) {
      const s = p.sigma[i]!;
      let sum = 0;
      for (let t = 0; t < k; t++) sum += weights[t] = Math.exp(-((t - r) ** 2) / (2 * s * s));
      for (let t = 0; t < k; t++) weights[t]! /= sum;
    } else {
      weights[r] = 1;
    }
    // Filter layout [k, 1, n·c, 1] (or [1, k, …]): tap t of channel i·c + ch.
    for (let t = 0; t < k; t++) for (let ch = 0; ch < c; ch++) kernel[t * n * c + i * c + ch] = weights[t]!;
  }
  let y = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c]) as tf.Tensor4D;
  y = tf.mirrorPad(y, [[0, 0], [r, r], [r, r], [0, 0]], 'reflect');
  y = tf.depthwiseConv2d(y, tf.tensor4d(kernel, [k, 1, n * c, 1]), 1, 'valid');
  y = tf.depthwiseConv2d(y, tf.tensor4d(kernel, [1, k, n * c, 1]), 1, 'valid');
  return tf.transpose(tf.reshape(y, [h, w, n, c]), [2, 0, 1, 3]);
}
