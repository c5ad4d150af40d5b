import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { ImageDataset } from '../data/dataset.js';
import { parseIdx } from '../data/idx.js';
import type { ImageDecoder } from '../image/decoder.js';
import { createImageDecoder } from './image-decode.js';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];
export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

export interface IdxDatasetOptions {
  /** Folder with the four idx files (gzipped or not). */
  dir?: string;
  /** Keep only the first `limit` images. */
  limit?: number;
}

/** Fashion-MNIST from the Debian package's folder (or FMNIST_DIR, or opts.dir). */
export function loadFashionMnist(split: 'train' | 'test', opts: IdxDatasetOptions = {}): Promise<ImageDataset> {
  const dir = opts.dir ?? process.env.FMNIST_DIR ?? '/usr/share/datasets/fashion-mnist';
  const hint =
    'Install it with `apt-get install -y dataset-fashion-mnist` (files go to /usr/share/datasets/fashion-mnist), ' +
    'or set FMNIST_DIR to a folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-….';
  return loadIdxPair('fashion-mnist', split, dir, FASHION_MNIST_CLASSES, hint, opts.limit);
}

/** MNIST digits from MNIST_DIR (or opts.dir); Debian has no MNIST package, so the files must be provided. */
export function loadMnist(split: 'train' | 'test', opts: IdxDatasetOptions = {}): Promise<ImageDataset> {
  const dir = opts.dir ?? process.env.MNIST_DIR ?? '/usr/share/datasets/mnist';
  const hint =
    'Set MNIST_DIR to a folder holding the MNIST idx files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], ' +
    't10k-…); Debian has no MNIST package (Fashion-MNIST is `apt-get install -y dataset-fashion-mnist`).';
  return loadIdxPair('mnist', split, dir, MNIST_CLASSES, hint, opts.limit);
}

async function loadIdxPair(
  name: string,
  split: 'train' | 'test',
  dir: string,
  classNames: string[],
  hint: string,
  limit: number | undefined,
): Promise<ImageDataset> {
  const prefix = split === 'train' ? 'train' : 't10k';
  const images = parseIdx(await readMaybeGz(dir, `${prefix}-images-idx3-ubyte`, name, hint));
  const labels = parseIdx(await readMaybeGz(dir, `${prefix}-labels-idx1-ubyte`, name, hint));
  if (images.dims.length !== 3 || !(images.data instanceof Uint8Array)) {
    throw new Error(`${name}: ${prefix}-images must be a uint8 [n, h, w] idx array, got dims [${images.dims.join(', ')}]`);
  }
  if (labels.dims.length !== 1 || labels.dims[0] !== images.dims[0]) {
    throw new Error(`${name}: ${images.dims[0]} images but labels have dims [${labels.dims.join(', ')}]`);
  }
  const [total, height, width] = images.dims as [number, number, number];
  const n = limit === undefined ? total : Math.max(0, Math.min(total, Math.floor(limit)));
  return {
    images: images.data.slice(0, n * height * width),
    labels: Int32Array.from(labels.data.subarray(0, n)),
    n,
    height,
    width,
    channels: 1,
    classNames,
    source: `${name}:${split}`,
  };
}

async function readMaybeGz(dir: string, base: string, name: string, hint: string): Promise<Uint8Array> {
  for (const file of [`${base}.gz`, base]) {
    const path = join(dir, file);
    if (!existsSync(path)) continue;
    const bytes = new Uint8Array(await readFile(path));
    return file.endsWith('.gz') ? new Uint8Array(gunzipSync(bytes)) : bytes;
  }
  throw new Error(`${name}: ${base}(.gz) not found in ${dir}. ${hint}`);
}

export interface ImageFolderOptions {
  /** Images are resized to size × size. */
  size: number;
  channels: 1 | 3;
  /** Stop after this many decoded images. */
  limit?: number;
  /** 'fill' (default, as the API preprocesses) or 'cover' (scale and centre-crop). */
  resize?: 'fill' | 'cover';
  /** Decoder to use; default sharp (EXIF auto-orient, alpha flattened onto black). */
  decoder?: ImageDecoder;
  /** Where the "skipped files" warning goes; default console.warn. */
  warn?: (message: string) => void;
}

export interface SkippedFile {
  file: string;
  reason: string;
}

const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif']);

/**
 * An image folder as a dataset. Sub-folders are classes (sorted names → labels 0..k-1); a folder with no
 * sub-folders is unlabelled. Files that cannot be decoded are skipped, listed in `skipped` and in one warning.
 */
export async function loadImageFolder(root: string, opts: ImageFolderOptions): Promise<ImageDataset & { skipped: SkippedFile[] }> {
  if (!Number.isInteger(opts.size) || opts.size < 1) throw new Error(`loadImageFolder: size must be a positive integer, got ${opts.size}`);
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (err) {
    throw new Error(`loadImageFolder: cannot read folder ${root}: ${(err as Error).message}`);
  }
  const visible = entries.filter((e) => !e.name.startsWith('.'));
  const classDirs = visible.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const skipped: SkippedFile[] = [];
  // [path, label] in a stable order: class by class, files sorted by name.
  const files: [string, number][] = [];
  if (classDirs.length > 0) {
    for (const e of visible) if (!e.isDirectory()) skipped.push({ file: join(root, e.name), reason: 'not inside a class sub-folder' });
    for (const [label, cls] of classDirs.entries()) {
      const names = (await readdir(join(root, cls), { withFileTypes: true }))
        .filter((e) => !e.name.startsWith('.') && e.isFile())
        .map((e) => e.name)
        .sort();
      for (const f of names) files.push([join(root, cls, f), label]);
    }
  } else {
    for (const e of visible.filter((x) => x.isFile()).map((x) => x.name).sort()) files.push([join(root, e), -1]);
  }

  const decoder = opts.decoder ?? createImageDecoder();
  const size = opts.size * opts.size * opts.channels;
  const limit = opts.limit ?? Infinity;
  const pixels: Uint8Array[] = [];
  const labels: number[] = [];
  for (const [path, label] of files) {
    if (pixels.length >= limit) break;
    if (!IMAGE_EXTENSIONS.has(extname(path).toLowerCase())) {
      skipped.push({ file: path, reason: `not an image file extension (${[...IMAGE_EXTENSIONS].join(' ')})` });
      continue;
    }
    try {
      if ((await stat(path)).size === 0) throw new Error('empty file');
      const img = await decoder.decode(new Uint8Array(await readFile(path)), { size: opts.size, channels: opts.channels, resize: opts.resize ?? 'fill' });
      pixels.push(img.pixels);
      labels.push(label);
    } catch (err) {
      skipped.push({ file: path, reason: (err as Error).message });
    }
  }
  if (skipped.length > 0) {
    const list = skipped.slice(0, 10).map((s) => `${s.file} (${s.reason})`).join('; ');
    (opts.warn ?? console.warn)(
      `loadImageFolder: skipped ${skipped.length} file(s) in ${root}: ${list}${skipped.length > 10 ? `; … and ${skipped.length - 10} more` : ''}`,
    );
  }
  if (pixels.length === 0) throw new Error(`loadImageFolder: no decodable images in ${root} (${skipped.length} file(s) skipped)`);
  const images = new Uint8Array(pixels.length * size);
  pixels.forEach((p, i) => images.set(p, i * size));
  const ds: ImageDataset & { skipped: SkippedFile[] } = {
    images,
    n: pixels.length,
    height: opts.size,
    width: opts.size,
    channels: opts.channels,
    source: `folder:${basename(root)}`,
    skipped,
  };
  if (classDirs.length > 0) {
    ds.labels = Int32Array.from(labels);
    ds.classNames = classDirs;
  }
  return ds;
}
