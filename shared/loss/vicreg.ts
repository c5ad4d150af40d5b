import * as tf from '@tensorflow/tfjs';

/** VICReg coefficients (paper defaults: λ = μ = 25, ν = 1, γ = 1, ε = 1e-4). */
export interface VicregOptions {
  /** Weight of the invariance (mean squared error) term. */
  lambda?: number;
  /** Weight of the variance (std hinge) term. */
  mu?: number;
  /** Weight of the covariance (off-diagonal) term. */
  nu?: number;
  /** Target standard deviation of every embedding dimension. */
  gamma?: number;
  /** Added to the variance before the square root, for numerical stability. */
  eps?: number;
}

export const VICREG_DEFAULTS: Required<VicregOptions> = { lambda: 25, mu: 25, nu: 1, gamma: 1, eps: 1e-4 };

export interface VicregTerms {
  /** λ·invariance + μ·variance + ν·covariance. */
  loss: tf.Scalar;
  invariance: tf.Scalar;
  variance: tf.Scalar;
  covariance: tf.Scalar;
}

type Embeddings = tf.Tensor2D | number[][];

/**
 * The VICReg loss of two [n, d] embedding batches Z, Z′ (two views of the same n images), eq. (6) of
 * Bardes, Ponce & LeCun (ICLR 2022):
 *
 *   ℓ(Z, Z′) = λ·s(Z, Z′) + μ·½[v(Z) + v(Z′)] + ν·[c(Z) + c(Z′)]
 *
 * with the three terms below. The ½ on the variance term is the official implementation's
 * (facebookresearch/vicreg main_vicreg.py); `variance` is reported with it, `covariance` as the sum.
 * Differentiable: call it inside tf.variableGrads. Returned scalars are owned by the caller.
 */
export function vicregLoss(za: Embeddings, zb: Embeddings, options: VicregOptions = {}): VicregTerms {
  const o = { ...VICREG_DEFAULTS, ...options };
  const a = asTensor2D(za, 'za');
  const b = asTensor2D(zb, 'zb');
  try {
    if (a.shape[0] !== b.shape[0] || a.shape[1] !== b.shape[1]) {
      throw new Error(`vicregLoss: za is [${a.shape}] but zb is [${b.shape}]; both views need the same [n, d] shape`);
    }
    const [n] = a.shape;
    if (n < 2) throw new Error(`vicregLoss: need a batch of at least 2 embeddings for the (n − 1) variance, got n=${n}`);
    return tf.tidy(() => {
      const invariance = invarianceTerm(a, b);
      const variance = tf.mul(tf.add(varianceTerm(a, o.gamma, o.eps), varianceTerm(b, o.gamma, o.eps)), 0.5) as tf.Scalar;
      const covariance = tf.add(covarianceTerm(a), covarianceTerm(b)) as tf.Scalar;
      const loss = tf.addN([
        tf.mul(invariance, o.lambda),
        tf.mul(variance, o.mu),
        tf.mul(covariance, o.nu),
      ]) as tf.Scalar;
      return { loss, invariance, variance, covariance };
    });
  } finally {
    // Only tensors we created from arrays are ours to free.
    if (a !== za) a.dispose();
    if (b !== zb) b.dispose();
  }
}

/** Invariance, eq. (5): s(Z, Z′) = (1/n) Σ_i ‖z_i − z′_i‖² / d, i.e. the mean of (z − z′)² over all n·d entries. */
export function invarianceTerm(z: tf.Tensor2D, zPrime: tf.Tensor2D): tf.Scalar {
  return tf.mean(tf.squaredDifference(z, zPrime)) as tf.Scalar;
}

/** Variance, eq. (1)–(2): v(Z) = (1/d) Σ_j max(0, γ − √(Var(z^j) + ε)), Var the unbiased (n − 1) estimate. */
export function varianceTerm(z: tf.Tensor2D, gamma: number, eps: number): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.relu(tf.sub(gamma, tf.sqrt(tf.add(columnVariances(z), eps))))) as tf.Scalar);
}

/** Covariance, eq. (3)–(4): c(Z) = (1/d) Σ_{i≠j} C(Z)²_ij, C(Z) = (1/(n − 1)) Σ_k (z_k − z̄)(z_k − z̄)ᵀ. */
export function covarianceTerm(z: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const [n, d] = z.shape;
    const zc = centred(z);
    // Σ C² is taken from whichever of the d×d scatter zcᵀzc or the n×n Gram matrix zc·zcᵀ is smaller (equal
    // Frobenius norms), so the cost is min(n, d)²·max(n, d) and nothing n×d×d is built; Σ off-diagonal² =
    // Σ C² − Σ diag(C)² needs no mask.
    const product = n < d ? gramMatrix(zc) : scatterMatrix(zc);
    const sumSquares = tf.div(tf.sum(tf.square(product)), (n - 1) * (n - 1));
    return tf.div(tf.sub(sumSquares, tf.sum(tf.square(columnVariances(z)))), d) as tf.Scalar;
  });
}

/** z − column mean. */
const centred = (z: tf.Tensor2D): tf.Tensor2D => tf.sub(z, tf.mean(z, 0, true)) as tf.Tensor2D;

/** The diagonal of C(Z): per-column unbiased variance, [d]. */
const columnVariances = (z: tf.Tensor2D): tf.Tensor1D => tf.div(tf.sum(tf.square(centred(z)), 0), z.shape[0] - 1) as tf.Tensor1D;

// zᵀz and z·zᵀ with hand-written gradients that use only untransposed matMuls: on the wasm backend a matMul
// with transposeA/transposeB (what autodiff of matMul emits) measured ~20× slower than transpose + matMul.

/** zᵀz, [d, d]: (n − 1)·C for centred z. */
const scatterMatrix = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const z = args[0] as tf.Tensor2D;
  (args[1] as tf.GradSaveFunc)([z]);
  return {
    value: tf.matMul(tf.transpose(z), z),
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => tf.matMul(saved[0] as tf.Tensor2D, tf.add(dy, tf.transpose(dy))),
  };
}) as (z: tf.Tensor2D) => tf.Tensor2D;

/** z·zᵀ, [n, n]: the Gram matrix of the rows. */
const gramMatrix = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const z = args[0] as tf.Tensor2D;
  (args[1] as tf.GradSaveFunc)([z]);
  return {
    value: tf.matMul(z, tf.transpose(z)),
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => tf.matMul(tf.add(dy, tf.transpose(dy)), saved[0] as tf.Tensor2D),
  };
}) as (z: tf.Tensor2D) => tf.Tensor2D;

function asTensor2D(z: Embeddings, name: string): tf.Tensor2D {
  if (z instanceof tf.Tensor) {
    if (z.rank !== 2) throw new Error(`vicregLoss: ${name} must be rank 2 [n, d], got shape [${z.shape}]`);
    return z;
  }
  if (!Array.isArray(z) || z.length === 0 || !Array.isArray(z[0])) {
    throw new Error(`vicregLoss: ${name} must be a tf.Tensor2D or a non-empty number[][]`);
  }
  return tf.tensor2d(z, undefined, 'float32');
}
