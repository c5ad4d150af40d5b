import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng.js';
import { checkLabels, featureShape, toTensor2D, topKAccuracy, type FeatureInput } from './features.js';
import type { LinearHead } from './linear-head.js';

export type { LinearHead } from './linear-head.js';

export interface LinearProbeOptions {
  numClasses: number;
  classNames?: string[];
  epochs?: number;
  /** Default 1e-3 for Adam (the reference), 0.02 for SGD (the paper's linear evaluation). */
  lr?: number;
  /** L2 added to the gradient (torch's weight_decay). Default 1e-5 for Adam, 1e-6 for SGD. */
  weightDecay?: number;
  batchSize?: number;
  optimizer?: 'adam' | 'sgd';
  /** SGD momentum. */
  momentum?: number;
  seed?: number;
  onEpoch?: (e: { epoch: number; epochs: number; loss: number; lr: number }) => void;
}

/**
 * Trains a softmax classifier on frozen features, as the reference's linear_acc: standardise with the
 * train mean and (unbiased std + 1e-6), torch-style Linear init, shuffled batches, cross-entropy,
 * Adam (weight decay added to the gradient, as torch.optim.Adam) or SGD with momentum, learning rate
 * cosine-annealed per epoch (CosineAnnealingLR with T_max = epochs). Gradients are written out by hand
 * (softmax − one-hot) so each batch is one tidy of a dozen ops: 60,000 × 128 for 100 epochs is seconds.
 */
export async function trainLinearProbe(features: FeatureInput, labels: Int32Array, opts: LinearProbeOptions): Promise<LinearHead> {
  const [n, d] = featureShape(features);
  const c = opts.numClasses;
  if (!Number.isInteger(c) || c < 2) throw new Error(`linear probe: numClasses must be an integer ≥ 2, got ${c}`);
  if (n < 2) throw new Error(`linear probe: need at least 2 training rows, got ${n}`);
  checkLabels(labels, n, c, 'linear probe');
  if (opts.classNames && opts.classNames.length !== c) {
    throw new Error(`linear probe: ${opts.classNames.length} class names for ${c} classes`);
  }
  const optimizer = opts.optimizer ?? 'adam';
  const epochs = opts.epochs ?? 100;
  const baseLr = opts.lr ?? (optimizer === 'adam' ? 1e-3 : 0.02);
  const wd = opts.weightDecay ?? (optimizer === 'adam' ? 1e-5 : 1e-6);
  const batchSize = Math.max(1, Math.min(opts.batchSize ?? 512, n));
  const momentum = opts.momentum ?? 0.9;
  const rng = new Rng(opts.seed ?? 0);

  const input = toTensor2D(features);
  const { mean, std, xs } = tf.tidy(() => {
    const x = input.tensor;
    const mean = x.mean(0);
    const std = x.sub(mean).square().sum(0).div(n - 1).sqrt().add(1e-6);
    return { mean, std, xs: x.sub(mean).div(std) as tf.Tensor2D };
  });
  if (input.owned) input.tensor.dispose();
  const ys = tf.tensor1d(labels, 'int32');

  // nn.Linear's default init: U(−1/√D, 1/√D) for weights and bias.
  const bound = 1 / Math.sqrt(d);
  const w0 = new Float32Array(d * c).map(() => rng.uniform(-bound, bound));
  const b0 = new Float32Array(c).map(() => rng.uniform(-bound, bound));
  // tf.variable shares its initial value's data; dispose the initial tensor so only the variable holds it.
  const own = <T extends tf.Tensor>(t: T): tf.Variable => {
    const v = tf.variable(t);
    t.dispose();
    return v;
  };
  const W = own(tf.tensor2d(w0, [d, c]));
  const b = own(tf.tensor1d(b0));
  const state = [W, b].map((p) => [own(tf.zerosLike(p)), own(tf.zerosLike(p))] as const);
  const lossSum = own(tf.scalar(0));
  const beta1 = 0.9;
  const beta2 = 0.999;
  const eps = 1e-8;
  let t = 0;

  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const lr = (baseLr * (1 + Math.cos((Math.PI * epoch) / epochs))) / 2;
      const perm = tf.tensor1d(rng.permutation(n), 'int32');
      tf.tidy(() => lossSum.assign(tf.scalar(0)));
      for (let s = 0; s < n; s += batchSize) {
        const bs = Math.min(batchSize, n - s);
        t++;
        tf.tidy(() => {
          const idx = perm.slice(s, bs);
          const xb = tf.gather(xs, idx);
          const logits = xb.matMul(W).add(b);
          const logp = tf.logSoftmax(logits);
          const onehot = tf.oneHot(tf.gather(ys, idx), c).toFloat();
          lossSum.assign(lossSum.sub(logp.mul(onehot).sum()));
          const g = logp.exp().sub(onehot).div(bs); // d(mean CE)/d(logits)
          const grads = [xb.transpose().matMul(g), g.sum(0)];
          [W, b].forEach((p, i) => {
            const [m, v] = state[i]!;
            const grad = grads[i]!.add(p.mul(wd));
            if (optimizer === 'adam') {
              m.assign(m.mul(beta1).add(grad.mul(1 - beta1)));
              v.assign(v.mul(beta2).add(grad.square().mul(1 - beta2)));
              const stepSize = lr / (1 - beta1 ** t);
              const denom = v.div(1 - beta2 ** t).sqrt().add(eps);
              p.assign(p.sub(m.div(denom).mul(stepSize)));
            } else {
              m.assign(m.mul(momentum).add(grad));
              p.assign(p.sub(m.mul(lr)));
            }
          });
        });
      }
      perm.dispose();
      if (opts.onEpoch) {
        const loss = (await lossSum.data())[0]! / n;
        opts.onEpoch({ epoch: epoch + 1, epochs, loss, lr });
      }
    }
    const [meanA, stdA, wA, bA] = await Promise.all([mean.data(), std.data(), W.data(), b.data()]);
    const weights: number[][] = [];
    for (let i = 0; i < d; i++) weights.push(Array.from(wA.subarray(i * c, (i + 1) * c)));
    return {
      ...(opts.classNames ? { classNames: [...opts.classNames] } : {}),
      mean: Array.from(meanA),
      std: Array.from(stdA),
      weights,
      bias: Array.from(bA),
    };
  } finally {
    tf.dispose([mean, std, xs, ys, W, b, lossSum, ...state.flat()]);
  }
}

/** Class probabilities (row-major n × C) of the head on `features`, computed on the backend in blocks. */
export async function predictLinear(head: LinearHead, features: FeatureInput, blockSize = 10_000): Promise<Float32Array> {
  const [n, d] = featureShape(features);
  const c = head.bias.length;
  if (d !== head.mean.length) throw new Error(`linear head expects ${head.mean.length}-dimensional features, got ${d}`);
  const out = new Float32Array(n * c);
  const input = toTensor2D(features);
  const [mean, std, W, b] = [tf.tensor1d(head.mean), tf.tensor1d(head.std), tf.tensor2d(head.weights), tf.tensor1d(head.bias)];
  try {
    for (let s = 0; s < n; s += blockSize) {
      const bs = Math.min(blockSize, n - s);
      const p = tf.tidy(() => tf.softmax(input.tensor.slice([s, 0], [bs, d]).sub(mean).div(std).matMul(W).add(b)));
      out.set((await p.data()) as Float32Array, s * c);
      p.dispose();
    }
  } finally {
    tf.dispose([mean, std, W, b]);
    if (input.owned) input.tensor.dispose();
  }
  return out;
}

/** Top-1 / top-5 accuracy and argmax predictions of the head on labelled features. */
export async function evaluateLinearHead(
  head: LinearHead,
  features: FeatureInput,
  labels: Int32Array,
): Promise<{ top1: number; top5: number; predictions: Int32Array }> {
  const c = head.bias.length;
  const [n] = featureShape(features);
  checkLabels(labels, n, c, 'linear head evaluation');
  const probs = await predictLinear(head, features);
  const r = Math.min(5, c);
  const ranking = rankRows(probs, n, c, r);
  const predictions = new Int32Array(n);
  for (let i = 0; i < n; i++) predictions[i] = ranking[i * r]!;
  return { ...topKAccuracy(ranking, r, labels), predictions };
}

/** The r best classes of each row, best first; ties go to the lower class index (as argmax). */
export function rankRows(scores: Float32Array, n: number, c: number, r: number): Int32Array {
  const out = new Int32Array(n * r);
  const order = new Int32Array(c);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c; j++) order[j] = j;
    const row = scores.subarray(i * c, (i + 1) * c);
    order.sort((a, b2) => row[b2]! - row[a]! || a - b2);
    out.set(order.subarray(0, r), i * r);
  }
  return out;
}
