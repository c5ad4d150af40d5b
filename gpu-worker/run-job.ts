import { publishCheckpoint, readLatest } from '../shared/checkpoint/publish.js';
import { loadTrainState, saveTrainState } from '../shared/checkpoint/train-state.js';
import type { BackendInfo } from '../shared/compute/backend.js';
import { iso, type Clock } from '../shared/jobs/clock.js';
import { readJob } from '../shared/jobs/jobs.js';
import { finishJob, heartbeat, LeaseLostError, releaseJob, type LeaseOwner } from '../shared/jobs/lease.js';
import { appendLog, jobStatePrefix, pushLossHistory, resolveRequest, type JobFile, type JobProgress } from '../shared/jobs/schema.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { NonFiniteLossError, planSteps, runTrainingLoop, type ProgressEvent } from '../shared/train/loop.js';
import type { WorkerConfig } from './config.js';
import { loadTrainingData, type TrainingData } from './data.js';
import { decideGate } from './gate.js';
import type { Logger } from '../shared/log.js';
import { checkpointFiles, currentModelAccuracy, evaluateOnHeldOut, flatMetrics } from './pipeline.js';
import { createTrainSession, type TrainSession } from './train-parts.js';

/** One claimed job, start to finish: data → (resume) → train → evaluate → gate → publish → job file. */

export interface RunJobDeps {
  store: ObjectStore;
  config: WorkerConfig;
  clock: Clock;
  log: Logger;
  backend: BackendInfo;
  /** Non-null (the reason) once the worker must stop: snapshot, release the lease, return. */
  stopRequested: () => string | null;
  /** Overrides where the data comes from (tests); default: the request's dataset spec. */
  loadData?: typeof loadTrainingData;
}

export interface JobOutcome {
  jobId: string;
  state: 'succeeded' | 'failed' | 'cancelled' | 'released' | 'lease-lost';
  steps: number;
  resumedFromStep?: number;
  version?: string;
  activated?: boolean;
  rejectedReason?: string;
  error?: string;
}

export async function runJob(job: JobFile, deps: RunJobDeps): Promise<JobOutcome> {
  const { store, config, clock, log } = deps;
  const who: LeaseOwner = { owner: config.workerId, leaseMs: config.leaseMs };
  const req = resolveRequest(job.request);
  const statePrefix = jobStatePrefix(job.id);
  let session: TrainSession | undefined;
  let steps = 0;
  let resumedFromStep: number | undefined;
  let keepAlive: NodeJS.Timeout | undefined;
  // Data warnings (skipped images) also go to the job's log tail, where the API shows them.
  const dataWarnings: string[] = [];
  try {
    const data: TrainingData = await (deps.loadData ?? loadTrainingData)(req.dataset, req.model, {
      evalTrainLimit: config.eval.trainLimit,
      evalTestLimit: config.eval.testLimit,
      seed: req.seed,
      warn: (m) => {
        dataWarnings.push(m);
        log.warn('data.warning', { message: m });
      },
    }, { store });
    const plan = planSteps(data.train.n, req.batchSize, req.epochs, req.maxSteps);
    log.info('job.data', { dataset: data.name, n: data.train.n, ...plan, labelled: data.evaluation !== undefined });
    session = createTrainSession({
      model: req.model,
      recipe: req.recipe,
      norm: data.norm,
      ablation: req.ablation,
      seed: req.seed,
      batchSize: req.batchSize,
      stepsPerEpoch: plan.stepsPerEpoch,
    });
    const snap = await loadTrainState(store, statePrefix);
    if (snap) {
      session.importState(snap);
      resumedFromStep = snap.step;
      log.info('job.resumed', { fromStep: snap.step, savedAt: snap.savedAt });
    }
    steps = resumedFromStep ?? 0;
    const lossHistory0 = (snap?.meta['lossHistory'] as [number, number][] | undefined) ?? [];

    // --- progress, heartbeat, cancellation --------------------------------------------------------
    let progress: JobProgress | undefined = job.progress;
    let lossHistory = lossHistory0;
    let lastBeat = clock.now();
    let cancel = job.cancelRequested === true;
    let leaseLost: LeaseLostError | null = null;
    const pendingLog: string[] = dataWarnings.map((m) => `${iso(clock)} warning: ${m}`);
    const beat = async (): Promise<void> => {
      const lines = pendingLog.splice(0);
      const stored = await heartbeat(store, clock, job.id, who, (j) => {
        if (progress) j.progress = progress;
        j.backend = deps.backend.detail;
        for (const l of lines) j.logTail = appendLog(j.logTail, l);
      });
      lastBeat = clock.now();
      if (stored.cancelRequested) cancel = true;
    };
    const snapshot = async (completed: number): Promise<void> => {
      await saveTrainState(store, statePrefix, session!.exportState(completed, Math.floor(completed / plan.stepsPerEpoch), {
        jobId: job.id,
        lossHistory,
      }));
      pendingLog.push(`${iso(clock)} snapshot at step ${completed}`);
      log.info('job.snapshot', { step: completed });
    };
    const onProgress = async (e: ProgressEvent): Promise<void> => {
      steps = e.step;
      lossHistory = pushLossHistory(lossHistory, [e.step, e.loss]);
      progress = {
        epoch: e.epoch,
        step: e.step,
        totalSteps: e.totalSteps,
        loss: e.loss,
        invariance: e.invariance,
        variance: e.variance,
        covariance: e.covariance,
        lr: e.lr,
        imagesPerSec: e.imagesPerSec,
        etaSeconds: e.etaSeconds,
        std: e.normStd ?? progress?.std ?? null,
        effectiveRank: e.effectiveRank ?? progress?.effectiveRank ?? null,
        lossHistory,
      };
      if (e.effectiveRank !== undefined) log.info('train.health', { step: e.step, normStd: e.normStd, effectiveRank: e.effectiveRank });
      try {
        if (clock.now() - lastBeat >= config.progressIntervalMs || e.step === e.totalSteps) {
          log.info('train.progress', { step: e.step, totalSteps: e.totalSteps, loss: e.loss, imagesPerSec: Math.round(e.imagesPerSec) });
          await beat();
        } else {
          // A cheap read each step so a cancel stops the run within one step.
          const j = await readJob(store, job.id);
          if (j?.cancelRequested) cancel = true;
          if (j && (j.state !== 'running' || j.lease?.owner !== who.owner)) {
            leaseLost = new LeaseLostError(job.id, who.owner, `job is ${j.state}, lease held by ${j.lease?.owner ?? 'nobody'}`);
          }
        }
      } catch (err) {
        if (err instanceof LeaseLostError) leaseLost = err;
        else log.warn('job.progress-write-failed', { error: err });
      }
    };

    await beat(); // record the backend and any cancel that arrived before we started
    const result = await runTrainingLoop(session.parts, {
      dataset: data.train,
      batchSize: req.batchSize,
      epochs: req.epochs,
      ...(req.maxSteps !== undefined ? { maxSteps: req.maxSteps } : {}),
      ...(req.maxMinutes !== undefined ? { maxMinutes: req.maxMinutes } : {}),
      seed: req.seed,
      startStep: resumedFromStep ?? 0,
      diagnosticsEvery: config.diagnosticsEverySteps,
      snapshotEvery: config.snapshotEverySteps,
      snapshot,
      onProgress,
      shouldStop: () => (leaseLost || deps.stopRequested() ? 'stop' : cancel ? 'cancel' : null),
      now: () => clock.now(),
    });
    steps = result.steps;
    if (leaseLost) throw leaseLost;

    if (result.stoppedBy === 'stopped') {
      // SIGTERM: keep the work, hand the job back.
      if (result.steps > (resumedFromStep ?? 0)) await snapshot(result.steps);
      await beat().catch(() => {});
      await releaseJob(store, clock, job.id, who.owner, `${deps.stopRequested() ?? 'stop'} at step ${result.steps}`);
      return { jobId: job.id, state: 'released', steps, ...(resumedFromStep !== undefined ? { resumedFromStep } : {}) };
    }
    if (result.stoppedBy === 'cancelled') {
      await finishJob(store, clock, job.id, who.owner, { state: 'cancelled', log: `cancelled at step ${result.steps}` });
      return { jobId: job.id, state: 'cancelled', steps };
    }

    // --- evaluate, gate, publish ----------------------------------------------------------------
    // Evaluation can outlast a lease on a CPU: keep renewing it in the background meanwhile.
    pendingLog.push(`${iso(clock)} training done at step ${result.steps} (${result.stoppedBy}); evaluating`);
    keepAlive = setInterval(() => {
      beat().catch((err: unknown) => {
        if (err instanceof LeaseLostError) leaseLost = err;
        else log.warn('job.heartbeat-failed', { error: err });
      });
    }, config.progressIntervalMs);
    const represent = session.representation;
    const evaluation = await evaluateOnHeldOut(represent, data, { probeEpochs: config.eval.probeEpochs, rawBaselines: false, seed: req.seed });
    const current = evaluation ? await currentModelAccuracy(store, data, (e, f) => log.info(e, f)) : null;
    const diag = result.diagnostics;
    const finalLoss = result.last?.loss ?? NaN;
    // γ = 1 (the loss default): the variance hinge is 1 − mean embedding std while every std is below 1.
    const embeddingStd = result.last ? Math.max(0, 1 - result.last.variance) : undefined;
    const decision = decideGate(
      {
        finalLoss,
        std: diag.normStd,
        effectiveRank: diag.effectiveRank,
        ...(embeddingStd !== undefined ? { embeddingStd } : {}),
        accuracy: evaluation?.knnTop1 ?? null,
      },
      current,
      config.gate,
      req.force,
    );
    if (leaseLost) throw leaseLost; // another worker owns it now: do not publish a duplicate
    log.info('gate.decision', { ...decision, candidate: evaluation?.knnTop1 ?? null, current: current?.version ?? null });
    const metrics = flatMetrics({
      knn_top1: evaluation?.knnTop1,
      linear_top1: evaluation?.linearTop1,
      final_loss: finalLoss,
      invariance: result.last?.invariance,
      variance: result.last?.variance,
      covariance: result.last?.covariance,
      std: diag.std,
      norm_std: diag.normStd,
      effective_rank: diag.effectiveRank,
      embedding_std: embeddingStd,
      steps: result.steps,
      current_knn_top1: current?.accuracy,
    });
    const latest = await readLatest(store);
    const rejectedReason = decision.pass ? undefined : decision.reasons.join('; ');
    const backbone = session.backboneModel(); // a fresh LayersModel: disposed once serialised
    const { files, manifest } = await checkpointFiles({
      backbone,
      representationDim: session.representationDim,
      data,
      ...(evaluation?.head ? { head: evaluation.head } : {}),
      parent: latest?.version ?? null,
      ...(rejectedReason ? { rejectedReason } : {}),
      training: {
        config: { ...req, job: job.id, worker: who.owner },
        seed: req.seed,
        steps: result.steps,
        epochs: result.steps / plan.stepsPerEpoch,
        wallSeconds: result.seconds,
        command: `retrain job ${job.id}`,
      },
      backend: deps.backend.detail,
      metrics,
    }).finally(() => backbone.dispose());
    await publishCheckpoint(store, files, { activate: decision.pass, clock: () => new Date(clock.now()) });
    log.info('job.published', { version: manifest.version, activated: decision.pass, rejectedReason });
    clearInterval(keepAlive);
    await finishJob(store, clock, job.id, who.owner, {
      state: 'succeeded',
      result: {
        version: manifest.version,
        published: true,
        activated: decision.pass,
        ...(rejectedReason ? { rejectedReason } : {}),
      },
      metrics,
      log: decision.pass ? `published ${manifest.version}, now latest` : `published ${manifest.version} as rejected: ${rejectedReason}`,
    });
    await deleteState(store, statePrefix);
    return {
      jobId: job.id,
      state: 'succeeded',
      steps,
      ...(resumedFromStep !== undefined ? { resumedFromStep } : {}),
      version: manifest.version,
      activated: decision.pass,
      ...(rejectedReason ? { rejectedReason } : {}),
    };
  } catch (err) {
    if (err instanceof LeaseLostError) {
      log.warn('job.lease-lost', { error: err, step: steps });
      return { jobId: job.id, state: 'lease-lost', steps };
    }
    const message = err instanceof Error ? err.message : String(err);
    log.error('job.failed', { error: err, step: steps, ...(err instanceof NonFiniteLossError ? { values: err.values } : {}) });
    try {
      await finishJob(store, clock, job.id, who.owner, { state: 'failed', error: message, log: message });
    } catch (e2) {
      if (!(e2 instanceof LeaseLostError)) throw e2;
    }
    return { jobId: job.id, state: 'failed', steps, error: message };
  } finally {
    clearInterval(keepAlive);
    session?.dispose();
  }
}

async function deleteState(store: ObjectStore, prefix: string): Promise<void> {
  for (const o of await store.list(prefix)) await store.delete(o.key);
}
