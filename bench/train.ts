/**
 * `npm run bench:train`: training and inference throughput of the default CPU network at batch 256 on real
 * Fashion-MNIST, then (when /usr/bin/python3 has torch) the PyTorch reference's own bench in the same run.
 * A timed train step = draw a batch, two augmented views ('small' recipe), forward/backward both, LARS
 * update: what the reference's `bench` times too. The last stdout line is one JSON object.
 *
 * Env: VICREG_BACKEND / VICREG_THREADS (backend), BENCH_STEPS (timed steps, default 5), BENCH_WARMUP (2),
 * BENCH_BATCH (256), BENCH_TORCH=0 to skip PyTorch.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { batchToTensor } from '../shared/data/split.js';
import { FASHION_MNIST_NORM } from '../shared/data/dataset.js';
import { makeViews } from '../shared/augment/augment.js';
import { DEFAULT_CPU_MODEL } from '../shared/model/config.js';
import { createVicregNet } from '../shared/model/vicreg-net.js';
import { createTrainStep } from '../shared/train/step.js';
import { vicregLoss } from '../shared/loss/vicreg.js';
import { LARS } from '../shared/train/lars.js';
import { Rng } from '../shared/util/rng.js';
import { median } from './stats.js';

const Env = z.object({
  BENCH_STEPS: z.coerce.number().int().min(1).default(5),
  BENCH_WARMUP: z.coerce.number().int().min(0).default(2),
  BENCH_BATCH: z.coerce.number().int().min(2).default(256),
  BENCH_TORCH: z.enum(['0', '1']).default('1'),
});
const env = Env.parse(process.env);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const say = (m: string) => process.stderr.write(m + '\n');


const backend = await initNodeBackend();
const bs = env.BENCH_BATCH;
const ds = await loadFashionMnist('train', { limit: 20_000 });
const net = createVicregNet(DEFAULT_CPU_MODEL, 0);
const optimizer = new LARS({ learningRate: (0.3 * bs) / 256, eta: 0.02, weightDecay: 1e-4 });
const step = createTrainStep(net, optimizer, (za, zb) => vicregLoss(za, zb));
const rng = new Rng(0);
const batchIndices = () => Array.from({ length: bs }, () => rng.int(ds.n));

let augmentMs = 0;
const trainOnce = () => {
  const t0 = performance.now();
  const x = batchToTensor(ds, batchIndices());
  const [a, b] = makeViews(x, 'small', rng, FASHION_MNIST_NORM);
  x.dispose();
  augmentMs = performance.now() - t0;
  try {
    return step(a, b);
  } finally {
    tf.dispose([a, b]);
  }
};

say(`backend ${backend.detail}; ${net.parameterCount()} parameters; batch ${bs}; warm-up ${env.BENCH_WARMUP}, timed ${env.BENCH_STEPS}`);
for (let i = 0; i < env.BENCH_WARMUP; i++) trainOnce();
const tensorsBefore = tf.memory().numTensors;
const stepMs: number[] = [];
const augMs: number[] = [];
let last = { loss: NaN };
for (let i = 0; i < env.BENCH_STEPS; i++) {
  const t0 = performance.now();
  last = trainOnce();
  stepMs.push(performance.now() - t0);
  augMs.push(augmentMs);
  say(`  step ${i + 1}: ${stepMs.at(-1)!.toFixed(0)} ms (augment ${augmentMs.toFixed(0)} ms), loss ${last.loss.toFixed(3)}`);
}
const leaked = tf.memory().numTensors - tensorsBefore;
const trainStepS = median(stepMs) / 1000;

// Inference: the backbone in inference mode on one normalised batch.
const inferX = tf.tidy(() => {
  const x = batchToTensor(ds, Array.from({ length: bs }, (_, i) => i));
  return tf.div(tf.sub(x, FASHION_MNIST_NORM.mean[0]!), FASHION_MNIST_NORM.std[0]!) as tf.Tensor4D;
});
const inferMs: number[] = [];
for (let i = 0; i < 2 + env.BENCH_STEPS * 2; i++) {
  const t0 = performance.now();
  const r = net.representation(inferX);
  r.dataSync();
  r.dispose();
  if (i >= 2) inferMs.push(performance.now() - t0);
}
inferX.dispose();
const inferS = median(inferMs) / 1000;

const result: Record<string, unknown> = {
  backend: backend.name,
  backend_detail: backend.detail,
  threads: backend.threads,
  batch: bs,
  steps: env.BENCH_STEPS,
  train_step_s: trainStepS,
  train_images_per_s: bs / trainStepS,
  augment_pair_s: median(augMs) / 1000,
  infer_images_per_s: bs / inferS,
  tensors_leaked: leaked,
  parameters: net.parameterCount(),
};
say(`tfjs: ${(bs / trainStepS).toFixed(1)} train img/s, ${(bs / inferS).toFixed(0)} infer img/s`);
net.dispose();
optimizer.dispose();

// PyTorch reference, same network and batch, same machine, same run.
if (env.BENCH_TORCH === '1') {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    say('PyTorch not available (/usr/bin/python3 cannot import torch; apt-get install python3-torch): skipped');
  } else {
    const script = path.resolve(repoRoot, '../shared/ref/torch_vicreg.py');
    // Same thread count as ours, so the ratio compares like with like.
    const torchArgs = ['bench', '--batch', String(bs), '--steps', String(env.BENCH_STEPS), '--threads', String(Math.max(1, backend.threads))];
    say(`running /usr/bin/python3 ${path.relative(repoRoot, script)} ${torchArgs.join(' ')}`);
    const run = spawnSync('/usr/bin/python3', [script, ...torchArgs], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 15 * 60_000,
    });
    const line = run.stdout?.trim().split('\n').at(-1) ?? '';
    const parsed = z
      .object({ train_images_per_s: z.number(), infer_images_per_s: z.number(), train_step_s: z.number(), threads: z.number() })
      .safeParse((() => { try { return JSON.parse(line); } catch { return undefined; } })());
    if (run.status !== 0 || !parsed.success) {
      say(`PyTorch bench failed (exit ${run.status}): ${(run.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
    } else {
      const t = parsed.data;
      Object.assign(result, {
        torch_threads: t.threads,
        torch_train_step_s: t.train_step_s,
        torch_train_images_per_s: t.train_images_per_s,
        torch_infer_images_per_s: t.infer_images_per_s,
        train_ratio: (bs / trainStepS) / t.train_images_per_s,
        infer_ratio: (bs / inferS) / t.infer_images_per_s,
      });
      say(`PyTorch: ${t.train_images_per_s.toFixed(1)} train img/s, ${t.infer_images_per_s.toFixed(0)} infer img/s; ratio train ${((bs / trainStepS) / t.train_images_per_s).toFixed(2)}×`);
    }
  }
}
console.log(JSON.stringify(result));
