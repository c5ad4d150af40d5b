import * as tf from '@tensorflow/tfjs';
import type { ImageDataset, Normalisation } from '../shared/data/dataset.js';
import { batchToTensor } from '../shared/data/split.js';
import { buildCheckpointFiles, type CheckpointFiles } from '../shared/checkpoint/format.js';
import { loadCheckpoint, readLatest } from '../shared/checkpoint/publish.js';
import { evaluateRepresentation } from '../shared/eval/evaluate.js';
import { knnEvaluate } from '../shared/eval/knn.js';
import { rawPixelFeatures } from '../shared/eval/raw-pixels.js';
import type { EvalResult } from '../shared/eval/result-schema.js';
import type { LinearHead } from '../shared/eval/linear-head.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import type { TrainingData } from './data.js';

/** Steps after training shared by `npm run train` and the worker: features, evaluation, checkpoint files. */

/** Representations of a whole dataset, normalised with `norm`, in batches (leak-free). */
export async function extractFeatures(
  represent: (x: tf.Tensor4D) => tf.Tensor2D,
  ds: ImageDataset,
  norm: Normalisation,
  batch = 500,
): Promise<{ data: Float32Array; dim: number }> {
  let out: Float32Array | null = null;
  let dim = 0;
  for (let from = 0; from < ds.n; from += batch) {
    const idx = Int32Array.from({ length: Math.min(batch, ds.n - from) }, (_, i) => from + i);
    const x = batchToTensor(ds, idx);
    const r = tf.tidy(() => represent(normalise(x, norm)));
    x.dispose();
    const vals = (await r.data()) as Float32Array;
    dim = r.shape[1];
    r.dispose();
    out ??= new Float32Array(ds.n * dim);
    out.set(vals, from * dim);
  }
  return { data: out ?? new Float32Array(), dim };
}

/** (x − mean_c) / std_c on a [n, h, w, c] tensor in [0, 1]. */
export function normalise(x: tf.Tensor4D, norm: Normalisation): tf.Tensor4D {
  return tf.tidy(() => x.sub(tf.tensor1d(norm.mean)).div(tf.tensor1d(norm.std)) as tf.Tensor4D);
}

export interface EvaluationOutcome {
  result: EvalResult;
  head?: LinearHead;
  knnTop1: number;
  linearTop1: number | null;
}

/** kNN (k=20) and linear probe on the held-out labelled split, optionally beside raw-pixel baselines. */
export async function evaluateOnHeldOut(
  represent: (x: tf.Tensor4D) => tf.Tensor2D,
  data: TrainingData,
  opts: { probeEpochs: number; rawBaselines: boolean; seed: number; checkpoint?: string },
): Promise<EvaluationOutcome | null> {
  const ev = data.evaluation;
  if (!ev) return null;
  const train = { features: await extractFeatures(represent, ev.train, data.norm), labels: ev.train.labels! };
  const test = { features: await extractFeatures(represent, ev.test, data.norm), labels: ev.test.labels! };
  let raw: { train: { features: tf.Tensor2D; labels: Int32Array }; test: { features: tf.Tensor2D; labels: Int32Array } } | undefined;
  if (opts.rawBaselines) {
    raw = {
      train: { features: rawPixelFeatures(ev.train), labels: ev.train.labels! },
      test: { features: rawPixelFeatures(ev.test), labels: ev.test.labels! },
    };
  }
  try {
    const { result, head } = await evaluateRepresentation({
      dataset: data.name,
      ...(opts.checkpoint ? { checkpoint: opts.checkpoint } : {}),
      train,
      test,
      ...(raw ? { raw } : {}),
      numClasses: ev.numClasses,
      ...(ev.classNames ? { classNames: ev.classNames } : {}),
      knnK: [20],
      linear: { epochs: opts.probeEpochs, seed: opts.seed },
    });
    const knnTop1 = result.encoder.knn[0]?.top1 ?? NaN;
    return { result, ...(head ? { head } : {}), knnTop1, linearTop1: result.encoder.linear?.top1 ?? null };
  } finally {
    if (raw) tf.dispose([raw.train.features, raw.test.features]);
  }
}

/**
 * The current `latest` model's kNN top-1 on the same held-out images (so the gate compares like with
 * like). Null when there is no current model, no labels, or its input shape differs from this data.
 */
export async function currentModelAccuracy(
  store: ObjectStore,
  data: TrainingData,
  log: (event: string, fields: Record<string, unknown>) => void,
): Promise<{ version: string; accuracy: number } | null> {
  const latest = await readLatest(store);
  if (!latest || !data.evaluation) return null;
  const cp = await loadCheckpoint(store, latest.version);
  try {
    const p = cp.manifest.preprocessing;
    const ev = data.evaluation;
    if (p.inputSize !== ev.test.height || p.inputSize !== ev.test.width || p.channels !== ev.test.channels) {
      log('gate.no-comparison', {
        reason: `current model ${latest.version} takes ${p.inputSize}px×${p.channels}, this data is ${ev.test.height}px×${ev.test.channels}`,
      });
      return null;
    }
    const represent = (x: tf.Tensor4D) => cp.model.predict(x) as tf.Tensor2D;
    const norm = { mean: p.mean, std: p.std };
    const train = { features: await extractFeatures(represent, ev.train, norm), labels: ev.train.labels! };
    const test = { features: await extractFeatures(represent, ev.test, norm), labels: ev.test.labels! };
    const r = await knnEvaluate(train, test, { k: 20, temperature: 0.07, numClasses: ev.numClasses });
    return { version: latest.version, accuracy: r.top1 };
  } finally {
    cp.model.dispose();
  }
}

/** Flat numeric metrics for the manifest and the job file (finite numbers only). */
export function flatMetrics(figures: Record<string, number | null | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(figures)) if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  return out;
}

export interface CheckpointInput {
  backbone: tf.LayersModel;
  representationDim: number;
  data: TrainingData;
  head?: LinearHead;
  parent: string | null;
  rejectedReason?: string;
  training: { config: Record<string, unknown>; seed: number; steps: number; epochs: number; wallSeconds: number; command: string };
  backend: string;
  metrics: Record<string, number>;
  version?: string;
}

export async function checkpointFiles(c: CheckpointInput): Promise<CheckpointFiles> {
  const t = c.data.train;
  return buildCheckpointFiles({
    model: c.backbone,
    ...(c.head ? { linearHead: c.head } : {}),
    manifest: {
      ...(c.version ? { version: c.version } : {}),
      parent: c.parent,
      state: c.rejectedReason ? 'rejected' : 'active-candidate',
      ...(c.rejectedReason ? { rejectedReason: c.rejectedReason } : {}),
      training: c.training,
      dataset: { name: c.data.name, fingerprint: c.data.fingerprint, n: t.n },
      preprocessing: { inputSize: t.height, channels: t.channels as 1 | 3, mean: c.data.norm.mean, std: c.data.norm.std, resize: 'fill' },
      representationDim: c.representationDim,
      backend: c.backend,
      metrics: c.metrics,
    },
  });
}
