/**
 * Inference throughput of a checkpoint's backbone at batch 256 on real Fashion-MNIST test images:
 * onnxruntime on the ONNX export (shared/model/onnx-export.ts), tfjs LayersModel.predict and the compiled
 * serving graph on the chosen tfjs backend, then (when /usr/bin/python3 has torch) the PyTorch reference's
 * own `bench` in the same run, all with the same thread count. Also checks onnxruntime against predict on
 * the bench batch. The last stdout line is one JSON object.
 *
 * Env: VICREG_BACKEND / VICREG_THREADS (tfjs backend; the thread count is used for onnxruntime and PyTorch
 * too), BENCH_CHECKPOINT (folder, default checkpoints/bundled), BENCH_BATCH (256), BENCH_RUNS (timed
 * forward passes, 10), BENCH_TORCH=0 to skip PyTorch.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { ModelConfig } from '../shared/model/config.js';
import { exportOnnx } from '../shared/model/onnx-export.js';
import { servingForward } from '../shared/model/serving-graph.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { loadCheckpointDir } from '../shared/node/checkpoint-dir.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { createOnnxRunner } from '../shared/node/onnx-runtime.js';
import { median } from './stats.js';

const Env = z.object({
  BENCH_CHECKPOINT: z.string().default('checkpoints/bundled'),
  BENCH_BATCH: z.coerce.number().int().min(1).default(256),
  BENCH_RUNS: z.coerce.number().int().min(1).default(10),
  BENCH_TORCH: z.enum(['0', '1']).default('1'),
});
const env = Env.parse(process.env);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const say = (m: string) => process.stderr.write(m + '\n');

/** Median seconds of `runs` calls after 2 warm-up calls. */
async function time(runs: number, f: () => Promise<unknown> | unknown): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < 2 + runs; i++) {
    const t0 = performance.now();
    await f();
    if (i >= 2) ms.push(performance.now() - t0);
  }
  return median(ms) / 1000;
}

const backend = await initNodeBackend();
const threads = Math.max(1, backend.threads);
const bs = env.BENCH_BATCH;
const cp = await loadCheckpointDir(path.resolve(repoRoot, env.BENCH_CHECKPOINT));
const p = cp.manifest.preprocessing;
const hwc = [p.inputSize, p.inputSize, p.channels] as [number, number, number];
const ds = await loadFashionMnist('test', { limit: bs });
if (ds.height !== p.inputSize || ds.channels !== p.channels) throw new Error(`checkpoint takes ${p.inputSize}px×${p.channels}; Fashion-MNIST is 28px×1`);
// Normalised as api/preprocess.ts does.
const x = Float32Array.from(ds.images.subarray(0, bs * 784), (v) => v / (255 * p.std[0]!) - p.mean[0]! / p.std[0]!);

const t0 = performance.now();
const bytes = exportOnnx(cp.model);
const exportMs = performance.now() - t0;
const runner = await createOnnxRunner(bytes, { threads });
say(`backend ${backend.detail}; ${threads} threads; checkpoint ${cp.manifest.version}; batch ${bs}; model.onnx ${bytes.byteLength} bytes (export ${exportMs.toFixed(0)} ms)`);

const xt = tf.tensor4d(x, [bs, ...hwc]);
const want = tf.tidy(() => (cp.model.predict(xt, { batchSize: bs }) as tf.Tensor).dataSync() as Float32Array);
const got = await runner.forward(x, bs, hwc);
let maxDiff = 0;
for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(want[i]! - got[i]!));
say(`parity at batch ${bs}: max abs diff onnxruntime vs tfjs predict ${maxDiff.toExponential(2)}`);

const onnxS = await time(env.BENCH_RUNS, () => runner.forward(x, bs, hwc));
say(`onnxruntime: ${(bs / onnxS).toFixed(0)} img/s`);
const predictS = await time(env.BENCH_RUNS, () => tf.tidy(() => (cp.model.predict(xt, { batchSize: bs }) as tf.Tensor).dataSync()));
say(`tfjs predict: ${(bs / predictS).toFixed(0)} img/s`);
const serving = servingForward(cp.model, hwc);
const servingS = await time(env.BENCH_RUNS, () => tf.tidy(() => serving.run(xt).dataSync()));
say(`tfjs serving graph (${serving.path}): ${(bs / servingS).toFixed(0)} img/s`);
serving.dispose();
xt.dispose();
await runner.dispose();
cp.model.dispose();

const result: Record<string, unknown> = {
  backend: backend.name,
  backend_detail: backend.detail,
  threads,
  batch: bs,
  runs: env.BENCH_RUNS,
  checkpoint: cp.manifest.version,
  onnx_bytes: bytes.byteLength,
  onnx_export_ms: exportMs,
  onnx_max_abs_diff: maxDiff,
  infer_images_per_s: bs / onnxS,
  tfjs_predict_images_per_s: bs / predictS,
  tfjs_serving_images_per_s: bs / servingS,
};

// PyTorch reference, same network width and batch, same thread count, same run.
if (env.BENCH_TORCH === '1') {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' });
  const widths = ModelConfig.safeParse(cp.manifest.training.config['model']).data?.backbone.widths;
  if (probe.status !== 0) {
    say('PyTorch not available (/usr/bin/python3 cannot import torch; apt-get install python3-torch): skipped');
  } else {
    const script = path.resolve(repoRoot, '../shared/ref/torch_vicreg.py');
    const torchArgs = ['bench', '--batch', String(bs), '--threads', String(threads), ...(widths ? ['--widths', widths.join(',')] : [])];
    say(`running /usr/bin/python3 ${path.relative(repoRoot, script)} ${torchArgs.join(' ')}`);
    const run = spawnSync('/usr/bin/python3', [script, ...torchArgs], { cwd: repoRoot, encoding: 'utf8', timeout: 15 * 60_000 });
    const line = run.stdout?.trim().split('\n').at(-1) ?? '';
    const parsed = z
      .object({ infer_images_per_s: z.number(), threads: z.number() })
      .safeParse((() => { try { return JSON.parse(line); } catch { return undefined; } })());
    if (run.status !== 0 || !parsed.success) {
      say(`PyTorch bench failed (exit ${run.status}): ${(run.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
    } else {
      const t = parsed.data;
      Object.assign(result, { torch_threads: t.threads, torch_infer_images_per_s: t.infer_images_per_s, infer_ratio: bs / onnxS / t.infer_images_per_s });
      say(`PyTorch: ${t.infer_images_per_s.toFixed(0)} img/s; onnxruntime / PyTorch ${(bs / onnxS / t.infer_images_per_s).toFixed(2)}×`);
    }
  }
}
console.log(JSON.stringify(result));
