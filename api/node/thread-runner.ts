/**
 * Node: run the serving network in a model thread (shared/node/model-thread.ts), so the event loop keeps
 * reading and decoding requests while a batch computes. The checkpoint is verified on the main thread
 * (checkpoint-source); its verified model.json and weights.bin bytes are handed to the thread, which
 * loads them itself (no second download).
 */
import { MODEL_JSON, WEIGHTS_BIN } from '../../shared/checkpoint/manifest.js';
import { startModelThread, type ModelThreadOptions } from '../../shared/node/model-thread-client.js';
import type { RunNetwork } from '../checkpoint-source.js';

export function runInModelThread(opts: ModelThreadOptions & { onError?: (err: Error) => void } = {}): RunNetwork {
  return async ({ manifest, model, files }) => {
    // The main-thread copy was only needed for verification.
    model.dispose();
    const pre = manifest.preprocessing;
    const thread = await startModelThread(
      {
        modelJson: files.get(MODEL_JSON)!,
        weightsBin: files.get(WEIGHTS_BIN)!,
        inputShape: [pre.inputSize, pre.inputSize, pre.channels],
        dimension: manifest.representationDim,
      },
      opts,
    );
    return {
      forward: (input, n) => thread.forward(input, n),
      // The thread finishes the batches it has before it ends.
      dispose: () => void thread.close().catch((err: Error) => opts.onError?.(err)),
    };
  };
}
