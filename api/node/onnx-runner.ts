/**
 * Node: serve a checkpoint's model.onnx on onnxruntime-node. It computes on its own native threads, so
 * the event loop keeps reading and decoding requests while a batch runs, without model threads.
 */
import { MODEL_ONNX } from '../../shared/checkpoint/manifest.js';
import type { NetworkRunner, RunNetwork, VerifiedCheckpoint } from '../checkpoint-source.js';

export const hasOnnx = (checkpoint: VerifiedCheckpoint): boolean => checkpoint.files.has(MODEL_ONNX);

export function runOnOnnxRuntime(opts: { threads: number }): RunNetwork {
  return async ({ manifest, model, files }): Promise<NetworkRunner> => {
    const bytes = files.get(MODEL_ONNX);
    if (!bytes) throw new Error(`checkpoint ${manifest.version} has no ${MODEL_ONNX}`);
    // Imported here so a platform without onnxruntime's binaries still serves on tfjs.
    const { createOnnxRunner } = await import('../../shared/node/onnx-runtime.js');
    const runner = await createOnnxRunner(bytes, { threads: opts.threads });
    // The tfjs copy was only needed for verification.
    model.dispose();
    const pre = manifest.preprocessing;
    const shape = [pre.inputSize, pre.inputSize, pre.channels] as const;
    return {
      forward: (input, n) => runner.forward(input, n, shape),
      runtime: `onnxruntime, ${opts.threads} thread${opts.threads === 1 ? '' : 's'}`,
      dispose: () => void runner.dispose(),
    };
  };
}
