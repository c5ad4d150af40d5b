import { publishCheckpoint } from '../shared/checkpoint/publish.js';
import type { BackendInfo } from '../shared/compute/backend.js';
import { iso, type Clock } from '../shared/jobs/clock.js';
import { readJob } from '../shared/jobs/jobs.js';
import { finishJob, heartbeat, LeaseLostError, releaseJob, type LeaseOwner } from '../shared/jobs/lease.js';
import { appendLog, jobStatePrefix, pushLossHistory, resolveRequest, type JobFile, type JobProgress } from '../shared/jobs/schema.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { NonFiniteLossError, type ProgressEvent } from '../shared/train/loop.js';
import type { WorkerConfig } from './config.js';
import { loadTrainingData } from './data.js';
import type { Logger } from '../shared/log.js';
import { runPipeline } from './pipeline.js';

/**
 * The worker's adapter of the training pipeline (pipeline.ts) for one claimed job: state in
 * jobs/<id>/state/, progress and the lease in the job file, cancel / SIGTERM as stop, and at the end the
 * gate's decision published (latest moves only if it passed) and the job finished.
 */

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
  let steps = 0;
  let keepAlive: NodeJS.Timeout | undefined;
  // --- progress, heartbeat, cancellation ----------------------------------------------------------
  let progress: JobProgress | undefined = job.progress;
  let lossHistory: [number, number][] = [];
  let lastBeat = clock.now();
  let cancel = job.cancelRequested === true;
  let leaseLost: LeaseLostError | null = null;
  const pendingLog: string[] = []; // lines for the job's log tail (shown by the API), sent with the next beat
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

  try {
    const run = await runPipeline({
      request: { ...req, model: job.request.model ? req.model : undefined },
      command: `retrain job ${job.id} (worker ${who.owner})`,
      backend: deps.backend.detail,
      configExtra: { job: job.id, worker: who.owner, dataset: req.dataset, force: req.force },
      data: {
        limits: {
          evalTrainLimit: config.eval.trainLimit,
          evalValLimit: config.eval.testLimit,
          warn: (m) => {
            pendingLog.push(`${iso(clock)} warning: ${m}`);
            log.warn('data.warning', { message: m });
          },
        },
        sources: { store },
        ...(deps.loadData ? { load: deps.loadData } : {}),
      },
      state: { store, prefix: statePrefix, every: config.snapshotEverySteps, resume: 'auto' },
      diagnosticsEvery: config.diagnosticsEverySteps,
      evaluation: { probeEpochs: config.eval.probeEpochs, rawBaselines: false },
      models: store,
      gate: { config: config.gate, force: req.force },
      hooks: {
        async onData(data, plan) {
          log.info('job.data', { dataset: data.name, n: data.train.n, ...plan, labelled: data.evaluation !== undefined });
          await beat(); // record the backend, the data warnings and any cancel that arrived before we started
        },
        onResume(step, meta) {
          steps = step;
          lossHistory = (meta['lossHistory'] as [number, number][] | undefined) ?? [];
          log.info('job.resumed', { fromStep: step });
        },
        onProgress,
        snapshotMeta: () => ({ jobId: job.id, lossHistory }),
        onSnapshot(step) {
          pendingLog.push(`${iso(clock)} snapshot at step ${step}`);
          log.info('job.snapshot', { step });
        },
        shouldStop: () => (leaseLost || deps.stopRequested() ? 'stop' : cancel ? 'cancel' : null),
        onTrained(loop) {
          // Evaluation can outlast a lease on a CPU: keep renewing it in the background meanwhile.
          pendingLog.push(`${iso(clock)} training done at step ${loop.steps} (${loop.stoppedBy}); evaluating on the validation split`);
          keepAlive = setInterval(() => {
            beat().catch((err: unknown) => {
              if (err instanceof LeaseLostError) leaseLost = err;
              else log.warn('job.heartbeat-failed', { error: err });
            });
          }, config.progressIntervalMs);
        },
        log: (event, fields) => log.info(event, fields),
      },
      now: () => clock.now(),
    });
    steps = run.steps;
    const resumed = run.resumedFromStep !== undefined ? { resumedFromStep: run.resumedFromStep } : {};
    if (leaseLost) throw leaseLost; // another worker owns it now: do not publish a duplicate
    if (run.outcome !== 'trained') {
      if (run.outcome === 'stopped') {
        // SIGTERM: the pipeline kept the work in a snapshot; hand the job back.
        await beat().catch(() => {});
        await releaseJob(store, clock, job.id, who.owner, `${deps.stopRequested() ?? 'stop'} at step ${run.steps}`);
        return { jobId: job.id, state: 'released', steps, ...resumed };
      }
      await finishJob(store, clock, job.id, who.owner, { state: 'cancelled', log: `cancelled at step ${run.steps}` });
      return { jobId: job.id, state: 'cancelled', steps };
    }

    // --- publish (latest moves only if the gate passed), finish the job ------------------------------
    const { checkpoint, metrics } = run;
    const pass = run.gate?.pass ?? true;
    const rejectedReason = checkpoint.manifest.rejectedReason;
    await publishCheckpoint(store, checkpoint.files, { activate: pass, clock: () => new Date(clock.now()) });
    const version = checkpoint.manifest.version;
    log.info('job.published', { version, activated: pass, rejectedReason, parent: checkpoint.manifest.parent });
    clearInterval(keepAlive);
    await finishJob(store, clock, job.id, who.owner, {
      state: 'succeeded',
      result: { version, published: true, activated: pass, ...(rejectedReason ? { rejectedReason } : {}) },
      metrics,
      log: pass ? `published ${version}, now latest` : `published ${version} as rejected: ${rejectedReason}`,
    });
    await deleteState(store, statePrefix);
    return { jobId: job.id, state: 'succeeded', steps, ...resumed, version, activated: pass, ...(rejectedReason ? { rejectedReason } : {}) };
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
  }
}

async function deleteState(store: ObjectStore, prefix: string): Promise<void> {
  for (const o of await store.list(prefix)) await store.delete(o.key);
}
