/**
 * The Workers image decoder (@jsquash wasm codecs + shared/image/pixels.ts) against the Node one (sharp):
 * same pixels for PNGs at the model's size and for photos on the JPEG fast path, close pixels and near-identical embeddings for images that
 * need resizing, same EXIF orientation, and the same error kinds. Runs in Node with the codecs compiled
 * from node_modules, as the Worker gets them precompiled.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchImages } from '../bench/images.js';
import { EDGE_CODEC_WASM, createEdgeImageDecoder } from '../api/edge/image-decode.js';
import { normalise } from '../api/preprocess.js';
import type { Preprocessing } from '../api/model-source.js';
import { DecodeError, type DecodeTarget, type DecodedImage, type ImageDecoder } from '../shared/image/decoder.js';
import { jpegOrientation, jpegSize, pngSize, webpSize } from '../shared/image/headers.js';
import { loadCheckpointDir } from '../shared/node/checkpoint-dir.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { createImageDecoder, createSharpDecoder } from '../shared/node/image-decode.js';

const ROOT = join(import.meta.dirname, '..');
const N_IMAGES = 20;
/** The 64×64×3 pixel comparisons (not fed to the 28×28×1 model) use the first few images only. */
const N_RGB64 = 5;
const compile = (rel: string) => new WebAssembly.Module(readFileSync(join(ROOT, rel)));

let edge: ImageDecoder;
const node = createImageDecoder();
const sharpOnly = createSharpDecoder();
let images: Uint8Array[] = []; // Fashion-MNIST 28×28 grey
let model: tf.LayersModel;
let pre: Preprocessing;

beforeAll(async () => {
  // The wasm backend (as on the edge) is ~10× faster than cpu here; fall back to cpu if it cannot start.
  if (!(await tf.setBackend('wasm').catch(() => false))) await tf.setBackend('cpu');
  edge = createEdgeImageDecoder({
    codecs: { png: compile(EDGE_CODEC_WASM.png), jpeg: compile(EDGE_CODEC_WASM.jpeg), webp: compile(EDGE_CODEC_WASM.webp) },
  });
  const ds = await loadFashionMnist('test', { limit: N_IMAGES });
  images = Array.from({ length: ds.n }, (_, i) => ds.images.subarray(i * 784, (i + 1) * 784));
  const ckpt = await loadCheckpointDir(join(ROOT, 'checkpoints/bundled'));
  model = ckpt.model;
  const p = ckpt.manifest.preprocessing;
  pre = { inputSize: p.inputSize, channels: p.channels as 1 | 3, mean: p.mean, std: p.std, resize: p.resize };
});

afterAll(() => model?.dispose());

const raw = (px: Uint8Array, width: number, height: number, channels: 1 | 3 | 4) => sharp(px, { raw: { width, height, channels } });

/** A Fashion-MNIST image tinted into RGB (so the channels differ) with an optional alpha ramp. */
function colourise(grey: Uint8Array, alpha: boolean): Uint8Array {
  const ch = alpha ? 4 : 3;
  const out = new Uint8Array(784 * ch);
  for (let i = 0; i < 784; i++) {
    const v = grey[i]!;
    out[i * ch] = v;
    out[i * ch + 1] = Math.round(v * 0.7 + 40 * ((i % 28) / 27));
    out[i * ch + 2] = 255 - v;
    if (alpha) out[i * ch + 3] = (i * 7) % 256;
  }
  return out;
}

/** A smooth, natural-ish RGB scene: gradients, a few soft blobs and edges, mild noise. Deterministic. */
function scene(width: number, height: number, seed: number): Uint8Array {
  let s = seed * 2654435761 >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const blobs = Array.from({ length: 5 }, () => ({ x: rand() * width, y: rand() * height, r: 10 + rand() * 60, c: [rand(), rand(), rand()] }));
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        let v = 60 + 80 * Math.sin((x / width) * Math.PI * (1 + c)) * (y / height);
        for (const b of blobs) if ((x - b.x) ** 2 + (y - b.y) ** 2 < b.r ** 2) v = 0.5 * v + 200 * b.c[c]!;
        if ((x + y * 2) % 97 < 3) v += 60; // thin diagonal lines: high frequencies for the filters
        out[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v + (rand() - 0.5) * 12)));
      }
    }
  }
  return out;
}

async function embed(decoded: DecodedImage[]): Promise<Float32Array[]> {
  const n = decoded.length;
  const size = pre.inputSize;
  const flat = new Float32Array(n * size * size * pre.channels);
  decoded.forEach((d, i) => flat.set(normalise(d, pre), i * size * size * pre.channels));
  const out = tf.tidy(() => model.predict(tf.tensor4d(flat, [n, size, size, pre.channels])) as tf.Tensor);
  const data = (await out.data()) as Float32Array;
  out.dispose();
  const dim = data.length / n;
  return Array.from({ length: n }, (_, i) => data.slice(i * dim, (i + 1) * dim));
}

const cosine = (a: Float32Array, b: Float32Array) => {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i]! * b[i]!; aa += a[i]! ** 2; bb += b[i]! ** 2; }
  return ab / Math.sqrt(aa * bb);
};

function pixelStats(a: Uint8Array, b: Uint8Array) {
  expect(a.length).toBe(b.length);
  let max = 0, sum = 0;
  for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i]! - b[i]!); max = Math.max(max, d); sum += d; }
  return { max, mean: sum / a.length };
}

async function expectKind(p: Promise<unknown>, kind: DecodeError['kind']): Promise<DecodeError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(DecodeError);
  expect((err as DecodeError).kind).toBe(kind);
  return err as DecodeError;
}

const MODEL_TARGET: DecodeTarget = { size: 28, channels: 1 };

describe('edge image decoder: PNGs at the model size', () => {
  it('decodes grey, RGB and RGBA PNGs to exactly the Node decoder’s pixels and embeddings', async () => {
    const edgeOut: DecodedImage[] = [];
    const nodeOut: DecodedImage[] = [];
    for (const [i, grey] of images.entries()) {
      const variants = [
        await raw(grey, 28, 28, 1).png().toBuffer(),
        await raw(colourise(grey, false), 28, 28, 3).png().toBuffer(),
        await raw(colourise(grey, true), 28, 28, 4).png().toBuffer(),
      ];
      for (const png of variants) {
        for (const target of [MODEL_TARGET, { size: 28, channels: 3 } as const]) {
          const e = await edge.decode(png, target);
          const n = await node.decode(png, target);
          expect(e.format).toBe('png');
          expect(Buffer.from(e.pixels).equals(Buffer.from(n.pixels)), `image ${i}, ${target.channels} channels`).toBe(true);
          if (target === MODEL_TARGET) { edgeOut.push(e); nodeOut.push(n); }
        }
      }
      // The grey PNG is the dataset image itself.
      expect(Buffer.from((await edge.decode(variants[0]!, MODEL_TARGET)).pixels).equals(Buffer.from(grey))).toBe(true);
    }
    const [a, b] = [await embed(edgeOut), await embed(nodeOut)];
    let maxAbs = 0;
    a.forEach((v, i) => v.forEach((x, j) => (maxAbs = Math.max(maxAbs, Math.abs(x - b[i]![j]!)))));
    console.log(`model-size PNGs: ${a.length} embeddings, max abs diff ${maxAbs}`);
    expect(maxAbs).toBeLessThanOrEqual(1e-4);
  });
});

describe('edge image decoder: JPEG and WebP that need resizing', () => {
  it('agrees with sharp on pixels (28×28×1 and 64×64×3, fill and cover) and on embeddings', async () => {
    const targets: DecodeTarget[] = [
      { size: 28, channels: 1, resize: 'fill' },
      { size: 28, channels: 1, resize: 'cover' },
      { size: 64, channels: 3, resize: 'fill' },
      { size: 64, channels: 3, resize: 'cover' },
    ];
    const stats = new Map<string, { max: number; sum: number; n: number }>();
    const note = (key: string, s: { max: number; mean: number }) => {
      const t = stats.get(key) ?? { max: 0, sum: 0, n: 0 };
      stats.set(key, { max: Math.max(t.max, s.max), sum: t.sum + s.mean, n: t.n + 1 });
    };
    const forModel = { edge: [] as DecodedImage[], sharp: [] as DecodedImage[], label: [] as string[] };
    for (const [i, grey] of images.entries()) {
      // A dataset image blown up to a photo-like size, and a synthetic colour scene.
      const big = raw(grey, 28, 28, 1).resize(640, 480, { fit: 'fill' });
      const sources = {
        'fmnist640x480.jpg': await big.clone().jpeg({ quality: 80 }).toBuffer(),
        'fmnist640x480.webp': await big.clone().webp({ quality: 80 }).toBuffer(),
        'scene300x200.jpg': await raw(scene(300, 200, i), 300, 200, 3).jpeg({ quality: 80 }).toBuffer(),
        'scene300x200.webp': await raw(scene(300, 200, i), 300, 200, 3).webp({ quality: 80 }).toBuffer(),
      };
      for (const [name, bytes] of Object.entries(sources)) {
        for (const target of targets) {
          if (target.size === 64 && i >= N_RGB64) continue;
          const e = await edge.decode(bytes, target);
          const s = await sharpOnly.decode(bytes, target);
          note(`${name} → ${target.size}×${target.size}×${target.channels} ${target.resize}`, pixelStats(e.pixels, s.pixels));
          if (target.size === 28) {
            forModel.edge.push(e);
            forModel.sharp.push(s);
            forModel.label.push(`${i} ${name} ${target.resize}`);
          }
        }
      }
    }
    let worstMax = 0;
    for (const [key, s] of stats) {
      console.log(`pixels ${key}: max abs diff ${s.max}, mean abs diff ${(s.sum / s.n).toFixed(3)} (${s.n} images)`);
      expect(s.sum / s.n, key).toBeLessThan(1);
      worstMax = Math.max(worstMax, s.max);
    }
    expect(worstMax).toBeLessThanOrEqual(40);

    const [a, b] = [await embed(forModel.edge), await embed(forModel.sharp)];
    const cos = a.map((v, i) => cosine(v, b[i]!));
    const order = cos.map((c, i) => [c, i] as const).sort((x, y) => x[0] - y[0]);
    const mean = cos.reduce((s, c) => s + c, 0) / cos.length;
    console.log(`embeddings: ${cos.length} pairs (${N_IMAGES} images × JPEG/WebP × two sources × fill/cover), ` +
      `min cosine ${order[0]![0].toFixed(6)} (${forModel.label[order[0]![1]]}), mean ${mean.toFixed(6)}`);
    for (const [c, i] of order) expect(c, forModel.label[i]).toBeGreaterThanOrEqual(0.995);
  });
});

describe('edge image decoder: photos', () => {
  it("decodes bench:serve's 80 KB photo to exactly sharp's pixels (the JPEG fast path, as on Node)", async () => {
    const { jpeg } = await benchImages();
    for (const target of [{ size: 28, channels: 1, resize: 'fill' }, { size: 28, channels: 3, resize: 'cover' }] as DecodeTarget[]) {
      const [e, s] = await Promise.all([edge.decode(jpeg, target), sharpOnly.decode(jpeg, target)]);
      expect(Buffer.from(e.pixels).equals(Buffer.from(s.pixels)), `${target.size}×${target.size}×${target.channels}`).toBe(true);
    }
  });
});

describe('edge image decoder: EXIF orientation', () => {
  it('orients JPEGs (all eight values, 6 in particular) as sharp does', async () => {
    // 60×40, bright block top-left and a ramp, so every flip and turn is visible.
    const w = 60, h = 40;
    const px = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      px[o] = x < 20 && y < 12 ? 250 : Math.round((x / w) * 120);
      px[o + 1] = Math.round((y / h) * 200);
      px[o + 2] = 60;
    }
    const plain = await edge.decode(await raw(px, w, h, 3).jpeg({ quality: 95 }).toBuffer(), { size: 28, channels: 3, resize: 'cover' });
    for (let orientation = 1; orientation <= 8; orientation++) {
      const jpeg = await raw(px, w, h, 3).jpeg({ quality: 95 }).withMetadata({ orientation }).toBuffer();
      expect(jpegOrientation(jpeg)).toBe(orientation);
      for (const target of [{ size: 28, channels: 3, resize: 'cover' }, { size: 28, channels: 1, resize: 'fill' }] as const) {
        const e = await edge.decode(jpeg, target);
        const s = await sharpOnly.decode(jpeg, target);
        const st = pixelStats(e.pixels, s.pixels);
        expect(st.mean, `orientation ${orientation} ${target.resize}`).toBeLessThan(1.5);
        if (orientation === 6 && target.resize === 'cover') {
          // And it really is turned: far from the unrotated decode.
          expect(pixelStats(e.pixels, plain.pixels).mean).toBeGreaterThan(10);
        }
      }
    }
  });
});

describe('edge image decoder: errors', () => {
  it('refuses other image formats as unsupported, naming what the edge accepts', async () => {
    const card = raw(new Uint8Array(16 * 16 * 3).fill(90), 16, 16, 3);
    const others: Record<string, Uint8Array> = {
      gif: await card.clone().gif().toBuffer(),
      tiff: await card.clone().tiff().toBuffer(),
      avif: await card.clone().avif().toBuffer(),
      heic: Buffer.from('\0\0\0\x18ftypheic\0\0\0\0mif1heic', 'latin1'),
      bmp: Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)]),
      svg: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>'),
      // An extended (VP8X) WebP with its animation flag set: refused from the header.
      'animated webp': await card.clone().ensureAlpha(0.5).webp().toBuffer().then((b) => {
        const out = Buffer.from(b);
        expect(out.toString('latin1', 12, 16)).toBe('VP8X');
        out[20]! |= 0x02;
        return out;
      }),
    };
    for (const [name, bytes] of Object.entries(others)) {
      const err = await expectKind(edge.decode(bytes, MODEL_TARGET), 'unsupported');
      expect(err.message, name).toMatch(/PNG, JPEG or WebP/);
    }
    expect(edge.mimeTypes).toEqual(['image/png', 'image/jpeg', 'image/webp']);
  });

  it('calls garbage, truncated and corrupt files undecodable', async () => {
    const src = raw(scene(120, 80, 7), 120, 80, 3);
    const files = {
      png: await src.clone().png().toBuffer(),
      jpeg: await src.clone().jpeg().toBuffer(),
      webp: await src.clone().webp().toBuffer(),
    };
    await expectKind(edge.decode(new TextEncoder().encode('{"not": "an image"}'), MODEL_TARGET), 'undecodable');
    await expectKind(edge.decode(new Uint8Array(0), MODEL_TARGET), 'undecodable');
    for (const [format, bytes] of Object.entries(files)) {
      await expectKind(edge.decode(bytes.subarray(0, Math.floor(bytes.length * 0.6)), MODEL_TARGET), 'undecodable');
      await expectKind(edge.decode(bytes.subarray(0, 20), MODEL_TARGET), 'undecodable');
      // Signature and header intact, body scrambled.
      const bad = Buffer.from(bytes);
      for (let i = 40; i < bad.length; i += 2) bad[i] ^= 0xa5;
      const err = await edge.decode(bad, MODEL_TARGET).then(() => undefined, (e: unknown) => e);
      // libwebp has no checksums: scrambled lossy data can decode to noise, as it does in sharp.
      if (format !== 'webp' || err !== undefined) expect((err as DecodeError).kind, format).toBe('undecodable');
      // The codecs still work afterwards.
      expect((await edge.decode(bytes, MODEL_TARGET)).pixels.length).toBe(784);
    }
  });

  it('refuses too many pixels from the header, before decoding', async () => {
    const small = createEdgeImageDecoder({
      codecs: { png: compile(EDGE_CODEC_WASM.png), jpeg: compile(EDGE_CODEC_WASM.jpeg), webp: compile(EDGE_CODEC_WASM.webp) },
      maxPixels: 100 * 100,
    });
    const src = raw(scene(120, 90, 3), 120, 90, 3);
    const files = {
      png: await src.clone().png().toBuffer(),
      jpeg: await src.clone().jpeg().toBuffer(),
      webp: await src.clone().webp().toBuffer(),
      'lossless webp': await src.clone().webp({ lossless: true }).toBuffer(),
      'webp with alpha': await src.clone().ensureAlpha(0.5).webp().toBuffer(),
    };
    for (const [name, bytes] of Object.entries(files)) {
      const err = await expectKind(small.decode(bytes, MODEL_TARGET), 'too-many-pixels');
      expect(err.message, name).toContain('120×90');
    }
    expect(pngSize(files.png)).toEqual({ width: 120, height: 90 });
    expect(jpegSize(files.jpeg)).toEqual({ width: 120, height: 90 });
    for (const k of ['webp', 'lossless webp', 'webp with alpha'] as const) expect(webpSize(files[k]), k).toEqual({ width: 120, height: 90 });
    // A bomb: a valid-looking PNG header claiming 100 000 × 100 000 and nothing else. Never decoded.
    const bomb = Buffer.from(files.png.subarray(0, 33));
    bomb.writeUInt32BE(100_000, 16);
    bomb.writeUInt32BE(100_000, 20);
    const err = await expectKind(edge.decode(bomb, MODEL_TARGET), 'too-many-pixels');
    expect(err.message).toContain('10000000000 pixels');
  });
});
