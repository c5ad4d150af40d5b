import * as tf from '@tensorflow/tfjs';

export interface LarsOptions {
  learningRate: number;
  /** Heavy-ball momentum; 0.9 as in VICReg. */
  momentum?: number;
  /** Trust coefficient η (0.001 official, 0.02 in the small recipe). */
  eta: number;
  /** L2 weight decay, added to the gradient of multi-dimensional parameters only. */
  weightDecay: number;
}

/**
 * LARS as in the VICReg reference. For every parameter p with gradient g:
 *   if p is not 1-D (weights):  g ← g + wd·p;  g ← g · (‖p‖ > 0 && ‖g‖ > 0 ? η‖p‖/‖g‖ : 1)
 *   (1-D parameters, i.e. biases and batch-norm scale/shift, get neither decay nor the trust ratio)
 *   μ ← momentum·μ + g;   p ← p − lr·μ
 * Momentum buffers are tf.Variables created on first use; getSlots/setSlots copy them for snapshots.
 */
export class LARS {
  private lr: number;
  readonly momentum: number;
  readonly eta: number;
  readonly weightDecay: number;
  private buffers: tf.Variable[] | null = null;
  private pending: Float32Array[] | null = null;

  constructor(opts: LarsOptions) {
    for (const [k, v] of Object.entries(opts)) {
      if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw new Error(`LARS: ${k} must be a finite number ≥ 0, got ${v}`);
    }
    this.lr = opts.learningRate;
    this.momentum = opts.momentum ?? 0.9;
    this.eta = opts.eta;
    this.weightDecay = opts.weightDecay;
  }

  get learningRate(): number {
    return this.lr;
  }

  setLearningRate(lr: number): void {
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`LARS: learning rate must be a finite number ≥ 0, got ${lr}`);
    this.lr = lr;
  }

  /** One update. `vars` must be the same list, in the same order, on every call (buffers are matched by index). */
  applyGradients(vars: tf.Variable[], grads: tf.Tensor[]): void {
    if (vars.length !== grads.length) throw new Error(`LARS: ${vars.length} variables but ${grads.length} gradients`);
    const buffers = this.ensureBuffers(vars);
    tf.tidy(() => {
      const one = tf.scalar(1);
      for (let i = 0; i < vars.length; i++) {
        const p = vars[i]!;
        let g = grads[i]!;
        if (!shapesEqual(p.shape, g.shape)) {
          throw new Error(`LARS: gradient ${i} has shape [${g.shape}] but variable ${p.name} is [${p.shape}]`);
        }
        if (p.rank !== 1) {
          if (this.weightDecay !== 0) g = tf.add(g, tf.mul(p, this.weightDecay));
          // sqrt(Σx²) rather than tf.norm, whose Pow/Abs kernels dominated the step on wasm.
          const pn = tf.sqrt(tf.sum(tf.square(p)));
          const gn = tf.sqrt(tf.sum(tf.square(g)));
          const q = tf.where(tf.logicalAnd(tf.greater(pn, 0), tf.greater(gn, 0)), tf.div(tf.mul(pn, this.eta), gn), one);
          g = tf.mul(g, q);
        }
        const mu = buffers[i]!;
        const next = tf.add(tf.mul(mu, this.momentum), g);
        mu.assign(next);
        p.assign(tf.sub(p, tf.mul(next, this.lr)));
      }
    });
  }

  /** Copies of the momentum buffers, in variable order (empty before the first update unless set). */
  getSlots(): Float32Array[] {
    if (this.buffers) return this.buffers.map((b) => Float32Array.from(b.dataSync() as Float32Array));
    return this.pending ? this.pending.map((s) => s.slice()) : [];
  }

  /** Restores momentum buffers saved by getSlots (before or after the first update). */
  setSlots(slots: Float32Array[]): void {
    if (this.buffers) {
      if (slots.length !== this.buffers.length) {
        throw new Error(`LARS: ${slots.length} slots given but the optimizer tracks ${this.buffers.length} variables`);
      }
      slots.forEach((s, i) => {
        const b = this.buffers![i]!;
        if (s.length !== b.size) throw new Error(`LARS: slot ${i} has ${s.length} values, expected ${b.size}`);
        tf.tidy(() => b.assign(tf.tensor(s, b.shape, 'float32')));
      });
    } else {
      this.pending = slots.map((s) => s.slice());
    }
  }

  /** Frees the momentum buffers. */
  dispose(): void {
    this.buffers?.forEach((b) => b.dispose());
    this.buffers = null;
    this.pending = null;
  }

  private ensureBuffers(vars: tf.Variable[]): tf.Variable[] {
    if (this.buffers) {
      if (this.buffers.length !== vars.length) {
        throw new Error(`LARS: called with ${vars.length} variables, but earlier with ${this.buffers.length}`);
      }
      return this.buffers;
    }
    const pending = this.pending;
    if (pending && pending.length !== vars.length) {
      throw new Error(`LARS: ${pending.length} restored slots but ${vars.length} variables`);
    }
    this.buffers = vars.map((v, i) => {
      const s = pending?.[i];
      if (s && s.length !== v.size) throw new Error(`LARS: restored slot ${i} has ${s.length} values, variable ${v.name} has ${v.size}`);
      return tf.tidy(() => tf.variable(s ? tf.tensor(s, v.shape, 'float32') : tf.zerosLike(v), false));
    });
    this.pending = null;
    return this.buffers;
  }
}

function shapesEqual(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
