import type { Preprocessing } from './model-source.js';

/**
 * The sanity probe a model passes before it may serve: a fixed batch of structured images (gradients,
 * checkers, stripes, a disc — never constant images) through its forward pass. A checkpoint whose files
 * match their sha256 can still be useless: NaN weights give NaN (or, after a ReLU, all-zero) embeddings,
 * a zeroed or collapsed last layer gives the same embedding for every image. Both are refused here, so
 * the host keeps the model it serves and reports why, as for a checksum failure.
 */

/** Probe images per check (every runtime computes 8 small images in milliseconds). */
export const PROBE_IMAGES = 8;

/**
 * Collapse threshold: the largest per-dimension std across the probe batch, relative to the RMS of the
 * outputs, must exceed this. Measured on the probe batch: the bundled checkpoint 2.35, the random test
 * fixture (test/helpers/api-fixtures.ts, seeds 1–99) 0.88–1.14, so both clear it by ~900× or more; a
 * model with constant outputs scores 0.
 */
export const MIN_RELATIVE_SPREAD = 1e-3;

/** A model that must not serve; the message says why. Thrown by load like a checksum failure. */
export class ModelSanityError extends Error {
  constructor(
    readonly version: string,
    readonly reason: string,
  ) {
    super(`model ${version} refused by the sanity probe: ${reason}`);
    this.name = 'ModelSanityError';
  }
}

/** Pixel value in [0, 1] of probe image k at (y, x), channel c. */
function pattern(k: number, y: number, x: number, c: number, size: number): number {
  const u = x / Math.max(1, size - 1);
  const v = y / Math.max(1, size - 1);
  const cell = Math.max(1, Math.round(size / 7));
  switch (k % PROBE_IMAGES) {
    case 0:
      return u; // horizontal gradient
    case 1:
      return v; // vertical gradient
    case 2:
      return (Math.floor(x / cell) + Math.floor(y / cell)) % 2; // checkerboard
    case 3:
      return Math.hypot(u - 0.5, v - 0.5) < 0.3 ? 1 : 0; // centred disc
    case 4:
      return Math.floor(y / cell) % 2 ? 0.9 : 0.1; // horizontal stripes
    case 5:
      return 1 - (u + v) / 2; // diagonal gradient, reversed
    case 6:
      return Math.abs(u - v) < 0.15 ? 1 : 0; // diagonal bar
    default:
      return 0.5 + 0.5 * Math.sin(2 * Math.PI * (3 * u + 2 * v + c / 3)); // plaid
  }
}

/** The probe batch, NHWC, normalised as the manifest says; a fresh array on every call (runners may take it). */
export function probeBatch(pre: Preprocessing, n = PROBE_IMAGES): Float32Array {
  const { inputSize: s, channels: ch } = pre;
  const out = new Float32Array(n * s * s * ch);
  let i = 0;
  for (let k = 0; k < n; k++)
    for (let y = 0; y < s; y++)
      for (let x = 0; x < s; x++)
        for (let c = 0; c < ch; c++) out[i++] = (pattern(k, y, x, c, s) - pre.mean[c]!) / pre.std[c]!;
  return out;
}

export interface ProbeStats {
  /** Largest per-dimension std across the batch. */
  maxStd: number;
  /** RMS of every output value. */
  rms: number;
  /** maxStd / rms (0 when both are 0). */
  spread: number;
}

/** Why these outputs (n × dimension, row-major) must not serve, or null when they look sane. */
export function judgeOutputs(out: Float32Array, n: number, dimension: number): { reason: string | null; stats: ProbeStats | null } {
  if (out.length !== n * dimension) return { reason: `model gives ${out.length} output values for ${n} images of dimension ${dimension}`, stats: null };
  let nan = 0;
  let inf = 0;
  for (const v of out) {
    if (Number.isNaN(v)) nan++;
    else if (!Number.isFinite(v)) inf++;
  }
  if (nan + inf > 0) {
    const what = [nan ? `NaN in ${nan}` : '', inf ? `±Infinity in ${inf}` : ''].filter(Boolean).join(', ');
    return { reason: `model outputs are not finite (${what} of ${out.length} values)`, stats: null };
  }
  let sumSq = 0;
  let maxStd = 0;
  for (let d = 0; d < dimension; d++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += out[i * dimension + d]!;
    mean /= n;
    let varSum = 0;
    for (let i = 0; i < n; i++) {
      const v = out[i * dimension + d]!;
      varSum += (v - mean) ** 2;
      sumSq += v * v;
    }
    maxStd = Math.max(maxStd, Math.sqrt(varSum / n));
  }
  const rms = Math.sqrt(sumSq / out.length);
  const spread = rms > 0 ? maxStd / rms : 0;
  const stats = { maxStd, rms, spread };
  if (!(spread > MIN_RELATIVE_SPREAD))
    return {
      reason: `model outputs are the same for every input (collapsed): largest std across ${n} probe images ${maxStd.toPrecision(3)}, output RMS ${rms.toPrecision(3)}`,
      stats,
    };
  return { reason: null, stats };
}

/**
 * Run the probe batch through `forward` and throw ModelSanityError when the outputs are not finite or
 * collapsed. Returns the statistics of a model that passed (for logs).
 */
export async function checkModelSanity(
  version: string,
  pre: Preprocessing,
  dimension: number,
  forward: (input: Float32Array, n: number) => Promise<Float32Array>,
): Promise<ProbeStats> {
  const out = await forward(probeBatch(pre), PROBE_IMAGES);
  const { reason, stats } = judgeOutputs(out, PROBE_IMAGES, dimension);
  if (reason !== null) throw new ModelSanityError(version, reason);
  return stats!;
}
