/**
 * `npm run eval -- --dataset fashion-mnist [--split both|validation|test] [--checkpoint <folder | store version>]`
 *
 * Frozen-feature evaluation of a checkpoint the way the field reports it: kNN (k = 20 and 200,
 * T = 0.07) and a linear probe trained on the labelled training part, beside the same two protocols on
 * raw pixels, scored by default on both splits in turn: first the validation split (5,000 training images
 * the trainer holds out: the split to compare checkpoints and choose settings on), then the test split (the
 * figures to report); `--split validation` or `--split test` scores one. The training part's features are
 * extracted once and its probes trained once for both. The splits are the trainer's (gpu-worker/data.ts).
 * Without --checkpoint it evaluates the store's current model, or the bundled checkpoint when the store has
 * none (a fresh clone). Prints a table per split to stderr and one JSON line per split to stdout (checkpoint,
 * split, knn_top1, linear_top1, raw_knn_top1, …), in the same order: the last line is the test split's.
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
import type { LinearHead } from '../shared/eval/linear-head.js';
import { rawPixelFeatures } from '../shared/eval/raw-pixels.js';
import { headlineSummary, type EvalResult } from '../shared/eval/result-schema.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { loadCheckpointDir } from '../shared/node/checkpoint-dir.js';
import { storeFromEnv } from '../shared/node/local-s3.js';
import { parseFlags, runCli, UsageError, type FlagTable } from './cli-args.js';
import { labelledSplits } from './data.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const posInt = (name: string) => z.coerce.number({ error: `--${name} must be a number` }).int(`--${name} must be a whole number`).positive();
const USAGE = 'usage: npm run eval -- [--dataset fashion-mnist|mnist] [--split both|validation|test] [--checkpoint <folder | version>] [flags]';

export const EVAL_FLAGS: FlagTable = {
  dataset: { type: 'string', help: '<name>  fashion-mnist (default) or mnist (MNIST_DIR)' },
  split: { type: 'string', help: '<split>  both (default: validation, then test), validation (to compare and choose) or test (figures to report)' },
  checkpoint: { type: 'string', help: "<ref>  a checkpoint folder or a store version (default: the store's latest, else the bundled one)" },
  'train-limit': { type: 'string', help: '<n>  labelled training images for the kNN bank and probe (all 55,000)' },
  'test-limit': { type: 'string', help: '<n>  images of each evaluated split (all)' },
  'probe-epochs': { type: 'string', help: '<n>  linear-probe epochs (100)' },
  'raw-probe-epochs': { type: 'string', help: '<n>  raw-pixel probe epochs (100)' },
  'no-raw': { type: 'boolean', help: 'skip the raw-pixel baselines' },
  out: { type: 'string', help: '<file>  also write the result here: eval.json format for one split, a JSON array of both for both' },
  backend: { type: 'string', help: '<name>  auto, tensorflow, wasm or cpu' },
};

export const EvalFlags = z.strictObject({
  dataset: z.enum(['fashion-mnist', 'mnist']).default('fashion-mnist'),
  split: z.enum(['both', 'validation', 'test']).default('both'),
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

/** The splits `--split` names, in the order they are evaluated: validation (to choose on) before test (to report). */
export function evalSplits(split: EvalFlags['split']): Array<'validation' | 'test'> {
  return split === 'both' ? ['validation', 'test'] : [split];
}

/**
 * Scores the checkpoint on each split `f.split` names, in order (validation, then test), one EvalResult
 * per split. The training part (the kNN bank and the probes' data) is the same for every split, so its
 * features are extracted and the probes trained once.
 */
export async function runEvalCommand(f: EvalFlags, log: (line: string) => void): Promise<EvalResult[]> {
  const backend = await initNodeBackend({ ...(f.backend ? { force: f.backend } : {}), log });
  const { cp, name } = await openCheckpoint(f.checkpoint);
  let rawTrainFeatures: tf.Tensor2D | null = null;
  try {
    const { train, evals } = await labelledSplits(f.dataset, evalSplits(f.split), {
      ...(f['train-limit'] ? { trainLimit: f['train-limit'] } : {}),
      ...(f['test-limit'] ? { evalLimit: f['test-limit'] } : {}),
    });
    const p = cp.manifest.preprocessing;
    if (p.inputSize !== train.height || p.channels !== train.channels) {
      throw new Error(`checkpoint ${name} takes ${p.inputSize}px × ${p.channels} channels; ${f.dataset} is ${train.height}px × ${train.channels}`);
    }
    const norm = { mean: p.mean, std: p.std };
    const represent = (x: tf.Tensor4D) => cp.model.predict(x) as tf.Tensor2D;
    log(`evaluating ${name} (${cp.manifest.version}) on ${f.dataset}: ${train.n} train / ${evals.map((e) => `${e.data.n} ${e.split}`).join(' / ')} images, backend ${backend.detail}`);
    const encTrain = { features: await extractFeatures(represent, train, norm), labels: train.labels! };
    if (f.raw) rawTrainFeatures = rawPixelFeatures(train);
    const rawTrain = rawTrainFeatures ? { features: rawTrainFeatures, labels: train.labels! } : null;
    let head: LinearHead | undefined;
    let rawHead: LinearHead | undefined;
    const results: EvalResult[] = [];
    for (const { split, data } of evals) {
      const enc = await evaluateRepresentation({
        dataset: f.dataset,
        split,
        checkpoint: name,
        train: encTrain,
        test: { features: await extractFeatures(represent, data, norm), labels: data.labels! },
        numClasses: 10,
        ...(train.classNames ? { classNames: train.classNames } : {}),
        linear: { epochs: f['probe-epochs'], ...(head ? { head } : {}) },
      });
      head ??= enc.head;
      const result = enc.result;
      if (rawTrain) {
        const rawTest = rawPixelFeatures(data);
        try {
          const r = await evaluateRepresentation({
            dataset: f.dataset,
            split,
            train: rawTrain,
            test: { features: rawTest, labels: data.labels! },
            numClasses: 10,
            linear: { epochs: f['raw-probe-epochs'], ...(rawHead ? { head: rawHead } : {}) },
            stats: false,
          });
          rawHead ??= r.head;
          result.raw = r.result.encoder;
        } finally {
          rawTest.dispose();
        }
      }
      result.backend = backend.detail;
      results.push(result);
    }
    return results;
  } finally {
    rawTrainFeatures?.dispose();
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
    const results = await runEvalCommand(flags, (l) => void process.stderr.write(l + '\n'));
    for (const r of results) process.stderr.write(table(r) + '\n');
    if (flags.out) await writeFile(flags.out, JSON.stringify(results.length === 1 ? results[0] : results, null, 1));
    for (const r of results) process.stdout.write(JSON.stringify({ ...headlineSummary(r), backend: r.backend, seconds: r.seconds }) + '\n');
  });
}
