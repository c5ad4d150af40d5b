/**
 * Node: run the serving network in a model thread (shared/node/model-thread.ts), so the event loop keeps
 * reading and decoding requests while a batch computes. The checkpoint is verified on the main thread
 * (checkpoint-source); its verified model.json and weights.bin bytes are handed to the thread, which
 * loads them itself (no second download). With `poolSize` > 1, a pool of threads
 * (shared/node/model-thread-pool.ts) takes one batch each, so batches compute on several cores at once.
 */
import { MODEL_JSON, WEIGHTS_BIN } from '../../shared/checkpoint/manifest.js';
import type { ModelThreadOptions } from '../../shared/node/model-thread-client.js';
import { startModelThreadPool } from '../../shared/node/model-thread-pool.js';
import type { RunNetwork } from '../checkpoint-source.js';

export interface ModelThreadRunnerOptions extends ModelThreadOptions {
  /** Model threads in the pool (default 1). */
  poolSize?: number;
  onError?: (err: Error) => void;
}

export function runInModelThread(opts: ModelThreadRunnerOptions = {}): RunNetwork {
  return async ({ manifest, model, files }) => {
    // The main-thread copy was only needed for verification.
    model.dispose();
    const pre = manifest.preprocessing;
    const thread = await startModelThreadPool(
      {
        modelJson: files.get(MODEL_JSON)!,
        weightsBin: files.get(WEIGHTS_BIN)!,
        inputShape: [pre.inputSize, pre.inputSize, pre.channels],
        dimension: manifest.representationDim,
      },
      opts.poolSize ?? 1,
      opts,
    );
    return {
      forward: (input, n) => thread.forward(input, n),
      parallelism: thread.size,
      runtime: `${thread.backend}; ${thread.forwardPath}`,
      // Every thread finishes the batches it has before it ends.
      dispose: () => void thread.close().catch((err: Error) => opts.onError?.(err)),
    };
  };
}
