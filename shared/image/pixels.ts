/**
 * Decoded RGBA pixels → the model's input, reproducing what the Node decoder (sharp/libvips) does so that
 * an edge deployment (wasm codecs, no sharp) feeds the model the same numbers: EXIF orientation, alpha
 * flattened onto a background, resize to size × size ('fill' stretches, 'cover' scales and centre-crops)
 * with libvips's lanczos3 reduction, then 1 or 3 channels with ITU-R 601 luma. Pure TypeScript: it runs in
 * Node and in Workers. The libvips facts it follows (vips_resize = box shrink by floor(factor / 2) then a
 * lanczos3 "reduce" with 12-bit fixed-point coefficients, centre sampling, edge copy) come from its docs
 * and source; no code is taken from it.
 */

/** What the wasm codecs return: ImageData-like, 4 bytes (RGBA) per pixel. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8Array | Uint8ClampedArray;
}

/** Interleaved 8-bit pixels with 1 (grey) or 3 (RGB) channels. */
export interface Plane {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

export interface ModelInputOptions {
  size: number;
  channels: 1 | 3;
  resize?: 'fill' | 'cover';
  /** EXIF orientation 1–8 (anything else = 1). */
  orientation?: number;
  /**
   * Which loader-side shrink sharp would have used: 'jpeg' = libjpeg's DCT scaling by 2/4/8, 'webp' =
   * libwebp's scaled decode. The codecs here decode at full size, so it is imitated with a box/area average.
   */
  loader?: 'jpeg' | 'webp' | 'none';
  background?: { r: number; g: number; b: number };
  /**
   * libvips truncates when flattening alpha; the Node PNG fast path (png-fast.ts) rounds. Default 'truncate'.
   */
  flattenRounding?: 'truncate' | 'round';
}

/** Grey level of an RGB pixel: Rec. 601 weights, rounded (as shared/node/image-decode.ts converts). */
const luma = (r: number, g: number, b: number): number => Math.round(0.299 * r + 0.587 * g + 0.114 * b);

/** C's rint(): round half to even (libvips sizes its masks with it). */
function rint(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** RGBA → RGB (or grey when every pixel is grey, which keeps the work a third) with alpha flattened. */
export function flattenRgba(img: RgbaImage, background = { r: 0, g: 0, b: 0 }, rounding: 'truncate' | 'round' = 'truncate'): Plane {
  const { width, height, data } = img;
  const n = width * height;
  if (data.length < n * 4) throw new RangeError(`expected ${n * 4} RGBA bytes, got ${data.length}`);
  let grey = background.r === background.g && background.g === background.b;
  let opaque = true;
  for (let o = 0; o < n * 4 && (grey || opaque); o += 4) {
    if (grey && (data[o] !== data[o + 1] || data[o] !== data[o + 2])) grey = false;
    if (data[o + 3] !== 255) opaque = false;
  }
  const ch = grey ? 1 : 3;
  const out = new Uint8Array(n * ch);
  if (opaque) {
    // The common case (every JPEG): a plain copy, no blending.
    if (grey) for (let i = 0; i < n; i++) out[i] = data[i * 4]!;
    else for (let i = 0, o = 0; i < n; i++, o += 4) { out[i * 3] = data[o]!; out[i * 3 + 1] = data[o + 1]!; out[i * 3 + 2] = data[o + 2]!; }
    return { width, height, channels: ch, data: out };
  }
  const bg = [background.r, background.g, background.b];
  const bias = rounding === 'round' ? 0.5 : 0;
  for (let i = 0; i < n; i++) {
    const o = i * 4;
    const a = data[o + 3]!;
    for (let c = 0; c < ch; c++) out[i * ch + c] = Math.floor((data[o + c]! * a + bg[c]! * (255 - a)) / 255 + bias);
  }
  return { width, height, channels: ch, data: out };
}

// ---------------------------------------------------------------------------------------------------------
// One-dimensional resampling passes. Each pass is a list of taps per output position (source indices,
// already clamped = libvips's "extend copy" edges) and a way to turn the weighted sum into a byte.

interface Pass {
  outLen: number;
  /** Taps per output position. */
  n: number;
  idx: Int32Array;
  weight: Float64Array;
  /**
   * Weighted sum → output byte: 'fixed12' libvips's 12-bit fixed-point reduce ((sum + 2048) >> 12,
   * clamped), 'box' its multiply-shift box average ((sum + amend) · mult / 2^24), 'round' rounded and clamped.
   */
  finish: 'fixed12' | 'box' | 'round';
  amend?: number;
  mult?: number;
}

/** Turn `len` weighted sums into bytes at out[o…]: one branch per run, not a call per value. */
function finishInto(sums: Float64Array, out: Uint8Array, o: number, len: number, pass: Pass): void {
  if (pass.finish === 'fixed12') for (let x = 0; x < len; x++) out[o + x] = clampByte((sums[x]! + 2048) >> 12);
  else if (pass.finish === 'box') {
    const amend = pass.amend!;
    const mult = pass.mult!;
    for (let x = 0; x < len; x++) out[o + x] = Math.floor(((sums[x]! + amend) * mult) / 2 ** 24);
  } else for (let x = 0; x < len; x++) out[o + x] = clampByte(Math.round(sums[x]!));
}

const clampByte = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/** Apply `pass` along x ('h') or y ('v'). Every pass writes bytes, as libvips does between its stages. */
function applyPass(src: Plane, axis: 'h' | 'v', pass: Pass): Plane {
  const { width, height, channels: ch, data } = src;
  const outW = axis === 'h' ? pass.outLen : width;
  const outH = axis === 'v' ? pass.outLen : height;
  const out = new Uint8Array(outW * outH * ch);
  const { n, idx, weight } = pass;
  if (axis === 'h') {
    // Tap offsets in bytes, so the inner loop does one load per tap.
    const at = ch === 1 ? idx : idx.map((v) => v * ch);
    const sums = new Float64Array(outW * ch);
    for (let y = 0; y < height; y++) {
      const row = y * width * ch;
      for (let o = 0; o < outW; o++) {
        for (let c = 0; c < ch; c++) {
          let sum = 0;
          const base = row + c;
          for (let i = o * n, e = i + n; i < e; i++) sum += weight[i]! * data[base + at[i]!]!;
          sums[o * ch + c] = sum;
        }
      }
      finishInto(sums, out, y * outW * ch, outW * ch, pass);
    }
  } else {
    // Row by row: each tap adds a whole source row (sequential reads), taps in the same order as before.
    const stride = width * ch;
    const sums = new Float64Array(stride);
    for (let o = 0; o < outH; o++) {
      const orow = o * stride;
      sums.fill(0);
      for (let i = o * n, e = i + n; i < e; i++) {
        const wt = weight[i]!;
        const src = idx[i]! * stride;
        for (let x = 0; x < stride; x++) sums[x] += wt * data[src + x]!;
      }
      finishInto(sums, out, orow, stride, pass);
    }
  }
  return { width: outW, height: outH, channels: ch, data: out };
}

/** libvips shrinkh/shrinkv with ceil: integer box average, edge copied, its multiply-shift division. */
function boxShrinkPass(len: number, s: number): Pass {
  const outLen = Math.ceil(len / s);
  const idx = new Int32Array(outLen * s);
  for (let o = 0; o < outLen; o++) for (let i = 0; i < s; i++) idx[o * s + i] = Math.min(len - 1, o * s + i);
  const amend = Math.floor(s / 2);
  const mult = Math.floor(2 ** 32 / (256 * s));
  return { outLen, n: s, idx, weight: new Float64Array(outLen * s).fill(1), finish: 'box', amend, mult };
}

const sinc = (x: number) => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));
const lanczos3 = (x: number) => (x >= -3 && x <= 3 ? sinc(x) * sinc(x / 3) : 0);

/**
 * libvips reduceh/reducev (lanczos3) by `factor` ≥ 1 after its integer box pre-shrink ("gap" 2). Returns
 * the passes to run in order.
 */
function reducePasses(len: number, factor: number): Pass[] {
  // Building the tables is the larger part of a small resize, and serving repeats the same few sizes.
  const key = `${len}/${factor}`;
  let passes = reduceCache.get(key);
  if (!passes) {
    if (reduceCache.size >= 256) reduceCache.clear();
    reduceCache.set(key, (passes = buildReducePasses(len, factor)));
  }
  return passes;
}
const reduceCache = new Map<string, Pass[]>();

function buildReducePasses(len: number, factor: number): Pass[] {
  const outLen = Math.floor(len / factor + 0.5);
  let extra = outLen * factor - len;
  let residual = factor;
  const passes: Pass[] = [];
  const intShrink = Math.max(1, Math.floor(len / outLen / 2));
  if (intShrink > 1) {
    passes.push(boxShrinkPass(len, intShrink));
    len = Math.ceil(len / intShrink);
    residual /= intShrink;
    extra /= intShrink;
  }
  if (residual === 1) return passes;
  const n = 2 * rint(3 * residual) + 1;
  const offset = (1 + extra) / 2 - 1;
  // Coefficient tables at 1/64-pixel phases, normalised, then truncated to 12-bit fixed point.
  const tables: Int32Array[] = [];
  for (let t = 0; t <= 64; t++) {
    const half = t / 64 + n / 2 - 1;
    const c = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += c[i] = lanczos3((i - half) * (1 / residual));
    tables.push(Int32Array.from(c, (v) => Math.trunc((v / sum) * 4096)));
  }
  const lead = Math.ceil(n / 2) - 1;
  const idx = new Int32Array(outLen * n);
  const weight = new Float64Array(outLen * n);
  let X = 0.5 * residual - 0.5 - offset;
  for (let o = 0; o < outLen; o++, X += residual) {
    const ix = Math.trunc(X);
    const tx = ((Math.trunc(X * 128) & 127) + 1) >> 1;
    const table = tables[tx]!;
    for (let i = 0; i < n; i++) {
      idx[o * n + i] = Math.min(len - 1, Math.max(0, ix + i - lead));
      weight[o * n + i] = table[i]!;
    }
  }
  passes.push({ outLen, n, idx, weight, finish: 'fixed12' });
  return passes;
}

/** Area average to `outLen` (fractional coverage): stands in for libwebp's scaled decode. */
function areaPass(len: number, outLen: number): Pass {
  const scale = len / outLen;
  const n = Math.ceil(scale) + 1;
  const idx = new Int32Array(outLen * n);
  const weight = new Float64Array(outLen * n);
  for (let o = 0; o < outLen; o++) {
    const a = o * scale;
    const b = a + scale;
    for (let i = 0; i < n; i++) {
      const p = Math.floor(a) + i;
      idx[o * n + i] = Math.min(len - 1, p);
      weight[o * n + i] = Math.max(0, Math.min(b, p + 1) - Math.max(a, p)) / scale;
    }
  }
  return { outLen, n, idx, weight, finish: 'round' };
}

/** Catmull-Rom upsizing with centre sampling (libvips resize upsizes with its bicubic interpolator). */
function bicubicPass(len: number, scale: number): Pass {
  const outLen = Math.max(1, Math.round(len * scale));
  const n = 4;
  const idx = new Int32Array(outLen * n);
  const weight = new Float64Array(outLen * n);
  const cr = (x: number) => {
    x = Math.abs(x);
    return x < 1 ? 1.5 * x ** 3 - 2.5 * x ** 2 + 1 : x < 2 ? -0.5 * x ** 3 + 2.5 * x ** 2 - 4 * x + 2 : 0;
  };
  for (let o = 0; o < outLen; o++) {
    const X = (o + 0.5) / scale - 0.5;
    const ix = Math.floor(X);
    for (let i = 0; i < n; i++) {
      const p = ix - 1 + i;
      idx[o * n + i] = Math.min(len - 1, Math.max(0, p));
      weight[o * n + i] = cr(X - p);
    }
  }
  return { outLen, n, idx, weight, finish: 'round' };
}

/**
 * Average f × f blocks (ceil size; partial edge blocks over the pixels they have): stands in for libjpeg's
 * DCT scaling, whose 1/f output is close to the block mean. One pass over the full-size image.
 */
function blockAverage(src: Plane, f: number): Plane {
  const { width, height, channels: ch, data } = src;
  const ow = Math.ceil(width / f);
  const oh = Math.ceil(height / f);
  const sums = new Uint32Array(ow * oh * ch);
  const col = Int32Array.from({ length: width }, (_, x) => Math.floor(x / f) * ch);
  for (let y = 0; y < height; y++) {
    const orow = Math.floor(y / f) * ow * ch;
    let i = y * width * ch;
    if (ch === 1) for (let x = 0; x < width; x++) sums[orow + col[x]!] += data[i++]!;
    else for (let x = 0; x < width; x++) for (let c = 0; c < ch; c++) sums[orow + col[x]! + c] += data[i++]!;
  }
  const out = new Uint8Array(sums.length);
  for (let by = 0; by < oh; by++) {
    const rows = Math.min(f, height - by * f);
    for (let bx = 0; bx < ow; bx++) {
      const count = rows * Math.min(f, width - bx * f);
      const o = (by * ow + bx) * ch;
      for (let c = 0; c < ch; c++) out[o + c] = Math.floor((sums[o + c]! + count / 2) / count);
    }
  }
  return { width: ow, height: oh, channels: ch, data: out };
}

// ---------------------------------------------------------------------------------------------------------

/** sharp's ResolveShrink for a fixed width and height: per-axis for 'fill', the smaller for 'cover'. */
function shrinks(w: number, h: number, tw: number, th: number, fit: 'fill' | 'cover'): [number, number] {
  let hs = w / tw;
  let vs = h / th;
  if (fit === 'cover') hs = vs = Math.min(hs, vs);
  return [Math.min(hs, w), Math.min(vs, h)];
}

/** The libjpeg DCT-scaling factor sharp picks (fastShrinkOnLoad, its default). */
export function jpegShrinkOnLoad(shrink: number): 1 | 2 | 4 | 8 {
  let f: 1 | 2 | 4 | 8 = shrink >= 8 ? 8 : shrink >= 4 ? 4 : shrink >= 2 ? 2 : 1;
  // sharp steps down when the shrink is exactly the factor (libjpeg rounding).
  if (f > 1 && Math.trunc(shrink) === f) f = (f / 2) as 2 | 4;
  return f;
}

/** sharp's shrink factors for a size × size target: per axis for 'fill', the smaller for 'cover'. */
export function sharpShrinks(w: number, h: number, tw: number, th: number, fit: 'fill' | 'cover', swap: boolean): [number, number] {
  return swap ? shrinks(w, h, th, tw, fit) : shrinks(w, h, tw, th, fit);
}

/** Resize like sharp's resize(tw, th, { fit, kernel: lanczos3 }) after its shrink-on-load. */
function resize(src: Plane, tw: number, th: number, fit: 'fill' | 'cover', loader: 'jpeg' | 'webp' | 'none', swap: boolean): Plane {
  if (swap) [tw, th] = [th, tw];
  let img = src;
  const [hs, vs] = shrinks(img.width, img.height, tw, th, fit);
  const common = Math.min(hs, vs);
  if (loader === 'jpeg') {
    const f = jpegShrinkOnLoad(common);
    if (f > 1) img = blockAverage(img, f);
  } else if (loader === 'webp' && common > 1) {
    const scale = 1 / common;
    const w = Math.max(1, rint(img.width * scale));
    const h = Math.max(1, rint(img.height * scale));
    if (h !== img.height) img = applyPass(img, 'v', areaPass(img.height, h));
    if (w !== img.width) img = applyPass(img, 'h', areaPass(img.width, w));
  }
  return resizeLoaded(img, tw, th, fit);
}

/** sharp's resize of what the loader returned (targets already swapped for a 90° turn). */
function resizeLoaded(img: Plane, tw: number, th: number, fit: 'fill' | 'cover'): Plane {
  const [hs, vs] = shrinks(img.width, img.height, tw, th, fit);
  // vips_resize(scale = 1/hs, vscale = 1/vs): reduce vertically, then horizontally, then any upsizing.
  const hscale = Math.max(1 / hs, 1 / img.width);
  const vscale = Math.max(1 / vs, 1 / img.height);
  if (vscale < 1) for (const p of reducePasses(img.height, 1 / vscale)) img = applyPass(img, 'v', p);
  if (hscale < 1) for (const p of reducePasses(img.width, 1 / hscale)) img = applyPass(img, 'h', p);
  if (hscale > 1) img = applyPass(img, 'h', bicubicPass(img.width, hscale));
  if (vscale > 1) img = applyPass(img, 'v', bicubicPass(img.height, vscale));
  return img;
}

/** Apply EXIF orientation (1–8): the stored pixels → how the image is meant to be seen. */
function orient(src: Plane, orientation: number): Plane {
  if (!(orientation >= 2 && orientation <= 8)) return src;
  const { width: w, height: h, channels: ch, data } = src;
  const swap = orientation >= 5;
  const ow = swap ? h : w;
  const oh = swap ? w : h;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let sx: number, sy: number;
      switch (orientation) {
        case 2: sx = w - 1 - x; sy = y; break; // mirror horizontally
        case 3: sx = w - 1 - x; sy = h - 1 - y; break; // rotate 180
        case 4: sx = x; sy = h - 1 - y; break; // mirror vertically
        case 5: sx = y; sy = x; break; // transpose
        case 6: sx = y; sy = h - 1 - x; break; // rotate 90 clockwise
        case 7: sx = w - 1 - y; sy = h - 1 - x; break; // transverse
        default: sx = w - 1 - y; sy = x; break; // 8: rotate 90 anticlockwise
      }
      const s = (sy * w + sx) * ch;
      const d = (y * ow + x) * ch;
      for (let c = 0; c < ch; c++) out[d + c] = data[s + c]!;
    }
  }
  return { width: ow, height: oh, channels: ch, data: out };
}

/** Centre crop as sharp computes it: offset (in − out + 1) / 2, integer division. */
function centreCrop(src: Plane, size: number): Plane {
  const { width, height, channels: ch, data } = src;
  if (width === size && height === size) return src;
  const left = Math.max(0, Math.floor((width - size + 1) / 2));
  const top = Math.max(0, Math.floor((height - size + 1) / 2));
  const out = new Uint8Array(size * size * ch);
  for (let y = 0; y < size; y++) {
    const sy = Math.min(height - 1, top + y);
    for (let x = 0; x < size; x++) {
      const sx = Math.min(width - 1, left + x);
      for (let c = 0; c < ch; c++) out[(y * size + x) * ch + c] = data[(sy * width + sx) * ch + c]!;
    }
  }
  return { width: size, height: size, channels: ch, data: out };
}

function toChannels(src: Plane, to: 1 | 3): Uint8Array {
  const { data, channels: from } = src;
  if (from === to) return data;
  const n = src.width * src.height;
  const out = new Uint8Array(n * to);
  if (to === 1) for (let i = 0; i < n; i++) out[i] = luma(data[i * 3]!, data[i * 3 + 1]!, data[i * 3 + 2]!);
  else for (let i = 0; i < n; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = data[i]!;
  return out;
}

/** Decoded RGBA → size × size × channels bytes, row-major HWC, as the Node (sharp) decoder produces. */
export function toModelInput(img: RgbaImage, opts: ModelInputOptions): Uint8Array {
  const fit = opts.resize ?? 'fill';
  const orientation = opts.orientation ?? 1;
  let plane = flattenRgba(img, opts.background, opts.flattenRounding);
  // sharp resizes the stored pixels (targets swapped for a 90° turn) and orients afterwards; so do we,
  // which also rotates the small image rather than the large one.
  const swap = orientation >= 5 && orientation <= 8;
  plane = resize(plane, opts.size, opts.size, fit, opts.loader ?? 'none', swap);
  return finish(plane, opts.size, fit, orientation, opts.channels);
}

/**
 * Pixels a loader has already shrunk the way sharp's does (a JPEG decoded at 1/8 scale) → the model's
 * input: the rest of sharp's resize, EXIF orientation, the centre crop for 'cover', then the channels.
 */
export function loadedToModelInput(plane: Plane, opts: Pick<ModelInputOptions, 'size' | 'channels' | 'resize' | 'orientation'>): Uint8Array {
  const fit = opts.resize ?? 'fill';
  // The target is square, so the swap for a 90° turn changes nothing here.
  return finish(resizeLoaded(plane, opts.size, opts.size, fit), opts.size, fit, opts.orientation ?? 1, opts.channels);
}

function finish(plane: Plane, size: number, fit: 'fill' | 'cover', orientation: number, channels: 1 | 3): Uint8Array {
  plane = orient(plane, orientation);
  if (fit === 'cover') plane = centreCrop(plane, size);
  if (plane.width !== size || plane.height !== size) throw new Error(`resize produced ${plane.width}×${plane.height}`);
  return toChannels(plane, channels);
}
