import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageDataset } from '../shared/data/dataset.js';
import { encodeIdx, gunzipIfNeeded, parseIdx } from '../shared/data/idx.js';
import { batchToTensor, splitIndices } from '../shared/data/split.js';
import { loadFashionMnist, loadImageFolder, loadMnist } from '../shared/node/datasets.js';

const FMNIST = process.env.FMNIST_DIR ?? '/usr/share/datasets/fashion-mnist';

function counts(labels: Int32Array, k: number): number[] {
  const c = new Array<number>(k).fill(0);
  for (const l of labels) c[l]!++;
  return c;
}

describe('idx files and the Fashion-MNIST loader (real files)', () => {
  let test: ImageDataset;
  beforeAll(async () => {
    test = await loadFashionMnist('test');
  });

  it('parses the test split: 10,000 28×28 images, 1,000 per class, pixels spanning 0–255', () => {
    expect([test.n, test.height, test.width, test.channels]).toEqual([10000, 28, 28, 1]);
    expect(test.images.length).toBe(10000 * 784);
    expect(counts(test.labels!, 10)).toEqual(new Array(10).fill(1000));
    expect(test.classNames![9]).toBe('Ankle boot');
    let max = 0;
    for (const v of test.images.subarray(0, 784 * 50)) max = Math.max(max, v);
    expect(max).toBe(255);
  });

  it('round-trips: parse → encode gives back the exact file bytes, also when gunzipped with DecompressionStream', async () => {
    for (const f of ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']) {
      const gz = new Uint8Array(readFileSync(join(FMNIST, f)));
      const raw = new Uint8Array(gunzipSync(gz));
      const viaStream = await gunzipIfNeeded(gz);
      expect(Buffer.from(viaStream).equals(Buffer.from(raw))).toBe(true);
      const parsed = parseIdx(raw);
      expect(Buffer.from(encodeIdx(parsed.dims, parsed.data)).equals(Buffer.from(raw))).toBe(true);
    }
    const ints = encodeIdx([2, 2], Int32Array.from([-1, 70000, 3, -4]));
    expect(Array.from(parseIdx(ints).data)).toEqual([-1, 70000, 3, -4]);
  });

  it('rejects truncated, gzipped or foreign bytes with a clear message', () => {
    const raw = new Uint8Array(gunzipSync(readFileSync(join(FMNIST, 't10k-labels-idx1-ubyte.gz'))));
    expect(() => parseIdx(raw.subarray(0, raw.length - 10))).toThrow(/truncated or corrupt/);
    expect(() => parseIdx(new Uint8Array(gzipSync(raw)))).toThrow(/gunzip it first/);
    expect(() => parseIdx(new TextEncoder().encode('hello world'))).toThrow(/not an IDX file/);
  });

  it('honours limit, and MNIST loads from MNIST_DIR-style folders with plain (ungzipped) files', async () => {
    const small = await loadFashionMnist('train', { limit: 300 });
    expect(small.n).toBe(300);
    expect(small.images.length).toBe(300 * 784);
    expect(small.source).toBe('fashion-mnist:train');
    const dir = mkdtempSync(join(tmpdir(), 'mnist-'));
    try {
      writeFileSync(join(dir, 't10k-images-idx3-ubyte'), encodeIdx([20, 28, 28], test.images.subarray(0, 20 * 784)));
      writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), encodeIdx([20], Uint8Array.from(test.labels!.subarray(0, 20))));
      const m = await loadMnist('test', { dir });
      expect(m.n).toBe(20);
      expect(Buffer.from(m.images).equals(Buffer.from(test.images.subarray(0, 20 * 784)))).toBe(true);
      expect(Array.from(m.labels!)).toEqual(Array.from(test.labels!.subarray(0, 20)));
      await expect(loadMnist('train', { dir })).rejects.toThrow(/train-images-idx3-ubyte\(\.gz\) not found.*MNIST_DIR/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the Debian package when Fashion-MNIST is missing', async () => {
    await expect(loadFashionMnist('test', { dir: '/nonexistent/fmnist' })).rejects.toThrow(/apt-get install -y dataset-fashion-mnist/);
  });
});

describe('image-folder loader (files made with sharp from real Fashion-MNIST images)', () => {
  let root: string;
  let test: ImageDataset;
  const png = (i: number) =>
    sharp(Buffer.from(test.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();

  beforeAll(async () => {
    test = await loadFashionMnist('test', { limit: 10 });
    root = mkdtempSync(join(tmpdir(), 'imgfolder-'));
    mkdirSync(join(root, 'classed', 'boots'), { recursive: true });
    mkdirSync(join(root, 'classed', 'shirts'), { recursive: true });
    mkdirSync(join(root, 'flat'), { recursive: true });
    for (let i = 0; i < 3; i++) writeFileSync(join(root, 'classed', 'boots', `b${i}.png`), await png(i));
    for (let i = 3; i < 5; i++) writeFileSync(join(root, 'classed', 'shirts', `s${i}.png`), await png(i));
    // EXIF orientation 6 (display = stored rotated 90° clockwise): stored left half white → displayed top half white.
    const stored = Buffer.alloc(40 * 20 * 3);
    for (let y = 0; y < 20; y++) for (let x = 0; x < 20; x++) stored.fill(255, (y * 40 + x) * 3, (y * 40 + x) * 3 + 3);
    const rotated = await sharp(stored, { raw: { width: 40, height: 20, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    writeFileSync(join(root, 'classed', 'shirts', 'rotated.jpg'), rotated);
    // Corrupt files: a truncated JPEG, random bytes named .png, an empty file, and a text file.
    writeFileSync(join(root, 'classed', 'shirts', 'truncated.jpg'), rotated.subarray(0, Math.floor(rotated.length / 2)));
    writeFileSync(join(root, 'classed', 'boots', 'garbage.png'), Buffer.from(Array.from({ length: 500 }, (_, i) => (i * 37) % 256)));
    writeFileSync(join(root, 'classed', 'boots', 'empty.webp'), Buffer.alloc(0));
    writeFileSync(join(root, 'classed', 'boots', 'notes.txt'), 'not an image');
    writeFileSync(join(root, 'classed', '.DS_Store'), 'hidden files are ignored');
    for (let i = 5; i < 8; i++) writeFileSync(join(root, 'flat', `f${i}.png`), await png(i));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('labels by sub-folder, skips and names every corrupt file in one warning, never throws', async () => {
    const warnings: string[] = [];
    const ds = await loadImageFolder(join(root, 'classed'), { size: 28, channels: 1, warn: (m) => warnings.push(m) });
    expect(ds.classNames).toEqual(['boots', 'shirts']);
    expect(ds.n).toBe(6);
    expect(Array.from(ds.labels!)).toEqual([0, 0, 0, 1, 1, 1]);
    // Lossless PNGs of real images come back byte for byte.
    expect(Buffer.from(ds.images.subarray(0, 784)).equals(Buffer.from(test.images.subarray(0, 784)))).toBe(true);
    // shirts/ sorts as rotated.jpg, s3.png, …: index 4 is test image 3.
    expect(Buffer.from(ds.images.subarray(4 * 784, 5 * 784)).equals(Buffer.from(test.images.subarray(3 * 784, 4 * 784)))).toBe(true);
    const skipped = ds.skipped.map((s) => s.file.split('/').pop()).sort();
    expect(skipped).toEqual(['empty.webp', 'garbage.png', 'notes.txt', 'truncated.jpg']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/skipped 4 file/);
    for (const f of skipped) expect(warnings[0]).toContain(f);
  });

  it('applies EXIF orientation, sets channels and size', async () => {
    const ds = await loadImageFolder(join(root, 'classed', 'shirts'), { size: 16, channels: 3, warn: () => {} });
    // A flat folder of files → unlabelled; sorted names put rotated.jpg first.
    expect(ds.labels).toBeUndefined();
    expect([ds.n, ds.height, ds.width, ds.channels]).toEqual([3, 16, 16, 3]);
    const img = ds.images.subarray(0, 16 * 16 * 3);
    const mean = (y0: number, y1: number, x0: number, x1: number) => {
      let s = 0;
      let k = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) for (let c = 0; c < 3; c++, k++) s += img[(y * 16 + x) * 3 + c]!;
      return s / k;
    };
    expect(mean(0, 6, 0, 16)).toBeGreaterThan(200); // top: the stored left half (white)
    expect(mean(10, 16, 0, 16)).toBeLessThan(50); // bottom: the stored right half (black)
  });

  it('loads a flat folder unlabelled and honours limit', async () => {
    const ds = await loadImageFolder(join(root, 'flat'), { size: 28, channels: 1, limit: 2 });
    expect(ds.n).toBe(2);
    expect(ds.labels).toBeUndefined();
    expect(ds.skipped).toEqual([]);
    await expect(loadImageFolder(join(root, 'missing'), { size: 28, channels: 1 })).rejects.toThrow(/cannot read folder/);
  });
});

describe('splits and batches', () => {
  it('splits deterministically by seed into disjoint, complete, sorted parts', () => {
    const a = splitIndices(1000, 0.1, 42);
    const b = splitIndices(1000, 0.1, 42);
    const c = splitIndices(1000, 0.1, 43);
    expect(a.val.length).toBe(100);
    expect(a.train.length).toBe(900);
    expect(Array.from(a.val)).toEqual(Array.from(b.val));
    expect(Array.from(a.val)).not.toEqual(Array.from(c.val));
    const all = new Set([...a.train, ...a.val]);
    expect(all.size).toBe(1000);
    expect(Array.from(a.train)).toEqual(Array.from(a.train).sort((x, y) => x - y));
    expect(() => splitIndices(10, 1, 0)).toThrow(/valFraction/);
  });

  it('gathers real images into a [k, 28, 28, 1] float tensor in [0, 1]', async () => {
    const ds = await loadFashionMnist('test', { limit: 50 });
    const t = batchToTensor(ds, [7, 3, 49]);
    expect(t.shape).toEqual([3, 28, 28, 1]);
    const v = t.dataSync();
    for (let j = 0; j < 784; j++) expect(v[784 + j]).toBeCloseTo(ds.images[3 * 784 + j]! / 255, 6);
    t.dispose();
    expect(() => batchToTensor(ds, [50])).toThrow(/outside the dataset/);
    expect(tf.memory().numTensors).toBe(0);
  });
});
