import { deflateSync, inflateSync } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { DecodeError, type DecodeTarget } from '../shared/image/decoder.js';
import { decodePngFast } from '../shared/image/png-fast.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { createImageDecoder, createSharpDecoder } from '../shared/node/image-decode.js';

const inflate = (b: Uint8Array) => inflateSync(b);
const sharpOnly = createSharpDecoder();
const composed = createImageDecoder();

/** Real Fashion-MNIST images, as grey 28×28 pixels, and colour variants built from them. */
async function realImages(n: number) {
  const ds = await loadFashionMnist('test', { limit: n });
  return Array.from({ length: n }, (_, i) => Buffer.from(ds.images.subarray(i * 784, (i + 1) * 784)));
}

function colourise(grey: Buffer, channels: 2 | 3 | 4, seed: number): Buffer {
  const out = Buffer.alloc(grey.length * channels);
  for (let i = 0; i < grey.length; i++) {
    const v = grey[i]!;
    const px = channels === 2 ? [v, (v * 7 + i * 13 + seed) & 0xff] : [v, (v * 3 + seed) & 0xff, 255 - v, (i * 29 + seed * 5) & 0xff].slice(0, channels);
    px.forEach((x, c) => (out[i * channels + c] = x));
  }
  return out;
}

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** A PNG chunk with a correct CRC (used to splice in chunks sharp does not write). */
function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), Buffer.from(data)]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  let c = 0xffffffff;
  for (const byte of body) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  crc.writeUInt32BE((c ^ 0xffffffff) >>> 0);
  return Buffer.concat([len, body, crc]);
}

/** PNG written by hand: one filter type for every row, IDAT split in `parts` chunks. */
function handPng(px: Buffer, w: number, h: number, colourType: number, samples: number, filter: number, parts = 1, extra: Buffer[] = []): Buffer {
  const stride = w * samples;
  const raw = Buffer.alloc(h * (stride + 1));
  for (let y = 0; y < h; y++) {
    raw[y * (stride + 1)] = filter;
    for (let x = 0; x < stride; x++) {
      const cur = px[y * stride + x]!;
      const a = x >= samples ? px[y * stride + x - samples]! : 0;
      const up = y > 0 ? px[(y - 1) * stride + x]! : 0;
      const c = x >= samples && y > 0 ? px[(y - 1) * stride + x - samples]! : 0;
      const pred = [0, a, up, (a + up) >> 1, (() => {
        const pa = Math.abs(up - c), pb = Math.abs(a - c), pc = Math.abs(a + up - 2 * c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? up : c;
      })()][filter]!;
      raw[y * (stride + 1) + 1 + x] = (cur - pred) & 0xff;
    }
  }
  const z = deflateSync(raw);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = colourType;
  const step = Math.ceil(z.length / parts);
  const idats = Array.from({ length: parts }, (_, i) => chunk('IDAT', z.subarray(i * step, (i + 1) * step)));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), ...extra, ...idats, chunk('IEND', new Uint8Array(0))]);
}

describe('PNG fast path (pure JS) against sharp', () => {
  it('gives the same pixels as sharp for grey, grey+alpha, RGB, RGBA and palette PNGs of real images, to 1 and 3 channels', async () => {
    const greys = await realImages(12);
    const cases: { name: string; png: Buffer }[] = [];
    for (const [i, g] of greys.entries()) {
      const raw = (ch: 1 | 2 | 3 | 4) => sharp(ch === 1 ? g : colourise(g, ch, i), { raw: { width: 28, height: 28, channels: ch } });
      cases.push({ name: `grey ${i}`, png: await raw(1).png().toBuffer() });
      cases.push({ name: `grey+alpha ${i}`, png: await raw(2).png().toBuffer() });
      cases.push({ name: `rgb ${i}`, png: await raw(3).png({ adaptiveFiltering: true, compressionLevel: 9 }).toBuffer() });
      cases.push({ name: `rgba ${i}`, png: await raw(4).png({ compressionLevel: 1 }).toBuffer() });
      cases.push({ name: `palette ${i}`, png: await raw(3).png({ palette: true, colours: 64, dither: 0 }).toBuffer() });
    }
    for (const [f, g] of greys.slice(0, 5).entries()) cases.push({ name: `hand-filtered ${f}`, png: handPng(g, 28, 28, 0, 1, f, 3) });
    cases.push({ name: 'hand rgb paeth', png: handPng(colourise(greys[0]!, 3, 1), 28, 28, 2, 3, 4) });

    for (const { name, png } of cases) {
      for (const channels of [1, 3] as const) {
        const target: DecodeTarget = { size: 28, channels };
        const fast = decodePngFast(png, target, { inflate });
        expect(fast, `${name} should take the fast path`).toBeDefined();
        const ref = await sharpOnly.decode(png, target);
        // Grey, RGB and palette are exact; alpha blending may round differently by one level.
        expect(maxDiff(fast!.pixels, ref.pixels), `${name} → ${channels} channel(s)`).toBeLessThanOrEqual(name.includes('alpha') || name.includes('rgba') ? 1 : 0);
        expect(fast!).toMatchObject({ width: 28, height: 28, channels, format: 'png' });
      }
    }
  });

  it('leaves every file it does not fully understand to the full decoder (other size, interlaced, 16-bit, ICC, EXIF, colour key, corrupt)', async () => {
    const [g] = await realImages(1);
    const base = sharp(g!, { raw: { width: 28, height: 28, channels: 1 } });
    const png = await base.clone().png().toBuffer();
    const target: DecodeTarget = { size: 28, channels: 1 };
    expect(decodePngFast(png, target, { inflate })).toBeDefined();
    expect(decodePngFast(png, { size: 32, channels: 1 }, { inflate })).toBeUndefined();
    expect(decodePngFast(await base.clone().png({ progressive: true }).toBuffer(), target, { inflate })).toBeUndefined();
    expect(decodePngFast(await base.clone().toColourspace('grey16').png().toBuffer(), target, { inflate })).toBeUndefined();
    expect(decodePngFast(await base.clone().withMetadata({ orientation: 6 }).png().toBuffer(), target, { inflate })).toBeUndefined();
    const rgb = await sharp(colourise(g!, 3, 0), { raw: { width: 28, height: 28, channels: 3 } }).withIccProfile('p3').png().toBuffer();
    expect(decodePngFast(rgb, target, { inflate })).toBeUndefined();
    // gAMA and a grey colour key (tRNS on colour type 0), spliced in by hand.
    expect(decodePngFast(handPng(g!, 28, 28, 0, 1, 0, 1, [chunk('gAMA', Buffer.from([0, 0, 0xb1, 0x8f]))]), target, { inflate })).toBeUndefined();
    expect(decodePngFast(handPng(g!, 28, 28, 0, 1, 0, 1, [chunk('tRNS', Buffer.from([0, 0]))]), target, { inflate })).toBeUndefined();
    // Corruption: a flipped pixel byte (CRC mismatch), truncation, a bad filter type, an inflater that throws.
    const flipped = Buffer.from(png);
    flipped[flipped.indexOf('IDAT', 0, 'latin1') + 6]! ^= 0xff;
    expect(decodePngFast(flipped, target, { inflate })).toBeUndefined();
    expect(decodePngFast(png.subarray(0, png.length - 20), target, { inflate })).toBeUndefined();
    expect(decodePngFast(handPng(g!, 28, 28, 0, 1, 0).fill(0, 0, 1), target, { inflate })).toBeUndefined(); // signature
    const good = handPng(g!, 28, 28, 0, 1, 0);
    expect(decodePngFast(good, target, { inflate })).toBeDefined();
    const filterSeven = Buffer.alloc(28 * 29);
    filterSeven[0] = 7;
    expect(decodePngFast(good, target, { inflate: () => filterSeven })).toBeUndefined();
    expect(decodePngFast(good, target, { inflate: () => filterSeven.subarray(1) })).toBeUndefined(); // wrong length
    expect(decodePngFast(good, target, { inflate: () => { throw new Error('corrupt'); } })).toBeUndefined();
  });

  it('through the Node decoder, corrupt and truncated PNGs still get the full decoder\'s 422', async () => {
    const [g] = await realImages(1);
    const png = await sharp(g!, { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
    const target: DecodeTarget = { size: 28, channels: 1 };
    const ok = await composed.decode(png, target);
    expect(Buffer.from(ok.pixels).equals(g!)).toBe(true);
    for (const bad of [png.subarray(0, 60), Buffer.concat([png.subarray(0, 40), Buffer.alloc(30, 7)])]) {
      const err = await composed.decode(bad, target).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(DecodeError);
      expect((err as DecodeError).kind).toBe('undecodable');
    }
  });
});
