/**
 * `npm run eval -- --dataset fashion-mnist [--checkpoint <folder | store version>]`
 *
 * Frozen-feature evaluation of a checkpoint the way the field reports it: kNN (k = 20 and 200,
 * T = 0.07) and a linear probe on the labelled train split, scored on the held-out test split, beside
 * the same two protocols on raw pixels. Without --checkpoint it evaluates the store's current model,
 * or the bundled checkpoint when the store has none (a fresh clone). Prints a table to stderr and, as the
 * last line on stdout, one JSON object (checkpoint, knn_top1, linear_top1, raw_knn_top1, raw_linear_top1, …).
 */
import { stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { loadCheckpoint, readLatest } from '../shared/checkpoint/publish.js';
import type { OpenedCheckpoint } from '../shared/checkpoint/format.js';
import { evaluateRepresentation } from '../shared/eval/evaluate.js';
import { rawPixelFeatures } from '../shared/eval/raw-pixels.js';
import { headlineSummary, type EvalResult } from '../shared/eval/result-schema.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { loadCheckpointDir } from '../shared/node/checkpoint-dir.js';
import { loadFashionMnist, loadMnist } from '../shared/node/datasets.js';
import { storeFromEnv } from '../shared/node/local-s3.js';
import { extractFeatures } from './pipeline.js';
import { parseArgs } from './train-cli.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const posInt = (name: string) => z.coerce.number({ error: `--${name} must be a number` }).int().positive();

export const EvalFlags = z.strictObject({
  dataset: z.enum(['fashion-mnist', 'mnist']).default('fashion-mnist'),
  checkpoint: z.string().min(1).optional().describe('a checkpoint folder, or a version id in the store'),
  'train-limit': posInt('train-limit').optional(),
  'test-limit': posInt('test-limit').optional(),
  'probe-epochs': posInt('probe-epochs').default(100),
  'raw-probe-epochs': posInt('raw-probe-epochs').default(100),
  raw: z.union([z.literal(true), z.enum(['true', 'false']).transform((v) => v === 'true')]).default(true),
  out: z.string().min(1).optional().describe('write eval.json here'),
  backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).optional(),
});
export type EvalFlags = z.output<typeof EvalFlags>;

/** A folder on disk, a version in the store, the store's latest, or the bundled checkpoint. */
async function openCheckpoint(ref: string | undefined): Promise<{ cp: OpenedCheckpoint; name: string }> {
  if (ref && (await stat(ref).then((s) => s.isDirectory(), () => false))) return { cp: await loadCheckpointDir(ref), name: ref };
  const bundled = path.join(root, 'checkpoints/bundled');
  // Only consult a store that is configured (S3_ENDPOINT) or whose local data already exists.
  const hasLocalStore = await stat(path.join(root, '.data/s3')).then(() => true, () => false);
  if (ref || process.env['S3_ENDPOINT'] || hasLocalStore) {
    const s3 = await storeFromEnv(process.env, { localDir: path.join(root, '.data/s3'), port: 0 });
    try {
      const version = ref ?? (await readLatest(s3.store))?.version;
      if (version) return { cp: await loadCheckpoint(s3.store, version), name: version };
      if (ref) throw new Error(`no checkpoint folder or store version named '${ref}'`);
    } finally {
      await s3.close();
    }
  }
  return { cp: await loadCheckpointDir(bundled), name: path.relative(root, bundled) };
}

export async function runEvalCommand(f: EvalFlags, log: (line: string) => void): Promise<EvalResult> {
  const backend = await initNodeBackend({ ...(f.backend ? { force: f.backend } : {}), log });
  const { cp, name } = await openCheckpoint(f.checkpoint);
  try {
    const load = f.dataset === 'mnist' ? loadMnist : loadFashionMnist;
    const train = await load('train', f['train-limit'] ? { limit: f['train-limit'] } : {});
    const test = await load('test', f['test-limit'] ? { limit: f['test-limit'] } : {});
    const p = cp.manifest.preprocessing;
    if (p.inputSize !== train.height || p.channels !== train.channels) {
      throw new Error(`checkpoint ${name} takes ${p.inputSize}px × ${p.channels} channels; ${f.dataset} is ${train.height}px × ${train.channels}`);
    }
    const norm = { mean: p.mean, std: p.std };
    const represent = (x: tf.Tensor4D) => cp.model.predict(x) as tf.Tensor2D;
    log(`evaluating ${name} (${cp.manifest.version}) on ${f.dataset}: ${train.n} train / ${test.n} test images, backend ${backend.detail}`);
    const enc = {
      train: { features: await extractFeatures(represent, train, norm), labels: train.labels! },
      test: { features: await extractFeatures(represent, test, norm), labels: test.labels! },
    };
    const classNames = train.classNames;
    const { result } = await evaluateRepresentation({
      dataset: f.dataset,
      checkpoint: name,
      ...enc,
      numClasses: 10,
      ...(classNames ? { classNames } : {}),
      linear: { epochs: f['probe-epochs'] },
    });
    if (f.raw) {
      const raw = { train: rawPixelFeatures(train), test: rawPixelFeatures(test) };
      try {
        const r = await evaluateRepresentation({
          dataset: f.dataset,
          train: { features: raw.train, labels: train.labels! },
          test: { features: raw.test, labels: test.labels! },
          numClasses: 10,
          linear: { epochs: f['raw-probe-epochs'] },
          stats: false,
        });
        result.raw = r.result.encoder;
      } finally {
        tf.dispose([raw.train, raw.test]);
      }
    }
    result.backend = backend.detail;
    return result;
  } finally {
    cp.model.dispose();
  }
}

function table(r: EvalResult): string {
  const pct = (v: number | undefined) => (v === undefined ? '   —  ' : `${(100 * v).toFixed(2).padStart(6)}%`);
  const rows: string[] = ['features      kNN@20 top1  kNN@200 top1  linear top1  linear top5'];
  for (const [label, f] of [['encoder', r.encoder], ['raw pixels', r.raw]] as const) {
    if (!f) continue;
    const k20 = f.knn.find((k) => k.k === 20)?.top1;
    const k200 = f.knn.find((k) => k.k === 200)?.top1;
    rows.push(`${label.padEnd(12)}  ${pct(k20)}      ${pct(k200)}       ${pct(f.linear?.top1)}     ${pct(f.linear?.top5)}`);
  }
  return rows.join('\n');
}

async function main(): Promise<void> {
  let flags: EvalFlags;
  try {
    const r = EvalFlags.safeParse(parseArgs(process.argv.slice(2)));
    if (!r.success) throw new Error(r.error.issues.map((i) => (i.path.length ? `--${i.path.join('.')}: ${i.message}` : i.message)).join('; '));
    flags = r.data;
  } catch (e) {
    process.stderr.write(`npm run eval: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  }
  const result = await runEvalCommand(flags, (l) => void process.stderr.write(l + '\n'));
  process.stderr.write(table(result) + '\n');
  if (flags.out) await writeFile(flags.out, JSON.stringify(result, null, 1));
  process.stdout.write(JSON.stringify({ ...headlineSummary(result), backend: result.backend, seconds: result.seconds }) + '\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e) => {
    process.stderr.write(`npm run eval failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
