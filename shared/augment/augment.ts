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
    const perSample = (v: Float32Array | Uint8Array) => tf.tensor3d(Float32Array.from(v), [n, 1, 1]);
    // Crop and flip in one resampling: per-sample boxes, flipped boxes have x1 > x2.
    const cropped = tf.image.cropAndResize(x, tf.tensor2d(p.boxes, [n, 4]), tf.range(0, n, 1, 'int32') as tf.Tensor1D, [h, w], 'bilinear');
    // Colour ops work on channel planes [n, h, w]: on wasm, splitting or broadcasting along the last axis
    // is 10–20× slower than whole-plane elementwise ops.
    let planes = toPlanes(cropped);

    if (p.jitter.some((v) => v === 1)) {
      // Fixed order brightness → contrast → saturation → hue (torchvision shuffles the order per image;
      // a fixed order keeps the batch as a handful of tensor ops).
      const clip = (t: tf.Tensor) => tf.clipByValue(t, 0, 1) as tf.Tensor3D;
      const bright = perSample(p.brightness);
      planes = planes.map((q) => clip(tf.mul(q, bright)));
      const mean = tf.mean(gray(planes), [1, 2], true);
      const contrast = perSample(p.contrast);
      planes = planes.map((q) => clip(tf.add(tf.mul(tf.sub(q, mean), contrast), mean)));
      if (c === 3) {
        const g = gray(planes);
        const sat = perSample(p.saturation);
        planes = planes.map((q) => clip(tf.add(g, tf.mul(tf.sub(q, g), sat))));
        if (p.hue.some((v) => v !== 0)) planes = hueShift(planes as RGB, p.hue);
      }
    }
    if (c === 3 && p.grayscale.some((v) => v === 1)) {
      const g = gray(planes);
      const sel = perSample(p.grayscale);
      planes = planes.map((q) => tf.add(q, tf.mul(tf.sub(g, q), sel)));
    }
    if (p.blur.some((v) => v === 1)) planes = toPlanes(gaussianBlur(fromPlanes(planes), p, blurKernelSize(view, h, w)));
    if (p.solarize.some((v) => v === 1)) {
      // x ← 1 − x where selected and x ≥ threshold, as x + m·(1 − 2x).
      const sel = perSample(p.solarize);
      planes = planes.map((q) => {
        const m = tf.mul(sel, tf.cast(tf.greaterEqual(q, view.solarizeThreshold), 'float32'));
        return tf.add(q, tf.mul(m, tf.sub(1, tf.mul(q, 2))));
      });
    }
    if (view.normalize) planes = planes.map((q, k) => tf.div(tf.sub(q, norm.mean[k]!), norm.std[k]!));
    return fromPlanes(planes);
  });
}

type RGB = [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];

/** [n, h, w, c] → c planes [n, h, w] (a free reshape for one channel). */
function toPlanes(x: tf.Tensor4D): tf.Tensor3D[] {
  const [n, h, w, c] = x.shape;
  if (c === 1) return [tf.reshape(x, [n, h, w])];
  return tf.unstack(tf.transpose(x, [3, 0, 1, 2])) as tf.Tensor3D[];
}

function fromPlanes(planes: tf.Tensor3D[]): tf.Tensor4D {
  const [n, h, w] = planes[0]!.shape;
  if (planes.length === 1) return tf.reshape(planes[0]!, [n, h, w, 1]);
  return tf.transpose(tf.stack(planes, 0), [1, 2, 3, 0]) as tf.Tensor4D;
}

/** Luma (ITU-R BT.601, as torchvision's rgb_to_grayscale); the plane itself for one channel. */
function gray(planes: tf.Tensor3D[]): tf.Tensor3D {
  if (planes.length === 1) return planes[0]!;
  const [r, g, b] = planes as RGB;
  return tf.addN([tf.mul(r, LUMA[0]), tf.mul(g, LUMA[1]), tf.mul(b, LUMA[2])]) as tf.Tensor3D;
}

/**
 * Hue shift as torchvision's adjust_hue (RGB → HSV, h ← (h + δ) mod 1, → RGB), written as elementwise ops:
 * with V = max, C = max − min and sector h ∈ [0, 6), channel k is V − C·clamp(min(t, 4 − t), 0, 1) where
 * t = (n_k + h) mod 6 and n = (5, 3, 1) for (R, G, B). Greys (C = 0) are unchanged.
 */
function hueShift([r, g, b]: RGB, hue: Float32Array): RGB {
  const n = r.shape[0];
  const v = tf.maximum(r, tf.maximum(g, b));
  const c = tf.sub(v, tf.minimum(r, tf.minimum(g, b)));
  const cs = tf.maximum(c, 1e-12); // |difference| ≤ C, so greys give 0/tiny = 0
  const hr = tf.div(tf.sub(g, b), cs);
  const hg = tf.add(tf.div(tf.sub(b, r), cs), 2);
  const hb = tf.add(tf.div(tf.sub(r, g), cs), 4);
  // The same tie order as torchvision: red wins, then green.
  const h = tf.where(tf.equal(v, r), hr, tf.where(tf.equal(v, g), hg, hb));
  const hs = tf.add(h, tf.tensor3d(Float32Array.from(hue, (d) => 6 * d), [n, 1, 1]));
  // t mod 6 as t − 6·floor(t / 6): tf.mod is several times slower on wasm.
  const mod6 = (t: tf.Tensor) => tf.sub(t, tf.mul(tf.floor(tf.div(t, 6)), 6));
  const channel = (k: number) => {
    const t = mod6(tf.add(hs, k));
    return tf.sub(v, tf.mul(c, tf.clipByValue(tf.minimum(t, tf.sub(4, t)), 0, 1))) as tf.Tensor3D;
  };
  return [channel(5), channel(3), channel(1)];
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
