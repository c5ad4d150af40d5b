import * as tf from '@tensorflow/tfjs';
import type { ImageDataset } from '../data/dataset.js';
import { batchToTensor } from '../data/split.js';
import { Rng } from '../util/rng.js';

/**
 * The VICReg training loop, runtime-neutral: dataset → seeded shuffled batches → two augmented views →
 * one optimiser step at the scheduled learning rate. Progress, diagnostics, snapshots and stopping are
 * callbacks, so the CLI (files, progress bar) and the worker (job file, bucket) share it.
 *
 * Determinism: the shuffle of epoch e and the augmentation randomness of step s are derived from
 * (seed, e) and (seed, s) alone, so a run resumed from a snapshot at step s draws exactly what an
 * uninterrupted run would, given the same weights and optimiser slots.
 */

export interface LossValues {
  loss: number;
  invariance: number;
  variance: number;
  covariance: number;
}

/** What the loop drives; `createTrainSession` (shared/train/session.ts) assembles it from the model, optimiser and augmenter. */
export interface LoopParts {
  /** Two normalised augmented views of a batch of images scaled to [0, 1]. Caller disposes them. */
  makeViews(x: tf.Tensor4D, rng: Rng): [tf.Tensor4D, tf.Tensor4D];
  /** One optimiser step at learning rate `lr`; returns the loss terms (already read back). */
  step(viewA: tf.Tensor4D, viewB: tf.Tensor4D, lr: number): Promise<LossValues>;
  /** Learning rate for a 0-based step of `total`. */
  learningRateAt(step: number, total: number): number;
  /** Collapse figures of the representation of normalised images x (see shared/eval/collapse.ts). */
  representationStats(x: tf.Tensor4D): Promise<Diagnostics>;
  /** Normalise images in [0, 1] with the dataset's mean/std (for diagnostics). Caller disposes. */
  normalise(x: tf.Tensor4D): tf.Tensor4D;
}

export interface Diagnostics {
  /** Mean per-dimension std of the raw representation. */
  std: number;
  /** The same on L2-normalised rows (scale-free: ≈ 1/√d when healthy, → 0 at collapse). */
  normStd: number;
  effectiveRank: number;
}

/** One line of progress.jsonl (shared/eval/progress-schema.ts StepEvent; `event` is its alias of `type`). */
export interface ProgressEvent extends LossValues {
  event: 'step';
  step: number;
  totalSteps: number;
  epoch: number;
  lr: number;
  imagesPerSec: number;
  etaSeconds: number;
  elapsedSeconds: number;
  /** Wall clock, ms since the epoch. */
  t: number;
  std?: number;
  normStd?: number;
  effectiveRank?: number;
}

export type StopReason = 'completed' | 'maxMinutes' | 'cancelled' | 'stopped';

export interface LoopOptions {
  dataset: ImageDataset;
  batchSize: number;
  epochs: number;
  maxSteps?: number;
  maxMinutes?: number;
  seed: number;
  /** 0-based step to start at (after restoring weights and slots from a snapshot). */
  startStep?: number;
  diagnosticsEvery?: number;
  snapshotEvery?: number;
  /** Called every `snapshotEvery` steps (and never mid-step) with the number of completed steps. */
  snapshot?: (completedSteps: number) => Promise<void>;
  /** Called after each step with that step's figures. Awaited, so it can write to storage. */
  onProgress?: (e: ProgressEvent) => void | Promise<void>;
  /** Checked before every step: 'cancel' → cancelled, 'stop' → stopped (e.g. SIGTERM); null → go on. */
  shouldStop?: () => 'cancel' | 'stop' | null;
  now?: () => number;
}

export interface LoopResult {
  stoppedBy: StopReason;
  /** Completed steps (the next step to run when resuming). */
  steps: number;
  totalSteps: number;
  stepsPerEpoch: number;
  last?: ProgressEvent;
  /** Diagnostics at the end (measured once more if the last scheduled measurement is stale). */
  diagnostics: Diagnostics;
  seconds: number;
}

/** A non-finite loss: the message names the step so the run can be diagnosed. */
export class NonFiniteLossError extends Error {
  constructor(readonly step: number, readonly values: LossValues) {
    super(
      `training diverged: loss is ${values.loss} at step ${step} (invariance ${values.invariance}, ` +
        `variance ${values.variance}, covariance ${values.covariance}); lower the learning rate or batch size, ` +
        `or check the input normalisation`,
    );
    this.name = 'NonFiniteLossError';
  }
}

export function planSteps(n: number, batchSize: number, epochs: number, maxSteps?: number): { stepsPerEpoch: number; totalSteps: number } {
  if (n < batchSize) {
    throw new Error(
      `the dataset has ${n} images, fewer than one batch of ${batchSize}; lower the batch size or add images`,
    );
  }
  // Drop the incomplete last batch (as the reference does): every step has the full batch statistics.
  const stepsPerEpoch = Math.floor(n / batchSize);
  const totalSteps = Math.min(epochs * stepsPerEpoch, maxSteps ?? Infinity);
  return { stepsPerEpoch, totalSteps };
}

/** Seed mixing: distinct streams for shuffling (per epoch) and augmentation (per step). */
const epochRng = (seed: number, epoch: number): Rng => new Rng((seed ^ Math.imul(epoch + 1, 0x9e3779b9)) >>> 0);
export const stepRng = (seed: number, step: number): Rng =>
  new Rng((Math.imul(seed + 0x632be5ab, 0x85ebca6b) ^ Math.imul(step + 1, 0xc2b2ae35)) >>> 0);

/** A fixed, unaugmented slice of the data for representation diagnostics (same images every time). */
function diagnosticIndices(n: number, count: number): Int32Array {
  const out = new Int32Array(Math.min(n, count));
  for (let i = 0; i < out.length; i++) out[i] = Math.floor((i * n) / out.length);
  return out;
}

export async function runTrainingLoop(parts: LoopParts, o: LoopOptions): Promise<LoopResult> {
  const now = o.now ?? Date.now;
  const { stepsPerEpoch, totalSteps } = planSteps(o.dataset.n, o.batchSize, o.epochs, o.maxSteps);
  const diagEvery = o.diagnosticsEvery ?? 50;
  const snapEvery = o.snapshotEvery ?? 0;
  const start = now();
  const deadline = o.maxMinutes !== undefined ? start + o.maxMinutes * 60_000 : Infinity;
  const diagIdx = diagnosticIndices(o.dataset.n, 256);

  const measure = async (): Promise<Diagnostics> => {
    const x = batchToTensor(o.dataset, diagIdx);
    const xn = parts.normalise(x);
    x.dispose();
    try {
      return await parts.representationStats(xn);
    } finally {
      xn.dispose();
    }
  };

  let step = o.startStep ?? 0;
  let perm: Int32Array | null = null;
  let permEpoch = -1;
  let last: ProgressEvent | undefined;
  let lastDiag: (Diagnostics & { step: number }) | undefined;
  let stoppedBy: StopReason = 'completed';
  // Throughput over a sliding window of recent steps, so ETA follows the current speed.
  const recent: number[] = [];

  while (step < totalSteps) {
    const stop = o.shouldStop?.() ?? null;
    if (stop) {
      stoppedBy = stop === 'cancel' ? 'cancelled' : 'stopped';
      break;
    }
    if (now() >= deadline) {
      stoppedBy = 'maxMinutes';
      break;
    }
    const epoch = Math.floor(step / stepsPerEpoch);
    if (epoch !== permEpoch) {
      perm = epochRng(o.seed, epoch).permutation(o.dataset.n);
      permEpoch = epoch;
    }
    const t0 = now();
    const lr = parts.learningRateAt(step, totalSteps);
    const from = (step % stepsPerEpoch) * o.batchSize;
    const x = batchToTensor(o.dataset, perm!.subarray(from, from + o.batchSize));
    let values: LossValues;
    try {
      const [a, b] = parts.makeViews(x, stepRng(o.seed, step));
      try {
        values = await parts.step(a, b, lr);
      } finally {
        a.dispose();
        b.dispose();
      }
    } finally {
      x.dispose();
    }
    if (![values.loss, values.invariance, values.variance, values.covariance].every(Number.isFinite)) {
      throw new NonFiniteLossError(step, values);
    }
    step += 1;

    const dt = Math.max(1e-6, (now() - t0) / 1000);
    recent.push(dt);
    if (recent.length > 20) recent.shift();
    const meanDt = recent.reduce((s, v) => s + v, 0) / recent.length;
    const event: ProgressEvent = {
      event: 'step',
      step,
      totalSteps,
      epoch: Math.floor((step - 1) / stepsPerEpoch) + 1,
      ...values,
      lr,
      imagesPerSec: o.batchSize / meanDt,
      etaSeconds: (totalSteps - step) * meanDt,
      elapsedSeconds: (now() - start) / 1000,
      t: now(),
    };
    if (diagEvery > 0 && (step % diagEvery === 0 || step === totalSteps)) {
      const d = await measure();
      lastDiag = { ...d, step };
      event.std = d.std;
      event.normStd = d.normStd;
      event.effectiveRank = d.effectiveRank;
    }
    last = event;
    await o.onProgress?.(event);
    if (snapEvery > 0 && o.snapshot && step % snapEvery === 0 && step < totalSteps) await o.snapshot(step);
  }

  if (!lastDiag || lastDiag.step !== step) {
    const d = await measure();
    lastDiag = { ...d, step };
  }
  return {
    stoppedBy,
    steps: step,
    totalSteps,
    stepsPerEpoch,
    ...(last ? { last } : {}),
    diagnostics: { std: lastDiag.std, normStd: lastDiag.normStd, effectiveRank: lastDiag.effectiveRank },
    seconds: (now() - start) / 1000,
  };
}
