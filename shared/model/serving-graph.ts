/**
 * Inference without the Layers machinery: a saved backbone (shared/model/layers-model.ts) compiled into a
 * plain function of fused ops. Each ZeroPadding2D → Conv2D → BatchNormalization → ReLU chain becomes one
 * fused convolution with explicit padding, the batch norm folded into its weights and a bias; the rest
 * are single ops. LayersModel.predict runs four kernels and several JS layers of bookkeeping per chain,
 * which at the small batches an API forms costs more than the arithmetic. A model with a layer this does
 * not know gives undefined, and the caller keeps predict.
 */
import * as tf from '@tensorflow/tfjs';

export interface ServingGraph {
  /** [n, h, w, c] → [n, d], inside the caller's tidy (or disposed by the caller). */
  run(x: tf.Tensor4D): tf.Tensor2D;
  /** Frees the folded weights (the LayersModel keeps its own). */
  dispose(): void;
  /** Kernels per forward pass, for logs. */
  readonly ops: number;
}

type Node = { layer: tf.layers.Layer; inputs: string[] };
type Step = (values: Map<string, tf.Tensor>) => void;

const cls = (l: tf.layers.Layer) => l.getClassName();

/** Inbound layer names of a layer (its single call in a functional model). */
function inboundNames(layer: tf.layers.Layer): string[] {
  const nodes = (layer as unknown as { inboundNodes: { inboundLayers: tf.layers.Layer[] }[] }).inboundNodes;
  if (nodes.length !== 1) throw new Error(`layer ${layer.name} is called ${nodes.length} times`);
  return nodes[0]!.inboundLayers.map((l) => l.name);
}

/** Compile `model`; undefined if it uses a layer or setting this does not handle. */
export function compileServingGraph(model: tf.LayersModel): ServingGraph | undefined {
  // Weights copied before a later layer stops the compile are freed with it.
  const owned: tf.Tensor[] = [];
  try {
    return compile(model, owned);
  } catch {
    tf.dispose(owned);
    return undefined;
  }
}

/** Compiles `model`, putting every tensor it keeps in `owned` as soon as it exists. */
function compile(model: tf.LayersModel, owned: tf.Tensor[]): ServingGraph {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) throw new Error('one input and one output only');
  const nodes = new Map<string, Node>();
  const consumers = new Map<string, number>();
  for (const layer of model.layers) {
    const inputs = cls(layer) === 'InputLayer' ? [] : inboundNames(layer);
    nodes.set(layer.name, { layer, inputs });
    for (const i of inputs) consumers.set(i, (consumers.get(i) ?? 0) + 1);
  }
  const inputName = model.inputLayers[0]!.name;
  const outputName = model.outputLayers[0]!.name;
  const only = (name: string) => (consumers.get(name) ?? 0) === 1;
  /** The single consumer of `name`, if it has exactly one. */
  const next = (name: string): Node | undefined => {
    if (!only(name) || name === outputName) return undefined;
    for (const n of nodes.values()) if (n.inputs.includes(name)) return n;
    return undefined;
  };

  const steps: Step[] = [];
  const absorbed = new Set<string>();
  for (const { layer, inputs } of nodes.values()) {
    const name = layer.name;
    if (absorbed.has(name) || cls(layer) === 'InputLayer') continue;
    const config = layer.getConfig() as Record<string, unknown>;
    const src = inputs[0]!;
    switch (cls(layer)) {
      case 'ZeroPadding2D':
      case 'Conv2D': {
        // [ZeroPadding2D →] Conv2D [→ BatchNormalization] [→ ReLU] as one fused convolution.
        let pad: [[number, number], [number, number]] = [
          [0, 0],
          [0, 0],
        ];
        let conv = layer;
        if (cls(layer) === 'ZeroPadding2D') {
          if (config.dataFormat !== 'channelsLast') throw new Error('channelsLast only');
          const p = config.padding as [[number, number], [number, number]];
          pad = [p[0], p[1]];
          const c = next(name);
          if (!c || cls(c.layer) !== 'Conv2D') {
            // Padding before something else (a max-pool): a pad op of its own.
            const paddings: [number, number][] = [[0, 0], pad[0], pad[1], [0, 0]];
            steps.push((v) => v.set(name, tf.pad(v.get(src)!, paddings)));
            break;
          }
          conv = c.layer;
          absorbed.add(conv.name);
        }
        const cc = conv.getConfig() as Record<string, unknown>;
        if (cc.padding !== 'valid' && !(cc.padding === 'same' && pad[0][0] + pad[0][1] + pad[1][0] + pad[1][1] === 0)) {
          throw new Error(`conv ${conv.name}: padding ${String(cc.padding)} after explicit padding`);
        }
        const convActivation = (cc.activation as string | undefined) ?? 'linear';
        if (cc.dataFormat !== 'channelsLast') throw new Error('channelsLast only');
        if (convActivation !== 'linear' && convActivation !== 'relu') throw new Error(`conv ${conv.name}: activation ${convActivation}`);
        const dil = cc.dilationRate as number[] | number;
        if ((Array.isArray(dil) ? dil : [dil]).some((d) => d !== 1)) throw new Error('no dilation');
        const [kernel, convBias] = conv.getWeights() as [tf.Tensor4D, tf.Tensor1D | undefined];
        let last = conv.name;
        // A conv with its own ReLU ends the chain (a batch norm after it cannot be folded into it).
        const bnNode = convActivation === 'linear' ? next(last) : undefined;
        const bn = bnNode && cls(bnNode.layer) === 'BatchNormalization' ? batchNormParams(bnNode.layer) : undefined;
        const { w, b } = tf.tidy(() => {
          if (!bn) return { w: kernel.clone(), b: convBias?.clone() };
          const { gamma, beta, mean, variance, epsilon } = bn;
          const scale = tf.div(gamma ?? tf.onesLike(mean), tf.sqrt(tf.add(variance, epsilon)));
          const shift = tf.sub(beta ?? tf.zerosLike(mean), tf.mul(mean, scale));
          return { w: tf.mul(kernel, scale) as tf.Tensor4D, b: (convBias ? tf.add(tf.mul(convBias, scale), shift) : shift) as tf.Tensor1D };
        });
        owned.push(w, ...(b ? [b] : []));
        if (bn) {
          last = bnNode!.layer.name;
          absorbed.add(last);
        }
        let activation: 'relu' | 'linear' = convActivation;
        const reluNode = convActivation === 'linear' ? next(last) : undefined;
        if (reluNode && isPlainRelu(reluNode.layer)) {
          activation = 'relu';
          last = reluNode.layer.name;
          absorbed.add(last);
        }
        const strides = cc.strides as [number, number];
        const explicit: 'same' | [[number, number], [number, number], [number, number], [number, number]] =
          cc.padding === 'same' ? 'same' : [[0, 0], pad[0], pad[1], [0, 0]];
        const out = last;
        steps.push((v) => v.set(out, tf.fused.conv2d({ x: v.get(src) as tf.Tensor4D, filter: w, strides, pad: explicit, bias: b, activation })));
        break;
      }
      case 'BatchNormalization': {
        const { gamma, beta, mean, variance, epsilon } = batchNormParams(layer);
        const [m, vr, off, sc] = [mean.clone(), variance.clone(), beta?.clone(), gamma?.clone()];
        owned.push(m, vr, ...(off ? [off] : []), ...(sc ? [sc] : []));
        steps.push((v) => v.set(name, tf.batchNorm(v.get(src)!, m, vr, off, sc, epsilon)));
        break;
      }
      case 'ReLU':
      case 'Activation': {
        if (!isPlainRelu(layer)) throw new Error(`activation ${name} is not a plain ReLU`);
        steps.push((v) => v.set(name, tf.relu(v.get(src)!)));
        break;
      }
      case 'Add':
        steps.push((v) => v.set(name, tf.addN(inputs.map((i) => v.get(i)!))));
        break;
      case 'Dense': {
        const input = layer.input as tf.SymbolicTensor;
        if (input.shape.length !== 2) throw new Error(`dense ${name} on a rank-${input.shape.length} input`);
        const act = config.activation as string;
        if (act !== 'linear' && act !== 'relu') throw new Error(`dense ${name}: activation ${act}`);
        const [kernel, bias] = layer.getWeights().map((t) => t.clone()) as [tf.Tensor2D, tf.Tensor1D | undefined];
        owned.push(kernel, ...(bias ? [bias] : []));
        steps.push((v) => v.set(name, tf.fused.matMul({ a: v.get(src) as tf.Tensor2D, b: kernel, bias, activation: act })));
        break;
      }
      case 'GlobalAveragePooling2D':
        if (config.dataFormat !== 'channelsLast') throw new Error('channelsLast only');
        steps.push((v) => v.set(name, tf.mean(v.get(src)!, [1, 2])));
        break;
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        if (config.dataFormat !== 'channelsLast') throw new Error('channelsLast only');
        const pool = config.poolSize as [number, number];
        const strides = (config.strides as [number, number] | null) ?? pool;
        const padding = config.padding as 'valid' | 'same';
        const op = cls(layer) === 'MaxPooling2D' ? tf.maxPool : tf.avgPool;
        steps.push((v) => v.set(name, op(v.get(src) as tf.Tensor4D, pool, strides, padding)));
        break;
      }
      case 'Flatten':
        steps.push((v) => {
          const x = v.get(src)!;
          v.set(name, tf.reshape(x, [x.shape[0]!, -1]));
        });
        break;
      default:
        throw new Error(`layer ${cls(layer)} is not supported`);
    }
  }
  // A fused chain's value is stored under its last layer's name, which is what its consumers name as
  // their input (every earlier member of a chain has that chain as its only consumer).
  const run = (x: tf.Tensor4D): tf.Tensor2D =>
    tf.tidy(() => {
      const values = new Map<string, tf.Tensor>([[inputName, x]]);
      for (const step of steps) step(values);
      const y = values.get(outputName);
      if (!y) throw new Error(`serving graph: no value for ${outputName}`);
      return y as tf.Tensor2D;
    });
  return { run, dispose: () => tf.dispose(owned), ops: steps.length };
}

/** A BatchNormalization layer's statistics and affine parameters (gamma / beta absent when disabled). */
function batchNormParams(layer: tf.layers.Layer): { gamma?: tf.Tensor1D; beta?: tf.Tensor1D; mean: tf.Tensor1D; variance: tf.Tensor1D; epsilon: number } {
  const c = layer.getConfig() as Record<string, unknown>;
  if (c.axis !== -1 && c.axis !== 3) throw new Error(`batch norm ${layer.name}: over channels only`);
  // Weights in tfjs order: gamma (if scale), beta (if center), moving mean, moving variance.
  const ws = layer.getWeights() as tf.Tensor1D[];
  const gamma = c.scale !== false ? ws.shift() : undefined;
  const beta = c.center !== false ? ws.shift() : undefined;
  const [mean, variance] = ws as [tf.Tensor1D, tf.Tensor1D];
  return { gamma, beta, mean, variance, epsilon: c.epsilon as number };
}

function isPlainRelu(layer: tf.layers.Layer): boolean {
  const c = layer.getConfig() as Record<string, unknown>;
  if (cls(layer) === 'Activation') return c.activation === 'relu';
  if (cls(layer) !== 'ReLU') return false;
  return (c.maxValue === undefined || c.maxValue === null) && (c.threshold === undefined || c.threshold === 0) && (c.negativeSlope === undefined || c.negativeSlope === 0);
}

export interface ServingForward {
  /** [n, h, w, c] → [n, d]; the caller disposes the result. */
  run(x: tf.Tensor4D): tf.Tensor2D;
  /** 'graph' (compiled and checked against predict) or 'predict'. */
  readonly path: 'graph' | 'predict';
  /** Frees the compiled weights (not the model). */
  dispose(): void;
}

/**
 * The fastest correct forward pass for `model`: the compiled graph if it compiles and agrees with
 * predict on a probe batch (to 1e-4 of the output's scale), else predict itself.
 */
export function servingForward(model: tf.LayersModel, inputShape: [number, number, number]): ServingForward {
  const predict = (x: tf.Tensor4D) => model.predict(x, { batchSize: Math.max(1, x.shape[0]) }) as tf.Tensor2D;
  const graph = compileServingGraph(model);
  if (graph) {
    const agrees = tf.tidy(() => {
      // A deterministic probe of 3 images with structure (not constant), so every layer is exercised.
      const n = 3 * inputShape[0] * inputShape[1] * inputShape[2];
      const x = tf.reshape(tf.sin(tf.mul(tf.range(0, n), 0.37)), [3, ...inputShape]) as tf.Tensor4D;
      const a = predict(x);
      const b = graph.run(x);
      if (a.shape.join() !== b.shape.join()) return false;
      const scale = tf.max(tf.abs(a)).dataSync()[0]!;
      const diff = tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!;
      return diff <= 1e-4 * Math.max(scale, 1e-3);
    });
    if (agrees) return { run: (x) => graph.run(x), path: 'graph', dispose: () => graph.dispose() };
    graph.dispose();
  }
  return { run: predict, path: 'predict', dispose: () => {} };
}
