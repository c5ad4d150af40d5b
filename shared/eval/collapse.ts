import * as tf from '@tensorflow/tfjs';
import { toTensor2D, type FeatureInput } from './features.js';
import { l2Normalise } from './knn.js';
import { symmetricEigenvalues } from './symmetric-eigen.js';

export interface RepresentationStats {
  /** Mean over dimensions of the per-dimension (unbiased) std of the raw features. 0 = collapsed. */
  std: number;
  /**
   * The same on L2-normalised rows. Scale-free: ≈ 1/√d for well-spread features, → 0 at collapse
   * (the quantity the VICReg and SimSiam papers plot).
   */
  normStd: number;
  /** RankMe (Garrido et al. 2023): exp of the entropy of the normalised singular values; 1 … min(n, d). */
  effectiveRank: number;
  /** Singular values of the feature matrix, descending (those below float32 noise set to 0). */
  singularValues: Float64Array;
}

/**
 * Collapse statistics of a feature matrix (n × d). Singular values come from the eigenvalues of the
 * smaller Gram matrix (d × d or n × n, computed on the backend) so any d ≤ 2048 is cheap.
 */
export async function representationStats(features: FeatureInput): Promise<RepresentationStats> {
  const input = toTensor2D(features);
  try {
    const [n, d] = input.tensor.shape;
    if (n < 2) throw new Error(`representationStats: need at least 2 rows, got ${n}`);
    const [stdT, normStdT, gramT] = tf.tidy(() => {
      const x = input.tensor;
      const colStd = (m: tf.Tensor2D) => tf.moments(m, 0).variance.mul(n / (n - 1)).sqrt().mean();
      const gram = n >= d ? x.transpose().matMul(x) : x.matMul(x.transpose());
      return [colStd(x), colStd(l2Normalise(x)), gram];
    });
    const [std, normStd, gram] = await Promise.all([stdT.data(), normStdT.data(), gramT.data()]);
    tf.dispose([stdT, normStdT, gramT]);
    const m = Math.min(n, d);
    const singularValues = singularValuesFromGram(gram, m);
    return { std: std[0]!, normStd: normStd[0]!, effectiveRank: rankMe(singularValues), singularValues };
  } finally {
    if (input.owned) input.tensor.dispose();
  }
}

/**
 * σ = √λ of the Gram matrix. Eigenvalues below λmax · m · 2⁻²³ are float32 rounding of the Gram's
 * entries, not signal; they are zeroed so a collapsed matrix reads rank 1 rather than 1 + noise.
 */
export function singularValuesFromGram(gram: ArrayLike<number>, m: number): Float64Array {
  const lambda = symmetricEigenvalues(gram, m);
  const floor = Math.max(0, lambda[0]!) * m * 2 ** -23;
  return lambda.map((l) => (l > floor ? Math.sqrt(l) : 0));
}

/** RankMe: p_k = σ_k / Σσ + ε, rank = exp(−Σ p_k log p_k). All-zero σ (no signal at all) gives 1. */
export function rankMe(singularValues: ArrayLike<number>, eps = 1e-7): number {
  let total = 0;
  for (let i = 0; i < singularValues.length; i++) total += singularValues[i]!;
  if (!(total > 0)) return 1;
  let h = 0;
  for (let i = 0; i < singularValues.length; i++) {
    const p = singularValues[i]! / total + eps;
    h -= p * Math.log(p);
  }
  return Math.exp(h);
}
