/**
 * A pool of model threads holding the same network: each forward call goes to the thread with the fewest
 * batches in flight, so with one wasm thread each, two batches compute on two cores at once (one thread
 * with 2 wasm threads would contend with image decoding and HTTP for the same cores).
 */
import { startModelThread, type ModelThread, type ModelThreadFiles, type ModelThreadOptions } from './model-thread-client.js';

export interface ModelThreadPool extends ModelThread {
  /** Threads in the pool. */
  readonly size: number;
  /** Batches in flight per thread (for tests and metrics). */
  readonly inFlightByThread: number[];
}

/** Start `size` threads in parallel and load the files into each; if one fails, the others are closed. */
export async function startModelThreadPool(files: ModelThreadFiles, size: number, opts: ModelThreadOptions = {}): Promise<ModelThreadPool> {
  if (!(Number.isInteger(size) && size >= 1)) throw new RangeError(`model thread pool size must be an integer ≥ 1, got ${size}`);
  // Each thread receives its own copy of the files (postMessage clones them), so sharing them is safe.
  const started = await Promise.allSettled(Array.from({ length: size }, () => startModelThread(files, opts)));
  const threads = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(threads.map((t) => t.close()));
    throw failed.reason;
  }
  let next = 0;
  return {
    size,
    backend: `${threads[0]!.backend} × ${size} threads`,
    forwardPath: threads.every((t) => t.forwardPath === 'graph') ? 'graph' : 'predict',
    get inFlight() {
      return threads.reduce((a, t) => a + t.inFlight, 0);
    },
    get inFlightByThread() {
      return threads.map((t) => t.inFlight);
    },
    forward(input, n) {
      // Least loaded; ties rotate so idle threads take turns (and all stay warm).
      let best = next % size;
      for (let k = 1; k < size; k++) {
        const i = (next + k) % size;
        if (threads[i]!.inFlight < threads[best]!.inFlight) best = i;
      }
      next = best + 1;
      return threads[best]!.forward(input, n);
    },
    async close() {
      // Each thread finishes the batches it has before it ends.
      await Promise.all(threads.map((t) => t.close()));
    },
  };
}
