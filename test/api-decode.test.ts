import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { DecodeError } from '../shared/image/decoder.js';
import { createSharpDecoder } from '../shared/node/image-decode.js';

/** A 40×20 RGB test card: left half red, right half blue, so orientation and crops are observable. */
async function card(): Promise<Buffer> {
  const w = 40, h = 20;
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const o = (y * w + x) * 3;
    if (x < w / 2) px[o] = 255; else px[o + 2] = 255;
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

async function expectKind(p: Promise<unknown>, kind: DecodeError['kind']): Promise<DecodeError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(DecodeError);
  expect((err as DecodeError).kind).toBe(kind);
  return err as DecodeError;
}

describe('sharp ImageDecoder', () => {
  const decoder = createSharpDecoder({ maxPixels: 1_000_000 });

  it('decodes JPEG, PNG, WebP, GIF, AVIF and TIFF to the target size and channels', async () => {
    const base = sharp(await card());
    const encoded = {
      png: await base.clone().png().toBuffer(),
      jpeg: await base.clone().jpeg().toBuffer(),
      webp: await base.clone().webp({ lossless: true }).toBuffer(),
      gif: await base.clone().gif().toBuffer(),
      avif: await base.clone().avif({ lossless: true }).toBuffer(),
      tiff: await base.clone().tiff().toBuffer(),
    };
    for (const [format, bytes] of Object.entries(encoded)) {
      const rgb = await decoder.decode(bytes, { size: 8, channels: 3, resize: 'cover' });
      expect(rgb.format).toBe(format);
      expect(rgb.pixels.length).toBe(8 * 8 * 3);
      // Cover-crop of a red|blue card: left column red, right column blue.
      expect(rgb.pixels[0]).toBeGreaterThan(200);
      expect(rgb.pixels[2]).toBeLessThan(60);
      expect(rgb.pixels[(7 * 3) + 2]).toBeGreaterThan(200);
      const grey = await decoder.decode(bytes, { size: 28, channels: 1 });
      expect(grey.pixels.length).toBe(28 * 28);
    }
  });

  it("'fill' (the manifest's rule) stretches ignoring aspect ratio; 'cover' centre-crops", async () => {
    // 40×10, red in the leftmost 10 columns, blue elsewhere.
    const px = Buffer.alloc(40 * 10 * 3);
    for (let y = 0; y < 10; y++) for (let x = 0; x < 40; x++) px[(y * 40 + x) * 3 + (x < 10 ? 0 : 2)] = 255;
    const strip = await sharp(px, { raw: { width: 40, height: 10, channels: 3 } }).png().toBuffer();
    const fill = await decoder.decode(strip, { size: 4, channels: 3 });
    const cover = await decoder.decode(strip, { size: 4, channels: 3, resize: 'cover' });
    expect(fill.pixels[0]).toBeGreaterThan(200); // the red quarter survives a stretch
    expect(cover.pixels[0]).toBeLessThan(60); // and is cropped away by cover
    expect(cover.pixels[2]).toBeGreaterThan(200);
  });

  it('applies EXIF orientation', async () => {
    // Orientation 6 = the stored pixels must be rotated 90° clockwise to display: red ends up on top.
    const jpeg = await sharp(await card()).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const out = await decoder.decode(jpeg, { size: 4, channels: 3, resize: 'cover' });
    expect(out.pixels[0]).toBeGreaterThan(200); // top-left red
    expect(out.pixels[(3 * 4) * 3 + 2]).toBeGreaterThan(200); // bottom-left blue
  });

  it('flattens alpha onto black and uses only the first GIF frame', async () => {
    const transparentWhite = await sharp({ create: { width: 10, height: 10, channels: 4, background: { r: 255, g: 255, b: 255, alpha: 0 } } }).png().toBuffer();
    const out = await decoder.decode(transparentWhite, { size: 4, channels: 1 });
    expect(Math.max(...out.pixels)).toBeLessThan(5);
    const frames = Buffer.concat([Buffer.alloc(16 * 16 * 3, 255), Buffer.alloc(16 * 16 * 3, 0)]);
    const gif = await sharp(frames, { raw: { width: 16, height: 32, channels: 3, pageHeight: 16 } }).gif().toBuffer();
    const first = await decoder.decode(gif, { size: 4, channels: 1 });
    expect(Math.min(...first.pixels)).toBeGreaterThan(250);
  });

  it('classifies bad input: truncated, not an image, unsupported, too many pixels', async () => {
    const jpeg = await sharp(await card()).jpeg().toBuffer();
    await expectKind(decoder.decode(jpeg.subarray(0, Math.floor(jpeg.length / 2)), { size: 8, channels: 1 }), 'undecodable');
    await expectKind(decoder.decode(new TextEncoder().encode('hello, I am text pretending to be a PNG'), { size: 8, channels: 1 }), 'undecodable');
    // A real 2×2 BMP (54-byte header + padded rows).
    const bmp = Buffer.alloc(70);
    bmp.write('BM', 0, 'ascii'); bmp.writeUInt32LE(70, 2); bmp.writeUInt32LE(54, 10); bmp.writeUInt32LE(40, 14);
    bmp.writeInt32LE(2, 18); bmp.writeInt32LE(2, 22); bmp.writeUInt16LE(1, 26); bmp.writeUInt16LE(24, 28);
    const e = await expectKind(decoder.decode(bmp, { size: 8, channels: 1 }), 'unsupported');
    expect(e.message).toMatch(/BMP/);
    await expectKind(decoder.decode(new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"/>'), { size: 8, channels: 1 }), 'unsupported');
    const big = await sharp({ create: { width: 1100, height: 1000, channels: 3, background: 'gray' } }).png().toBuffer();
    const tooBig = await expectKind(decoder.decode(big, { size: 8, channels: 1 }), 'too-many-pixels');
    expect(tooBig.message).toMatch(/1100×1000/);
  });
});
