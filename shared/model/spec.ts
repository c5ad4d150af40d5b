/**
 * The network as data: which convolutions, batch norms and linear layers, with stable parameter names.
 * Both the functional training forward (vicreg-net.ts) and the LayersModel export (layers-model.ts) walk this
 * one description, so they cannot drift apart.
 */
import { expanderDims, representationDim, type ModelConfig } from './config.js';

export interface ConvSpec {
  /** Parameter name of the kernel [k, k, cin, cout] (no bias: every conv is followed by batch norm). */
  name: string;
  k: number;
  stride: number;
  /** PyTorch padding: (k − 1) / 2 on every side. */
  pad: number;
  cin: number;
  cout: number;
}

export interface ConvBnSpec {
  conv: ConvSpec;
  /** Batch-norm parameter prefix: `${bn}.gamma`, `.beta`, `.mean`, `.var`. */
  bn: string;
  relu: boolean;
}

export interface BlockSpec {
  name: string;
  /** Main path; the last unit has no ReLU (it comes after the residual add). */
  path: ConvBnSpec[];
  /** 1×1 projection when the shape changes; otherwise the identity. */
  shortcut?: ConvBnSpec;
}

export interface LinearSpec {
  name: string;
  din: number;
  dout: number;
  bias: boolean;
  /** Batch norm + ReLU after this layer (all expander layers but the last). */
  bn?: string;
}

export interface NetSpec {
  inputSize: number;
  channels: number;
  stem: ConvBnSpec;
  /** Large stem only: 3×3/2 max-pool with padding 1. */
  stemPool: boolean;
  blocks: BlockSpec[];
  representationDim: number;
  expander: LinearSpec[];
}

export const BN_EPSILON = 1e-5; // torch.nn.BatchNorm default
export const BN_MOMENTUM = 0.1; // torch: running = (1 − m)·running + m·batch

function convBn(name: string, k: number, stride: number, cin: number, cout: number, relu: boolean): ConvBnSpec {
  return { conv: { name: `${name}.w`, k, stride, pad: (k - 1) / 2, cin, cout }, bn: `${name}.bn`, relu };
}

export function buildSpec(config: ModelConfig): NetSpec {
  const b = config.backbone;
  if (b.widths.length !== b.blocks.length) {
    throw new Error(`backbone.widths (${b.widths.length}) and backbone.blocks (${b.blocks.length}) must have the same length`);
  }
  const large = b.stem === 'large';
  const stem = convBn('stem.conv', large ? 7 : 3, large ? 2 : 1, b.channels, b.widths[0]!, true);
  const blocks: BlockSpec[] = [];
  let cin = b.widths[0]!;
  b.widths.forEach((w, stage) => {
    for (let j = 0; j < b.blocks[stage]!; j++) {
      const stride = stage > 0 && j === 0 ? 2 : 1;
      const name = `layer${stage + 1}.${j}`;
      const cout = b.block === 'bottleneck' ? w * 4 : w;
      const path =
        b.block === 'bottleneck'
          ? [
              convBn(`${name}.conv1`, 1, 1, cin, w, true),
              convBn(`${name}.conv2`, 3, stride, w, w, true), // stride on the 3×3, as torchvision's v1.5
              convBn(`${name}.conv3`, 1, 1, w, cout, false),
            ]
          : [convBn(`${name}.conv1`, 3, stride, cin, w, true), convBn(`${name}.conv2`, 3, 1, w, w, false)];
      const shortcut = stride !== 1 || cin !== cout ? convBn(`${name}.shortcut`, 1, stride, cin, cout, false) : undefined;
      blocks.push({ name, path, ...(shortcut ? { shortcut } : {}) });
      cin = cout;
    }
  });
  const rep = representationDim(b);
  const dims = [rep, ...expanderDims(config.expander)];
  const expander: LinearSpec[] = [];
  for (let i = 0; i + 1 < dims.length; i++) {
    const last = i + 2 === dims.length;
    expander.push({
      name: `expander.${i}`,
      din: dims[i]!,
      dout: dims[i + 1]!,
      bias: !last,
      ...(last ? {} : { bn: `expander.${i}.bn` }),
    });
  }
  return { inputSize: b.inputSize, channels: b.channels, stem, stemPool: large, blocks, representationDim: rep, expander };
}

export interface ParamSpec {
  name: string;
  shape: number[];
  /** How PyTorch initialises it. */
  init: { kind: 'uniform'; bound: number } | { kind: 'const'; value: number };
}

function bnParams(bn: string, c: number): { trainable: ParamSpec[]; state: ParamSpec[] } {
  return {
    trainable: [
      { name: `${bn}.gamma`, shape: [c], init: { kind: 'const', value: 1 } },
      { name: `${bn}.beta`, shape: [c], init: { kind: 'const', value: 0 } },
    ],
    state: [
      { name: `${bn}.mean`, shape: [c], init: { kind: 'const', value: 0 } },
      { name: `${bn}.var`, shape: [c], init: { kind: 'const', value: 1 } },
    ],
  };
}

/**
 * Parameters in a stable order (network order). PyTorch's defaults: conv and linear weights
 * kaiming-uniform with a = √5, i.e. U(±1/√fan_in); linear biases U(±1/√fan_in); BN γ = 1, β = 0.
 */
export function paramSpecs(spec: NetSpec): { trainable: ParamSpec[]; state: ParamSpec[] } {
  const trainable: ParamSpec[] = [];
  const state: ParamSpec[] = [];
  const addConvBn = (u: ConvBnSpec) => {
    const { name, k, cin, cout } = u.conv;
    trainable.push({ name, shape: [k, k, cin, cout], init: { kind: 'uniform', bound: 1 / Math.sqrt(cin * k * k) } });
    const p = bnParams(u.bn, cout);
    trainable.push(...p.trainable);
    state.push(...p.state);
  };
  addConvBn(spec.stem);
  for (const b of spec.blocks) {
    b.path.forEach(addConvBn);
    if (b.shortcut) addConvBn(b.shortcut);
  }
  for (const l of spec.expander) {
    const bound = 1 / Math.sqrt(l.din);
    trainable.push({ name: `${l.name}.w`, shape: [l.din, l.dout], init: { kind: 'uniform', bound } });
    if (l.bias) trainable.push({ name: `${l.name}.b`, shape: [l.dout], init: { kind: 'uniform', bound } });
    if (l.bn) {
      const p = bnParams(l.bn, l.dout);
      trainable.push(...p.trainable);
      state.push(...p.state);
    }
  }
  return { trainable, state };
}
