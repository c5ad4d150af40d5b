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
 * The VICReg loss of two [n, d] embedding batches (two views of the same n images).
 *
 * invariance = mean over all n·d entries of (za − zb)²;
 * variance   = ½ Σ_branch mean_j relu(γ − sqrt(var_j + ε)), var with the unbiased (n − 1) estimate;
 * covariance = Σ_branch Σ_{i≠j} C_ij² / d, C the unbiased covariance matrix.
 *
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
      const invariance = tf.mean(tf.squaredDifference(a, b)) as tf.Scalar;
      const sa = branchStats(a, o.gamma, o.eps);
      const sb = branchStats(b, o.gamma, o.eps);
      const variance = tf.mul(tf.add(sa.hinge, sb.hinge), 0.5) as tf.Scalar;
      const covariance = tf.add(sa.offDiag, sb.offDiag) as tf.Scalar;
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

/**
 * Variance hinge and off-diagonal covariance of one branch. Σ C² is taken from whichever of the d×d
 * covariance zcᵀzc or the n×n Gram matrix zc·zcᵀ is smaller (equal Frobenius norms), so the cost is
 * min(n, d)²·max(n, d) and nothing n×d×d is built; Σ off-diagonal² = Σ C² − Σ diag(C)² needs no mask.
 */
function branchStats(z: tf.Tensor2D, gamma: number, eps: number): { hinge: tf.Scalar; offDiag: tf.Scalar } {
  const [n, d] = z.shape;
  const zc = tf.sub(z, tf.mean(z, 0, true)) as tf.Tensor2D;
  // The diagonal of C, computed directly: cheaper than extracting it from the matrix.
  const variances = tf.div(tf.sum(tf.square(zc), 0), n - 1); // [d]
  const std = tf.sqrt(tf.add(variances, eps));
  const hinge = tf.mean(tf.relu(tf.sub(gamma, std))) as tf.Scalar;
  const product = n < d ? outer(zc) : gram(zc);
  const sumSq = tf.div(tf.sum(tf.square(product)), (n - 1) * (n - 1));
  const offDiag = tf.div(tf.sub(sumSq, tf.sum(tf.square(variances))), d) as tf.Scalar;
  return { hinge, offDiag };
}

// zᵀz and z·zᵀ with hand-written gradients that use only untransposed matMuls: on the wasm backend a matMul
// with transposeA/transposeB (what autodiff of matMul emits) measured ~20× slower than transpose + matMul.
const gram = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const z = args[0] as tf.Tensor2D;
  (args[1] as tf.GradSaveFunc)([z]);
  return {
    value: tf.matMul(tf.transpose(z), z),
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => tf.matMul(saved[0] as tf.Tensor2D, tf.add(dy, tf.transpose(dy))),
  };
}) as (z: tf.Tensor2D) => tf.Tensor2D;

const outer = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
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
