/**
 * Measuring the bare model in model threads, shared by the benchmarks (bench/api.ts, bench/batch-curve.ts).
 */
import type { ModelThread } from '../shared/node/model-thread-client.js';

/**
 * Images per second through `t` (a model thread or a pool) at `batch` images of 28×28×1 per call, with
 * `streams` batches kept in flight at once (1 for a single thread; the pool size for a pool). `onStart` runs
 * when the timed window opens, after the warm-up calls.
 */
export async function bareThreadThroughput(t: ModelThread, batch: number, seconds: number, streams = 1, onStart?: () => void): Promise<number> {
  // forward transfers its input, so each call gets a copy of one random batch (a copy costs ~0.02 ms).
  const template = new Float32Array(batch * 784).map(() => Math.random() - 0.5);
  for (let i = 0; i < 3; i++) await Promise.all(Array.from({ length: streams }, () => t.forward(template.slice(), batch)));
  let n = 0;
  onStart?.();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: streams }, async () => {
      while (performance.now() - t0 < seconds * 1000) {
        await t.forward(template.slice(), batch);
        n += batch;
      }
    }),
  );
  return n / ((performance.now() - t0) / 1000);
}

/** The median: the middle value, or the mean of the two middle values for an even count. */
export function medianOf(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
