import type { ImageDataset, Normalisation } from '../shared/data/dataset.js';
import { FASHION_MNIST_NORM } from '../shared/data/dataset.js';
import { splitIndices } from '../shared/data/split.js';
import { sha256Hex } from '../shared/checkpoint/sha256.js';
import type { ModelConfig } from '../shared/model/config.js';
import type { DatasetSpec } from '../shared/jobs/schema.js';
import { loadFashionMnist, loadImageFolder } from '../shared/node/datasets.js';

/**
 * The data one training run needs: images to pretrain on, and — where labels exist — a labelled
 * train/held-out pair for kNN and the linear probe. Node-only (reads files).
 */
export interface TrainingData {
  /** e.g. "fashion-mnist" or "folder:/data/pets". */
  name: string;
  train: ImageDataset;
  norm: Normalisation;
  /** sha256 of the pretraining pixels and labels: "same data" is checkable across checkpoints. */
  fingerprint: string;
  /** Labelled evaluation sets; absent when the data has no labels. */
  evaluation?: { train: ImageDataset; test: ImageDataset; numClasses: number; classNames?: string[] };
}

export interface DataLimits {
  /** Labelled images for the kNN memory bank and probe training. */
  evalTrainLimit: number;
  /** Held-out labelled images. */
  evalTestLimit: number;
  /** Held-out fraction for folders (which have no official test split). */
  valFraction?: number;
  seed?: number;
  warn?: (message: string) => void;
}

export function subset(ds: ImageDataset, idx: ArrayLike<number>, source = ds.source): ImageDataset {
  const px = ds.height * ds.width * ds.channels;
  const images = new Uint8Array(idx.length * px);
  const labels = ds.labels ? new Int32Array(idx.length) : undefined;
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k]!;
    images.set(ds.images.subarray(i * px, (i + 1) * px), k * px);
    if (labels) labels[k] = ds.labels![i]!;
  }
  return { ...ds, images, ...(labels ? { labels } : {}), n: idx.length, source };
}

const first = (n: number, k: number): Int32Array => Int32Array.from({ length: Math.min(n, k) }, (_, i) => i);

/** Per-channel mean and std of pixels in [0, 1] (for folders, which have no published statistics). */
export function channelStats(ds: ImageDataset): Normalisation {
  const c = ds.channels;
  const sum = new Float64Array(c);
  const sq = new Float64Array(c);
  for (let i = 0; i < ds.images.length; i++) {
    const v = ds.images[i]! / 255;
    sum[i % c] += v;
    sq[i % c] += v * v;
  }
  const count = ds.images.length / c;
  const mean = [...sum].map((s) => s / count);
  const std = [...sq].map((s, j) => Math.max(1e-3, Math.sqrt(Math.max(0, s / count - mean[j]! ** 2))));
  return { mean, std };
}

export async function fingerprint(ds: ImageDataset): Promise<string> {
  const labels = ds.labels ? new Uint8Array(ds.labels.buffer, ds.labels.byteOffset, ds.labels.byteLength) : new Uint8Array();
  const all = new Uint8Array(ds.images.byteLength + labels.byteLength);
  all.set(ds.images, 0);
  all.set(labels, ds.images.byteLength);
  return sha256Hex(all);
}

function checkShape(ds: ImageDataset, model: ModelConfig, what: string): void {
  const b = model.backbone;
  if (ds.height !== b.inputSize || ds.width !== b.inputSize || ds.channels !== b.channels) {
    throw new Error(
      `${what} images are ${ds.height}×${ds.width}×${ds.channels} but the model expects ` +
        `${b.inputSize}×${b.inputSize}×${b.channels}; set model.backbone.inputSize and channels to match`,
    );
  }
}

export async function loadTrainingData(spec: DatasetSpec, model: ModelConfig, limits: DataLimits): Promise<TrainingData> {
  if (spec.kind === 'fashion-mnist') {
    const train = await loadFashionMnist('train', spec.limit !== undefined ? { limit: spec.limit } : {});
    checkShape(train, model, 'Fashion-MNIST');
    const test = await loadFashionMnist('test', { limit: limits.evalTestLimit });
    return {
      name: 'fashion-mnist',
      train,
      norm: FASHION_MNIST_NORM,
      fingerprint: await fingerprint(train),
      evaluation: {
        train: subset(train, first(train.n, limits.evalTrainLimit)),
        test,
        numClasses: 10,
        ...(train.classNames ? { classNames: train.classNames } : {}),
      },
    };
  }
  if (spec.kind === 'folder') {
    const b = model.backbone;
    const all = await loadImageFolder(spec.path!, {
      size: b.inputSize,
      channels: b.channels,
      ...(spec.limit !== undefined ? { limit: spec.limit } : {}),
      ...(limits.warn ? { warn: limits.warn } : {}),
    });
    if (all.n === 0) throw new Error(`no decodable images in ${spec.path}`);
    const name = `folder:${spec.path}`;
    const labelled = all.labels !== undefined && all.labels.every((y) => y >= 0) && (all.classNames?.length ?? 0) >= 2;
    if (!labelled) return { name, train: all, norm: channelStats(all), fingerprint: await fingerprint(all) };
    // Hold out a seeded fraction for evaluation; pretrain on the rest only.
    const split = splitIndices(all.n, limits.valFraction ?? 0.1, limits.seed ?? 0);
    const train = subset(all, split.train, `${name}:train`);
    const test = subset(all, split.val.subarray(0, limits.evalTestLimit), `${name}:val`);
    return {
      name,
      train,
      norm: channelStats(train),
      fingerprint: await fingerprint(all),
      evaluation: {
        train: subset(train, first(train.n, limits.evalTrainLimit)),
        test,
        numClasses: all.classNames!.length,
        classNames: all.classNames!,
      },
    };
  }
  throw new Error(
    "dataset kind 'gallery' is not supported by this worker yet: export the gallery to a folder of class " +
      "sub-folders and submit { kind: 'folder', path }",
  );
}
