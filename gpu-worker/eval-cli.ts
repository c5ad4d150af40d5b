/**
 * `npm run eval -- --dataset fashion-mnist [--split test|validation] [--checkpoint <folder | store version>]`
 *
 * Frozen-feature evaluation of a checkpoint the way the field reports it: kNN (k = 20 and 200,
 * T = 0.07) and a linear probe trained on the labelled training part, scored on the test split (the
 * figures to report) or on the validation split (5,000 training images the trainer holds out: the split
 * to compare checkpoints and choose settings on), beside the same two protocols on raw pixels. The splits
 * are the trainer's (gpu-worker/data.ts). Without --checkpoint it evaluates the store's current model, or
 * the bundled checkpoint when the store has none (a fresh clone). Prints a table to stderr and, as the
 * last line on stdout, one JSON object (checkpoint, split, knn_top1, linear_top1, raw_knn_top1, …).
 */
import { stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { loadCheckpoint, readLatest } from '../shared/checkpoint/publish.js';
import type { OpenedCheckpoint } from '../shared/checkpoint/format.js';
import { evaluateRepresentation } from '../shared/eval/evaluate.js';
import { extractFeatures } from '../shared/eval/features.js';
import { rawPixelFeatures } from '../shared/eval/raw-pixels.js';
import { headlineSummary, type EvalResult } from '../shared/eval/result-schema.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { loadCheckpointDir } from '../shared/node/checkpoint-dir.js';
import { storeFromEnv } from '../shared/node/local-s3.js';
import { parseFlags, runCli, UsageError, type FlagTable } from './cli-args.js';
import { labelledSplits } from './data.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const posInt = (name: string) => z.coerce.number({ error: `--${name} must be a number` }).int(`--${name} must be a whole number`).positive();
const USAGE = 'usage: npm run eval -- [--dataset fashion-mnist|mnist] [--split test|validation] [--checkpoint <folder | version>] [flags]';

export const EVAL_FLAGS: FlagTable = {
  dataset: { type: 'string', help: '<name>  fashion-mnist (default) or mnist (MNIST_DIR)' },
  split: { type: 'string', help: '<split>  test (default: figures to report) or validation (to compare and choose)' },
  checkpoint: { type: 'string', help: "<ref>  a checkpoint folder or a store version (default: the store's latest, else the bundled one)" },
  'train-limit': { type: 'string', help: '<n>  labelled training images for the kNN bank and probe (all 55,000)' },
  'test-limit': { type: 'string', help: '<n>  images of the evaluated split (all)' },
  'probe-epochs': { type: 'string', help: '<n>  linear-probe epochs (100)' },
  'raw-probe-epochs': { type: 'string', help: '<n>  raw-pixel probe epochs (100)' },
  'no-raw': { type: 'boolean', help: 'skip the raw-pixel baselines' },
  out: { type: 'string', help: '<file>  also write the result (eval.json format) here' },
  backend: { type: 'string', help: '<name>  auto, tensorflow, wasm or cpu' },
};

export const EvalFlags = z.strictObject({
  dataset: z.enum(['fashion-mnist', 'mnist']).default('fashion-mnist'),
  split: z.enum(['test', 'validation']).default('test'),
  checkpoint: z.string().min(1).optional(),
  'train-limit': posInt('train-limit').optional(),
  'test-limit': posInt('test-limit').optional(),
  'probe-epochs': posInt('probe-epochs').default(100),
  'raw-probe-epochs': posInt('raw-probe-epochs').default(100),
  raw: z.boolean().default(true),
  out: z.string().min(1).optional(),
  backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).optional(),
});
export type EvalFlags = z.output<typeof EvalFlags>;

/** Flags → EvalFlags. Throws HelpRequested for --help and UsageError naming the bad flag. */
export function parseEvalFlags(argv: string[]): EvalFlags {
  const { 'no-raw': noRaw, ...v } = parseFlags(argv, EVAL_FLAGS, USAGE);
  const r = EvalFlags.safeParse({ ...v, ...(noRaw ? { raw: false } : {}) });
  if (!r.success) throw new UsageError(r.error.issues.map((i) => (i.path.length ? `--${i.path.join('.')}: ${i.message}` : i.message)).join('; '));
  return r.data;
}

/** A folder on disk, a version in the store, the store's latest, or the bundled checkpoint. */
export async function openCheckpoint(ref: string | undefined): Promise<{ cp: OpenedCheckpoint; name: string }> {
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
    const splits = await labelledSplits(f.dataset, f.split, {
      ...(f['train-limit'] ? { trainLimit: f['train-limit'] } : {}),
      ...(f['test-limit'] ? { evalLimit: f['test-limit'] } : {}),
    });
    const { train, eval: test } = splits;
    const p = cp.manifest.preprocessing;
    if (p.inputSize !== train.height || p.channels !== train.channels) {
      throw new Error(`checkpoint ${name} takes ${p.inputSize}px × ${p.channels} channels; ${f.dataset} is ${train.height}px × ${train.channels}`);
    }
    const norm = { mean: p.mean, std: p.std };
    const represent = (x: tf.Tensor4D) => cp.model.predict(x) as tf.Tensor2D;
    log(`evaluating ${name} (${cp.manifest.version}) on ${f.dataset}: ${train.n} train / ${test.n} ${f.split} images, backend ${backend.detail}`);
    const enc = {
      train: { features: await extractFeatures(represent, train, norm), labels: train.labels! },
      test: { features: await extractFeatures(represent, test, norm), labels: test.labels! },
    };
    const classNames = train.classNames;
    const { result } = await evaluateRepresentation({
      dataset: f.dataset,
      split: f.split,
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
          split: f.split,
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
  const rows: string[] = [`${r.split ?? 'test'} split`, 'features      kNN@20 top1  kNN@200 top1  linear top1  linear top5'];
  for (const [label, f] of [['encoder', r.encoder], ['raw pixels', r.raw]] as const) {
    if (!f) continue;
    const k20 = f.knn.find((k) => k.k === 20)?.top1;
    const k200 = f.knn.find((k) => k.k === 200)?.top1;
    rows.push(`${label.padEnd(12)}  ${pct(k20)}      ${pct(k200)}       ${pct(f.linear?.top1)}     ${pct(f.linear?.top5)}`);
  }
  return rows.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runCli('npm run eval', async () => {
    const flags = parseEvalFlags(process.argv.slice(2));
    const result = await runEvalCommand(flags, (l) => void process.stderr.write(l + '\n'));
    process.stderr.write(table(result) + '\n');
    if (flags.out) await writeFile(flags.out, JSON.stringify(result, null, 1));
    process.stdout.write(JSON.stringify({ ...headlineSummary(result), backend: result.backend, seconds: result.seconds }) + '\n');
  });
}
