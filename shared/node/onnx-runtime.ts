/**
 * A checkpoint's model.onnx (shared/model/onnx-export.ts) on onnxruntime-node's CPU provider: one
 * session, all graph optimisations, a fixed intra-op thread count. The batch dimension is dynamic, so
 * one runner serves any batch size.
 */
import * as ort from 'onnxruntime-node';

export interface OnnxRunnerOptions {
  /** Intra-op threads; default 1 (the API passes SERVING_THREADS). */
  threads?: number;
  /** Let idle pool threads spin (a little faster on a dedicated machine; default false, as cores are shared). */
  allowSpinning?: boolean;
}

export interface OnnxRunner {
  /**
   * `n` images as float32 NHWC, row-major, normalised as the manifest says → [n, D] row-major embeddings.
   * Concurrent calls are allowed (onnxruntime's Run is thread-safe).
   */
  forward(input: Float32Array, n: number, shape: readonly [h: number, w: number, c: number]): Promise<Float32Array>;
  /** The embedding width D (from the model's output shape). */
  readonly dim: number | undefined;
  dispose(): Promise<void>;
}

export async function createOnnxRunner(bytes: Uint8Array, opts: OnnxRunnerOptions = {}): Promise<OnnxRunner> {
  const threads = opts.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`onnx runner: threads must be a positive integer, got ${threads}`);
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    logSeverityLevel: 3,
    extra: { session: { intra_op: { allow_spinning: opts.allowSpinning ? '1' : '0' } } },
  });
  const inputName = session.inputNames[0]!;
  const outputName = session.outputNames[0]!;
  const outMeta = session.outputMetadata?.[0] as { isTensor?: boolean; shape?: readonly (number | string)[] } | undefined;
  const dimRaw = outMeta?.isTensor ? outMeta.shape?.[1] : undefined;
  let disposed = false;
  return {
    dim: typeof dimRaw === 'number' ? dimRaw : undefined,
    async forward(input, n, [h, w, c]) {
      if (disposed) throw new Error('onnx runner: disposed');
      if (input.length !== n * h * w * c) {
        throw new Error(`onnx runner: ${input.length} values for ${n} images of ${h}×${w}×${c} (expected ${n * h * w * c})`);
      }
      const x = new ort.Tensor('float32', input, [n, h, w, c]);
      const out = await session.run({ [inputName]: x });
      const y = out[outputName];
      if (!y || y.type !== 'float32' || y.dims.length !== 2 || y.dims[0] !== n) {
        throw new Error(`onnx runner: unexpected output ${y ? `${y.type} [${y.dims.join(', ')}]` : 'missing'}`);
      }
      return y.data as Float32Array;
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      await session.release();
    },
  };
}
