/**
 * The one training pipeline, used by `npm run train` (train-cli.ts) and the worker (run-job.ts) alike:
 *
 *   data → (warm start | resume) → training loop → evaluate on validation → gate → checkpoint files
 *
 * The adapters only say where state lives, what counts as "stop", and what to do with progress and the
 * result (a folder on disk; a job file and the bucket). Evaluation that decides anything (per-epoch
 * monitoring, the publish gate) uses the validation split; the test split, when loaded (the CLI), only
 * gives the figures reported at the end.
 */
import * as tf from '@tensorflow/tfjs';
import { buildCheckpointFiles, type CheckpointFiles, type OpenedCheckpoint } from '../shared/checkpoint/format.js';
import { MODEL_ONNX } from '../shared/checkpoint/manifest.js';
import { exportOnnx } from '../shared/model/onnx-export.js';
import { loadCheckpoint, readLatest } from '../shared/checkpoint/publish.js';
import { loadTrainState, saveTrainState } from '../shared/checkpoint/train-state.js';
import { evaluateRepresentation } from '../shared/eval/evaluate.js';
import { extractFeatures, type LabelledFeatures } from '../shared/eval/features.js';
import { knnEvaluate } from '../shared/eval/knn.js';
import type { LinearHead } from '../shared/eval/linear-head.js';
import { rawPixelFeatures } from '../shared/eval/raw-pixels.js';
import type { EvalResult } from '../shared/eval/result-schema.js';
import type { Ablation, DatasetSpec } from '../shared/jobs/schema.js';
import { ModelConfig } from '../shared/model/config.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { planSteps, runTrainingLoop, type LoopResult, type ProgressEvent } from '../shared/train/loop.js';
import { createTrainSession, type TrainSession } from '../shared/train/session.js';
import { loadTrainingData, subset, type DataLimits, type DataSources, type TrainingData } from './data.js';
import { decideGate, type GateConfig, type GateDecision } from './gate.js';

/** What to train: a resolved retraining request (the job's, or built from the CLI's flags). */
export interface PipelineRequest {
  dataset: DatasetSpec;
  /** The network; undefined = the warm start's (with `init`) or the default CPU network. */
  model?: ModelConfig;
  epochs: number;
  maxSteps?: number;
  maxMinutes?: number;
  batchSize: number;
  seed: number;
  recipe: 'official' | 'small';
  ablation: Ablation;
  /** Warm start: 'latest' or a version id (or, through `openInit`, anything else the adapter resolves). */
  init?: string;
}

export interface PipelineHooks {
  /** Data loaded, before training: the plan, the step training starts at (> 0 when resumed), the run's config. */
  onData?(data: TrainingData, plan: { stepsPerEpoch: number; totalSteps: number }, run: { startStep: number; config: Record<string, unknown> }): void | Promise<void>;
  /** A snapshot was found and loaded; `meta` is what the adapter put in it (snapshotMeta). */
  onResume?(step: number, meta: Record<string, unknown>): void;
  onProgress?(e: ProgressEvent): void | Promise<void>;
  /** After each completed epoch; knnTop1 on the validation split when `epochKnn` > 0. */
  onEpoch?(e: { epoch: number; step: number; seconds: number; t: number; knnTop1?: number }): void | Promise<void>;
  onSnapshot?(step: number): void;
  /** Extra JSON kept in every snapshot (e.g. the job's loss history). */
  snapshotMeta?(): Record<string, unknown>;
  /** Checked before every step: 'cancel', 'stop' (snapshot and return), or null. */
  shouldStop?(): 'cancel' | 'stop' | null;
  /** Training is over; evaluation (which can take a while) starts. */
  onTrained?(loop: LoopResult): void;
  log?(event: string, fields: Record<string, unknown>): void;
}

export interface PipelineOptions {
  request: PipelineRequest;
  /** This invocation's command line: every one of them ends up in the manifest. */
  command: string;
  backend: string;
  /** Extra fields for the manifest's training.config (e.g. the job id). */
  configExtra?: Record<string, unknown>;
  data: { limits: DataLimits; sources?: DataSources; load?: typeof loadTrainingData };
  /** Where snapshots live; `every` 0 = none (and nothing saved on stop). */
  state: { store: ObjectStore; prefix: string; every: number; resume: 'auto' | 'required' | 'never'; where?: string };
  diagnosticsEvery: number;
  /** false: no evaluation at all (no labels needed, no head). */
  evaluation: false | { probeEpochs: number; rawBaselines: boolean; epochKnn?: number };
  /** The model store: `init` versions are read from it and, with `gate`, the served model. */
  models?: ObjectStore;
  /** Resolve `init` differently (the CLI also accepts a checkpoint folder). */
  openInit?: (ref: string) => Promise<OpenedCheckpoint>;
  /** Compare with the served model and decide whether the candidate may become latest. */
  gate?: { config: GateConfig; force: boolean };
  hooks?: PipelineHooks;
  now?: () => number;
}

export interface EvaluationOutcome {
  result: EvalResult;
  /** The kNN bank's features (reused for the test figures). */
  bank: LabelledFeatures;
  head?: LinearHead;
  knnTop1: number;
  linearTop1: number | null;
}

export interface StoppedRun {
  outcome: 'stopped' | 'cancelled';
  steps: number;
  resumedFromStep?: number;
  loop: LoopResult;
}

export interface TrainedRun {
  outcome: 'trained';
  steps: number;
  resumedFromStep?: number;
  loop: LoopResult;
  data: TrainingData;
  plan: { stepsPerEpoch: number; totalSteps: number };
  /** On the validation split (null without labels or with evaluation off). */
  validation: EvaluationOutcome | null;
  /** Figures on the test split, when one was loaded. */
  test: EvalResult | null;
  /** With `gate`: the decision, and the served model's validation kNN it was compared with. */
  gate: (GateDecision & { current: { version: string; accuracy: number } | null }) | null;
  metrics: Record<string, number>;
  checkpoint: CheckpointFiles;
  /** Training wall time over every invocation that contributed (resumes included). */
  trainSeconds: number;
}

export type PipelineResult = StoppedRun | TrainedRun;

/** What every snapshot carries besides tensors: provenance summed over resumes. */
interface Provenance {
  trainSeconds: number;
  commands: string[];
  /** The resolved warm-start version, so a resumed run reports the same parent. */
  init?: string;
}

export async function runPipeline(o: PipelineOptions): Promise<PipelineResult> {
  const h = o.hooks ?? {};
  const now = o.now ?? Date.now;
  const req = o.request;

  // --- resume state, warm start, data ------------------------------------------------------------
  const snap = o.state.resume === 'never' ? null : await loadTrainState(o.state.store, o.state.prefix);
  if (!snap && o.state.resume === 'required') {
    throw new Error(`--resume: no snapshot under ${o.state.where ?? o.state.prefix}; run with --snapshot-every N first`);
  }
  const prior = provenanceOf(snap?.meta);
  const initRef = prior.init ?? req.init;
  let init: { version: string; cp: OpenedCheckpoint } | null = null;
  let initModel: tf.LayersModel | undefined; // disposed as soon as its weights are copied
  let session: TrainSession | undefined;
  try {
    init = initRef !== undefined ? await openInit(initRef, o) : null;
    initModel = init?.cp.model;
    const model = chooseModel(req.model, init);
    const loaded = await (o.data.load ?? loadTrainingData)(req.dataset, model, o.data.limits, o.data.sources ?? {});
    // A warm start keeps its normalisation: the weights were trained on inputs scaled that way.
    const data: TrainingData = init ? { ...loaded, norm: { mean: init.cp.manifest.preprocessing.mean, std: init.cp.manifest.preprocessing.std } } : loaded;
    const plan = planSteps(data.train.n, req.batchSize, req.epochs, req.maxSteps);
    const startStep = snap?.step ?? 0;
    const config = { model, recipe: req.recipe, batch: req.batchSize, epochs: req.epochs, seed: req.seed, ablation: req.ablation, ...(init ? { init: init.version } : {}), ...o.configExtra };
    await h.onData?.(data, plan, { startStep, config });
    session = createTrainSession({
      model,
      recipe: req.recipe,
      norm: data.norm,
      ablation: req.ablation,
      seed: req.seed,
      batchSize: req.batchSize,
      stepsPerEpoch: plan.stepsPerEpoch,
    });
    if (snap) {
      session.importState(snap);
      h.onResume?.(snap.step, snap.meta);
    } else if (init) {
      session.initBackboneFrom(initModel!);
      h.log?.('train.warm-start', { from: init.version });
    }
    initModel?.dispose();
    initModel = undefined;
    const resumed = snap ? { resumedFromStep: snap.step } : {};

    // --- train ---------------------------------------------------------------------------------------
    const loopStart = now();
    let loopEnd: number | undefined;
    const provenance = (): Provenance => ({
      trainSeconds: prior.trainSeconds + ((loopEnd ?? now()) - loopStart) / 1000,
      commands: [...prior.commands, o.command],
      ...(init ? { init: init.version } : {}),
    });
    const snapshot = async (step: number): Promise<void> => {
      const meta = { config, ...provenance(), ...h.snapshotMeta?.() };
      await saveTrainState(o.state.store, o.state.prefix, session!.exportState(step, Math.floor(step / plan.stepsPerEpoch), meta));
      h.onSnapshot?.(step);
    };
    const epochKnn = o.evaluation ? (o.evaluation.epochKnn ?? 0) : 0;
    let lastEpoch = Math.floor(startStep / plan.stepsPerEpoch);
    const onProgress = async (e: ProgressEvent): Promise<void> => {
      await h.onProgress?.(e);
      const epoch = Math.floor(e.step / plan.stepsPerEpoch);
      if (epoch !== lastEpoch) {
        lastEpoch = epoch;
        const knnTop1 = epochKnn > 0 && data.evaluation ? await validationKnn(session!, data, epochKnn) : undefined;
        await h.onEpoch?.({ epoch, step: e.step, seconds: e.elapsedSeconds, t: e.t, ...(knnTop1 !== undefined ? { knnTop1 } : {}) });
      }
    };
    const loop = await runTrainingLoop(session.parts, {
      dataset: data.train,
      batchSize: req.batchSize,
      epochs: req.epochs,
      ...(req.maxSteps !== undefined ? { maxSteps: req.maxSteps } : {}),
      ...(req.maxMinutes !== undefined ? { maxMinutes: req.maxMinutes } : {}),
      seed: req.seed,
      startStep,
      diagnosticsEvery: o.diagnosticsEvery,
      snapshotEvery: o.state.every,
      snapshot,
      onProgress,
      ...(h.shouldStop ? { shouldStop: h.shouldStop } : {}),
      now,
    });
    loopEnd = now();
    // Stopped early (signal, --max-minutes): keep the work so --resume / the next worker continues.
    if (loop.stoppedBy !== 'completed' && loop.stoppedBy !== 'cancelled' && o.state.every > 0 && loop.steps > startStep) {
      await snapshot(loop.steps);
    }
    if (loop.stoppedBy === 'stopped' || loop.stoppedBy === 'cancelled') {
      return { outcome: loop.stoppedBy === 'stopped' ? 'stopped' : 'cancelled', steps: loop.steps, ...resumed, loop };
    }
    h.onTrained?.(loop);

    // --- evaluate (validation; test figures when loaded), gate ---------------------------------------
    const ev = o.evaluation;
    const validation = ev ? await evaluateOnValidation(session, data, { probeEpochs: ev.probeEpochs, seed: req.seed }) : null;
    const test = ev && validation ? await evaluateOnTest(session, data, validation, ev.rawBaselines) : null;
    const latest = o.gate && o.models ? await readLatest(o.models) : null;
    let gate: TrainedRun['gate'] = null;
    const d = loop.diagnostics;
    const finalLoss = loop.last?.loss ?? NaN;
    // γ = 1 (the loss default): the variance hinge is 1 − mean embedding std while every std is below 1.
    const embeddingStd = loop.last ? Math.max(0, 1 - loop.last.variance) : undefined;
    if (o.gate) {
      const current = validation && o.models ? await servedModelAccuracy(o.models, data, h.log) : null;
      const decision = decideGate(
        { finalLoss, std: d.normStd, effectiveRank: d.effectiveRank, ...(embeddingStd !== undefined ? { embeddingStd } : {}), accuracy: validation?.knnTop1 ?? null },
        current,
        o.gate.config,
        o.gate.force,
      );
      gate = { ...decision, current };
      h.log?.('gate.decision', { ...decision, candidate: validation?.knnTop1 ?? null, current: current?.version ?? null });
    }
    const testHead = test ? headline(test) : {};
    const metrics = flatMetrics({
      val_knn_top1: validation?.knnTop1,
      val_linear_top1: validation?.linearTop1,
      test_knn_top1: testHead.knn,
      test_linear_top1: testHead.linear,
      test_raw_knn_top1: testHead.rawKnn,
      test_raw_linear_top1: testHead.rawLinear,
      final_loss: finalLoss,
      invariance: loop.last?.invariance,
      variance: loop.last?.variance,
      covariance: loop.last?.covariance,
      std: d.std,
      norm_std: d.normStd,
      effective_rank: d.effectiveRank,
      embedding_std: embeddingStd,
      steps: loop.steps,
      current_val_knn_top1: gate?.current?.accuracy,
    });

    // --- checkpoint files (the adapter writes or publishes them) -------------------------------------
    const p = provenance();
    const rejectedReason = gate && !gate.pass ? gate.reasons.join('; ') : undefined;
    const backbone = session.backboneModel(); // a fresh LayersModel: disposed once serialised
    const t = data.train;
    const checkpoint = await buildCheckpointFiles({
      model: backbone,
      ...(validation?.head ? { linearHead: validation.head } : {}),
      // The same backbone for onnxruntime, which the Node API serves it on (api/node/onnx-runner.ts).
      extraFiles: new Map([[MODEL_ONNX, exportOnnx(backbone)]]),
      manifest: {
        parent: init?.version ?? latest?.version ?? null,
        state: rejectedReason ? 'rejected' : 'active-candidate',
        ...(rejectedReason ? { rejectedReason } : {}),
        training: {
          config,
          seed: req.seed,
          steps: loop.steps,
          epochs: loop.steps / plan.stepsPerEpoch,
          wallSeconds: p.trainSeconds,
          // Every invocation that trained this checkpoint, one per line, first to last.
          command: p.commands.join('\n'),
        },
        dataset: { name: data.name, fingerprint: data.fingerprint, n: t.n },
        preprocessing: { inputSize: t.height, channels: t.channels as 1 | 3, mean: data.norm.mean, std: data.norm.std, resize: 'fill' },
        representationDim: session.representationDim,
        backend: o.backend,
        metrics,
      },
    }).finally(() => backbone.dispose());
    return { outcome: 'trained', steps: loop.steps, ...resumed, loop, data, plan, validation, test, gate, metrics, checkpoint, trainSeconds: p.trainSeconds };
  } finally {
    session?.dispose();
    initModel?.dispose();
  }
}

function provenanceOf(meta: Record<string, unknown> | undefined): Provenance {
  const seconds = meta?.['trainSeconds'];
  const commands = meta?.['commands'];
  const init = meta?.['init'];
  return {
    trainSeconds: typeof seconds === 'number' && Number.isFinite(seconds) ? seconds : 0,
    commands: Array.isArray(commands) ? commands.filter((c): c is string => typeof c === 'string') : [],
    ...(typeof init === 'string' ? { init } : {}),
  };
}

/** `init`: 'latest' or a version in the model store (or whatever the adapter's openInit accepts). */
async function openInit(ref: string, o: PipelineOptions): Promise<{ version: string; cp: OpenedCheckpoint }> {
  if (o.openInit) {
    const cp = await o.openInit(ref);
    return { version: cp.manifest.version, cp };
  }
  if (!o.models) throw new Error(`init '${ref}' needs the model store`);
  let version = ref;
  if (ref === 'latest') {
    const latest = await readLatest(o.models);
    if (!latest) throw new Error("init 'latest': no model is published yet; leave init out to train from scratch");
    version = latest.version;
  }
  try {
    return { version, cp: await loadCheckpoint(o.models, version) };
  } catch (e) {
    throw new Error(`init '${ref}': cannot load version ${version}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The requested network, or the warm start's; a warm start of another architecture is a clear error. */
function chooseModel(requested: ModelConfig | undefined, init: { version: string; cp: OpenedCheckpoint } | null): ModelConfig {
  if (!init) return requested ?? ModelConfig.parse({});
  const recorded = ModelConfig.safeParse(init.cp.manifest.training.config['model']);
  if (!recorded.success) {
    if (requested) return requested; // older manifests: the weight copy checks the shapes
    throw new Error(`init ${init.version}: its manifest does not record its network; give the model explicitly`);
  }
  const want = requested ? ModelConfig.parse(requested) : recorded.data;
  if (JSON.stringify(want) !== JSON.stringify(recorded.data)) {
    throw new Error(
      `init ${init.version} is a different architecture (${describeModel(recorded.data)}) from the one requested ` +
        `(${describeModel(want)}): leave the model out to continue it, or leave init out to train from scratch`,
    );
  }
  return want;
}

export function describeModel(m: ModelConfig): string {
  const b = m.backbone;
  return `widths ${b.widths.join(',')}, blocks ${b.blocks.join(',')}, ${b.block} blocks, ${b.stem} stem, ${b.inputSize}px×${b.channels}, expander ${m.expander}`;
}

/** kNN top-1 on the validation split with a bank of the first `bankSize` labelled training images. */
async function validationKnn(session: TrainSession, data: TrainingData, bankSize: number): Promise<number> {
  const ev = data.evaluation!;
  const bank = subset(ev.train, Int32Array.from({ length: Math.min(ev.train.n, bankSize) }, (_, i) => i));
  const train = { features: await extractFeatures(session.representation, bank, data.norm), labels: bank.labels! };
  const val = { features: await extractFeatures(session.representation, ev.val, data.norm), labels: ev.val.labels! };
  return (await knnEvaluate(train, val, { k: 20, temperature: 0.07, numClasses: ev.numClasses })).top1;
}

/** kNN (k = 20) and the linear probe (the checkpoint's head) on the validation split. */
async function evaluateOnValidation(
  session: TrainSession,
  data: TrainingData,
  opts: { probeEpochs: number; seed: number },
): Promise<EvaluationOutcome | null> {
  const ev = data.evaluation;
  if (!ev) return null;
  const train = { features: await extractFeatures(session.representation, ev.train, data.norm), labels: ev.train.labels! };
  const val = { features: await extractFeatures(session.representation, ev.val, data.norm), labels: ev.val.labels! };
  const { result, head } = await evaluateRepresentation({
    dataset: data.name,
    split: 'validation',
    train,
    test: val,
    numClasses: ev.numClasses,
    ...(ev.classNames ? { classNames: ev.classNames } : {}),
    knnK: [20],
    linear: { epochs: opts.probeEpochs, seed: opts.seed },
  });
  return { result, bank: train, ...(head ? { head } : {}), knnTop1: result.encoder.knn[0]?.top1 ?? NaN, linearTop1: result.encoder.linear?.top1 ?? null };
}

/** The figures to report: the same kNN bank and probe head, scored once on the test split, beside raw pixels. */
async function evaluateOnTest(session: TrainSession, data: TrainingData, validation: EvaluationOutcome, rawBaselines: boolean): Promise<EvalResult | null> {
  const ev = data.evaluation;
  if (!ev || !data.test) return null;
  const train = validation.bank;
  const test = { features: await extractFeatures(session.representation, data.test, data.norm), labels: data.test.labels! };
  const raw = rawBaselines ? { train: rawPixelFeatures(ev.train), test: rawPixelFeatures(data.test) } : undefined;
  try {
    const { result } = await evaluateRepresentation({
      dataset: data.name,
      split: 'test',
      train,
      test,
      ...(raw ? { raw: { train: { features: raw.train, labels: ev.train.labels! }, test: { features: raw.test, labels: data.test.labels! } } } : {}),
      numClasses: ev.numClasses,
      ...(ev.classNames ? { classNames: ev.classNames } : {}),
      knnK: [20],
      linear: validation.head ? { head: validation.head, epochs: validation.result.encoder.linear?.epochs ?? 0 } : false,
    });
    return result;
  } finally {
    if (raw) tf.dispose([raw.train, raw.test]);
  }
}

function headline(r: EvalResult): { knn?: number; linear?: number; rawKnn?: number; rawLinear?: number } {
  const knn20 = (f: EvalResult['encoder'] | undefined) => f?.knn.find((k) => k.k === 20)?.top1 ?? f?.knn[0]?.top1;
  return { knn: knn20(r.encoder), linear: r.encoder.linear?.top1, rawKnn: knn20(r.raw), rawLinear: r.raw?.linear?.top1 };
}

/**
 * The served (`latest`) model's kNN top-1 on the same validation images, so the gate compares like with
 * like. Null when there is no served model, no labels, or its input shape differs from this data.
 */
async function servedModelAccuracy(
  store: ObjectStore,
  data: TrainingData,
  log?: (event: string, fields: Record<string, unknown>) => void,
): Promise<{ version: string; accuracy: number } | null> {
  const latest = await readLatest(store);
  if (!latest || !data.evaluation) return null;
  const cp = await loadCheckpoint(store, latest.version);
  try {
    const p = cp.manifest.preprocessing;
    const ev = data.evaluation;
    if (p.inputSize !== ev.val.height || p.inputSize !== ev.val.width || p.channels !== ev.val.channels) {
      log?.('gate.no-comparison', {
        reason: `current model ${latest.version} takes ${p.inputSize}px×${p.channels}, this data is ${ev.val.height}px×${ev.val.channels}`,
      });
      return null;
    }
    const represent = (x: tf.Tensor4D) => cp.model.predict(x) as tf.Tensor2D;
    const norm = { mean: p.mean, std: p.std };
    const train = { features: await extractFeatures(represent, ev.train, norm), labels: ev.train.labels! };
    const val = { features: await extractFeatures(represent, ev.val, norm), labels: ev.val.labels! };
    const r = await knnEvaluate(train, val, { k: 20, temperature: 0.07, numClasses: ev.numClasses });
    return { version: latest.version, accuracy: r.top1 };
  } finally {
    cp.model.dispose();
  }
}

/** Flat numeric metrics for the manifest and the job file (finite numbers only). */
export function flatMetrics(figures: Record<string, number | null | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(figures)) if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  return out;
}
