/**
 * npm run bench:batch — the bare model's throughput by batch size, in the pool of model threads the API
 * serves with (one per core, 1 wasm thread each, one batch in flight per thread), no HTTP at all.
 *
 * Why: the API's micro-batches are small (a few images at concurrency 8, ~10 at 32), and this shows what
 * a batch size costs per image. Batch sizes are measured in turn, 1 s each, BENCH_REPS times (default 6),
 * because this machine's speed drifts within minutes; the median per size is the result.
 * Options (env): BENCH_BATCHES (default 1,2,4,8,16,32,64), BENCH_REPS, MODEL_THREADS (default: cores).
 */
import * as tf from '@tensorflow/tfjs';
import { availableParallelism } from 'node:os';
import { modelToFiles } from '../shared/checkpoint/model-files.js';
import { DEFAULT_CPU_MODEL, representationDim } from '../shared/model/config.js';
import { createVicregNet } from '../shared/model/vicreg-net.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { startModelThreadPool } from '../shared/node/model-thread-pool.js';
import { bareThreadThroughput, medianOf } from './bare.js';

const BATCHES = (process.env.BENCH_BATCHES ?? '1,2,4,8,16,32,64').split(',').map(Number);
const REPS = Number(process.env.BENCH_REPS ?? 6);
const THREADS = Number(process.env.MODEL_THREADS ?? availableParallelism());

async function main(): Promise<void> {
  const backend = await initNodeBackend({ force: 'wasm', threads: 1, env: {}, log: () => {} });
  const model = createVicregNet(DEFAULT_CPU_MODEL, 0).toLayersModel();
  const files = { ...(await modelToFiles(model)), inputShape: [28, 28, 1] as [number, number, number], dimension: representationDim(DEFAULT_CPU_MODEL.backbone) };
  model.dispose();
  const pool = await startModelThreadPool(files, THREADS, { backend: 'wasm', threads: 1, env: {} });
  const rates: Record<number, number[]> = {};
  try {
    for (let rep = 0; rep < REPS; rep++) {
      for (const b of BATCHES) {
        (rates[b] ??= []).push(Math.round(await bareThreadThroughput(pool, b, 1, THREADS)));
      }
    }
  } finally {
    await pool.close();
  }
  const medians = Object.fromEntries(BATCHES.map((b) => [b, medianOf(rates[b]!)]));
  const best = Math.max(...Object.values(medians));
  for (const b of BATCHES) console.log(`batch ${String(b).padStart(3)}: median ${medians[b]} img/s (${(medians[b]! / best).toFixed(2)} of the best) over ${rates[b]!.join(', ')}`);
  console.log(JSON.stringify({ bench: 'batch', backend: backend.detail, tfBackend: tf.getBackend(), threads: THREADS, wasmThreadsEach: 1, reps: REPS, medianImgPerSec: medians, rates }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
