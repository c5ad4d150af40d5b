import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { knnEvaluate, knnVote } from '../shared/eval/knn.js';
import { Rng } from '../shared/util/rng.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
});

function gaussian(rng: Rng, n: number, d: number): Float32Array {
  return new Float32Array(n * d).map(() => rng.normal());
}

/** Float64 loops over every pair: the definition of weighted kNN, written a second way. */
function bruteForceKnn(tr: Float32Array, ytr: Int32Array, te: Float32Array, d: number, k: number, t: number, c: number) {
  const norm = (a: Float32Array, i: number) => {
    let s = 0;
    for (let j = 0; j < d; j++) s += a[i * d + j]! ** 2;
    return Math.sqrt(s);
  };
  const nTr = ytr.length;
  const nTe = te.length / d;
  const preds = new Int32Array(nTe);
  const ranks: number[][] = [];
  const probs: number[][] = [];
  for (let i = 0; i < nTe; i++) {
    const sims: [number, number][] = [];
    const ni = norm(te, i);
    for (let m = 0; m < nTr; m++) {
      let dot = 0;
      for (let j = 0; j < d; j++) dot += te[i * d + j]! * tr[m * d + j]!;
      sims.push([dot / (ni * norm(tr, m)), m]);
    }
    sims.sort((a, b) => b[0] - a[0]);
    const votes = new Array<number>(c).fill(0);
    for (const [s, m] of sims.slice(0, k)) votes[ytr[m]!]! += Math.exp(s / t);
    const order = votes.map((_, y) => y).sort((a, b) => votes[b]! - votes[a]! || a - b);
    preds[i] = order[0]!;
    ranks.push(order.slice(0, 5));
    const total = votes.reduce((a, b) => a + b, 0);
    probs.push(votes.map((v) => v / total));
  }
  return { preds, ranks, probs };
}

describe('knnEvaluate', () => {
  it('matches a brute-force float64 reference, across test and train block boundaries', async () => {
    const rng = new Rng(1);
    const d = 16;
    const c = 7;
    const tr = gaussian(rng, 300, d);
    const te = gaussian(rng, 90, d);
    const ytr = new Int32Array(300).map(() => rng.int(c));
    const yte = new Int32Array(90).map(() => rng.int(c));
    const ref = bruteForceKnn(tr, ytr, te, d, 20, 0.07, c);
    // Block sizes that do not divide the counts, so the merge of per-chunk top-k is exercised.
    const r = await knnEvaluate(
      { features: { data: tr, dim: d }, labels: ytr },
      { features: { data: te, dim: d }, labels: yte },
      { k: 20, numClasses: c, blockSize: 37, trainBlockSize: 53, returnScores: true },
    );
    expect(Array.from(r.predictions)).toEqual(Array.from(ref.preds));
    const top1 = ref.preds.reduce((a, p, i) => a + (p === yte[i] ? 1 : 0), 0) / 90;
    const top5 = ref.ranks.reduce((a, rk, i) => a + (rk.includes(yte[i]!) ? 1 : 0), 0) / 90;
    expect(r.top1).toBeCloseTo(top1, 10);
    expect(r.top5).toBeCloseTo(top5, 10);
    for (let i = 0; i < 90; i++) {
      for (let y = 0; y < c; y++) expect(r.scores![i * c + y]!).toBeCloseTo(ref.probs[i]![y]!, 4);
    }
  });

  it('scores separable clusters perfectly and random labels at chance, without leaking tensors', async () => {
    const rng = new Rng(2);
    const d = 32;
    const c = 10;
    const centres = gaussian(rng, c, d);
    const make = (n: number) => {
      const y = new Int32Array(n).map(() => rng.int(c));
      const x = new Float32Array(n * d).map((_, i) => centres[y[Math.floor(i / d)]! * d + (i % d)]! * 3 + rng.normal() * 0.3);
      return { x, y };
    };
    const a = make(2000);
    const b = make(1000);
    const before = tf.memory().numTensors;
    const xa = tf.tensor2d(a.x, [2000, d]);
    const xb = tf.tensor2d(b.x, [1000, d]);
    const sep = await knnEvaluate({ features: xa, labels: a.y }, { features: xb, labels: b.y }, { numClasses: c });
    expect(sep.top1).toBe(1);
    expect(sep.top5).toBe(1);
    // Same features, labels drawn independently of them: nothing to learn.
    const shuffledA = new Int32Array(2000).map(() => rng.int(c));
    const shuffledB = new Int32Array(1000).map(() => rng.int(c));
    const chance = await knnEvaluate({ features: xa, labels: shuffledA }, { features: xb, labels: shuffledB }, { numClasses: c });
    expect(chance.top1).toBeGreaterThan(0.05);
    expect(chance.top1).toBeLessThan(0.15);
    expect(chance.top5).toBeGreaterThan(0.4);
    expect(chance.top5).toBeLessThan(0.6);
    // The caller's tensors are untouched and nothing else is left behind.
    expect(xa.isDisposed).toBe(false);
    tf.dispose([xa, xb]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects mismatched inputs with actionable messages', async () => {
    const f = { data: new Float32Array(8), dim: 4 };
    await expect(knnEvaluate({ features: f, labels: new Int32Array(2) }, { features: { data: new Float32Array(6), dim: 3 }, labels: new Int32Array(2) })).rejects.toThrow(/4 dimensions.*3/);
    await expect(knnEvaluate({ features: f, labels: new Int32Array([0, 5]) }, { features: f, labels: new Int32Array(2) }, { numClasses: 3 })).rejects.toThrow(/label 5 at row 1/);
  });
});

describe('knnVote (single query)', () => {
  it('gives the same probabilities as the batched kNN for a query', async () => {
    const rng = new Rng(3);
    const d = 8;
    const c = 4;
    const tr = gaussian(rng, 120, d);
    const q = gaussian(rng, 1, d);
    const ytr = new Int32Array(120).map(() => rng.int(c));
    const r = await knnEvaluate({ features: { data: tr, dim: d }, labels: ytr }, { features: { data: q, dim: d }, labels: new Int32Array(1) }, { k: 10, numClasses: c, returnScores: true });
    const qn = Math.hypot(...q);
    const sims = Array.from({ length: 120 }, (_, m) => {
      let dot = 0;
      let nn = 0;
      for (let j = 0; j < d; j++) {
        dot += q[j]! * tr[m * d + j]!;
        nn += tr[m * d + j]! ** 2;
      }
      return dot / (qn * Math.sqrt(nn));
    });
    const p = knnVote(sims, ytr, 10, 0.07, c);
    expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    for (let y = 0; y < c; y++) expect(p[y]!).toBeCloseTo(r.scores![y]!, 4);
  });

  it('stays finite at a tiny temperature and handles k larger than the gallery', () => {
    const p = knnVote([0.9, 0.1, -0.5], [1, 0, 2], 50, 0.001, 3);
    expect(Array.from(p).every(Number.isFinite)).toBe(true);
    expect(p[1]).toBeCloseTo(1, 10);
    expect(() => knnVote([0.1], [0, 1])).toThrow(/2 labels for 1/);
  });
});
