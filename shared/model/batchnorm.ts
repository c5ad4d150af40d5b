/**
 * Batch norm (optionally fused with ReLU) with a hand-written gradient, shaped for the wasm backend:
 * per-channel sums over N·H·W as one average pool (reductions over outer axes transpose first on wasm,
 * ~25× slower here), and every per-channel scale/shift(/ReLU) as one fused 1×1 depthwise conv (one pass,
 * ~3× faster than a broadcast multiply). The same code runs on every backend.
 */
import * as tf from '@tensorflow/tfjs';
import { BN_EPSILON } from './spec.js';

/** Mean over N, H, W of [N, H, W, C] → [C], as a single average pool. */
export function channelMean(x: tf.Tensor4D): tf.Tensor1D {
  const [n, h, w, c] = x.shape;
  const pooled = tf.avgPool(tf.reshape(x, [1, n * h, w, c]) as tf.Tensor4D, [n * h, w], [n * h, w], 'valid');
  return tf.reshape(pooled, [c]) as tf.Tensor1D;
}

/** x·scale + shift per channel (then ReLU), one kernel. */
export function scaleShift(x: tf.Tensor4D, scale: tf.Tensor1D, shift: tf.Tensor1D | undefined, relu: boolean): tf.Tensor4D {
  const c = x.shape[3];
  return tf.fused.depthwiseConv2d({
    x,
    filter: tf.reshape(scale, [1, 1, c, 1]) as tf.Tensor4D,
    strides: 1,
    pad: 'valid',
    ...(shift ? { bias: shift } : {}),
    activation: relu ? 'relu' : 'linear',
  });
}

export interface BatchStats {
  mean: tf.Tensor1D;
  /** Biased variance (what normalises); the running estimate uses the unbiased one, as torch. */
  variance: tf.Tensor1D;
  count: number;
}

/**
 * Training-mode batch norm over N, H, W with batch statistics; `onStats` receives them (for the running
 * estimates; the tensors are disposed after the call). Gradients flow to x, gamma and beta.
 */
export function batchNormTrain(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  relu: boolean,
  onStats?: (s: BatchStats) => void,
): tf.Tensor4D {
  const [n, h, w] = x.shape;
  const count = n * h * w;
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xIn, gIn, bIn, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const x4 = xIn as tf.Tensor4D;
    const mean = channelMean(x4);
    // E[x²] − E[x]² keeps the forward to two cheap passes; clamped at 0 against rounding.
    const variance = tf.relu(tf.sub(channelMean(tf.square(x4)), tf.square(mean))) as tf.Tensor1D;
    const invStd = tf.rsqrt(tf.add(variance, BN_EPSILON)) as tf.Tensor1D;
    const scale = tf.mul(gIn, invStd) as tf.Tensor1D;
    const shift = tf.sub(bIn, tf.mul(mean, scale)) as tf.Tensor1D;
    const y = scaleShift(x4, scale, shift, relu);
    onStats?.({ mean, variance, count });
    save([x4, y, mean, invStd, gIn]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [sx, sy, sMean, sInv, sGamma] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
        const g = (relu ? tf.mul(dy, tf.step(sy)) : dy) as tf.Tensor4D;
        const meanG = channelMean(g);
        const meanGX = channelMean(tf.mul(g, sx) as tf.Tensor4D);
        const dBeta = tf.mul(meanG, count);
        // Σ g·x̂ = invStd · (Σ g·x − mean · Σ g)
        const dGamma = tf.mul(tf.mul(sInv, tf.sub(meanGX, tf.mul(sMean, meanG))), count);
        // dx = a·g + b·x + c per channel (x̂ expanded), two fused passes and an add.
        const a = tf.mul(sGamma, sInv) as tf.Tensor1D;
        const b = tf.neg(tf.mul(tf.mul(a, sInv), tf.div(dGamma, count))) as tf.Tensor1D;
        const c = tf.sub(tf.neg(tf.mul(a, meanG)), tf.mul(b, sMean)) as tf.Tensor1D;
        const dx = tf.add(scaleShift(g, a, undefined, false), scaleShift(sx, b, c, false));
        return [dx, dGamma, dBeta];
      },
    };
  });
  return f(x, gamma, beta) as tf.Tensor4D;
}

/** Inference-mode batch norm with running statistics (then ReLU). */
export function batchNormInfer(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  runningMean: tf.Tensor1D,
  runningVar: tf.Tensor1D,
  relu: boolean,
): tf.Tensor4D {
  return tf.tidy(() => {
    const scale = tf.mul(gamma, tf.rsqrt(tf.add(runningVar, BN_EPSILON))) as tf.Tensor1D;
    const shift = tf.sub(beta, tf.mul(runningMean, scale)) as tf.Tensor1D;
    return scaleShift(x, scale, shift, relu);
  });
}
