/**
 * The VICReg network (ResNet backbone + expander) as a function over named tf.Variables: training needs
 * speed (hand-written batch-norm gradient, no Layers overhead); serving uses `toLayersModel()`, the same
 * backbone in standard tfjs layers.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng.js';
import { ModelConfig } from './config.js';
import { batchNormInfer, batchNormTrain } from './batchnorm.js';
import { BN_EPSILON, BN_MOMENTUM, buildSpec, paramSpecs, type ConvBnSpec, type NetSpec, type ParamSpec } from './spec.js';
import { buildLayersModel } from './layers-model.js';

/** Values by stable parameter name (shapes are the network's: see `spec` / paramSpecs). */
export type NamedWeights = Record<string, Float32Array>;

export interface VicregNet {
  readonly config: ModelConfig;
  readonly spec: NetSpec;
  /** Trainable parameters in a stable order (network order). */
  trainableVariables(): tf.Variable[];
  /** Their stable names (without the per-instance prefix tfjs needs for uniqueness). */
  trainableNames(): string[];
  /** Batch-norm running means and variances. */
  stateVariables(): tf.Variable[];
  stateNames(): string[];
  /** Trainable parameter count. */
  parameterCount(): number;
  /**
   * training = batch statistics (and running-stat update, momentum 0.1 as torch); otherwise running stats.
   * Input: [N, H, W, C], already normalised.
   */
  forward(x: tf.Tensor4D, training: boolean): { representation: tf.Tensor2D; embedding: tf.Tensor2D };
  /** Backbone output in inference mode. */
  representation(x: tf.Tensor4D): tf.Tensor2D;
  /** The backbone as a standard-layers LayersModel (input [null, H, W, C], output [null, D]). */
  toLayersModel(): tf.LayersModel;
  /** Trainable then state values, by stable name (training-state snapshots). */
  getWeights(): NamedWeights;
  setWeights(weights: NamedWeights): void;
  dispose(): void;
}

let instances = 0;

function initValues(p: ParamSpec, rng: Rng): Float32Array {
  const size = p.shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(size);
  if (p.init.kind === 'const') v.fill(p.init.value);
  else for (let i = 0; i < size; i++) v[i] = rng.uniform(-p.init.bound, p.init.bound);
  return v;
}

export function createVicregNet(configIn: ModelConfig, seed: number): VicregNet {
  const config = ModelConfig.parse(configIn);
  const spec = buildSpec(config);
  const params = paramSpecs(spec);
  const prefix = `vicreg${instances++}/`; // tfjs variable names are global
  const rng = new Rng(seed);
  const vars = new Map<string, tf.Variable>();
  const make = (p: ParamSpec, trainable: boolean) =>
    vars.set(p.name, tf.variable(tf.tensor(initValues(p, rng), p.shape), trainable, prefix + p.name));
  params.trainable.forEach((p) => make(p, true));
  params.state.forEach((p) => make(p, false));
  const trainable = params.trainable.map((p) => vars.get(p.name)!);
  const state = params.state.map((p) => vars.get(p.name)!);
  const v = (name: string): tf.Variable => {
    const t = vars.get(name);
    if (!t) throw new Error(`internal: no parameter ${name}`);
    return t;
  };
  let disposed = false;
  const alive = () => {
    if (disposed) throw new Error('this VicregNet has been disposed');
  };

  const bn4 = (x: tf.Tensor4D, bn: string, relu: boolean, training: boolean): tf.Tensor4D => {
    const gamma = v(`${bn}.gamma`) as unknown as tf.Tensor1D;
    const beta = v(`${bn}.beta`) as unknown as tf.Tensor1D;
    const rm = v(`${bn}.mean`);
    const rv = v(`${bn}.var`);
    if (!training) return batchNormInfer(x, gamma, beta, rm as unknown as tf.Tensor1D, rv as unknown as tf.Tensor1D, relu);
    return batchNormTrain(x, gamma, beta, relu, ({ mean, variance, count }) => {
      tf.tidy(() => {
        rm.assign(tf.add(tf.mul(rm, 1 - BN_MOMENTUM), tf.mul(mean, BN_MOMENTUM)));
        rv.assign(tf.add(tf.mul(rv, 1 - BN_MOMENTUM), tf.mul(variance, (BN_MOMENTUM * count) / Math.max(1, count - 1))));
      });
    });
  };

  const convBn = (x: tf.Tensor4D, u: ConvBnSpec, training: boolean): tf.Tensor4D => {
    const { name, stride, pad } = u.conv;
    const padding = pad === 0 ? 'valid' : ([[0, 0], [pad, pad], [pad, pad], [0, 0]] as tf.backend_util.ExplicitPadding);
    if (!training) {
      // Inference: batch norm folded into the conv (scaled kernel + bias, ReLU fused): one kernel per unit.
      const scale = tf.mul(v(`${u.bn}.gamma`), tf.rsqrt(tf.add(v(`${u.bn}.var`), BN_EPSILON)));
      const bias = tf.sub(v(`${u.bn}.beta`), tf.mul(v(`${u.bn}.mean`), scale)) as tf.Tensor1D;
      const filter = tf.mul(v(name), scale) as tf.Tensor4D; // broadcasts over the output-channel axis
      return tf.fused.conv2d({ x, filter, strides: stride, pad: padding, bias, activation: u.relu ? 'relu' : 'linear' });
    }
    const y = tf.conv2d(x, v(name) as unknown as tf.Tensor4D, stride, padding);
    return bn4(y, u.bn, u.relu, training);
  };

  const backbone = (x: tf.Tensor4D, training: boolean): tf.Tensor2D => {
    if (x.rank !== 4 || x.shape[3] !== spec.channels) {
      throw new Error(`input must be [N, H, W, ${spec.channels}] (normalised), got [${x.shape.join(', ')}]`);
    }
    let h = convBn(x, spec.stem, training);
    // Values are ≥ 0 after the ReLU, so zero padding gives torch's max-pool (padding 1).
    if (spec.stemPool) h = tf.maxPool(tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]]) as tf.Tensor4D, 3, 2, 'valid');
    for (const b of spec.blocks) {
      let y = h;
      for (const u of b.path) y = convBn(y, u, training);
      const s = b.shortcut ? convBn(h, b.shortcut, training) : h;
      h = tf.relu(tf.add(y, s)) as tf.Tensor4D;
    }
    return tf.mean(h, [1, 2]) as tf.Tensor2D;
  };

  const expander = (r: tf.Tensor2D, training: boolean): tf.Tensor2D => {
    let z = r;
    for (const l of spec.expander) {
      z = tf.matMul(z, v(`${l.name}.w`) as unknown as tf.Tensor2D);
      if (l.bias) z = tf.add(z, v(`${l.name}.b`));
      if (l.bn) {
        const n = z.shape[0];
        z = tf.reshape(bn4(tf.reshape(z, [n, 1, 1, l.dout]) as tf.Tensor4D, l.bn, true, training), [n, l.dout]) as tf.Tensor2D;
      }
    }
    return z;
  };

  const net: VicregNet = {
    config,
    spec,
    trainableVariables: () => trainable.slice(),
    trainableNames: () => params.trainable.map((p) => p.name),
    stateVariables: () => state.slice(),
    stateNames: () => params.state.map((p) => p.name),
    parameterCount: () => trainable.reduce((a, t) => a + t.size, 0),
    forward(x, training) {
      alive();
      const representation = backbone(x, training);
      const embedding = expander(representation, training);
      return { representation, embedding };
    },
    representation(x) {
      alive();
      return tf.tidy(() => backbone(x, false));
    },
    toLayersModel() {
      alive();
      return buildLayersModel(spec, (name) => v(name));
    },
    getWeights() {
      alive();
      const out: NamedWeights = {};
      for (const p of [...params.trainable, ...params.state]) out[p.name] = v(p.name).dataSync().slice() as Float32Array;
      return out;
    },
    setWeights(weights) {
      alive();
      const all = [...params.trainable, ...params.state];
      const missing = all.filter((p) => !(p.name in weights)).map((p) => p.name);
      const unknown = Object.keys(weights).filter((n) => !vars.has(n));
      if (missing.length || unknown.length) {
        const list = (a: string[]) => a.slice(0, 5).join(', ') + (a.length > 5 ? `, … (${a.length})` : '');
        throw new Error(`weights do not match this network: missing [${list(missing)}], unknown [${list(unknown)}]`);
      }
      for (const p of all) {
        const size = p.shape.reduce((a, b) => a * b, 1);
        if (weights[p.name]!.length !== size) {
          throw new Error(`weight ${p.name}: expected ${size} values for shape [${p.shape}], got ${weights[p.name]!.length}`);
        }
      }
      for (const p of all) tf.tidy(() => v(p.name).assign(tf.tensor(weights[p.name]!, p.shape)));
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const t of vars.values()) t.dispose();
    },
  };
  return net;
}
