/**
 * `npm run train -- --dataset fashion-mnist|folder|gallery --epochs 3 [--batch 256 --seed 0 --recipe small --out runs/x …]`
 *
 * Pretrains VICReg, evaluates kNN and the linear probe on the test split beside raw-pixel baselines, and
 * writes a checkpoint folder: model.json + weights.bin + linear-head.json + manifest.json, plus
 * progress.jsonl (one JSON event per step) and eval.json. Progress goes to stderr (a bar on a terminal,
 * JSON lines otherwise); the last line on stdout is one JSON object summarising the run.
 * With --snapshot-every N, training state is saved under <out>/state/ and --resume continues from it.
 */
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { writeCheckpointDir } from '../shared/node/checkpoint-dir.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { loadTrainState, saveTrainState } from '../shared/checkpoint/train-state.js';
import { ModelConfig } from '../shared/model/config.js';
import { progressLine } from '../shared/eval/progress-schema.js';
import { headlineSummary } from '../shared/eval/result-schema.js';
import { planSteps, runTrainingLoop, type ProgressEvent } from '../shared/train/loop.js';
import { loadTrainingData, subset } from './data.js';
import { DirStore } from './dir-store.js';
import { s3ConfigFromEnv, wantsLocalS3 } from '../shared/store/config.js';
import { createS3Store } from '../shared/store/s3-store.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { checkpointFiles, evaluateOnHeldOut, extractFeatures, flatMetrics } from './pipeline.js';
import { knnEvaluate } from '../shared/eval/knn.js';
import { ProgressBar } from './progress-bar.js';
import { createTrainSession } from './train-parts.js';

const list = (name: string) =>
  z
    .string()
    .regex(/^\d+(,\d+)*$/, `--${name} must be comma-separated whole numbers, e.g. 16,32,64,128`)
    .transform((s) => s.split(',').map(Number));
const posInt = (name: string) => z.coerce.number({ error: `--${name} must be a number` }).int().positive();
const weight = (name: string) => z.coerce.number({ error: `--${name} must be a number` }).min(0);
const flag = z.union([z.literal(true), z.enum(['true', 'false']).transform((v) => v === 'true')]);

export const TrainFlags = z.strictObject({
  /** 'gallery' reads the API's bucket from S3_* (S3_ENDPOINT required: no local server is started). */
  dataset: z.enum(['fashion-mnist', 'folder', 'gallery']).default('fashion-mnist'),
  data: z.string().min(1).optional().describe('folder of class sub-folders (with --dataset folder)'),
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
  out: z.string().min(1).optional(),
  'diag-every': posInt('diag-every').default(50),
  'snapshot-every': z.coerce.number().int().min(0).default(0),
  resume: flag.default(false),
  eval: flag.default(true),
  raw: flag.default(true),
  'eval-train-limit': posInt('eval-train-limit').default(60_000),
  'eval-test-limit': posInt('eval-test-limit').default(10_000),
  'probe-epochs': posInt('probe-epochs').default(100),
  /** kNN top-1 after every epoch on this many labelled train images vs the held-out split (0 = off). */
  'epoch-knn': z.coerce.number().int().min(0).default(0),
  backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).optional(),
  threads: posInt('threads').optional(),
  quiet: flag.default(false),
});
export type TrainFlags = z.output<typeof TrainFlags>;

/** `--key value`, `--key=value`, bare `--flag` (true), `--no-flag` (false). */
export function parseArgs(argv: string[]): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"; flags look like --epochs 3`);
    const eq = a.indexOf('=');
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else if (a.startsWith('--no-')) out[a.slice(5)] = 'false';
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) out[a.slice(2)] = argv[++i]!;
    else out[a.slice(2)] = true;
  }
  return out;
}

export function parseTrainFlags(argv: string[]): TrainFlags {
  const r = TrainFlags.safeParse(parseArgs(argv));
  if (!r.success) {
    throw new Error(
      `invalid flags: ${r.error.issues.map((i) => (i.path.length ? `--${i.path.join('.')}: ${i.message}` : i.message)).join('; ')}`,
    );
  }
  if (r.data.dataset === 'folder' && !r.data.data) throw new Error('--dataset folder needs --data <folder of class sub-folders>');
  return r.data;
}

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

export interface TrainRunSummary {
  out: string;
  version: string;
  backend: string;
  dataset: string;
  steps: number;
  epochs: number;
  seconds: number;
  train_images_per_s: number | null;
  final_loss: number | null;
  stopped_by: string;
  resumed_from_step: number | null;
  [k: string]: string | number | null;
}

/** The whole command, callable in-process (tests) as well as from main. */
export async function runTrainCommand(
  f: TrainFlags,
  io: {
    stderr: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean };
    argv?: string[];
    /** S3_* settings for --dataset gallery; default process.env. */
    env?: Record<string, string | undefined>;
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
  const model = modelFromFlags(f);
  const out = f.out ?? join('runs', new Date().toISOString().replace(/[:.]/g, '-'));
  await mkdir(out, { recursive: true });
  const limit = f.limit ? { limit: f.limit } : {};
  const data = await loadTrainingData(
    f.dataset === 'folder' ? { kind: 'folder', path: f.data!, ...limit } : { kind: f.dataset, ...limit },
    model,
    { evalTrainLimit: f['eval-train-limit'], evalTestLimit: f['eval-test-limit'], seed: f.seed, warn: (m) => void io.stderr.write(`warning: ${m}\n`) },
    store ? { store } : {},
  );
  const plan = planSteps(data.train.n, f.batch, f.epochs, f['max-steps']);
  const session = createTrainSession({
    model,
    recipe: f.recipe,
    norm: data.norm,
    ablation: { lambda: f.lambda, mu: f.mu, nu: f.nu },
    seed: f.seed,
    batchSize: f.batch,
    stepsPerEpoch: plan.stepsPerEpoch,
  });
  try {
    const stateStore = new DirStore(join(out, 'state'));
    let startStep = 0;
    if (f.resume) {
      const snap = await loadTrainState(stateStore, '');
      if (!snap) throw new Error(`--resume: no snapshot under ${join(out, 'state')}; run with --snapshot-every N first`);
      session.importState(snap);
      startStep = snap.step;
    }
    const progressPath = join(out, 'progress.jsonl');
    const config = { model, recipe: f.recipe, batch: f.batch, epochs: f.epochs, seed: f.seed, ablation: { lambda: f.lambda, mu: f.mu, nu: f.nu } };
    if (startStep === 0) await writeFile(progressPath, '');
    await appendFile(progressPath, progressLine({ type: 'start', config, backend: backend.detail, t: Date.now(), resumedFromStep: startStep }));
    const bar = !f.quiet && io.stderr.isTTY ? new ProgressBar(io.stderr as NodeJS.WriteStream) : null;
    let lastEpoch = Math.floor(startStep / plan.stepsPerEpoch);
    // A cheap per-epoch kNN (subset bank) so the report can plot accuracy over epochs.
    const epochKnn = async (epoch: number): Promise<number | null> => {
      const ev = data.evaluation;
      if (!ev || f['epoch-knn'] === 0) return null;
      const bank = subset(ev.train, Int32Array.from({ length: Math.min(ev.train.n, f['epoch-knn']) }, (_, i) => i));
      const train = { features: await extractFeatures(session.representation, bank, data.norm), labels: bank.labels! };
      const test = { features: await extractFeatures(session.representation, ev.test, data.norm), labels: ev.test.labels! };
      const r = await knnEvaluate(train, test, { k: 20, temperature: 0.07, numClasses: ev.numClasses });
      if (!f.quiet) io.stderr.write(`epoch ${epoch}: kNN top-1 ${(100 * r.top1).toFixed(2)}% (bank ${bank.n}, test ${ev.test.n})\n`);
      return r.top1;
    };
    const onProgress = async (e: ProgressEvent): Promise<void> => {
      const line = progressLine({ ...e, type: 'step' });
      await appendFile(progressPath, line);
      if (bar) bar.update(e, e.step === e.totalSteps);
      else if (!f.quiet) io.stderr.write(line);
      const epoch = Math.floor(e.step / plan.stepsPerEpoch);
      if (epoch !== lastEpoch) {
        lastEpoch = epoch;
        const knnTop1 = await epochKnn(epoch);
        await appendFile(
          progressPath,
          progressLine({ type: 'epoch', epoch, step: e.step, seconds: e.elapsedSeconds, t: e.t, ...(knnTop1 !== null ? { knnTop1 } : {}) }),
        );
      }
    };
    let stop: 'stop' | null = null;
    const onSignal = (): void => void (stop = 'stop');
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const result = await runTrainingLoop(session.parts, {
      dataset: data.train,
      batchSize: f.batch,
      epochs: f.epochs,
      ...(f['max-steps'] ? { maxSteps: f['max-steps'] } : {}),
      ...(f['max-minutes'] ? { maxMinutes: f['max-minutes'] } : {}),
      seed: f.seed,
      startStep,
      diagnosticsEvery: f['diag-every'],
      snapshotEvery: f['snapshot-every'],
      snapshot: async (step) => {
        await saveTrainState(stateStore, '', session.exportState(step, Math.floor(step / plan.stepsPerEpoch), { config }));
      },
      onProgress,
      shouldStop: () => stop,
    }).finally(() => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    });
    bar?.done();
    if (result.stoppedBy === 'stopped' && f['snapshot-every'] > 0 && result.steps > startStep) {
      await saveTrainState(stateStore, '', session.exportState(result.steps, Math.floor(result.steps / plan.stepsPerEpoch), { config }));
    }
    const d = result.diagnostics;
    await appendFile(progressPath, progressLine({ type: 'health', step: result.steps, std: d.std, normStd: d.normStd, effectiveRank: d.effectiveRank, t: Date.now() }));

    const evaluation = f.eval
      ? await evaluateOnHeldOut(session.representation, data, { probeEpochs: f['probe-epochs'], rawBaselines: f.raw, seed: f.seed, checkpoint: out })
      : null;
    if (evaluation) await writeFile(join(out, 'eval.json'), JSON.stringify(evaluation.result, null, 1));
    const headline = evaluation ? headlineSummary(evaluation.result) : {};
    const metrics = flatMetrics({
      knn_top1: evaluation?.knnTop1,
      linear_top1: evaluation?.linearTop1,
      raw_knn_top1: typeof headline['raw_knn_top1'] === 'number' ? headline['raw_knn_top1'] : null,
      raw_linear_top1: typeof headline['raw_linear_top1'] === 'number' ? headline['raw_linear_top1'] : null,
      final_loss: result.last?.loss,
      std: d.std,
      norm_std: d.normStd,
      effective_rank: d.effectiveRank,
      steps: result.steps,
    });
    const backbone = session.backboneModel(); // a fresh LayersModel: disposed once serialised
    const { files, manifest } = await checkpointFiles({
      backbone,
      representationDim: session.representationDim,
      data,
      ...(evaluation?.head ? { head: evaluation.head } : {}),
      parent: null,
      training: {
        config,
        seed: f.seed,
        steps: result.steps,
        epochs: result.steps / plan.stepsPerEpoch,
        wallSeconds: result.seconds,
        command: `npm run train -- ${(io.argv ?? process.argv.slice(2)).join(' ')}`.trim(),
      },
      backend: backend.detail,
      metrics,
    }).finally(() => backbone.dispose());
    await writeCheckpointDir(out, files);
    await appendFile(progressPath, progressLine({ type: 'end', t: Date.now(), stoppedBy: result.stoppedBy }));
    const trained = result.steps - startStep;
    return {
      out,
      version: manifest.version,
      backend: backend.detail,
      dataset: data.name,
      steps: result.steps,
      epochs: result.steps / plan.stepsPerEpoch,
      seconds: (Date.now() - t0) / 1000,
      train_seconds: result.seconds,
      train_images_per_s: trained > 0 ? (trained * f.batch) / result.seconds : null,
      final_loss: result.last?.loss ?? null,
      stopped_by: result.stoppedBy,
      resumed_from_step: startStep > 0 ? startStep : null,
      ...headline,
      effective_rank: d.effectiveRank,
      norm_std: d.normStd,
    };
  } finally {
    session.dispose();
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let flags: TrainFlags;
  try {
    flags = parseTrainFlags(argv);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(2);
  }
  try {
    const summary = await runTrainCommand(flags, { stderr: process.stderr, argv });
    process.stdout.write(JSON.stringify(summary) + '\n');
  } catch (e) {
    process.stderr.write(`train failed: ${(e as Error).message}\n`);
    process.stdout.write(JSON.stringify({ error: (e as Error).message }) + '\n');
    process.exit(1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
