import type { Rng } from '../util/rng.js';
import type { AugmentConfig } from './config.js';

/** Per-sample parameters of one augmented view, drawn in JS from the seeded Rng (returned so tests can check them). */
export interface AugmentParams {
  n: number;
  /** [y1, x1, y2, x2] per sample, normalised as tf.image.cropAndResize wants; flipped samples have x1 > x2. */
  boxes: Float32Array;
  /** Kept fraction of the image area, and aspect ratio (width / height) of the crop in pixels. */
  cropArea: Float32Array;
  cropRatio: Float32Array;
  flip: Uint8Array;
  /** Jitter factors; exactly 1 (brightness, contrast, saturation) and 0 (hue) where jitter was not applied. */
  jitter: Uint8Array;
  brightness: Float32Array;
  contrast: Float32Array;
  saturation: Float32Array;
  hue: Float32Array;
  grayscale: Uint8Array;
  blur: Uint8Array;
  /** Blur sigma in pixels (0 where not blurred). */
  sigma: Float32Array;
  solarize: Uint8Array;
}

/**
 * Draws every sample's parameters. Each sample consumes a fixed number of draws except for the crop's
 * rejection loop, so the stream depends only on the seed and the configuration.
 */
export function sampleAugmentParams(n: number, height: number, width: number, view: AugmentConfig, rng: Rng): AugmentParams {
  const p: AugmentParams = {
    n,
    boxes: new Float32Array(4 * n),
    cropArea: new Float32Array(n),
    cropRatio: new Float32Array(n),
    flip: new Uint8Array(n),
    jitter: new Uint8Array(n),
    brightness: new Float32Array(n),
    contrast: new Float32Array(n),
    saturation: new Float32Array(n),
    hue: new Float32Array(n),
    grayscale: new Uint8Array(n),
    blur: new Uint8Array(n),
    sigma: new Float32Array(n),
    solarize: new Uint8Array(n),
  };
  const j = view.jitter;
  for (let i = 0; i < n; i++) {
    const [y0, x0, h, w] = sampleCrop(height, width, view.crop.scale, view.crop.ratio, rng);
    const flip = rng.next() < view.flipP;
    const box = [y0 / height, x0 / width, (y0 + h) / height, (x0 + w) / width];
    if (flip) [box[1], box[3]] = [box[3]!, box[1]!];
    p.boxes.set(box, 4 * i);
    p.cropArea[i] = (h * w) / (height * width);
    p.cropRatio[i] = w / h;
    p.flip[i] = flip ? 1 : 0;

    const jit = rng.next() < j.p;
    const b = rng.uniform(Math.max(0, 1 - j.brightness), 1 + j.brightness);
    const c = rng.uniform(Math.max(0, 1 - j.contrast), 1 + j.contrast);
    const s = rng.uniform(Math.max(0, 1 - j.saturation), 1 + j.saturation);
    const hu = rng.uniform(-j.hue, j.hue);
    p.jitter[i] = jit ? 1 : 0;
    p.brightness[i] = jit ? b : 1;
    p.contrast[i] = jit ? c : 1;
    p.saturation[i] = jit ? s : 1;
    p.hue[i] = jit ? hu : 0;

    p.grayscale[i] = rng.next() < view.grayscaleP ? 1 : 0;
    const blur = rng.next() < view.blur.p;
    const sigma = rng.uniform(view.blur.sigma[0], view.blur.sigma[1]);
    p.blur[i] = blur ? 1 : 0;
    p.sigma[i] = blur ? sigma : 0;
    p.solarize[i] = rng.next() < view.solarizeP ? 1 : 0;
  }
  return p;
}

/**
 * Random-resized-crop geometry as torchvision's RandomResizedCrop: area fraction uniform in `scale`, log-ratio
 * uniform, up to 10 tries to fit, else a centre crop with the ratio clamped. Continuous (sub-pixel) sizes,
 * which suit 28 px images better than rounding. Returns [top, left, height, width] in pixels.
 */
function sampleCrop(H: number, W: number, scale: [number, number], ratio: [number, number], rng: Rng): [number, number, number, number] {
  const area = H * W;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const r = Math.exp(rng.uniform(logLo, logHi));
    const w = Math.sqrt(target * r);
    const h = Math.sqrt(target / r);
    if (w <= W && h <= H) return [rng.uniform(0, H - h), rng.uniform(0, W - w), h, w];
  }
  const inRatio = W / H;
  let w = W;
  let h = H;
  if (inRatio < ratio[0]) h = W / ratio[0];
  else if (inRatio > ratio[1]) w = H * ratio[1];
  return [(H - h) / 2, (W - w) / 2, h, w];
}
