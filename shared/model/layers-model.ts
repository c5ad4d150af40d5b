/**
 * The backbone as a tfjs LayersModel from standard layers only (ZeroPadding2D + Conv2D 'valid' for PyTorch's
 * symmetric padding, BatchNormalization, ReLU, Add, GlobalAveragePooling2D), so a saved model loads in Node,
 * Workers and browsers without custom classes. Batch norm runs in inference mode (running statistics).
 */
import * as tf from '@tensorflow/tfjs';
import { BN_EPSILON, type ConvBnSpec, type NetSpec } from './spec.js';

const layerName = (param: string) => param.replace(/\.w$/, '').replace(/\./g, '_');

export function buildLayersModel(spec: NetSpec, param: (name: string) => tf.Tensor): tf.LayersModel {
  const assignments: Array<[tf.layers.Layer, tf.Tensor[]]> = [];

  const convBn = (x: tf.SymbolicTensor, u: ConvBnSpec): tf.SymbolicTensor => {
    const { name, k, stride, pad, cout } = u.conv;
    let h = x;
    if (pad > 0) h = tf.layers.zeroPadding2d({ padding: pad, name: `${layerName(name)}_pad` }).apply(h) as tf.SymbolicTensor;
    const conv = tf.layers.conv2d({ filters: cout, kernelSize: k, strides: stride, padding: 'valid', useBias: false, name: layerName(name) });
    h = conv.apply(h) as tf.SymbolicTensor;
    assignments.push([conv, [param(name)]]);
    const bn = tf.layers.batchNormalization({ axis: -1, epsilon: BN_EPSILON, name: layerName(u.bn) });
    h = bn.apply(h) as tf.SymbolicTensor;
    assignments.push([bn, ['gamma', 'beta', 'mean', 'var'].map((s) => param(`${u.bn}.${s}`))]);
    if (u.relu) h = tf.layers.reLU({ name: `${layerName(u.bn)}_relu` }).apply(h) as tf.SymbolicTensor;
    return h;
  };

  const input = tf.input({ shape: [spec.inputSize, spec.inputSize, spec.channels], name: 'image' });
  let h = convBn(input, spec.stem);
  if (spec.stemPool) {
    h = tf.layers.zeroPadding2d({ padding: 1, name: 'stem_pool_pad' }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: 'stem_pool' }).apply(h) as tf.SymbolicTensor;
  }
  for (const b of spec.blocks) {
    let y = h;
    for (const u of b.path) y = convBn(y, u);
    const s = b.shortcut ? convBn(h, b.shortcut) : h;
    const sum = tf.layers.add({ name: `${layerName(b.name)}_add` }).apply([y, s]) as tf.SymbolicTensor;
    h = tf.layers.reLU({ name: `${layerName(b.name)}_relu` }).apply(sum) as tf.SymbolicTensor;
  }
  const out = tf.layers.globalAveragePooling2d({ name: 'representation' }).apply(h) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'vicreg_backbone' });
  for (const [layer, values] of assignments) layer.setWeights(values);
  return model;
}
