/**
 * The wasm conv gradients (shared/compute/wasm-kernels.ts) against the cpu backend's own kernels.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { Rng } from '../shared/util/rng.js';

type Pad = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];
interface Case {
  n: number;
  h: number;
  w: number;
  cin: number;
  cout: number;
  k: number;
  stride: number;
  pad: Pad;
}

const torchPad = (p: number): Pad => [[0, 0], [p, p], [p, p], [0, 0]];

const cases: Case[] = [];
for (const stride of [1, 2]) {
  for (const k of [1, 3]) {
    for (const pad of ['same', 'valid', torchPad((k - 1) / 2)] as Pad[]) {
      cases.push({ n: 3, h: 8, w: 8, cin: 4, cout: 6, k, stride, pad });
      cases.push({ n: 2, h: 9, w: 7, cin: 3, cout: 16, k, stride, pad });
    }
  }
}
// Channel counts and sizes of the default network, the large stem (7×7/2, pad 3) and asymmetric padding.
cases.push({ n: 4, h: 28, w: 28, cin: 1, cout: 16, k: 3, stride: 1, pad: torchPad(1) });
cases.push({ n: 4, h: 14, w: 14, cin: 32, cout: 64, k: 3, stride: 2, pad: torchPad(1) });
cases.push({ n: 4, h: 14, w: 14, cin: 32, cout: 64, k: 1, stride: 2, pad: 'valid' });
cases.push({ n: 2, h: 32, w: 32, cin: 3, cout: 8, k: 7, stride: 2, pad: torchPad(3) });
cases.push({ n: 2, h: 10, w: 11, cin: 5, cout: 7, k: 3, stride: 2, pad: [[0, 0], [0, 2], [2, 1], [0, 0]] });

function randomArray(rng: Rng, size: number): Float32Array {
  const a = new Float32Array(size);
  for (let i = 0; i < size; i++) a[i] = rng.normal();
  return a;
}

/** Gradients of Σ conv(x, w) ⊙ r with respect to x and w, on the active backend. */
function grads(c: Case, xv: Float32Array, wv: Float32Array, rv: Float32Array, outShape: number[]) {
  return tf.tidy(() => {
    const x = tf.tensor4d(xv, [c.n, c.h, c.w, c.cin]);
    const w = tf.tensor4d(wv, [c.k, c.k, c.cin, c.cout]);
    const r = tf.tensor(rv, outShape);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), r)),
    );
    const [dx, dw] = g([x, w]);
    return [dx!.dataSync().slice(), dw!.dataSync().slice()] as [Float32Array, Float32Array];
  });
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

describe('wasm conv gradients match the cpu backend', () => {
  beforeAll(async () => {
    const info = await initNodeBackend({ force: 'wasm', log: () => {} });
    expect(info.name).toBe('wasm');
  });

  const rng = new Rng(1234);
  for (const c of cases) {
    const label = `${c.k}×${c.k}/${c.stride} pad ${JSON.stringify(c.pad)} ${c.n}×${c.h}×${c.w}×${c.cin}→${c.cout}`;
    it(label, async () => {
      const xv = randomArray(rng, c.n * c.h * c.w * c.cin);
      const wv = randomArray(rng, c.k * c.k * c.cin * c.cout);
      await tf.setBackend('cpu');
      const outShape = tf.tidy(() => tf.conv2d(tf.zeros([c.n, c.h, c.w, c.cin]) as tf.Tensor4D, tf.zeros([c.k, c.k, c.cin, c.cout]) as tf.Tensor4D, c.stride, c.pad).shape);
      const rv = randomArray(rng, outShape.reduce((a, b) => a * b, 1));
      const [dxRef, dwRef] = grads(c, xv, wv, rv, outShape);
      await tf.setBackend('wasm');
      const before = tf.memory().numTensors;
      const [dx, dw] = grads(c, xv, wv, rv, outShape);
      expect(tf.memory().numTensors).toBe(before);
      expect(dx.length).toBe(dxRef.length);
      expect(dw.length).toBe(dwRef.length);
      expect(relErr(dx, dxRef)).toBeLessThan(1e-4);
      expect(relErr(dw, dwRef)).toBeLessThan(1e-4);
    });
  }
});
