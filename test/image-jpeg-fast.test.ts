/**
 * The JPEG fast path (shared/image/jpeg-fast.ts) against sharp: the same pixels, bit for bit, for every
 * JPEG it takes (sizes, qualities, chroma subsampling, grey, all eight EXIF orientations, restart
 * intervals, 'fill' and 'cover', 1 and 3 channels), and everything it must leave to sharp left to sharp.
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { benchImages, fmnistPng } from '../bench/images.js';
import { DecodeError, type DecodeTarget } from '../shared/image/decoder.js';
import { decodeJpegFast } from '../shared/image/jpeg-fast.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { createImageDecoder, createSharpDecoder } from '../shared/node/image-decode.js';

const sharpOnly = createSharpDecoder();
const composed = createImageDecoder();
/** Any size, to compare the decoder itself with sharp; the default budget is tested on its own below. */
const LIMIT = { maxPixels: 40_000_000, workBudget: Infinity };
const TARGETS: DecodeTarget[] = [
  { size: 28, channels: 1, resize: 'fill' },
  { size: 28, channels: 3, resize: 'cover' },
  { size: 24, channels: 1, resize: 'cover' },
];

/** A deterministic photo-like RGB (or grey) scene: gradients, a disc, ripples and noise. */
function scene(w: number, h: number, seed: number, channels: 1 | 3 = 3): Buffer {
  let s = (seed * 2654435761) >>> 0;
  const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const px = Buffer.alloc(w * h * channels);
  const cx = rnd() * w, cy = rnd() * h, r = (0.2 + rnd() * 0.3) * Math.min(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const disc = (x - cx) ** 2 + (y - cy) ** 2 < r * r ? 70 : 0;
      for (let c = 0; c < channels; c++) {
        const v = ((x / w) * 110 * (c + 1)) / channels + (y / h) * 70 + (c === seed % 3 ? disc : -disc / 2) + 25 * Math.sin((x + y * (c + 1)) / 9) + (rnd() - 0.5) * 30;
        px[(y * w + x) * channels + c] = Math.max(0, Math.min(255, Math.round(v + 40)));
      }
    }
  }
  return px;
}
const raw = (px: Buffer, width: number, height: number, channels: 1 | 3) => sharp(px, { raw: { width, height, channels } });

/** The fast path takes `jpeg` for every target and gives exactly sharp's pixels. */
async function expectSameAsSharp(jpeg: Uint8Array, label: string, targets = TARGETS): Promise<void> {
  for (const target of targets) {
    const fast = decodeJpegFast(jpeg, target, LIMIT);
    expect(fast, `${label} ${target.size}/${target.channels}/${target.resize}: fast path taken`).toBeDefined();
    const ref = await sharpOnly.decode(jpeg, target);
    expect(Buffer.from(fast!.pixels).equals(Buffer.from(ref.pixels)), `${label} ${target.size}/${target.channels}/${target.resize}`).toBe(true);
    expect(fast!.format).toBe('jpeg');
    // The composed decoder (the API's) gives the same, whichever path the budget sends it down.
    const viaApi = await composed.decode(jpeg, target);
    expect(Buffer.from(viaApi.pixels).equals(Buffer.from(ref.pixels))).toBe(true);
  }
}

/**
 * A minimal baseline JPEG encoder for flat 8×8 blocks (DC only, quantisation 1), so the test can make
 * what sharp cannot write: restart intervals and 4:2:2 / 4:4:0 / 4:1:1 sampling. `mean(c, bx, by)` is
 * each block's level.
 */
function flatJpeg(opts: { width: number; height: number; sampling: [number, number][]; restart?: number; jfif?: boolean; mean: (c: number, bx: number, by: number) => number }): Uint8Array {
  const { width, height, sampling } = opts;
  const out: number[] = [0xff, 0xd8];
  const seg = (m: number, body: number[]) => out.push(0xff, m, (body.length + 2) >> 8, (body.length + 2) & 255, ...body);
  if (opts.jfif) seg(0xe0, [0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]);
  seg(0xdb, [0, ...new Array<number>(64).fill(1)]);
  seg(0xc0, [8, height >> 8, height & 255, width >> 8, width & 255, sampling.length, ...sampling.flatMap(([h, v], i) => [i + 1, (h << 4) | v, 0])]);
  // DC: category c has the 4-bit code c; AC: a lone EOB, code '0'.
  seg(0xc4, [0x00, 0, 0, 0, 12, ...new Array<number>(12).fill(0), ...Array.from({ length: 12 }, (_, i) => i)]);
  seg(0xc4, [0x10, 1, ...new Array<number>(15).fill(0), 0x00]);
  if (opts.restart) seg(0xdd, [opts.restart >> 8, opts.restart & 255]);
  seg(0xda, [sampling.length, ...sampling.flatMap((_, i) => [i + 1, 0x00]), 0, 63, 0]);
  const maxH = Math.max(...sampling.map((s) => s[0]));
  const maxV = Math.max(...sampling.map((s) => s[1]));
  const mcusX = sampling.length > 1 ? Math.ceil(width / (8 * maxH)) : Math.ceil(width / 8);
  const mcusY = sampling.length > 1 ? Math.ceil(height / (8 * maxV)) : Math.ceil(height / 8);
  let acc = 0, nbits = 0;
  const put = (v: number, n: number) => {
    for (let i = n - 1; i >= 0; i--) {
      acc = (acc << 1) | ((v >> i) & 1);
      if (++nbits === 8) {
        out.push(acc);
        if (acc === 0xff) out.push(0);
        acc = nbits = 0;
      }
    }
  };
  const flush = () => { if (nbits) put(0xff, 8 - nbits); };
  let pred = sampling.map(() => 0);
  for (let mcu = 0, rst = 0; mcu < mcusX * mcusY; mcu++) {
    if (opts.restart && mcu > 0 && mcu % opts.restart === 0) {
      flush();
      out.push(0xff, 0xd0 + (rst++ & 7));
      pred = sampling.map(() => 0);
    }
    const mx = mcu % mcusX, my = Math.floor(mcu / mcusX);
    sampling.forEach(([h, v], c) => {
      const [bh, bv] = sampling.length > 1 ? [h, v] : [1, 1];
      for (let y = 0; y < bv; y++) for (let x = 0; x < bh; x++) {
        const dc = 8 * (Math.round(opts.mean(c, mx * bh + x, my * bv + y)) - 128);
        const diff = dc - pred[c]!;
        pred[c] = dc;
        const cat = diff === 0 ? 0 : 32 - Math.clz32(Math.abs(diff));
        put(cat, 4);
        if (cat) put(diff > 0 ? diff : diff + (1 << cat) - 1, cat);
        put(0, 1); // EOB
      }
    });
  }
  flush();
  out.push(0xff, 0xd9);
  return Uint8Array.from(out);
}

describe('JPEG fast path: exactly sharp\'s pixels', () => {
  it('photo-like scenes: sizes, qualities, 4:2:0 and 4:4:4, grey, default and plain Huffman tables', async () => {
    let seed = 1;
    for (const [w, h] of [[640, 480], [1000, 750], [333, 257], [1279, 721]] as const) {
      const img = raw(scene(w, h, seed++), w, h, 3);
      for (const quality of [50, 80, 97]) {
        await expectSameAsSharp(await img.clone().jpeg({ quality }).toBuffer(), `${w}×${h} q${quality} 4:2:0`);
        await expectSameAsSharp(await img.clone().jpeg({ quality, chromaSubsampling: '4:4:4' }).toBuffer(), `${w}×${h} q${quality} 4:4:4`);
      }
      await expectSameAsSharp(await img.clone().jpeg({ quality: 75, optimiseCoding: false }).toBuffer(), `${w}×${h} standard tables`);
      await expectSameAsSharp(await raw(scene(w, h, seed++, 1), w, h, 1).jpeg({ quality: 85 }).toBuffer(), `${w}×${h} grey`);
    }
  });

  it("bench:serve's photo (a 640×480 mosaic of Fashion-MNIST images, about 80 KB) and blown-up single images", async () => {
    const { jpeg: photo } = await benchImages();
    await expectSameAsSharp(photo, 'mosaic');
    expect(decodeJpegFast(photo, TARGETS[0]!, { maxPixels: 40_000_000 }), 'within the default budget').toBeDefined();
    const ds = await loadFashionMnist('test', { limit: 5 });
    for (let i = 0; i < ds.n; i++) {
      const jpeg = await sharp(await fmnistPng(ds.images, i)).resize(640, 480, { fit: 'fill' }).jpeg({ quality: 80 }).toBuffer();
      await expectSameAsSharp(jpeg, `fmnist ${i}`);
    }
  });

  it('all eight EXIF orientations', async () => {
    const img = raw(scene(720, 400, 7), 720, 400, 3);
    for (let o = 1; o <= 8; o++) {
      await expectSameAsSharp(await img.clone().jpeg({ quality: 85 }).withExif({ IFD0: { Orientation: String(o) } }).toBuffer(), `orientation ${o}`);
    }
  });

  it('restart intervals and 4:2:2, 4:4:0, 4:1:1 sampling, with and without JFIF', async () => {
    const mean = (c: number, bx: number, by: number) => 128 + 90 * Math.sin(bx / 5 + c) * Math.cos(by / 7 - c);
    const layouts: [number, number][][] = [[[1, 1]], [[2, 2], [1, 1], [1, 1]], [[2, 1], [1, 1], [1, 1]], [[1, 2], [1, 1], [1, 1]], [[4, 1], [1, 1], [1, 1]], [[1, 1], [1, 1], [1, 1]]];
    for (const sampling of layouts) {
      for (const restart of [0, 1, 3, 7]) {
        const jpeg = flatJpeg({ width: 520, height: 300, sampling, restart, jfif: restart % 2 === 1, mean });
        await expectSameAsSharp(jpeg, `sampling ${JSON.stringify(sampling)} restart ${restart}`);
      }
    }
  });
});

describe('JPEG fast path: what it leaves to sharp', () => {
  const photo = () => raw(scene(640, 480, 3), 640, 480, 3);
  const target: DecodeTarget = { size: 28, channels: 1, resize: 'fill' };

  it('declines progressive, ICC-tagged, CMYK and small (shrink under 8) JPEGs, and images over the pixel limit', async () => {
    const declined = {
      progressive: await photo().jpeg({ progressive: true }).toBuffer(),
      icc: await photo().jpeg().withIccProfile('p3').toBuffer(),
      cmyk: await photo().toColourspace('cmyk').jpeg().toBuffer(),
      small: await raw(scene(224, 224, 4), 224, 224, 3).jpeg().toBuffer(),
    };
    for (const [name, jpeg] of Object.entries(declined)) {
      expect(decodeJpegFast(jpeg, target, LIMIT), name).toBeUndefined();
      // …and the composed decoder still decodes them, through sharp.
      const viaApi = await composed.decode(jpeg, target);
      expect(Buffer.from(viaApi.pixels).equals(Buffer.from((await sharpOnly.decode(jpeg, target)).pixels)), name).toBe(true);
    }
    const ok = await photo().jpeg().toBuffer();
    expect(decodeJpegFast(ok, target, { ...LIMIT, maxPixels: 640 * 480 - 1 })).toBeUndefined();
    const limited = createImageDecoder({ maxPixels: 640 * 480 - 1 });
    const err = await limited.decode(ok, target).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(DecodeError);
    expect((err as DecodeError).kind).toBe('too-many-pixels');
  });

  it('takes a photo-sized upload within its work budget, and leaves large or detailed photos to sharp', async () => {
    const bytes = (w: number, h: number, quality: number) => raw(scene(w, h, 5), w, h, 3).jpeg({ quality });
    const small = await raw(scene(640, 480, 5), 640, 480, 3).blur(2).jpeg({ quality: 80 }).toBuffer();
    expect(small.length).toBeLessThan(64 * 1024);
    expect(decodeJpegFast(small, target, { maxPixels: 40_000_000 })).toBeDefined();
    for (const big of [await bytes(1920, 1080, 80).toBuffer(), await bytes(640, 480, 100).toBuffer()]) {
      expect(decodeJpegFast(big, target, { maxPixels: 40_000_000 })).toBeUndefined();
    }
  });

  it('declines damaged files (sharp gives the error), and never decodes what sharp refuses or differently', async () => {
    const jpeg = new Uint8Array(await photo().jpeg({ quality: 70 }).toBuffer());
    const truncated = jpeg.subarray(0, jpeg.length >> 1);
    expect(decodeJpegFast(truncated, target, LIMIT)).toBeUndefined();
    const err = await composed.decode(truncated, target).then(() => undefined, (e: unknown) => e);
    expect((err as DecodeError).kind).toBe('undecodable');
    // Deterministic damage: bit flips, cut, inserted and overwritten bytes anywhere in the file.
    let s = 99;
    const rnd = (n: number) => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * n | 0;
    let taken = 0;
    for (let t = 0; t < 300; t++) {
      let b = new Uint8Array(jpeg);
      const at = 2 + rnd(b.length - 2);
      const kind = t % 4;
      if (kind === 0) b[at] ^= 1 << rnd(8);
      else if (kind === 1) b = new Uint8Array([...b.subarray(0, at), ...b.subarray(at + 1 + rnd(3))]);
      else if (kind === 2) b = new Uint8Array([...b.subarray(0, at), rnd(256), ...b.subarray(at)]);
      else b[b.length - 2 - rnd(64)] = rnd(256);
      const fast = decodeJpegFast(b, target, LIMIT);
      if (!fast) continue;
      taken++;
      const ref = await sharpOnly.decode(b, target).catch(() => undefined);
      expect(ref, `damage ${t} (${kind} at ${at}) decoded by the fast path but refused by sharp`).toBeDefined();
      expect(Buffer.from(fast.pixels).equals(Buffer.from(ref!.pixels)), `damage ${t} (${kind} at ${at})`).toBe(true);
    }
    expect(taken).toBeGreaterThan(0);
  });
});
