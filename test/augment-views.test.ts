import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  AugmentConfig,
  OFFICIAL_RECIPE,
  SMALL_RECIPE,
  augmentBatchWithParams,
  makeViews,
  recipeByName,
  sampleAugmentParams,
  type AugmentConfigInput,
} from '../shared/index.js';
import { FASHION_MNIST_NORM, type ImageDataset } from '../shared/data/dataset.js';
import { batchToTensor } from '../shared/data/split.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { Rng } from '../shared/util/rng.js';

/** Everything off except what a test turns on; identity crop; no normalisation. */
function bare(extra: AugmentConfigInput = {}): AugmentConfig {
  return AugmentConfig.parse({
    crop: { scale: [1, 1], ratio: [1, 1] },
    flipP: 0,
    jitter: { p: 0 },
    grayscaleP: 0,
    blur: { p: 0 },
    solarizeP: 0,
    normalize: false,
    ...extra,
  });
}

const RAW = { mean: [0], std: [1] };
let ds: ImageDataset;
let x: tf.Tensor4D; // 512 real Fashion-MNIST test images, [512, 28, 28, 1] in [0, 1]
let pixels: Float32Array;

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  ds = await loadFashionMnist('test', { limit: 512 });
  x = batchToTensor(ds, Array.from({ length: 512 }, (_, i) => i));
  pixels = x.dataSync() as Float32Array;
});

function sample(t: Float32Array | Int32Array | Uint8Array, i: number, size = 784): Float32Array {
  return Float32Array.from(t.subarray(i * size, (i + 1) * size));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function mirror(img: Float32Array, h = 28, w = 28): Float32Array {
  const out = new Float32Array(img.length);
  for (let y = 0; y < h; y++) for (let c = 0; c < w; c++) out[y * w + c] = img[y * w + (w - 1 - c)]!;
  return out;
}

function mean(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  return s / v.length;
}

describe('augmentations on real Fashion-MNIST images (wasm)', () => {
  it('flips about half the images, and a flip is an exact mirror', () => {
    const { x: y, params } = augmentBatchWithParams(x, bare({ flipP: 0.5 }), new Rng(1), RAW);
    const out = y.dataSync() as Float32Array;
    y.dispose();
    // 512 draws: binomial sd ≈ 0.022.
    expect(mean(params.flip)).toBeGreaterThan(0.43);
    expect(mean(params.flip)).toBeLessThan(0.57);
    for (let i = 0; i < 512; i++) {
      const want = params.flip[i] ? mirror(sample(pixels, i)) : sample(pixels, i);
      expect(maxAbsDiff(sample(out, i), want)).toBeLessThan(1e-5);
    }
  });

  it('samples crop areas from the configured scale range with torchvision-like rejection, and crops those boxes', () => {
    for (const scale of [[0.2, 1], [0.08, 1]] as [number, number][]) {
      const view = AugmentConfig.parse({ crop: { scale } });
      const p = sampleAugmentParams(4000, 28, 28, view, new Rng(2));
      let worst = 0; // largest violation of any bound, 0 when all hold
      for (let i = 0; i < p.n; i++) {
        const [y1, x1, y2, x2] = p.boxes.subarray(4 * i, 4 * i + 4);
        worst = Math.max(
          worst,
          scale[0] - p.cropArea[i]! - 1e-6,
          p.cropArea[i]! - 1 - 1e-6,
          0.75 - p.cropRatio[i]! - 1e-5,
          p.cropRatio[i]! - 4 / 3 - 1e-5,
          Math.abs((y2! - y1!) * Math.abs(x2! - x1!) - p.cropArea[i]!) - 1e-5,
          -Math.min(y1!, x1!, y2!, x2!),
          Math.max(y1!, x1!, y2!, x2!) - 1 - 1e-6,
        );
      }
      expect(worst, 'crop area, ratio and box bounds').toBeLessThanOrEqual(0);
      // Expected law: area a ~ U(scale) kept when the crop fits, i.e. a ≤ ratio ≤ 1/a with log-ratio uniform.
      const accept = (a: number) => Math.max(0, Math.min(-Math.log(a), Math.log(4 / 3)) - Math.max(Math.log(a), Math.log(3 / 4)));
      const grid = 2000;
      const dens = Array.from({ length: grid }, (_, k) => accept(scale[0] + ((k + 0.5) * (scale[1] - scale[0])) / grid));
      const total = dens.reduce((s, v) => s + v, 0);
      const cdf = (t: number) => {
        let s = 0;
        for (let k = 0; k < grid; k++) if (scale[0] + ((k + 0.5) * (scale[1] - scale[0])) / grid <= t) s += dens[k]!;
        return s / total;
      };
      const sorted = Array.from(p.cropArea).sort((a, b) => a - b);
      let ks = 0;
      for (let i = 0; i < sorted.length; i += 20) ks = Math.max(ks, Math.abs((i + 1) / sorted.length - cdf(sorted[i]!)));
      expect(ks, `Kolmogorov–Smirnov distance for scale ${scale}`).toBeLessThan(0.04);
    }
    // The pixels follow the boxes: on a horizontal ramp, the first and last output columns sit at x1 and x2.
    const ramp = tf.tidy(() => tf.tile(tf.reshape(tf.linspace(0, 1, 28), [1, 1, 28, 1]), [64, 28, 1, 1])) as tf.Tensor4D;
    const { x: y, params } = augmentBatchWithParams(ramp, bare({ crop: { scale: [0.2, 1] }, flipP: 0.5 }), new Rng(3), RAW);
    const out = y.dataSync();
    for (let i = 0; i < 64; i++) {
      const x1 = params.boxes[4 * i + 1]!;
      const x2 = params.boxes[4 * i + 3]!;
      expect(Math.abs(out[i * 784]! - x1)).toBeLessThan(1e-5);
      expect(Math.abs(out[i * 784 + 27]! - x2)).toBeLessThan(1e-5);
      expect(params.flip[i] === 1).toBe(x1 > x2);
    }
    tf.dispose([ramp, y]);
  });

  it('solarises about p of the images: pixels ≥ 0.5 inverted, the others untouched', () => {
    const { x: y, params } = augmentBatchWithParams(x, bare({ solarizeP: 0.3 }), new Rng(4), RAW);
    const out = y.dataSync() as Float32Array;
    y.dispose();
    expect(mean(params.solarize)).toBeGreaterThan(0.24);
    expect(mean(params.solarize)).toBeLessThan(0.36);
    for (let i = 0; i < 512; i++) {
      const want = sample(pixels, i).map((v) => (params.solarize[i] && v >= 0.5 ? 1 - v : v));
      expect(maxAbsDiff(sample(out, i), want)).toBeLessThan(1e-6);
    }
  });

  it('jitters brightness and contrast with the drawn factors (grayscale images)', () => {
    const { x: y, params } = augmentBatchWithParams(x, bare({ jitter: { p: 0.8 } }), new Rng(5), RAW);
    const out = y.dataSync() as Float32Array;
    y.dispose();
    expect(mean(params.jitter)).toBeGreaterThan(0.74);
    expect(mean(params.jitter)).toBeLessThan(0.86);
    for (let i = 0; i < 512; i++) {
      const b = params.brightness[i]!;
      const c = params.contrast[i]!;
      if (params.jitter[i]) {
        expect(b).toBeGreaterThanOrEqual(0.6);
        expect(b).toBeLessThanOrEqual(1.4);
        expect(c).toBeGreaterThanOrEqual(0.6);
        expect(c).toBeLessThanOrEqual(1.4);
      } else {
        expect([b, c]).toEqual([1, 1]);
      }
      const bright = sample(pixels, i).map((v) => Math.min(1, Math.max(0, v * b)));
      const m = mean(bright);
      const want = bright.map((v) => Math.min(1, Math.max(0, (v - m) * c + m)));
      expect(maxAbsDiff(sample(out, i), want)).toBeLessThan(1e-5);
    }
  });

  it('blurs with each sample’s own Gaussian (reflect padding, kernel 3 at 28 px)', () => {
    const { x: y, params } = augmentBatchWithParams(x.slice(0, 64), bare({ blur: { p: 0.5 } }), new Rng(6), RAW);
    const out = y.dataSync() as Float32Array;
    y.dispose();
    expect(params.blur.some((b) => b === 1) && params.blur.some((b) => b === 0)).toBe(true);
    const reflect = (k: number) => (k < 0 ? -k : k > 27 ? 54 - k : k);
    for (let i = 0; i < 64; i++) {
      const img = sample(pixels, i);
      let want = img;
      if (params.blur[i]) {
        const s = params.sigma[i]!;
        expect(s).toBeGreaterThanOrEqual(0.1);
        expect(s).toBeLessThanOrEqual(2);
        const g = [-1, 0, 1].map((t) => Math.exp(-(t * t) / (2 * s * s)));
        const sum = g[0]! + g[1]! + g[2]!;
        want = new Float32Array(784);
        for (let r = 0; r < 28; r++) {
          for (let c = 0; c < 28; c++) {
            let acc = 0;
            for (let a = -1; a <= 1; a++) for (let b = -1; b <= 1; b++) acc += (g[a + 1]! * g[b + 1]! * img[reflect(r + a) * 28 + reflect(c + b)]!) / (sum * sum);
            want[r * 28 + c] = acc;
          }
        }
      }
      expect(maxAbsDiff(sample(out, i), want)).toBeLessThan(1e-5);
    }
  });

  it('normalises by the dataset mean and std', () => {
    const y = augmentBatchWithParams(x.slice(0, 8), bare({ normalize: true }), new Rng(7), FASHION_MNIST_NORM).x;
    const want = sample(pixels, 3).map((v) => (v - 0.286) / 0.353);
    expect(maxAbsDiff(sample(y.dataSync() as Float32Array, 3), want)).toBeLessThan(1e-5);
    y.dispose();
  });

  it('is reproducible: same seed → same views, another seed → other views', () => {
    const batch = x.slice(0, 128);
    const run = (seed: number) => {
      const [a, b] = makeViews(batch, OFFICIAL_RECIPE, new Rng(seed), FASHION_MNIST_NORM);
      const out = [a.dataSync().slice(), b.dataSync().slice()] as Float32Array[];
      tf.dispose([a, b]);
      return out;
    };
    const [a1, b1] = run(11);
    const [a2, b2] = run(11);
    const [a3] = run(12);
    expect(maxAbsDiff(a1!, a2!)).toBe(0);
    expect(maxAbsDiff(b1!, b2!)).toBe(0);
    expect(maxAbsDiff(a1!, a3!)).toBeGreaterThan(0.1);
    expect(maxAbsDiff(a1!, b1!)).toBeGreaterThan(0.1);
    batch.dispose();
  });

  it('follows each recipe’s per-view probabilities', () => {
    const [v1, v2] = OFFICIAL_RECIPE.views;
    const p1 = sampleAugmentParams(2000, 28, 28, v1, new Rng(8));
    const p2 = sampleAugmentParams(2000, 28, 28, v2, new Rng(9));
    expect(mean(p1.blur)).toBe(1);
    expect(mean(p1.solarize)).toBe(0);
    expect(Math.abs(mean(p2.blur) - 0.1)).toBeLessThan(0.03);
    expect(Math.abs(mean(p2.solarize) - 0.2)).toBeLessThan(0.03);
    const s = sampleAugmentParams(2000, 28, 28, SMALL_RECIPE.views[1], new Rng(10));
    expect(mean(s.blur)).toBe(0);
    expect(Math.abs(mean(s.solarize) - 0.1)).toBeLessThan(0.025);
    expect(Math.abs(mean(s.grayscale) - 0.2)).toBeLessThan(0.03);
    expect(Math.min(...s.cropArea)).toBeGreaterThanOrEqual(0.2 - 1e-6);
    expect(recipeByName('small')).toBe(SMALL_RECIPE);
    expect(() => recipeByName('imagenet')).toThrow(/official, small/);
    expect(() => AugmentConfig.parse({ crop: { scale: [0.9, 0.1] } })).toThrow(/low ≤ high/);
    expect(AugmentConfig.parse({}).jitter).toEqual({ p: 0.8, brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1 });
  });

  it('handles RGB: grayscale gives equal channels, greys stay grey, hue matches torchvision’s HSV shift', () => {
    const rgb = tf.tidy(() => {
      // Real images as the red channel, mid-range tints elsewhere: colourful but not saturated.
      const r = tf.add(tf.mul(x.slice(0, 32), 0.5), 0.25);
      return tf.concat([r, tf.fill([32, 28, 28, 1], 0.5), tf.sub(0.75, tf.mul(x.slice(0, 32), 0.4))], 3);
    }) as tf.Tensor4D;
    const norm3 = { mean: [0, 0, 0], std: [1, 1, 1] };
    const g = augmentBatchWithParams(rgb, bare({ grayscaleP: 1 }), new Rng(12), norm3).x;
    const spread = (v: ArrayLike<number>) => {
      let m = 0;
      for (let k = 0; k < v.length; k += 3) m = Math.max(m, Math.abs(v[k]! - v[k + 1]!) + Math.abs(v[k]! - v[k + 2]!));
      return m;
    };
    expect(spread(g.dataSync())).toBeLessThan(1e-5);
    // Greys stay grey under saturation and hue jitter (brightness/contrast off so nothing clips).
    const grey = tf.tile(x.slice(0, 32), [1, 1, 1, 3]) as tf.Tensor4D;
    const hueOnly = { jitter: { p: 1, brightness: 0, contrast: 0, saturation: 0.5, hue: 0.5 } };
    const j = augmentBatchWithParams(grey, bare(hueOnly), new Rng(13), norm3).x;
    expect(spread(j.dataSync())).toBeLessThan(1e-4);
    // Hue: the same as torchvision's adjust_hue, pixel by pixel (HSV sector formulas written out below).
    const h = augmentBatchWithParams(rgb, bare({ jitter: { p: 1, brightness: 0, contrast: 0, saturation: 0, hue: 0.5 } }), new Rng(14), norm3);
    const [hv, iv] = [h.x.dataSync(), rgb.dataSync()];
    expect(maxAbsDiff(hv, iv)).toBeGreaterThan(0.05);
    let worst = 0;
    for (let k = 0; k < iv.length; k += 3) {
      const want = adjustHue(iv[k]!, iv[k + 1]!, iv[k + 2]!, h.params.hue[Math.floor(k / (3 * 784))]!);
      worst = Math.max(worst, Math.abs(hv[k]! - want[0]), Math.abs(hv[k + 1]! - want[1]), Math.abs(hv[k + 2]! - want[2]));
    }
    expect(worst).toBeLessThan(1e-4);
    tf.dispose([rgb, g, grey, j, h.x]);
  });

  it('leaks no tensors and is batched: a pair of views runs as many kernels for 256 images as for 64', async () => {
    // A per-sample path would run kernels in proportion to the batch; counting them (not timing them)
    // gives the same verdict on a loaded machine as on an idle one.
    const kernels = async (n: number, recipe: typeof SMALL_RECIPE) => {
      const batch = x.slice(0, n);
      const info = await tf.profile(() => tf.dispose(makeViews(batch, recipe, new Rng(16), FASHION_MNIST_NORM)));
      batch.dispose();
      return info.kernels.length;
    };
    tf.tidy(() => tf.dispose(makeViews(x.slice(0, 8), SMALL_RECIPE, new Rng(15), FASHION_MNIST_NORM))); // warm-up
    const before = tf.memory().numTensors;
    for (const recipe of [SMALL_RECIPE, OFFICIAL_RECIPE]) {
      const few = await kernels(64, recipe);
      expect(few).toBeGreaterThan(0);
      expect(await kernels(256, recipe), `${recipe.name}: kernels for 256 images vs ${few} for 64`).toBe(few);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

/** torchvision's adjust_hue for one pixel: RGB → HSV, h ← (h + d) mod 1, HSV → RGB by sectors. */
function adjustHue(r: number, g: number, b: number, d: number): [number, number, number] {
  const v = Math.max(r, g, b);
  const c = v - Math.min(r, g, b);
  const s = v > 0 ? c / v : 0;
  let h = 0;
  if (c > 0) h = v === r ? (g - b) / c : v === g ? (b - r) / c + 2 : (r - g) / c + 4;
  h = ((((h / 6 + d) % 1) + 1) % 1) * 6;
  const i = Math.floor(h) % 6;
  const f = h - Math.floor(h);
  const p = v * (1 - s);
  const q = v * (1 - s * f);
  const t = v * (1 - s * (1 - f));
  return ([[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]] as [number, number, number][])[i]!;
}
