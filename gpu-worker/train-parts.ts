import * as tf from '@tensorflow/tfjs';
import { recipeByName } from '../shared/augment/config.js';
import { makeViews } from '../shared/augment/augment.js';
import type { TrainState } from '../shared/checkpoint/train-state.js';
import type { Normalisation } from '../shared/data/dataset.js';
import { representationStats } from '../shared/eval/collapse.js';
import type { Ablation } from '../shared/jobs/schema.js';
import { representationDim, type ModelConfig } from '../shared/model/config.js';
import { createVicregNet, type VicregNet } from '../shared/model/vicreg-net.js';
import { vicregLoss } from '../shared/loss/vicreg.js';
import { LARS } from '../shared/train/lars.js';
import type { LoopParts } from '../shared/train/loop.js';
import { defaultWarmupSteps, learningRateAt } from '../shared/train/schedule.js';
import { createTrainStep } from '../shared/train/step.js';
import { normalise } from './pipeline.js';

/**
 * Assembles what the training loop drives from the project's pieces: the VICReg network, LARS with the
 * recipe's η and weight decay, the warm-up + cosine schedule, the recipe's two views and the loss with
 * the request's λ, μ, ν. Also moves the state in and out of snapshots.
 */
export interface TrainSessionOptions {
  model: ModelConfig;
  recipe: 'official' | 'small';
  norm: Normalisation;
  ablation: Ablation;
  seed: number;
  batchSize: number;
  stepsPerEpoch: number;
  baseLr?: number;
}

export interface TrainSession {
  parts: LoopParts;
  net: VicregNet;
  /** Normalised images → representation (what the API serves). */
  representation: (x: tf.Tensor4D) => tf.Tensor2D;
  representationDim: number;
  /** The backbone as a tfjs LayersModel for the checkpoint. */
  backboneModel(): tf.LayersModel;
  exportState(step: number, epoch: number, meta: Record<string, unknown>): TrainState;
  importState(s: Pick<TrainState, 'weights' | 'optimizerSlots'>): void;
  dispose(): void;
}

/** LARS settings of each recipe (issue 2: η 0.001 / wd 1e-6 official, η 0.02 / wd 1e-4 small). */
export const LARS_BY_RECIPE = {
  official: { eta: 0.001, weightDecay: 1e-6 },
  small: { eta: 0.02, weightDecay: 1e-4 },
} as const;

export function createTrainSession(o: TrainSessionOptions): TrainSession {
  const net = createVicregNet(o.model, o.seed);
  const optimizer = new LARS({ learningRate: 0, momentum: 0.9, ...LARS_BY_RECIPE[o.recipe] });
  const step = createTrainStep(net, optimizer, (za: tf.Tensor2D, zb: tf.Tensor2D) =>
    vicregLoss(za, zb, { lambda: o.ablation.lambda, mu: o.ablation.mu, nu: o.ablation.nu }),
  );
  const recipe = recipeByName(o.recipe);
  const represent = (x: tf.Tensor4D): tf.Tensor2D => net.representation(x);
  let warmup: number | null = null;

  const parts: LoopParts = {
    makeViews: (x, rng) => makeViews(x, recipe, rng, o.norm),
    async step(a, b, lr) {
      optimizer.setLearningRate(lr);
      return step(a, b);
    },
    learningRateAt(s, total) {
      warmup ??= defaultWarmupSteps(total, o.stepsPerEpoch);
      return learningRateAt(s, { baseLr: o.baseLr ?? 0.3, batchSize: o.batchSize, totalSteps: total, warmupSteps: warmup });
    },
    async representationStats(x) {
      const r = represent(x);
      try {
        const s = await representationStats(r);
        return { std: s.std, normStd: s.normStd, effectiveRank: s.effectiveRank };
      } finally {
        r.dispose();
      }
    },
    normalise: (x) => normalise(x, o.norm),
  };

  return {
    parts,
    net,
    representation: represent,
    representationDim: representationDim(o.model.backbone),
    backboneModel: () => net.toLayersModel(),
    exportState(s, epoch, meta) {
      // No generator state to keep: shuffles and views are derived from (seed, epoch) / (seed, step).
      return { step: s, epoch, rng: [0, 0, 0, 1], weights: net.getWeights(), optimizerSlots: optimizer.getSlots(), meta };
    },
    importState(s) {
      net.setWeights(s.weights);
      optimizer.setSlots(s.optimizerSlots);
    },
    dispose() {
      optimizer.dispose();
      net.dispose();
    },
  };
}
