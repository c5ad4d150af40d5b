import * as tf from '@tensorflow/tfjs';
import { representationStats } from './collapse.js';
import { confusionMatrix } from './confusion.js';
import { featureShape, type LabelledFeatures } from './features.js';
import { knnEvaluate } from './knn.js';
import type { LinearHead } from './linear-head.js';
import { evaluateLinearHead, trainLinearProbe, type LinearProbeOptions } from './linear-probe.js';
import type { EvalResult, FeatureEval } from './result-schema.js';

export interface FeatureEvalOptions {
  numClasses: number;
  classNames?: string[];
  /** kNN neighbour counts to report (default 20 and 200, as issue 3 asks). */
  knnK?: number[];
  temperature?: number;
  /** Linear-probe settings (or a head already trained on these train features: scored, not retrained), or false to skip the probe. */
  linear?: (Omit<LinearProbeOptions, 'numClasses' | 'classNames'> & { head?: LinearHead }) | false;
  /** Skip the collapse statistics (they need the Gram matrix: seconds for d = 2048). */
  stats?: boolean;
  now?: () => number;
}

/** kNN at each k, the linear probe, the confusion matrix and collapse statistics for one feature set. */
export async function evaluateFeatures(
  train: LabelledFeatures,
  test: LabelledFeatures,
  opts: FeatureEvalOptions,
): Promise<{ metrics: FeatureEval; head?: LinearHead }> {
  const now = opts.now ?? Date.now;
  const [, dim] = featureShape(train.features);
  const knn: FeatureEval['knn'] = [];
  let knnPredictions: Int32Array | undefined;
  for (const k of opts.knnK ?? [20, 200]) {
    const r = await knnEvaluate(train, test, { k, temperature: opts.temperature ?? 0.07, numClasses: opts.numClasses });
    knn.push({ k: r.k, temperature: r.temperature, top1: r.top1, top5: r.top5 });
    knnPredictions ??= r.predictions;
  }
  const metrics: FeatureEval = { dim, knn };
  let head: LinearHead | undefined;
  let predictions = knnPredictions;
  let source: 'knn' | 'linear' = 'knn';
  if (opts.linear !== false) {
    const lo = opts.linear ?? {};
    const t0 = now();
    const { head: given, ...probe } = lo;
    head =
      given ??
      (await trainLinearProbe(train.features, train.labels, {
        ...probe,
        numClasses: opts.numClasses,
        ...(opts.classNames ? { classNames: opts.classNames } : {}),
      }));
    const seconds = (now() - t0) / 1000;
    const r = await evaluateLinearHead(head, test.features, test.labels);
    metrics.linear = { top1: r.top1, top5: r.top5, epochs: lo.epochs ?? 100, optimizer: lo.optimizer ?? 'adam', seconds };
    predictions = r.predictions;
    source = 'linear';
  }
  if (predictions) metrics.confusion = { source, matrix: confusionMatrix(test.labels, predictions, opts.numClasses) };
  if (opts.stats !== false) {
    const s = await representationStats(test.features);
    metrics.stats = { std: s.std, normStd: s.normStd, effectiveRank: s.effectiveRank };
  }
  return head ? { metrics, head } : { metrics };
}

export interface EvaluationInput extends FeatureEvalOptions {
  dataset: string;
  /** Which split `test` is: 'validation' (for choosing) or 'test' (for reporting). */
  split?: 'validation' | 'test';
  checkpoint?: string;
  train: LabelledFeatures;
  test: LabelledFeatures;
  /** Raw-pixel features of the same splits (rawPixelFeatures), for the baselines. */
  raw?: { train: LabelledFeatures; test: LabelledFeatures };
}

/** The whole evaluation of a checkpoint: encoder features and raw-pixel baselines → eval.json + the head. */
export async function evaluateRepresentation(input: EvaluationInput): Promise<{ result: EvalResult; head?: LinearHead }> {
  const now = input.now ?? Date.now;
  const t0 = now();
  const enc = await evaluateFeatures(input.train, input.test, input);
  // Raw pixels: same protocol; their head is not kept and their stats are not asked for (d = 784+).
  const rawLinear = input.linear === false ? false : { ...input.linear, head: undefined };
  const raw = input.raw ? await evaluateFeatures(input.raw.train, input.raw.test, { ...input, linear: rawLinear, stats: false }) : undefined;
  const result: EvalResult = {
    ...(input.checkpoint ? { checkpoint: input.checkpoint } : {}),
    dataset: input.dataset,
    ...(input.split ? { split: input.split } : {}),
    trainCount: input.train.labels.length,
    testCount: input.test.labels.length,
    numClasses: input.numClasses,
    ...(input.classNames ? { classNames: input.classNames } : {}),
    encoder: enc.metrics,
    ...(raw ? { raw: raw.metrics } : {}),
    backend: tf.getBackend(),
    seconds: (now() - t0) / 1000,
    createdAt: new Date(now()).toISOString(),
  };
  return enc.head ? { result, head: enc.head } : { result };
}
