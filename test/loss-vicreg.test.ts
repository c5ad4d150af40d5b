import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { vicregLoss } from '../shared/index.js';

const Golden = z.object({
  note: z.string(),
  cases: z.array(
    z.object({
      n: z.number(),
      d: z.number(),
      kind: z.string(),
      za: z.array(z.array(z.number())),
      zb: z.array(z.array(z.number())),
      invariance: z.number(),
      variance: z.number(),
      covariance: z.number(),
      loss: z.number(),
    }),
  ),
});
const golden = Golden.parse(JSON.parse(readFileSync(new URL('./fixtures/vicreg_loss.json', import.meta.url), 'utf8')));

function rel(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
}

/** Float64 VICReg written out with loops (a second, independent reading of the definition). */
function loss64(za: number[][], zb: number[][], lam = 25, mu = 25, nu = 1, gamma = 1, eps = 1e-4): number {
  const n = za.length;
  const d = za[0]!.length;
  let inv = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) inv += (za[i]![j]! - zb[i]![j]!) ** 2;
  inv /= n * d;
  let v = 0;
  let c = 0;
  for (const z of [za, zb]) {
    const m = Array.from({ length: d }, (_, j) => z.reduce((s, r) => s + r[j]!, 0) / n);
    for (let p = 0; p < d; p++) {
      for (let q = 0; q < d; q++) {
        let s = 0;
        for (let i = 0; i < n; i++) s += (z[i]![p]! - m[p]!) * (z[i]![q]! - m[q]!);
        s /= n - 1;
        if (p === q) v += Math.max(0, gamma - Math.sqrt(s + eps)) / d / 2;
        else c += (s * s) / d;
      }
    }
  }
  return lam * inv + mu * v + nu * c;
}

describe('vicregLoss on wasm', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
    await tf.ready();
  });

  it.each(golden.cases.map((c) => [`${c.kind} n=${c.n} d=${c.d}`, c] as const))(
    'matches the golden case %s to 1e-4 relative',
    (_name, c) => {
      const t = vicregLoss(c.za, c.zb);
      const got = {
        loss: t.loss.dataSync()[0]!,
        invariance: t.invariance.dataSync()[0]!,
        variance: t.variance.dataSync()[0]!,
        covariance: t.covariance.dataSync()[0]!,
      };
      tf.dispose([t.loss, t.invariance, t.variance, t.covariance]);
      for (const k of ['loss', 'invariance', 'variance', 'covariance'] as const) {
        expect(rel(got[k], c[k]), `${k}: got ${got[k]}, want ${c[k]}`).toBeLessThan(1e-4);
      }
    },
  );

  it('takes tensors as well as arrays, and each coefficient is settable', () => {
    const c = golden.cases[1]!;
    const za = tf.tensor2d(c.za);
    const zb = tf.tensor2d(c.zb);
    const opts = { lambda: 2, mu: 3, nu: 0.5, gamma: 0.7, eps: 1e-3 };
    const t = vicregLoss(za, zb, opts);
    const want = loss64(c.za, c.zb, 2, 3, 0.5, 0.7, 1e-3);
    expect(rel(t.loss.dataSync()[0]!, want)).toBeLessThan(1e-4);
    // The weighted sum is consistent with the returned terms.
    const [l, i, v, cv] = [t.loss, t.invariance, t.variance, t.covariance].map((s) => s.dataSync()[0]!);
    expect(rel(l!, 2 * i! + 3 * v! + 0.5 * cv!)).toBeLessThan(1e-5);
    // The caller's tensors are not disposed by the loss.
    expect(za.isDisposed).toBe(false);
    tf.dispose([za, zb, t.loss, t.invariance, t.variance, t.covariance]);
  });

  // n ≥ d goes through the d×d covariance, n < d through the n×n Gram matrix: check both paths.
  it.each([[6, 5], [4, 7]])('has gradients matching float64 finite differences (n=%i, d=%i)', (n, d) => {
    const rng = mulberry(7 + n);
    const za = Array.from({ length: n }, () => Array.from({ length: d }, () => rng() * 2 - 1));
    const zb = za.map((r) => r.map((x) => x + 0.3 * (rng() - 0.5)));
    const a = tf.tensor2d(za);
    const b = tf.tensor2d(zb);
    const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => {
      const t = vicregLoss(x as tf.Tensor2D, y as tf.Tensor2D);
      tf.dispose([t.invariance, t.variance, t.covariance]);
      return t.loss;
    })([a, b]);
    const gA = ga!.arraySync() as number[][];
    const gB = gb!.arraySync() as number[][];
    tf.dispose([a, b, ga!, gb!]);
    const h = 1e-6;
    let worst = 0;
    for (const [which, z, g] of [[0, za, gA], [1, zb, gB]] as const) {
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < d; j++) {
          const plus = z.map((r) => r.slice());
          const minus = z.map((r) => r.slice());
          plus[i]![j]! += h;
          minus[i]![j]! -= h;
          const fp = which === 0 ? loss64(plus, zb) : loss64(za, plus);
          const fm = which === 0 ? loss64(minus, zb) : loss64(za, minus);
          const num = (fp - fm) / (2 * h);
          worst = Math.max(worst, Math.abs(num - g[i]![j]!) / Math.max(1, Math.abs(num)));
        }
      }
    }
    expect(worst).toBeLessThan(1e-3);
  });

  it('matches a float64 loop implementation when n < d (Gram-matrix path)', () => {
    const rng = mulberry(3);
    const za = Array.from({ length: 16 }, () => Array.from({ length: 40 }, () => rng() * 2 - 1));
    const zb = za.map((r) => r.map((x) => 0.8 * x + 0.4 * (rng() - 0.5)));
    const t = vicregLoss(za, zb);
    expect(rel(t.loss.dataSync()[0]!, loss64(za, zb))).toBeLessThan(1e-4);
    tf.dispose([t.loss, t.invariance, t.variance, t.covariance]);
  });

  it('does not leak tensors, forward or backward, and rejects bad shapes clearly', () => {
    const za = tf.variable(tf.randomNormal([32, 16])) as tf.Variable<tf.Rank.R2>;
    const zb = tf.variable(tf.randomNormal([32, 16])) as tf.Variable<tf.Rank.R2>;
    const before = tf.memory().numTensors;
    for (let k = 0; k < 3; k++) {
      const { value, grads } = tf.variableGrads(() => tf.tidy(() => vicregLoss(za, zb).loss));
      value.dispose();
      tf.dispose(Object.values(grads));
    }
    const t = vicregLoss(za, zb);
    tf.dispose([t.loss, t.invariance, t.variance, t.covariance]);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => vicregLoss(za, tf.zeros([32, 8]) as tf.Tensor2D)).toThrow(/same \[n, d\] shape/);
    expect(() => vicregLoss([[1, 2]], [[1, 2]])).toThrow(/at least 2/);
    tf.dispose([za, zb]);
  });

  it('forward + backward take the fast path on wasm: untransposed matMuls only, none of n×d×d cost; plain autodiff does not', () => {
    // On wasm a matMul with transposed operands (what autodiff of zcᵀ·zc emits) is many times slower than
    // transpose + matMul: checking which kernels run, rather than timing them, gives the same verdict on
    // a loaded machine as on an idle one.
    const grads = (f: (x: tf.Tensor2D, y: tf.Tensor2D) => tf.Scalar, n: number, d: number) => {
      const [za, zb] = [tf.randomNormal([n, d]), tf.randomNormal([n, d])] as tf.Tensor2D[];
      const calls = recordMatMuls(() => {
        const g = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.tidy(() => f(x as tf.Tensor2D, y as tf.Tensor2D)))([za!, zb!]);
        tf.dispose(g);
      });
      tf.dispose([za!, zb!]);
      return calls;
    };
    const ours = (x: tf.Tensor2D, y: tf.Tensor2D) => vicregLoss(x, y).loss;
    for (const [n, d] of [
      [256, 512],
      [600, 32],
    ] as const) {
      const calls = grads(ours, n, d);
      expect(calls.length, `n=${n} d=${d}`).toBeGreaterThan(0);
      for (const c of calls) {
        expect(c, `n=${n} d=${d}`).toMatchObject({ transposeA: false, transposeB: false });
        expect(c.multiplyAdds, `n=${n} d=${d}: a [${c.a}] × b [${c.b}]`).toBeLessThanOrEqual(Math.min(n, d) ** 2 * Math.max(n, d));
      }
    }
    // The textbook formulation, for contrast: the recorder does see the transposed operands autodiff emits.
    const naive = (x: tf.Tensor2D, y: tf.Tensor2D) => {
      const term = (z: tf.Tensor2D) => {
        const zc = tf.sub(z, tf.mean(z, 0, true)) as tf.Tensor2D;
        const cov = tf.div(tf.matMul(zc, zc, true, false), 255);
        const v = tf.div(tf.sum(tf.square(zc), 0), 255);
        const hinge = tf.mean(tf.relu(tf.sub(1, tf.sqrt(tf.add(v, 1e-4)))));
        return [hinge, tf.div(tf.sub(tf.sum(tf.square(cov)), tf.sum(tf.square(v))), 512)];
      };
      const [ha, ca] = term(x);
      const [hb, cb] = term(y);
      return tf.addN([tf.mul(tf.mean(tf.squaredDifference(x, y)), 25), tf.mul(tf.add(ha!, hb!), 12.5), ca!, cb!]) as tf.Scalar;
    };
    expect(grads(naive, 256, 512).some((c) => c.transposeA || c.transposeB)).toBe(true);
  });
});

interface MatMulCall {
  transposeA: boolean;
  transposeB: boolean;
  a: number[];
  b: number[];
  multiplyAdds: number;
}

/** Every BatchMatMul kernel the backend runs during f, with its attributes (the kernel is wrapped, then restored). */
function recordMatMuls(f: () => void): MatMulCall[] {
  const backend = tf.getBackend();
  const original = tf.getKernel('BatchMatMul', backend);
  if (!original) throw new Error(`no BatchMatMul kernel on ${backend}`);
  const calls: MatMulCall[] = [];
  tf.unregisterKernel('BatchMatMul', backend);
  tf.registerKernel({
    ...original,
    kernelFunc: (args) => {
      const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const { transposeA = false, transposeB = false } = args.attrs as { transposeA?: boolean; transposeB?: boolean };
      const [ra, ca] = a.shape.slice(-2) as [number, number];
      const [rb, cb] = b.shape.slice(-2) as [number, number];
      const batch = Math.max(a.shape.slice(0, -2).reduce((p, x) => p * x, 1), b.shape.slice(0, -2).reduce((p, x) => p * x, 1));
      const [m, k] = transposeA ? [ca, ra] : [ra, ca];
      const p = transposeB ? rb : cb;
      calls.push({ transposeA, transposeB, a: [...a.shape], b: [...b.shape], multiplyAdds: batch * m * k * p });
      return original.kernelFunc(args);
    },
  });
  try {
    f();
  } finally {
    tf.unregisterKernel('BatchMatMul', backend);
    tf.registerKernel(original);
  }
  return calls;
}

/** Small deterministic generator for test inputs. */
function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
