import { describe, expect, it } from 'vitest';
import { pca } from '../shared/eval/pca.js';
import { symmetricEigen, symmetricEigenvalues } from '../shared/eval/symmetric-eigen.js';
import { ExactIndex } from '../shared/index/exact-index.js';

// The gallery map's maths (GET /v1/gallery/map): PCA over the d × d covariance with eigenvectors from
// shared/eval/symmetric-eigen.ts, and the index listing it is fed from.

/** A seeded uniform generator in [-0.5, 0.5). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, digits = 9): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(actual[i]).toBeCloseTo(expected[i]!, digits);
}

function expectFinite(p: ReturnType<typeof pca>): void {
  for (const xs of [...p.coords, ...p.axes, p.mean, p.variance, p.explained]) for (const x of xs) expect(Number.isFinite(x)).toBe(true);
}

describe('symmetricEigen', () => {
  it('gives orthonormal eigenvectors with A v = λ v, and the values symmetricEigenvalues gives, largest first', () => {
    const r = rng(7);
    for (const n of [1, 2, 3, 8, 33]) {
      const m = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) m[i * n + j] = m[j * n + i] = r();
      const { values, vectors } = symmetricEigen(m, n);
      expectClose(values, symmetricEigenvalues(m, n), 12);
      for (let j = 1; j < n; j++) expect(values[j]!).toBeLessThanOrEqual(values[j - 1]!);
      for (let j = 0; j < n; j++) {
        const v = vectors[j]!;
        const av = Array.from({ length: n }, (_, i) => dot(m.subarray(i * n, i * n + n), v));
        expectClose(av, Array.from(v, (x) => x * values[j]!), 10);
        for (let k = 0; k < n; k++) expect(dot(v, vectors[k]!)).toBeCloseTo(j === k ? 1 : 0, 10);
      }
    }
  });

  it('refuses a matrix of the wrong size', () => {
    expect(() => symmetricEigen([1, 2, 3], 2)).toThrow(/3 entries for a 2×2 matrix/);
  });
});

describe('pca', () => {
  it('points on a line: the first axis is the line, with all the variance; the second has none', () => {
    const u = [1 / 3, 2 / 3, -2 / 3];
    const c = [5, -1, 2];
    const ts = [-3, -1, 0, 0.5, 2, 4];
    const p = pca(ts.map((t) => c.map((ci, j) => ci + t * u[j]!)), 3);
    // |u| is largest at components 1 and 2 (equal): the first of them is made positive.
    expectClose(p.axes[0]!, u);
    expect(p.explained[0]).toBeCloseTo(1, 12);
    expect(p.explained[1]).toBe(0);
    const tMean = ts.reduce((a, b) => a + b, 0) / ts.length;
    expectClose(p.coords.map((xy) => xy[0]!), ts.map((t) => t - tMean));
    expect(p.coords.map((xy) => xy[1])).toEqual(ts.map(() => 0));
    expectClose(p.mean, c.map((ci, j) => ci + tMean * u[j]!));
    expectFinite(p);
  });

  it('points on a rotated ellipse: the axes are its axes, the variance shares a² : b², the coordinates a·cos θ and b·sin θ', () => {
    const a = 3;
    const b = 1;
    const phi = 0.4;
    const major = [Math.cos(phi), Math.sin(phi), 0, 0];
    const minor = [-Math.sin(phi), Math.cos(phi), 0, 0];
    const offset = [1, -2, 0.5, 7];
    const N = 64;
    const thetas = Array.from({ length: N }, (_, i) => (2 * Math.PI * i) / N);
    const points = thetas.map((t) => offset.map((o, j) => o + a * Math.cos(t) * major[j]! + b * Math.sin(t) * minor[j]!));
    const p = pca(points, 4);
    // Sign rule: major's largest component (cos φ) and minor's (cos φ, beside −sin φ) are already positive.
    expectClose(p.axes[0]!, major);
    expectClose(p.axes[1]!, minor);
    expect(p.variance[0]).toBeCloseTo((a * a) / 2, 10);
    expect(p.variance[1]).toBeCloseTo((b * b) / 2, 10);
    expect(p.explained[0]).toBeCloseTo((a * a) / (a * a + b * b), 10);
    expect(p.explained[1]).toBeCloseTo((b * b) / (a * a + b * b), 10);
    expectClose(p.coords.map((xy) => xy[0]!), thetas.map((t) => a * Math.cos(t)));
    expectClose(p.coords.map((xy) => xy[1]!), thetas.map((t) => b * Math.sin(t)));
  });

  it('the sign is fixed: the largest component of each axis is positive, whatever the order of the points', () => {
    const r = rng(3);
    for (let trial = 0; trial < 6; trial++) {
      const d = 5 + trial;
      // Anisotropic data, so the axes are well defined.
      const points = Array.from({ length: 40 }, () => Array.from({ length: d }, (_, j) => r() * (d - j)));
      const p = pca(points, d);
      for (const axis of p.axes) {
        const big = axis.reduce((best, x, j) => (Math.abs(x) > Math.abs(axis[best]!) ? j : best), 0);
        expect(axis[big]).toBeGreaterThan(0);
      }
      // Same points, reversed and mirrored through their mean: the map must not flip.
      const again = pca([...points].reverse(), d);
      expectClose(again.axes[0]!, p.axes[0]!);
      expectClose(again.axes[1]!, p.axes[1]!);
      expectClose(again.coords.map((xy) => xy[0]!).reverse(), p.coords.map((xy) => xy[0]!));
      expectClose(again.coords.map((xy) => xy[1]!).reverse(), p.coords.map((xy) => xy[1]!));
      const mirrored = pca(
        points.map((v) => v.map((x, j) => 2 * p.mean[j]! - x)),
        d,
      );
      expectClose(mirrored.axes[0]!, p.axes[0]!);
      expectClose(mirrored.coords.map((xy) => xy[0]!), p.coords.map((xy) => -xy[0]!));
    }
  });

  it('0, 1 and 2 points, identical points and fewer dimensions than axes give zeros, never NaN', () => {
    const none = pca([], 3);
    expect(none.coords).toEqual([]);
    expect(none.explained).toEqual([0, 0]);
    expectFinite(none);

    const one = pca([[0.6, 0.8, 0]], 3);
    expect(one.coords.map((xy) => Array.from(xy))).toEqual([[0, 0]]);
    expect(one.explained).toEqual([0, 0]);
    expectFinite(one);

    const two = pca(
      [
        [1, 0, 0],
        [0, 1, 0],
      ],
      3,
    );
    expectClose(two.axes[0]!, [Math.SQRT1_2, -Math.SQRT1_2, 0]);
    expect(two.explained[0]).toBeCloseTo(1, 12);
    expect(two.explained[1]).toBe(0);
    expectClose(two.coords.map((xy) => xy[0]!), [Math.SQRT1_2, -Math.SQRT1_2]);
    expect(two.coords.map((xy) => xy[1])).toEqual([0, 0]);
    expectFinite(two);

    const same = pca([[1, 2], [1, 2], [1, 2]], 2);
    expect(same.coords.map((xy) => Array.from(xy))).toEqual([
      [0, 0],
      [0, 0],
      [0, 0],
    ]);
    expect(same.explained).toEqual([0, 0]);
    expectFinite(same);

    const flat = pca([[1], [3], [2]], 1);
    expect(flat.axes[1]).toEqual(new Float64Array(1));
    expect(flat.explained).toEqual([1, 0]);
    expectClose(flat.coords.map((xy) => xy[0]!), [-1, 1, 0]);
    expect(flat.coords.map((xy) => xy[1])).toEqual([0, 0, 0]);
  });

  it('takes Float32Array rows and refuses a row of the wrong length', () => {
    const p = pca([Float32Array.of(1, 0), Float32Array.of(0, 1), Float32Array.of(-1, 0)], 2);
    expect(p.explained[0]! + p.explained[1]!).toBeCloseTo(1, 12);
    expect(() => pca([[1, 2], [1]], 2)).toThrow(/vector 1 has 1 components, expected 2/);
    expect(() => pca([], 0)).toThrow(/dimension/);
  });
});

describe('ExactIndex.entries (the map reads the serving index with it)', () => {
  function index(n: number): ExactIndex {
    const ix = new ExactIndex(3);
    // Inserted out of id order, with deletes that move rows around.
    for (let i = n - 1; i >= 0; i--) ix.upsertSync({ id: `p${String(i).padStart(3, '0')}`, vector: Float32Array.of(i + 1, 2, 0), label: i % 3 === 0 ? 'a' : i % 3 === 1 ? 'b' : undefined });
    return ix;
  }

  it('lists every entry in id order with its unit vector and label', async () => {
    const ix = index(6);
    await ix.delete('p002');
    const { entries, total } = await ix.entries();
    expect(total).toBe(5);
    expect(entries.map((e) => e.id)).toEqual(['p000', 'p001', 'p003', 'p004', 'p005']);
    expect(entries.map((e) => e.label)).toEqual(['a', 'b', 'a', 'b', undefined]);
    expect('label' in entries[4]!).toBe(false);
    const norm = Math.hypot(4, 2);
    expectClose(entries[2]!.vector, [4 / norm, 2 / norm, 0], 6);
    // A copy: changing it does not change the index.
    entries[2]!.vector[0] = 99;
    expect((await ix.entries()).entries[2]!.vector[0]).toBeCloseTo(4 / norm, 6);
  });

  it('filters by label and samples evenly past the limit (the same sample every time)', async () => {
    const ix = index(100);
    const a = await ix.entries({ label: 'a' });
    expect(a.total).toBe(34);
    expect(a.entries.every((e) => e.label === 'a')).toBe(true);
    const sample = await ix.entries({ limit: 10 });
    expect(sample.total).toBe(100);
    expect(sample.entries.map((e) => e.id)).toEqual(Array.from({ length: 10 }, (_, i) => `p${String(i * 10).padStart(3, '0')}`));
    expect(await ix.entries({ limit: 10 })).toEqual(sample);
    expect((await ix.entries({ label: 'a', limit: 1000 })).entries).toHaveLength(34);
    expect(await new ExactIndex(3).entries({ limit: 5 })).toEqual({ entries: [], total: 0 });
  });
});
