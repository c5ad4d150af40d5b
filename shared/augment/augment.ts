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
        if (p.hue.some((v) => v !== 0)) y = hueShift(y, p.hue);
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
 * Hue shift as torchvision's adjust_hue (RGB → HSV, h ← (h + δ) mod 1, → RGB), written as elementwise ops:
 * with V = max, C = max − min and sector h ∈ [0, 6), channel k is V − C·clamp(min(t, 4 − t), 0, 1) where
 * t = (n_k + h) mod 6 and n = (5, 3, 1) for (R, G, B). Greys (C = 0) are unchanged.
 */
function hueShift(x: tf.Tensor4D, hue: Float32Array): tf.Tensor4D {
  const n = x.shape[0];
  const [r, g, b] = tf.split(x, 3, 3) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  const v = tf.max(x, 3, true);
  const c = tf.sub(v, tf.min(x, 3, true));
  const cs = tf.maximum(c, 1e-12); // |difference| ≤ C, so greys give 0/tiny = 0
  const hr = tf.div(tf.sub(g, b), cs);
  const hg = tf.add(tf.div(tf.sub(b, r), cs), 2);
  const hb = tf.add(tf.div(tf.sub(r, g), cs), 4);
  // The same tie order as torchvision: red wins, then green.
  const h = tf.where(tf.equal(v, r), hr, tf.where(tf.equal(v, g), hg, hb));
  const shift = tf.tensor4d(Float32Array.from(hue, (d) => 6 * d), [n, 1, 1, 1]);
  const hs = tf.mod(tf.add(h, shift), 6);
  const channel = (k: number) => {
    const t = tf.mod(tf.add(hs, k), 6);
    return tf.sub(v, tf.mul(c, tf.clipByValue(tf.minimum(t, tf.sub(4, t)), 0, 1)));
  };
  return tf.concat([channel(5), channel(3), channel(1)], 3) as tf.Tensor4D;
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
