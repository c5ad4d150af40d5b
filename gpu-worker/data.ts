import type { ImageDataset, Normalisation } from '../shared/data/dataset.js';
import { FASHION_MNIST_NORM } from '../shared/data/dataset.js';
import { splitIndices } from '../shared/data/split.js';
import { sha256Hex } from '../shared/checkpoint/sha256.js';
import type { ModelConfig } from '../shared/model/config.js';
import type { DatasetSpec } from '../shared/jobs/schema.js';
import { loadFashionMnist, loadImageFolder, loadMnist } from '../shared/node/datasets.js';
import { createImageDecoder } from '../shared/node/image-decode.js';
import { loadGalleryDataset } from '../shared/gallery/dataset.js';
import type { ImageDecoder } from '../shared/image/decoder.js';
import type { ObjectStore } from '../shared/store/object-store.js';

/**
 * The data one training run needs: images to pretrain on and — where labels exist — a labelled
 * validation split carved from the training images (Fashion-MNIST: a seeded 5,000 of the 60,000;
 * folders and galleries: a seeded 10% of the labelled images), never pretrained on. Validation decides
 * everything: the publish gate, per-epoch monitoring, recipe and hyper-parameter choices. The official
 * test split (Fashion-MNIST only) is loaded only when asked for, for the figures reported at the end.
 * Node-only (reads files, decodes with sharp).
 */
export interface TrainingData {
  /** e.g. "fashion-mnist" or "folder:/data/pets". */
  name: string;
  /** The pretraining images (validation images excluded). */
  train: ImageDataset;
  norm: Normalisation;
  /** sha256 of the pretraining pixels and labels: "same data" is checkable across checkpoints. */
  fingerprint: string;
  /** Labelled evaluation sets; absent when the data has no labels. */
  evaluation?: {
    /** Labelled pretraining images: the kNN bank and the linear probe's training set. */
    train: ImageDataset;
    /** The validation split. */
    val: ImageDataset;
    numClasses: number;
    classNames?: string[];
  };
  /** The official test split, only when `DataLimits.testLimit` asks for it and the dataset has one. */
  test?: ImageDataset;
}

/** Fashion-MNIST's validation split: this many of the 60,000 training images. */
export const FASHION_MNIST_VAL = 5000;
/** Folders and galleries: this fraction of the labelled images. */
export const VAL_FRACTION = 0.1;

export interface DataLimits {
  /** Labelled training images for the kNN memory bank and probe training. */
  evalTrainLimit: number;
  /** Validation images used (the first of the seeded split). */
  evalValLimit: number;
  /** Load this many official test images (Fashion-MNIST), for final figures only; default none. */
  testLimit?: number;
  /**
   * Seed of the validation split; default 0. Deliberately not the run's seed: every run (and the served
   * model the gate compares with) is measured on the same held-out images.
   */
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

/** Where non-file data comes from: the job's bucket (kind 'gallery') and the image decoder (default sharp). */
export interface DataSources {
  store?: ObjectStore;
  decoder?: ImageDecoder;
}

export async function loadTrainingData(
  spec: DatasetSpec,
  model: ModelConfig,
  limits: DataLimits,
  sources: DataSources = {},
): Promise<TrainingData> {
  if (spec.kind === 'fashion-mnist') {
    const all = await loadFashionMnist('train');
    checkShape(all, model, 'Fashion-MNIST');
    const { train: rest, val } = carveValidation(all, limits.seed ?? 0);
    const train = spec.limit !== undefined ? subset(rest, first(rest.n, spec.limit)) : rest;
    const test = limits.testLimit ? await loadFashionMnist('test', { limit: limits.testLimit }) : undefined;
    return {
      name: 'fashion-mnist',
      train,
      norm: FASHION_MNIST_NORM,
      fingerprint: await fingerprint(train),
      evaluation: {
        train: subset(train, first(train.n, limits.evalTrainLimit)),
        val: subset(val, first(val.n, limits.evalValLimit)),
        numClasses: 10,
        ...(all.classNames ? { classNames: all.classNames } : {}),
      },
      ...(test ? { test } : {}),
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
    const labelled = all.labels !== undefined && all.labels.every((y) => y >= 0) && (all.classNames?.length ?? 0) >= 2;
    return labelled ? withHeldOut(all, `folder:${spec.path}`, limits) : unlabelled(all, `folder:${spec.path}`);
  }
  // gallery: the API's images in the job's bucket.
  if (!sources.store) {
    throw new Error(
      "dataset kind 'gallery' reads the API's bucket: queue a retraining job (POST /admin/retrain) for the worker, " +
        'or give `npm run train -- --dataset gallery` the bucket through S3_ENDPOINT / S3_BUCKET',
    );
  }
  const b = model.backbone;
  const all = await loadGalleryDataset(sources.store, {
    size: b.inputSize,
    channels: b.channels,
    decoder: sources.decoder ?? createImageDecoder(),
    ...(spec.limit !== undefined ? { limit: spec.limit } : {}),
    ...(limits.warn ? { warn: limits.warn } : {}),
  });
  // Items with a label are evaluated on; unlabelled ones only pretrain. Fewer than 2 labels: no evaluation.
  return (all.classNames?.length ?? 0) >= 2 ? withHeldOut(all, 'gallery', limits) : unlabelled(all, 'gallery');
}

async function unlabelled(all: ImageDataset, name: string): Promise<TrainingData> {
  return { name, train: all, norm: channelStats(all), fingerprint: await fingerprint(all) };
}

/**
 * Hold out a seeded fraction (default 10%) of the labelled images for evaluation and pretrain on the
 * rest, labelled or not (label −1). The labelled rest is the kNN bank / probe training set. With every
 * image labelled this is a plain seeded split of the whole set.
 */
async function withHeldOut(all: ImageDataset, name: string, limits: DataLimits): Promise<TrainingData> {
  const labels = all.labels!;
  const labelledIdx = Int32Array.from(labels.keys()).filter((i) => labels[i]! >= 0);
  const split = splitIndices(labelledIdx.length, VAL_FRACTION, limits.seed ?? 0);
  if (split.val.length === 0 || split.train.length === 0) {
    limits.warn?.(`${name}: only ${labelledIdx.length} labelled image(s), too few to hold out an evaluation split; training without evaluation`);
    return unlabelled(all, name);
  }
  const heldOut = new Uint8Array(all.n);
  const val = Int32Array.from(split.val, (k) => labelledIdx[k]!); // ascending: both inputs are
  for (const i of val) heldOut[i] = 1;
  const train = subset(all, keep(all.n, heldOut), `${name}:train`);
  const valSet = subset(all, val.subarray(0, limits.evalValLimit), `${name}:val`);
  const bank = Int32Array.from(train.labels!.keys()).filter((k) => train.labels![k]! >= 0);
  return {
    name,
    train,
    norm: channelStats(train),
    fingerprint: await fingerprint(all),
    evaluation: {
      train: subset(train, bank.subarray(0, limits.evalTrainLimit)),
      val: valSet,
      numClasses: all.classNames!.length,
      classNames: all.classNames!,
    },
  };
}

/** Indices 0..n-1 whose mask entry is 0, ascending. */
const keep = (n: number, mask: Uint8Array): Int32Array => Int32Array.from({ length: n }, (_, i) => i).filter((i) => mask[i] === 0);

/**
 * Fashion-MNIST's (or MNIST's) validation split: a seeded FASHION_MNIST_VAL of the training images (10% of
 * a smaller file), and the rest in their original order. The same for every run with the same seed.
 */
export function carveValidation(all: ImageDataset, seed = 0): { train: ImageDataset; val: ImageDataset } {
  const count = Math.min(FASHION_MNIST_VAL, Math.round(all.n * VAL_FRACTION));
  const split = splitIndices(all.n, count / all.n, seed);
  const base = all.source.replace(/:train$/, '');
  return { train: subset(all, split.train, `${base}:train`), val: subset(all, split.val, `${base}:val`) };
}

/**
 * The labelled splits `npm run eval` scores a checkpoint on, the same as the trainer's: the kNN bank and
 * probe from the training part, scored on the validation split (for choosing) and/or the test split (to report).
 */
export async function labelledSplits<S extends 'validation' | 'test'>(
  dataset: 'fashion-mnist' | 'mnist',
  splits: readonly S[],
  limits: { trainLimit?: number; evalLimit?: number },
): Promise<{ train: ImageDataset; evals: Array<{ split: S; data: ImageDataset }> }> {
  const load = dataset === 'mnist' ? loadMnist : loadFashionMnist;
  const { train, val } = carveValidation(await load('train'));
  const cap = (ds: ImageDataset, k?: number) => (k !== undefined && k < ds.n ? subset(ds, first(ds.n, k)) : ds);
  const evals = [];
  for (const split of splits) evals.push({ split, data: cap(split === 'validation' ? val : await load('test'), limits.evalLimit) });
  return { train: cap(train, limits.trainLimit), evals };
}
