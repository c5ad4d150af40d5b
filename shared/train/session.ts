import * as tf from '@tensorflow/tfjs';
import { recipeByName } from '../augment/config.js';
import { makeViews } from '../augment/augment.js';
import type { TrainState } from '../checkpoint/train-state.js';
import type { Normalisation } from '../data/dataset.js';
import { normalise } from '../data/split.js';
import { representationStats } from '../eval/collapse.js';
import type { Ablation } from '../jobs/schema.js';
import { representationDim, type ModelConfig } from '../model/config.js';
import type { ConvBnSpec } from '../model/spec.js';
import { createVicregNet, type VicregNet } from '../model/vicreg-net.js';
import { vicregLoss } from '../loss/vicreg.js';
import { LARS } from './lars.js';
import type { LoopParts } from './loop.js';
import { defaultWarmupSteps, learningRateAt } from './schedule.js';
import { createTrainStep } from './step.js';

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
  /**
   * Warm start: copy a published backbone (a checkpoint's LayersModel, same architecture) into the network.
   * The expander is not in checkpoints and keeps its fresh initialisation, as do the optimiser's momenta.
   */
  initBackboneFrom(model: tf.LayersModel): void;
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
    initBackboneFrom(model) {
      net.setWeights({ ...net.getWeights(), ...backboneWeights(net, model) });
    },
    dispose() {
      optimizer.dispose();
      net.dispose();
    },
  };
}

/**
 * The backbone's parameters by stable name, read from its LayersModel export (layer names as in
 * shared/model/layers-model.ts: the parameter name with '.' → '_'). Throws naming the first mismatch.
 */
function backboneWeights(net: VicregNet, model: tf.LayersModel): Record<string, Float32Array> {
  const layerName = (param: string) => param.replace(/\.w$/, '').replace(/\./g, '_');
  const units: ConvBnSpec[] = [net.spec.stem, ...net.spec.blocks.flatMap((b) => [...b.path, ...(b.shortcut ? [b.shortcut] : [])])];
  const out: Record<string, Float32Array> = {};
  const take = (layer: string, names: string[]) => {
    let values: tf.Tensor[];
    try {
      values = model.getLayer(layer).getWeights();
    } catch {
      throw new Error(`the initial model has no layer ${layer}: it is a different architecture`);
    }
    if (values.length !== names.length) throw new Error(`the initial model's layer ${layer} has ${values.length} weights, expected ${names.length}`);
    names.forEach((n, i) => (out[n] = values[i]!.dataSync().slice() as Float32Array));
  };
  for (const u of units) {
    take(layerName(u.conv.name), [u.conv.name]);
    take(layerName(u.bn), ['gamma', 'beta', 'mean', 'var'].map((s) => `${u.bn}.${s}`));
  }
  const current = net.getWeights();
  for (const [n, v] of Object.entries(out)) {
    if (current[n]!.length !== v.length) throw new Error(`the initial model's ${n} has ${v.length} values, this network's ${current[n]!.length}: a different architecture`);
  }
  return out;
}
