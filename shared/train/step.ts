/**
 * One VICReg optimisation step: both views through the network in training mode (separate batch
 * statistics per view, as the PyTorch reference), the loss, gradients of every trainable variable, the
 * optimiser update. Leak-free: everything but the updated variables is disposed before it returns.
 */
import * as tf from '@tensorflow/tfjs';
import type { VicregNet } from '../model/vicreg-net.js';

export interface LossTerms<T> {
  loss: T;
  invariance: T;
  variance: T;
  covariance: T;
}

export interface GradientOptimizer {
  applyGradients(vars: tf.Variable[], grads: tf.Tensor[]): void;
}

export type LossFn = (za: tf.Tensor2D, zb: tf.Tensor2D) => LossTerms<tf.Scalar>;

export type TrainStep = (viewA: tf.Tensor4D, viewB: tf.Tensor4D) => LossTerms<number>;

export function createTrainStep(net: VicregNet, optimizer: GradientOptimizer, lossFn: LossFn): TrainStep {
  const vars = net.trainableVariables();
  return (viewA, viewB) => {
    if (viewA.shape[0] !== viewB.shape[0]) throw new Error(`views differ in batch size: ${viewA.shape[0]} vs ${viewB.shape[0]}`);
    let terms: tf.Scalar[] = [];
    const { value, grads } = tf.variableGrads(() => {
      const za = net.forward(viewA, true).embedding;
      const zb = net.forward(viewB, true).embedding;
      const t = lossFn(za, zb);
      // The terms leave variableGrads' scope; the loss is returned as its value.
      terms = [tf.keep(t.invariance), tf.keep(t.variance), tf.keep(t.covariance)];
      return t.loss;
    }, vars);
    try {
      optimizer.applyGradients(
        vars,
        vars.map((v) => {
          const g = grads[v.name];
          if (!g) throw new Error(`no gradient for ${v.name}: is it used by the forward pass?`);
          return g;
        }),
      );
      const [loss, invariance, variance, covariance] = [value, ...terms].map((t) => t.dataSync()[0]!) as [number, number, number, number];
      return { loss, invariance, variance, covariance };
    } finally {
      tf.dispose([value, ...terms, ...Object.values(grads)]);
    }
  };
}
