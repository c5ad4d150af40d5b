/**
 * A fast path for the commonest input of a small-image model: an 8-bit, non-interlaced PNG that is
 * already the model's size. A general decoder (sharp/libvips) spends ~2 ms of CPU on such a 28×28 file,
 * mostly pipeline set-up; parsing the chunks, inflating and unfiltering here costs ~0.05 ms. Anything
 * else — another size, 16-bit, interlaced, colour-managed (iCCP/gAMA/cHRM), EXIF-oriented, a colour-key
 * tRNS, or a file that is corrupt in any way — returns undefined, and the caller uses the full decoder,
 * which also produces the error message for bad files. Pure: the inflater is passed in.
 */
import type { DecodeTarget, DecodedImage } from './decoder.js';

/** zlib (RFC 1950) stream → bytes; may throw on corrupt input. */
export type Inflate = (data: Uint8Array) => Uint8Array;

export interface PngFastPathOptions {
  inflate: Inflate;
  /** CRC-32 of bytes (a native one is ~10× faster); default: a table-driven one in JS. */
  crc32?: (data: Uint8Array) => number;
  /** Colour transparent pixels are flattened onto (as the full decoder does). Default black. */
  background?: { r: number; g: number; b: number };
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Chunks whose meaning the fast path does not apply: leave those files to the full decoder. */
const DEFER = new Set(['iCCP', 'gAMA', 'cHRM', 'eXIf']);
/** Samples per pixel by PNG colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA). */
const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32Js(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const u32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

/** RGB(A)-ish pixels at their own sample count, after unfiltering. */
interface Raw {
  data: Uint8Array;
  samples: number;
  colourType: number;
  palette?: Uint8Array;
  paletteAlpha?: Uint8Array;
}

function parse(b: Uint8Array, size: number, inflate: Inflate, crc32: (d: Uint8Array) => number): Raw | undefined {
  if (b.length < 8 + 25 + 12 || SIGNATURE.some((x, i) => b[i] !== x)) return undefined;
  let off = 8;
  let header: { w: number; h: number; depth: number; colourType: number; interlace: number } | undefined;
  let palette: Uint8Array | undefined;
  let paletteAlpha: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  let ended = false;
  while (off + 12 <= b.length) {
    const len = u32(b, off);
    const end = off + 8 + len;
    if (end + 4 > b.length) return undefined;
    const type = String.fromCharCode(b[off + 4]!, b[off + 5]!, b[off + 6]!, b[off + 7]!);
    if (crc32(b.subarray(off + 4, end)) !== u32(b, end)) return undefined;
    const data = b.subarray(off + 8, end);
    if (header === undefined && type !== 'IHDR') return undefined;
    if (type === 'IHDR') {
      if (len !== 13 || header) return undefined;
      header = { w: u32(data, 0), h: u32(data, 4), depth: data[8]!, colourType: data[9]!, interlace: data[12]! };
      if (data[10] !== 0 || data[11] !== 0) return undefined;
    } else if (type === 'PLTE') {
      palette = data;
    } else if (type === 'tRNS') {
      if (header!.colourType !== 3) return undefined; // a colour key: rare, leave it to the full decoder
      paletteAlpha = data;
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      ended = true;
      break;
    } else if (DEFER.has(type)) {
      return undefined;
    }
    off = end + 4;
  }
  if (!ended || !header || idat.length === 0) return undefined;
  const { w, h, depth, colourType, interlace } = header;
  const samples = SAMPLES[colourType];
  if (samples === undefined || depth !== 8 || interlace !== 0 || w !== size || h !== size) return undefined;
  if (colourType === 3 && (!palette || palette.length % 3 !== 0)) return undefined;

  let joined: Uint8Array;
  if (idat.length === 1) joined = idat[0]!;
  else {
    joined = new Uint8Array(idat.reduce((s, d) => s + d.length, 0));
    let o = 0;
    for (const d of idat) {
      joined.set(d, o);
      o += d.length;
    }
  }
  let filtered: Uint8Array;
  try {
    filtered = inflate(joined);
  } catch {
    return undefined;
  }
  const stride = w * samples;
  if (filtered.length !== h * (stride + 1)) return undefined;
  const data = unfilter(filtered, w, h, samples);
  if (!data) return undefined;
  if (colourType === 3) {
    const entries = palette!.length / 3;
    for (let i = 0; i < data.length; i++) if (data[i]! >= entries) return undefined;
  }
  return { data, samples, colourType, palette, paletteAlpha };
}

/** Undo PNG's per-row filters (None, Sub, Up, Average, Paeth); undefined on an unknown filter type. */
function unfilter(src: Uint8Array, w: number, h: number, bpp: number): Uint8Array | undefined {
  const stride = w * bpp;
  const out = new Uint8Array(h * stride);
  for (let y = 0; y < h; y++) {
    const f = src[y * (stride + 1)]!;
    const s = y * (stride + 1) + 1;
    const o = y * stride;
    const p = o - stride; // previous row (only read when y > 0)
    // One loop per filter type: the per-byte switch cost more than the arithmetic.
    if (f === 0 || (f === 2 && y === 0)) {
      out.set(src.subarray(s, s + stride), o);
    } else if (f === 1 || (f === 4 && y === 0)) {
      // Paeth on the first row reduces to Sub (up and upper-left are 0).
      for (let x = 0; x < bpp; x++) out[o + x] = src[s + x]!;
      for (let x = bpp; x < stride; x++) out[o + x] = (src[s + x]! + out[o + x - bpp]!) & 0xff;
    } else if (f === 2) {
      for (let x = 0; x < stride; x++) out[o + x] = (src[s + x]! + out[p + x]!) & 0xff;
    } else if (f === 3) {
      for (let x = 0; x < stride; x++) {
        const a = x >= bpp ? out[o + x - bpp]! : 0;
        const up = y > 0 ? out[p + x]! : 0;
        out[o + x] = (src[s + x]! + ((a + up) >> 1)) & 0xff;
      }
    } else if (f === 4) {
      for (let x = 0; x < bpp; x++) out[o + x] = (src[s + x]! + out[p + x]!) & 0xff; // a = c = 0: predictor is up
      for (let x = bpp; x < stride; x++) {
        const a = out[o + x - bpp]!;
        const up = out[p + x]!;
        const c = out[p + x - bpp]!;
        const pa = Math.abs(up - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + up - 2 * c);
        out[o + x] = (src[s + x]! + (pa <= pb && pa <= pc ? a : pb <= pc ? up : c)) & 0xff;
      }
    } else {
      return undefined;
    }
  }
  return out;
}

/** Grey level of an RGB pixel: Rec. 601 weights, rounded (as the full decoder converts). */
const luma = (r: number, g: number, b: number): number => Math.round(0.299 * r + 0.587 * g + 0.114 * b);

/** Flattened onto the background, then converted to the target channels (ITU-R 601 luma for grey). */
function toTarget(raw: Raw, n: number, channels: 1 | 3, bg: { r: number; g: number; b: number }): Uint8Array {
  const { data, samples, colourType, palette, paletteAlpha } = raw;
  if (colourType === 0 && channels === 1) return data; // grey to grey: the unfiltered rows are the answer
  if (colourType === 2 && channels === 3) return data; // RGB to RGB: likewise
  const out = new Uint8Array(n * channels);
  if (colourType === 2) {
    // RGB to grey, the commonest conversion (encoders often write grey images as RGB), without the
    // general loop's per-pixel branching.
    for (let i = 0, o = 0; i < n; i++, o += 3) out[i] = luma(data[o]!, data[o + 1]!, data[o + 2]!);
    return out;
  }
  const bgGrey = luma(bg.r, bg.g, bg.b);
  const blend = (v: number, a: number, back: number) => Math.round((v * a + back * (255 - a)) / 255);
  for (let i = 0; i < n; i++) {
    let r: number, g: number, b: number;
    let grey: number | undefined;
    if (colourType === 0 || colourType === 4) {
      const v = data[i * samples]!;
      if (colourType === 4) {
        const a = data[i * samples + 1]!;
        if (channels === 1) {
          out[i] = blend(v, a, bgGrey);
          continue;
        }
        r = blend(v, a, bg.r);
        g = blend(v, a, bg.g);
        b = blend(v, a, bg.b);
      } else {
        r = g = b = grey = v;
      }
    } else {
      let a = 255;
      if (colourType === 3) {
        const k = data[i]!;
        r = palette![k * 3]!;
        g = palette![k * 3 + 1]!;
        b = palette![k * 3 + 2]!;
        if (paletteAlpha && k < paletteAlpha.length) a = paletteAlpha[k]!;
      } else {
        const o = i * samples;
        r = data[o]!;
        g = data[o + 1]!;
        b = data[o + 2]!;
        if (colourType === 6) a = data[o + 3]!;
      }
      if (a !== 255) {
        r = blend(r, a, bg.r);
        g = blend(g, a, bg.g);
        b = blend(b, a, bg.b);
      }
    }
    if (channels === 1) out[i] = grey ?? luma(r, g, b);
    else {
      out[i * 3] = r;
      out[i * 3 + 1] = g;
      out[i * 3 + 2] = b;
    }
  }
  return out;
}

/** Decode `bytes` if it qualifies for the fast path; undefined means "use the full decoder". */
export function decodePngFast(bytes: Uint8Array, target: DecodeTarget, opts: PngFastPathOptions): DecodedImage | undefined {
  const raw = parse(bytes, target.size, opts.inflate, opts.crc32 ?? crc32Js);
  if (!raw) return undefined;
  const pixels = toTarget(raw, target.size * target.size, target.channels, opts.background ?? { r: 0, g: 0, b: 0 });
  return { pixels, width: target.size, height: target.size, channels: target.channels, format: 'png' };
}
