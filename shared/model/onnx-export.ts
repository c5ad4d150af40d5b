/**
 * A saved backbone (shared/model/layers-model.ts, or any LayersModel of the same standard layers) as an
 * ONNX model in inference form, built from the model's own layer graph with onnx-proto's generated
 * protobuf code — no Python, no converter. Pure (tfjs + onnx-proto, no Node APIs).
 *
 * Layout of the exported model:
 *   input  "input"     float32 [N, H, W, C]  NHWC, row-major (channel fastest, then x, then y, then image),
 *                      N symbolic; pixels normalised as the checkpoint manifest's preprocessing says,
 *                      (value / 255 − mean[c]) / std[c] — exactly what the tfjs model's predict takes.
 *   output "embedding" float32 [N, D]        the representation, what the tfjs model's predict returns.
 * Inside, the first node transposes to NCHW (ONNX's convolution layout) and every rank-4 value stays NCHW.
 *
 * Layer by layer (one function each below):
 *   ZeroPadding2D → Conv2D          the padding becomes the Conv's pads (no op of its own)
 *   ZeroPadding2D → anything else   Pad (zeros, as tfjs pads; not folded into a max-pool, which pads −∞)
 *   Conv2D [→ BatchNormalization]   Conv, batch norm folded into its weights and bias; its ReLU → Relu
 *   BatchNormalization (alone)      BatchNormalization (running statistics)
 *   ReLU / Activation('relu')       Relu
 *   Add                             Add (Sum for more than two inputs)
 *   MaxPooling2D / AveragePooling2D MaxPool / AveragePool ('same' → explicit pads as TF places them;
 *                                   averages exclude padding, as tfjs)
 *   GlobalAveragePooling2D          GlobalAveragePool + Flatten
 *   Flatten                         Transpose back to NHWC + Flatten (tfjs flattens in H, W, C order)
 *   Dense                           Gemm (+ Relu)
 * Anything else throws an Error naming the layer.
 */
import * as tf from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';
import type { onnx as O } from 'onnx-proto';

const { onnx } = onnxProto;

/** IR version 8 (ONNX 1.10–1.12, the newest onnx-proto 8 describes) with the default-domain opset 17. */
export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 17;
export const ONNX_INPUT = 'input';
export const ONNX_OUTPUT = 'embedding';
/** The symbolic batch dimension's name. */
export const ONNX_BATCH_DIM = 'N';

type Pads = { top: number; bottom: number; left: number; right: number };
const NO_PADS: Pads = { top: 0, bottom: 0, left: 0, right: 0 };

interface GraphNode {
  layer: tf.layers.Layer;
  /** Names of the layers whose outputs this layer takes. */
  inputs: string[];
}

/** What the per-layer functions share while the graph is built. */
interface Ctx {
  nodes: O.INodeProto[];
  initializers: O.ITensorProto[];
  /** The ONNX value holding each processed layer's output (layers folded into another map to its value). */
  value: Map<string, string>;
  graph: Map<string, GraphNode>;
  /** Layers consuming each layer's output. */
  consumers: Map<string, GraphNode[]>;
  outputLayer: string;
  /** Layers already emitted as part of another's nodes (a batch norm folded into its conv). */
  absorbed: Set<string>;
  /** Padding of a ZeroPadding2D handed to the conv that consumes it, by the conv's name. */
  pendingPads: Map<string, Pads>;
}

/**
 * Serialise `model` (one NHWC image input with static H, W, C; one [N, D] output) as an ONNX ModelProto.
 * Deterministic: the same weights give the same bytes. Throws an Error naming the first layer (or
 * setting) it cannot express.
 */
export function exportOnnx(model: tf.LayersModel): Uint8Array {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new Error(`exportOnnx: model ${model.name} has ${model.inputs.length} inputs and ${model.outputs.length} outputs; expected 1 and 1`);
  }
  const inShape = model.inputs[0]!.shape;
  const outShape = model.outputs[0]!.shape;
  if (inShape.length !== 4 || inShape.slice(1).some((d) => d === null)) {
    throw new Error(`exportOnnx: input shape ${JSON.stringify(inShape)} is not [null, H, W, C] with static H, W, C`);
  }
  if (outShape.length !== 2 || outShape[1] === null) throw new Error(`exportOnnx: output shape ${JSON.stringify(outShape)} is not [null, D]`);
  const [h, w, c] = inShape.slice(1) as [number, number, number];
  const d = outShape[1]!;

  const ctx = buildContext(model);
  const inputLayer = model.inputLayers[0]!.name;
  ctx.nodes.push(node('Transpose', [ONNX_INPUT], ['input_nchw'], inputLayer, [ints('perm', [0, 3, 1, 2])]));
  ctx.value.set(inputLayer, 'input_nchw');

  for (const gn of ctx.graph.values()) {
    const { layer } = gn;
    if (ctx.absorbed.has(layer.name) || layer.getClassName() === 'InputLayer') continue;
    const emit = EMITTERS[layer.getClassName()];
    if (!emit) throw new Error(`exportOnnx: layer ${layer.name} (${layer.getClassName()}) is not supported`);
    emit(ctx, gn);
  }

  const last = ctx.value.get(ctx.outputLayer);
  if (!last) throw new Error(`exportOnnx: no value for output layer ${ctx.outputLayer}`);
  renameValue(ctx.nodes, last, ONNX_OUTPUT);

  const doc =
    `Backbone of tfjs model "${model.name}" in inference form (batch norm folded). ` +
    `Input "${ONNX_INPUT}": float32 [${ONNX_BATCH_DIM}, ${h}, ${w}, ${c}], NHWC, row-major (channel fastest), ` +
    `normalised as the checkpoint manifest's preprocessing says: (value / 255 - mean[c]) / std[c]. ` +
    `Output "${ONNX_OUTPUT}": float32 [${ONNX_BATCH_DIM}, ${d}], the representation (what the tfjs model's predict returns).`;
  const proto = onnx.ModelProto.create({
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'vicreg-ts',
    producerVersion: '1',
    docString: doc,
    metadataProps: [
      { key: 'input_layout', value: 'NHWC' },
      { key: 'input_shape', value: JSON.stringify([ONNX_BATCH_DIM, h, w, c]) },
      { key: 'output_shape', value: JSON.stringify([ONNX_BATCH_DIM, d]) },
    ],
    graph: {
      name: model.name,
      docString: doc,
      node: ctx.nodes,
      initializer: ctx.initializers,
      input: [valueInfo(ONNX_INPUT, [ONNX_BATCH_DIM, h, w, c])],
      output: [valueInfo(ONNX_OUTPUT, [ONNX_BATCH_DIM, d])],
    },
  });
  // protobufjs hands back a Node Buffer on Node; callers get a plain Uint8Array on every runtime.
  return new Uint8Array(onnx.ModelProto.encode(proto).finish());
}

// ---------------------------------------------------------------------------------------------------
// Graph walk

function buildContext(model: tf.LayersModel): Ctx {
  const graph = new Map<string, GraphNode>();
  const consumers = new Map<string, GraphNode[]>();
  // model.layers is in topological order (tfjs sorts a functional model's layers by depth).
  for (const layer of model.layers) {
    const gn: GraphNode = { layer, inputs: layer.getClassName() === 'InputLayer' ? [] : inboundNames(layer) };
    graph.set(layer.name, gn);
    for (const i of gn.inputs) consumers.set(i, [...(consumers.get(i) ?? []), gn]);
  }
  return {
    nodes: [],
    initializers: [],
    value: new Map(),
    graph,
    consumers,
    outputLayer: model.outputLayers[0]!.name,
    absorbed: new Set(),
    pendingPads: new Map(),
  };
}

function inboundNames(layer: tf.layers.Layer): string[] {
  const nodes = (layer as unknown as { inboundNodes: { inboundLayers: tf.layers.Layer[] }[] }).inboundNodes;
  if (nodes.length !== 1) throw new Error(`exportOnnx: layer ${layer.name} is called ${nodes.length} times (shared layers are not supported)`);
  return nodes[0]!.inboundLayers.map((l) => l.name);
}

/** The only consumer of `name`'s output, if it has exactly one and is not the model's output. */
function soleConsumer(ctx: Ctx, name: string): GraphNode | undefined {
  const cs = ctx.consumers.get(name) ?? [];
  return cs.length === 1 && name !== ctx.outputLayer ? cs[0] : undefined;
}

/** The ONNX value of a layer's input (must already be processed). */
function inputValue(ctx: Ctx, gn: GraphNode, i = 0): string {
  const src = gn.inputs[i]!;
  const v = ctx.value.get(src);
  if (!v) throw new Error(`exportOnnx: layer ${gn.layer.name}: input ${src} has no value yet`);
  return v;
}

/** The layer's static input shape (NHWC for images), one inbound tensor. */
function inputShape(layer: tf.layers.Layer): number[] {
  const s = (layer.input as tf.SymbolicTensor).shape;
  return s.map((d) => d ?? -1);
}

const config = (l: tf.layers.Layer) => l.getConfig() as Record<string, unknown>;

function requireChannelsLast(layer: tf.layers.Layer): void {
  const f = config(layer).dataFormat;
  if (f !== undefined && f !== 'channelsLast') throw new Error(`exportOnnx: layer ${layer.name}: data format ${String(f)} (channelsLast only)`);
}

/** 'linear' → no node, 'relu' → Relu; anything else throws naming the layer. */
function activation(layer: tf.layers.Layer): 'linear' | 'relu' {
  const a = (config(layer).activation as string | undefined) ?? 'linear';
  if (a !== 'linear' && a !== 'relu') throw new Error(`exportOnnx: layer ${layer.name}: activation ${a} is not supported`);
  return a;
}

function pair(v: unknown): [number, number] {
  return Array.isArray(v) ? [v[0] as number, (v[1] ?? v[0]) as number] : [v as number, v as number];
}

/** TF's 'same' padding (extra row / column at the end), as tfjs computes it. */
function samePads(inH: number, inW: number, k: [number, number], s: [number, number], dil: [number, number]): Pads {
  const along = (n: number, kk: number, ss: number, dd: number) => {
    const eff = (kk - 1) * dd + 1;
    const out = Math.ceil(n / ss);
    const total = Math.max((out - 1) * ss + eff - n, 0);
    return [Math.floor(total / 2), total - Math.floor(total / 2)] as const;
  };
  const [top, bottom] = along(inH, k[0], s[0], dil[0]);
  const [left, right] = along(inW, k[1], s[1], dil[1]);
  return { top, bottom, left, right };
}

/** Rename an ONNX value everywhere (the output layer's value becomes "embedding"). */
function renameValue(nodes: O.INodeProto[], from: string, to: string): void {
  for (const n of nodes) {
    n.input = n.input!.map((v) => (v === from ? to : v));
    n.output = n.output!.map((v) => (v === from ? to : v));
  }
}

// ---------------------------------------------------------------------------------------------------
// One function per layer kind

type Emitter = (ctx: Ctx, gn: GraphNode) => void;

const EMITTERS: Record<string, Emitter> = {
  ZeroPadding2D: exportZeroPadding,
  Conv2D: exportConv,
  BatchNormalization: exportBatchNorm,
  ReLU: exportRelu,
  Activation: exportRelu,
  Add: exportAdd,
  MaxPooling2D: exportPool,
  AveragePooling2D: exportPool,
  GlobalAveragePooling2D: exportGlobalAveragePool,
  Flatten: exportFlatten,
  Dense: exportDense,
};

/** Handed to the conv that consumes it (its pads), else a Pad op of zeros. */
function exportZeroPadding(ctx: Ctx, { layer, inputs }: GraphNode): void {
  requireChannelsLast(layer);
  const p = config(layer).padding as [[number, number], [number, number]];
  const pads: Pads = { top: p[0][0], bottom: p[0][1], left: p[1][0], right: p[1][1] };
  const next = soleConsumer(ctx, layer.name);
  if (next && next.layer.getClassName() === 'Conv2D') {
    ctx.pendingPads.set(next.layer.name, pads);
    ctx.value.set(layer.name, inputValue(ctx, { layer, inputs }));
    return;
  }
  const padsName = `${layer.name}/pads`;
  ctx.initializers.push(int64Tensor(padsName, [8], [0, 0, pads.top, pads.left, 0, 0, pads.bottom, pads.right]));
  ctx.nodes.push(node('Pad', [inputValue(ctx, { layer, inputs }), padsName], [layer.name], layer.name, [str('mode', 'constant')]));
  ctx.value.set(layer.name, layer.name);
}

/** Conv with any preceding ZeroPadding2D as pads and a following BatchNormalization folded in. */
function exportConv(ctx: Ctx, gn: GraphNode): void {
  const { layer } = gn;
  requireChannelsLast(layer);
  const c = config(layer);
  const act = activation(layer);
  const k = pair(c.kernelSize);
  const strides = pair(c.strides);
  const dil = pair(c.dilationRate ?? 1);
  const [, inH, inW] = inputShape(layer);
  const zp = ctx.pendingPads.get(layer.name) ?? NO_PADS;
  const own = c.padding === 'same' ? samePads(inH!, inW!, k, strides, dil) : NO_PADS;
  if (c.padding !== 'same' && c.padding !== 'valid') throw new Error(`exportOnnx: layer ${layer.name}: padding ${String(c.padding)}`);
  const pads = { top: zp.top + own.top, bottom: zp.bottom + own.bottom, left: zp.left + own.left, right: zp.right + own.right };

  const [kernelT, biasT] = layer.getWeights() as [tf.Tensor4D, tf.Tensor1D | undefined];
  const [kh, kw, cin, cout] = kernelT.shape;
  const kernel = kernelT.dataSync() as Float32Array;
  const convBias = biasT?.dataSync() as Float32Array | undefined;

  // Batch norm folded: w' = w·s, b' = b·s + β − μ·s with s = γ / √(σ² + ε), per output channel.
  let last = layer.name;
  const scale = new Float64Array(cout).fill(1);
  const shift = new Float64Array(cout);
  const bnNode = act === 'linear' ? soleConsumer(ctx, layer.name) : undefined;
  const folded = bnNode && bnNode.layer.getClassName() === 'BatchNormalization';
  if (folded) {
    const bn = batchNormParams(bnNode.layer, cout);
    for (let o = 0; o < cout; o++) {
      scale[o] = bn.gamma[o]! / Math.sqrt(bn.variance[o]! + bn.epsilon);
      shift[o] = bn.beta[o]! - bn.mean[o]! * scale[o]!;
    }
    ctx.absorbed.add(bnNode.layer.name);
    last = bnNode.layer.name;
  }
  // tfjs [kh, kw, cin, cout] → ONNX [cout, cin, kh, kw].
  const w = new Float32Array(kernel.length);
  for (let i = 0; i < kh; i++)
    for (let j = 0; j < kw; j++)
      for (let ci = 0; ci < cin; ci++)
        for (let o = 0; o < cout; o++) w[((o * cin + ci) * kh + i) * kw + j] = kernel[((i * kw + j) * cin + ci) * cout + o]! * scale[o]!;
  const inputs = [inputValue(ctx, gn), `${layer.name}/W`];
  ctx.initializers.push(floatTensor(`${layer.name}/W`, [cout, cin, kh, kw], w));
  if (folded || convBias) {
    const b = new Float32Array(cout);
    for (let o = 0; o < cout; o++) b[o] = (convBias ? convBias[o]! : 0) * scale[o]! + shift[o]!;
    ctx.initializers.push(floatTensor(`${layer.name}/B`, [cout], b));
    inputs.push(`${layer.name}/B`);
  }
  const convOut = act === 'relu' ? `${layer.name}/conv` : last;
  ctx.nodes.push(
    node('Conv', inputs, [convOut], layer.name, [
      ints('kernel_shape', k),
      ints('strides', strides),
      ints('dilations', dil),
      ints('pads', [pads.top, pads.left, pads.bottom, pads.right]),
      int('group', 1),
    ]),
  );
  if (act === 'relu') ctx.nodes.push(node('Relu', [convOut], [last], `${layer.name}/relu`));
  ctx.value.set(layer.name, last);
  ctx.value.set(last, last);
}

/** A batch norm not folded into a conv: ONNX BatchNormalization on the channel axis (1 in NCHW / [N, C]). */
function exportBatchNorm(ctx: Ctx, gn: GraphNode): void {
  const { layer } = gn;
  const shape = inputShape(layer);
  const ch = shape[shape.length - 1]!;
  const bn = batchNormParams(layer, ch);
  const names = ['scale', 'B', 'mean', 'var'].map((s) => `${layer.name}/${s}`);
  [bn.gamma, bn.beta, bn.mean, bn.variance].forEach((v, i) => ctx.initializers.push(floatTensor(names[i]!, [ch], Float32Array.from(v))));
  ctx.nodes.push(node('BatchNormalization', [inputValue(ctx, gn), ...names], [layer.name], layer.name, [flt('epsilon', bn.epsilon)]));
  ctx.value.set(layer.name, layer.name);
}

function exportRelu(ctx: Ctx, gn: GraphNode): void {
  const { layer } = gn;
  if (!isPlainRelu(layer)) throw new Error(`exportOnnx: layer ${layer.name} (${layer.getClassName()}) is not a plain ReLU`);
  ctx.nodes.push(node('Relu', [inputValue(ctx, gn)], [layer.name], layer.name));
  ctx.value.set(layer.name, layer.name);
}

function exportAdd(ctx: Ctx, gn: GraphNode): void {
  const inputs = gn.inputs.map((_, i) => inputValue(ctx, gn, i));
  ctx.nodes.push(node(inputs.length === 2 ? 'Add' : 'Sum', inputs, [gn.layer.name], gn.layer.name));
  ctx.value.set(gn.layer.name, gn.layer.name);
}

function exportPool(ctx: Ctx, gn: GraphNode): void {
  const { layer } = gn;
  requireChannelsLast(layer);
  const c = config(layer);
  const k = pair(c.poolSize);
  const strides = c.strides == null ? k : pair(c.strides);
  const [, inH, inW] = inputShape(layer);
  if (c.padding !== 'same' && c.padding !== 'valid') throw new Error(`exportOnnx: layer ${layer.name}: padding ${String(c.padding)}`);
  const p = c.padding === 'same' ? samePads(inH!, inW!, k, strides, [1, 1]) : NO_PADS;
  const max = layer.getClassName() === 'MaxPooling2D';
  const attrs = [ints('kernel_shape', k), ints('strides', strides), ints('pads', [p.top, p.left, p.bottom, p.right])];
  if (!max) attrs.push(int('count_include_pad', 0));
  ctx.nodes.push(node(max ? 'MaxPool' : 'AveragePool', [inputValue(ctx, gn)], [layer.name], layer.name, attrs));
  ctx.value.set(layer.name, layer.name);
}

function exportGlobalAveragePool(ctx: Ctx, gn: GraphNode): void {
  const { layer } = gn;
  requireChannelsLast(layer);
  ctx.nodes.push(node('GlobalAveragePool', [inputValue(ctx, gn)], [`${layer.name}/nc11`], layer.name));
  ctx.nodes.push(node('Flatten', [`${layer.name}/nc11`], [layer.name], `${layer.name}/flatten`, [int('axis', 1)]));
  ctx.value.set(layer.name, layer.name);
}

/** tfjs flattens NHWC in H, W, C order: back to NHWC first. */
function exportFlatten(ctx: Ctx, gn: GraphNode): void {
  const { layer } = gn;
  const rank = inputShape(layer).length;
  if (rank === 2) {
    ctx.value.set(layer.name, inputValue(ctx, gn));
    return;
  }
  if (rank !== 4) throw new Error(`exportOnnx: layer ${layer.name}: Flatten of a rank-${rank} input is not supported`);
  ctx.nodes.push(node('Transpose', [inputValue(ctx, gn)], [`${layer.name}/nhwc`], `${layer.name}/nhwc`, [ints('perm', [0, 2, 3, 1])]));
  ctx.nodes.push(node('Flatten', [`${layer.name}/nhwc`], [layer.name], layer.name, [int('axis', 1)]));
  ctx.value.set(layer.name, layer.name);
}

function exportDense(ctx: Ctx, gn: GraphNode): void {
  const { layer } = gn;
  const rank = inputShape(layer).length;
  if (rank !== 2) throw new Error(`exportOnnx: layer ${layer.name}: Dense on a rank-${rank} input is not supported`);
  const act = activation(layer);
  const [kernelT, biasT] = layer.getWeights() as [tf.Tensor2D, tf.Tensor1D | undefined];
  const [din, dout] = kernelT.shape;
  ctx.initializers.push(floatTensor(`${layer.name}/W`, [din, dout], kernelT.dataSync() as Float32Array));
  const inputs = [inputValue(ctx, gn), `${layer.name}/W`];
  if (biasT) {
    ctx.initializers.push(floatTensor(`${layer.name}/B`, [dout], biasT.dataSync() as Float32Array));
    inputs.push(`${layer.name}/B`);
  }
  const gemmOut = act === 'relu' ? `${layer.name}/gemm` : layer.name;
  ctx.nodes.push(node('Gemm', inputs, [gemmOut], layer.name));
  if (act === 'relu') ctx.nodes.push(node('Relu', [gemmOut], [layer.name], `${layer.name}/relu`));
  ctx.value.set(layer.name, layer.name);
}

/** γ, β (1 and 0 when disabled), running mean and variance, ε of a channel-axis batch norm. */
function batchNormParams(layer: tf.layers.Layer, channels: number) {
  const c = config(layer);
  const rank = inputShape(layer).length;
  if (c.axis !== -1 && c.axis !== rank - 1) throw new Error(`exportOnnx: layer ${layer.name}: batch norm over axis ${String(c.axis)} (channels only)`);
  // tfjs weight order: gamma (if scale), beta (if center), moving mean, moving variance.
  const ws = (layer.getWeights() as tf.Tensor1D[]).map((t) => t.dataSync() as Float32Array);
  const gamma = c.scale !== false ? ws.shift()! : new Float32Array(channels).fill(1);
  const beta = c.center !== false ? ws.shift()! : new Float32Array(channels);
  const [mean, variance] = ws as [Float32Array, Float32Array];
  return { gamma, beta, mean, variance, epsilon: c.epsilon as number };
}

function isPlainRelu(layer: tf.layers.Layer): boolean {
  const c = config(layer);
  if (layer.getClassName() === 'Activation') return c.activation === 'relu';
  return (c.maxValue === undefined || c.maxValue === null) && (c.threshold === undefined || c.threshold === 0) && (c.negativeSlope === undefined || c.negativeSlope === 0);
}

// ---------------------------------------------------------------------------------------------------
// Protobuf helpers

const A = onnx.AttributeProto.AttributeType;

function node(opType: string, input: string[], output: string[], name: string, attribute: O.IAttributeProto[] = []): O.INodeProto {
  return { opType, input, output, name, attribute };
}
const ints = (name: string, values: readonly number[]): O.IAttributeProto => ({ name, type: A.INTS, ints: [...values] });
const int = (name: string, i: number): O.IAttributeProto => ({ name, type: A.INT, i });
const flt = (name: string, f: number): O.IAttributeProto => ({ name, type: A.FLOAT, f });
const str = (name: string, s: string): O.IAttributeProto => ({ name, type: A.STRING, s: new TextEncoder().encode(s) });

/** float32 initializer, raw little-endian bytes. */
function floatTensor(name: string, dims: number[], values: Float32Array): O.ITensorProto {
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return { name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: raw };
}

function int64Tensor(name: string, dims: number[], values: number[]): O.ITensorProto {
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
  return { name, dims, dataType: onnx.TensorProto.DataType.INT64, rawData: raw };
}

/** A float32 tensor value with the given dims (strings are symbolic). */
function valueInfo(name: string, dims: (number | string)[]): O.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}
