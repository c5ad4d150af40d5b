import { symmetricEigen } from './symmetric-eigen.js';

/** Points projected onto their first principal axes. */
export interface Projection {
  /** Per input vector, its coordinates along the axes (the centred vector's dot product with each). */
  coords: Float64Array[];
  /** The principal axes, unit length, most variance first; a zero vector for an axis the data cannot fill (k > dimension). */
  axes: Float64Array[];
  /** Variance of the points along each axis (population: divided by n). */
  variance: number[];
  /** Each axis's share of the total variance, in [0, 1]; 0 when the points have no variance at all. */
  explained: number[];
  mean: Float64Array;
}

/** Relative difference under which two components' magnitudes count as equal for the sign rule. */
const TIE = 1e-9;

/** An axis holding at most this share of the total variance is noise from rounding: its coordinates are set to 0. */
const NEGLIGIBLE = 1e-12;

/**
 * Principal component analysis: centre the vectors, form the d × d covariance and take its top-k
 * eigenvectors. Each axis's sign is fixed (its largest-magnitude component, the first of equals, is made
 * positive) so the same points always give the same picture, not a mirror image. 0 or 1 points, identical
 * points or fewer points than axes give zeros, never NaN. Work: O(n·d² + d³).
 */
export function pca(vectors: readonly ArrayLike<number>[], dimension: number, k = 2): Projection {
  const d = dimension;
  const n = vectors.length;
  if (!Number.isInteger(d) || d <= 0) throw new RangeError(`pca: dimension must be a positive integer, got ${d}`);
  if (!Number.isInteger(k) || k <= 0) throw new RangeError(`pca: k must be a positive integer, got ${k}`);
  const mean = new Float64Array(d);
  for (const [i, v] of vectors.entries()) {
    if (v.length !== d) throw new RangeError(`pca: vector ${i} has ${v.length} components, expected ${d}`);
    for (let j = 0; j < d; j++) mean[j] = mean[j]! + v[j]!;
  }
  if (n > 0) for (let j = 0; j < d; j++) mean[j] = mean[j]! / n;

  // Upper triangle of Σ (x − mean)(x − mean)ᵀ, then mirrored and divided by n.
  const cov = new Float64Array(d * d);
  const r = new Float64Array(d);
  for (const v of vectors) {
    for (let j = 0; j < d; j++) r[j] = v[j]! - mean[j]!;
    for (let i = 0; i < d; i++) {
      const ri = r[i]!;
      if (ri === 0) continue;
      const row = i * d;
      for (let j = i; j < d; j++) cov[row + j] = cov[row + j]! + ri * r[j]!;
    }
  }
  let total = 0;
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      const c = n > 0 ? cov[i * d + j]! / n : 0;
      cov[i * d + j] = c;
      cov[j * d + i] = c;
    }
    total += cov[i * d + i]!;
  }

  const { values, vectors: eig } = symmetricEigen(cov, d);
  const axes: Float64Array[] = [];
  const variance: number[] = [];
  const explained: number[] = [];
  for (let a = 0; a < k; a++) {
    if (a >= d) {
      axes.push(new Float64Array(d));
      variance.push(0);
      explained.push(0);
      continue;
    }
    const axis = eig[a]!;
    let max = 0;
    for (let j = 0; j < d; j++) max = Math.max(max, Math.abs(axis[j]!));
    // "Equal" allows for rounding, so components that tie exactly in theory pick the same one every time.
    let big = 0;
    while (Math.abs(axis[big]!) < max * (1 - TIE)) big++;
    if (axis[big]! < 0) for (let j = 0; j < d; j++) axis[j] = -axis[j]!;
    // Rounding can leave a zero eigenvalue slightly negative; a variance is not.
    const lambda = Math.max(0, values[a]!);
    const real = total > 0 && lambda > NEGLIGIBLE * total;
    axes.push(axis);
    variance.push(real ? lambda : 0);
    explained.push(real ? Math.min(1, lambda / total) : 0);
  }

  const coords = vectors.map((v) => {
    const out = new Float64Array(k);
    for (let a = 0; a < k; a++) {
      if (variance[a] === 0) continue;
      const axis = axes[a]!;
      let s = 0;
      for (let j = 0; j < d; j++) s += (v[j]! - mean[j]!) * axis[j]!;
      out[a] = s;
    }
    return out;
  });
  return { coords, axes, variance, explained, mean };
}
