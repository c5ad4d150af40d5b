/**
 * `npm run train -- --dataset fashion-mnist|folder|gallery --epochs 3 [--batch 256 --seed 0 --recipe small --out runs/x …]`
 *
 * The CLI adapter of the training pipeline (pipeline.ts): pretrains VICReg, evaluates on the validation
 * split (kNN + the linear probe that becomes linear-head.json), and — Fashion-MNIST only — reports the same
 * on the official test split beside raw-pixel baselines. Writes a checkpoint folder (model.json,
 * weights.bin, linear-head.json, manifest.json), progress.jsonl (one JSON event per step) and eval.json
 * (the test figures, or the validation ones where there is no test split; `split` says which). Progress
 * goes to stderr (a bar on a terminal, JSON lines otherwise); the last line on stdout is one JSON summary.
 * With --snapshot-every N, state is saved under <out>/state/ (also on Ctrl-C and at --max-minutes) and
 * --resume continues from it. --init latest|<version>|<folder> starts from a published model.
 */
import { stat, appendFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { loadCheckpointDir, writeCheckpointDir } from '../shared/node/checkpoint-dir.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { ModelConfig } from '../shared/model/config.js';
import { progressLine } from '../shared/eval/progress-schema.js';
import { DirStore } from './dir-store.js';
import { s3ConfigFromEnv, wantsLocalS3 } from '../shared/store/config.js';
import { createS3Store } from '../shared/store/s3-store.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { runPipeline } from './pipeline.js';
import { ProgressBar } from './progress-bar.js';
import { parseFlags, runCli, UsageError, type FlagTable } from './cli-args.js';
import { openCheckpoint } from './eval-cli.js';

const USAGE = 'usage: npm run train -- [--dataset fashion-mnist|folder|gallery] [--epochs 3] [--out runs/x] [flags]';

export const TRAIN_FLAGS: FlagTable = {
  dataset: { type: 'string', help: '<kind>  fashion-mnist (default), folder (with --data) or gallery (the bucket S3_* names)' },
  data: { type: 'string', help: '<dir>  folder of class sub-folders (with --dataset folder)' },
  limit: { type: 'string', help: '<n>  pretrain on at most n images' },
  epochs: { type: 'string', help: '<n>  passes over the data (3)' },
  'max-steps': { type: 'string', help: '<n>  stop after n optimiser steps' },
  'max-minutes': { type: 'string', help: '<m>  stop training after m minutes (state saved with --snapshot-every)' },
  batch: { type: 'string', help: '<n>  images per step (256)' },
  seed: { type: 'string', help: '<n>  init, shuffling and views (0)' },
  recipe: { type: 'string', help: '<name>  augmentations and LARS settings: small (default) or official' },
  lambda: { type: 'string', help: '<w>  invariance weight λ (25)' },
  mu: { type: 'string', help: '<w>  variance weight μ (25)' },
  nu: { type: 'string', help: '<w>  covariance weight ν (1)' },
  widths: { type: 'string', help: '<list>  backbone stage widths (16,32,64,128)' },
  blocks: { type: 'string', help: '<list>  blocks per stage (1 each)' },
  expander: { type: 'string', help: '<dims>  expander widths (512-512-512)' },
  'input-size': { type: 'string', help: '<px>  input side (28)' },
  channels: { type: 'string', help: '<1|3>  input channels (1)' },
  init: { type: 'string', help: '<ref>  warm start from latest, a store version or a checkpoint folder (same network)' },
  out: { type: 'string', help: '<dir>  run folder (runs/<time>)' },
  'diag-every': { type: 'string', help: '<n>  representation std / rank every n steps (50)' },
  'snapshot-every': { type: 'string', help: '<n>  save state to <out>/state every n steps (0 = never)' },
  resume: { type: 'boolean', help: 'continue from <out>/state' },
  'no-eval': { type: 'boolean', help: 'skip evaluation (no linear head)' },
  'no-raw': { type: 'boolean', help: 'skip the raw-pixel baselines' },
  'eval-train-limit': { type: 'string', help: '<n>  labelled training images for the kNN bank and probe (60000)' },
  'eval-test-limit': { type: 'string', help: '<n>  test images for the final figures (10000)' },
  'probe-epochs': { type: 'string', help: '<n>  linear-probe epochs (100)' },
  'epoch-knn': { type: 'string', help: '<n>  validation kNN after every epoch with an n-image bank (0 = off)' },
  backend: { type: 'string', help: '<name>  auto, tensorflow, wasm or cpu' },
  threads: { type: 'string', help: '<n>  wasm threads' },
  quiet: { type: 'boolean', help: 'no progress on stderr' },
};

const list = (name: string) =>
  z
    .string()
    .regex(/^\d+(,\d+)*$/, `--${name} must be comma-separated whole numbers, e.g. 16,32,64,128`)
    .transform((s) => s.split(',').map(Number));
const posInt = (name: string) => z.coerce.number({ error: `--${name} must be a number` }).int(`--${name} must be a whole number`).positive();
const weight = (name: string) => z.coerce.number({ error: `--${name} must be a number` }).min(0);

export const TrainFlags = z.strictObject({
  /** 'gallery' reads the API's bucket from S3_* (S3_ENDPOINT required: no local server is started). */
  dataset: z.enum(['fashion-mnist', 'folder', 'gallery']).default('fashion-mnist'),
  data: z.string().min(1).optional(),
  limit: posInt('limit').optional(),
  epochs: posInt('epochs').default(3),
  'max-steps': posInt('max-steps').optional(),
  'max-minutes': z.coerce.number().positive().optional(),
  batch: posInt('batch').default(256),
  seed: z.coerce.number().int().min(0).default(0),
  recipe: z.enum(['official', 'small']).default('small'),
  lambda: weight('lambda').default(25),
  mu: weight('mu').default(25),
  nu: weight('nu').default(1),
  widths: list('widths').optional(),
  blocks: list('blocks').optional(),
  expander: z.string().optional(),
  'input-size': posInt('input-size').optional(),
  channels: z.enum(['1', '3']).transform(Number).optional(),
  init: z.string().min(1).optional(),
  out: z.string().min(1).optional(),
  'diag-every': posInt('diag-every').default(50),
  'snapshot-every': z.coerce.number().int().min(0).default(0),
  resume: z.boolean().default(false),
  eval: z.boolean().default(true),
  raw: z.boolean().default(true),
  'eval-train-limit': posInt('eval-train-limit').default(60_000),
  'eval-test-limit': posInt('eval-test-limit').default(10_000),
  'probe-epochs': posInt('probe-epochs').default(100),
  'epoch-knn': z.coerce.number().int().min(0).default(0),
  backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).optional(),
  threads: posInt('threads').optional(),
  quiet: z.boolean().default(false),
});
export type TrainFlags = z.output<typeof TrainFlags>;

/** Flags → TrainFlags. Throws HelpRequested for --help and UsageError naming the bad flag. */
export function parseTrainFlags(argv: string[]): TrainFlags {
  const { 'no-eval': noEval, 'no-raw': noRaw, ...v } = parseFlags(argv, TRAIN_FLAGS, USAGE);
  const r = TrainFlags.safeParse({ ...v, ...(noEval ? { eval: false } : {}), ...(noRaw ? { raw: false } : {}) });
  if (!r.success) throw new UsageError(r.error.issues.map((i) => (i.path.length ? `--${i.path.join('.')}: ${i.message}` : i.message)).join('; '));
  if (r.data.dataset === 'folder' && !r.data.data) throw new UsageError('--dataset folder needs --data <folder of class sub-folders>');
  return r.data;
}

/** True when a flag names part of the network (otherwise a warm start keeps its own). */
const givesModel = (f: TrainFlags) => [f.widths, f.blocks, f.expander, f['input-size'], f.channels].some((x) => x !== undefined);

export function modelFromFlags(f: TrainFlags): ModelConfig {
  return ModelConfig.parse({
    backbone: {
      ...(f.widths ? { widths: f.widths } : {}),
      ...(f.blocks ? { blocks: f.blocks } : f.widths ? { blocks: f.widths.map(() => 1) } : {}),
      ...(f['input-size'] ? { inputSize: f['input-size'] } : {}),
      ...(f.channels ? { channels: f.channels } : {}),
    },
    ...(f.expander ? { expander: f.expander } : {}),
  });
}

/** The API's bucket for --dataset gallery. Needs S3_ENDPOINT: an embedded s3rver would hold no gallery. */
export function galleryStoreFromEnv(env: Record<string, string | undefined>): ObjectStore {
  if (wantsLocalS3(env)) {
    throw new Error(
      '--dataset gallery reads the API\'s bucket: set S3_ENDPOINT (and S3_BUCKET, S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY ' +
        'if needed) to it, e.g. S3_ENDPOINT=http://127.0.0.1:4568 for the API\'s local server; or queue a job with POST /admin/retrain',
    );
  }
  return createS3Store(s3ConfigFromEnv(env));
}


/** The whole command, callable in-process (tests) as well as from main. */
export async function runTrainCommand(
  f: TrainFlags,
  io: {
    stderr: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean };
    argv?: string[];
    /** S3_* settings for --dataset gallery; default process.env. */
    env?: Record<string, string | undefined>;
    /** Abort = Ctrl-C: the current step finishes, state is saved (with --snapshot-every), no checkpoint. */
    signal?: AbortSignal;
    /** The training clock (--max-minutes, timings); default Date.now. Tests move it instead of waiting. */
    now?: () => number;
  } = { stderr: process.stderr },
): Promise<TrainRunSummary> {
  const t0 = Date.now();
  // Before the backend starts: a missing bucket is a quick, clear error.
  const store = f.dataset === 'gallery' ? galleryStoreFromEnv(io.env ?? process.env) : undefined;
  const backend = await initNodeBackend({
    ...(f.backend ? { force: f.backend } : {}),
    ...(f.threads ? { threads: f.threads } : {}),
    log: (m) => void io.stderr.write(m + '\n'),
  });
  const out = f.out ?? join('runs', new Date().toISOString().replace(/[:.]/g, '-'));
  await mkdir(out, { recursive: true });
  const progressPath = join(out, 'progress.jsonl');
  const bar = !f.quiet && io.stderr.isTTY ? new ProgressBar(io.stderr as NodeJS.WriteStream) : null;
  const ablation = { lambda: f.lambda, mu: f.mu, nu: f.nu };
  let stop: 'stop' | null = null;
  const onSignal = (): void => void (stop = 'stop');
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  io.signal?.addEventListener('abort', onSignal);
  let run;
  try {
    const limit = f.limit ? { limit: f.limit } : {};
    run = await runPipeline({
      request: {
        dataset: f.dataset === 'folder' ? { kind: 'folder', path: f.data!, ...limit } : { kind: f.dataset, ...limit },
        ...(f.init && !givesModel(f) ? {} : { model: modelFromFlags(f) }),
        epochs: f.epochs,
        ...(f['max-steps'] ? { maxSteps: f['max-steps'] } : {}),
        ...(f['max-minutes'] ? { maxMinutes: f['max-minutes'] } : {}),
        batchSize: f.batch,
        seed: f.seed,
        recipe: f.recipe,
        ablation,
        ...(f.init ? { init: f.init } : {}),
      },
      command: `npm run train -- ${(io.argv ?? process.argv.slice(2)).join(' ')}`.trim(),
      backend: backend.detail,
      data: {
        limits: {
          evalTrainLimit: f['eval-train-limit'],
          evalValLimit: Number.MAX_SAFE_INTEGER,
          ...(f.eval ? { testLimit: f['eval-test-limit'] } : {}),
          warn: (m) => void io.stderr.write(`warning: ${m}\n`),
        },
        ...(store ? { sources: { store } } : {}),
      },
      state: { store: new DirStore(join(out, 'state')), prefix: '', every: f['snapshot-every'], resume: f.resume ? 'required' : 'never', where: join(out, 'state') },
      diagnosticsEvery: f['diag-every'],
      evaluation: f.eval ? { probeEpochs: f['probe-epochs'], rawBaselines: f.raw, epochKnn: f['epoch-knn'] } : false,
      // latest → the store's served model (or the bundled one on a fresh clone); a version; a folder.
      openInit: async (ref) => {
        if (await stat(ref).then((s) => s.isDirectory(), () => false)) return loadCheckpointDir(ref);
        return (await openCheckpoint(ref === 'latest' ? undefined : ref)).cp;
      },
      hooks: {
        async onData(data, plan, { startStep, config }) {
          if (startStep === 0) await writeFile(progressPath, '');
          await appendFile(progressPath, progressLine({ type: 'start', config: { ...config, dataset: data.name, totalSteps: plan.totalSteps }, backend: backend.detail, t: Date.now(), resumedFromStep: startStep }));
        },
        onResume: (step) => void io.stderr.write(`resuming from step ${step}\n`),
        async onProgress(e) {
          const line = progressLine({ ...e, type: 'step' });
          await appendFile(progressPath, line);
          if (bar) bar.update(e, e.step === e.totalSteps);
          else if (!f.quiet) io.stderr.write(line);
        },
        async onEpoch(e) {
          if (e.knnTop1 !== undefined && !f.quiet) io.stderr.write(`epoch ${e.epoch}: validation kNN top-1 ${(100 * e.knnTop1).toFixed(2)}%\n`);
          await appendFile(progressPath, progressLine({ type: 'epoch', ...e }));
        },
        shouldStop: () => stop,
        onTrained: (loop) => {
          bar?.done();
          const d = loop.diagnostics;
          void appendFile(progressPath, progressLine({ type: 'health', step: loop.steps, std: d.std, normStd: d.normStd, effectiveRank: d.effectiveRank, t: Date.now() }));
        },
        log: (event, fields) => void (f.quiet ? null : io.stderr.write(`${event} ${JSON.stringify(fields)}\n`)),
      },
      ...(io.now ? { now: io.now } : {}),
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    io.signal?.removeEventListener('abort', onSignal);
  }
  bar?.done();
  const base = {
    out,
    backend: backend.detail,
    steps: run.steps,
    seconds: (Date.now() - t0) / 1000,
    train_seconds: run.loop.seconds,
    stopped_by: run.loop.stoppedBy,
    resumed_from_step: run.resumedFromStep ?? null,
    final_loss: run.loop.last?.loss ?? null,
  };
  if (run.outcome !== 'trained') {
    await appendFile(progressPath, progressLine({ type: 'end', t: Date.now(), stoppedBy: run.loop.stoppedBy }));
    const saved = f['snapshot-every'] > 0 && run.steps > (run.resumedFromStep ?? 0);
    io.stderr.write(`stopped at step ${run.steps}; ${saved ? `state saved in ${join(out, 'state')}: continue with --resume` : 'no state saved (use --snapshot-every N to resume)'}\n`);
    return { ...base, version: null, dataset: f.dataset, epochs: null, train_images_per_s: null };
  }
  const { checkpoint, validation, test } = run;
  const final = test ?? validation?.result;
  if (final) await writeFile(join(out, 'eval.json'), JSON.stringify(final, null, 1));
  await writeCheckpointDir(out, checkpoint.files);
  await appendFile(progressPath, progressLine({ type: 'end', t: Date.now(), stoppedBy: run.loop.stoppedBy }));
  const trained = run.steps - (run.resumedFromStep ?? 0);
  const d = run.loop.diagnostics;
  return {
    ...base,
    version: checkpoint.manifest.version,
    dataset: run.data.name,
    epochs: run.steps / run.plan.stepsPerEpoch,
    total_train_seconds: run.trainSeconds,
    train_images_per_s: trained > 0 ? (trained * f.batch) / run.loop.seconds : null,
    ...Object.fromEntries(Object.entries(run.metrics).filter(([k]) => /^(val|test)_/.test(k))),
    effective_rank: d.effectiveRank,
    norm_std: d.normStd,
  };
}

export interface TrainRunSummary {
  out: string;
  version: string | null;
  backend: string;
  dataset: string;
  steps: number;
  epochs: number | null;
  seconds: number;
  train_images_per_s: number | null;
  final_loss: number | null;
  stopped_by: string;
  resumed_from_step: number | null;
  [k: string]: string | number | null;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runCli('npm run train', async () => {
    const argv = process.argv.slice(2);
    const summary = await runTrainCommand(parseTrainFlags(argv), { stderr: process.stderr, argv });
    process.stdout.write(JSON.stringify(summary) + '\n');
  });
}
