import { mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../shared/node/backend-node.js';
import type { BackendInfo } from '../shared/compute/backend.js';
import { listVersions, readLatest, readManifest } from '../shared/checkpoint/publish.js';
import { loadTrainState } from '../shared/checkpoint/train-state.js';
import { systemClock } from '../shared/jobs/clock.js';
import { createJob, readJob, requestCancel } from '../shared/jobs/jobs.js';
import { jobStatePrefix, type RetrainRequestInput } from '../shared/jobs/schema.js';
import { MemoryStore } from '../shared/store/memory-store.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { workerConfigFromEnv } from '../gpu-worker/config.js';
import { createJsonLogger } from '../shared/log.js';
import { startWorker } from '../gpu-worker/worker.js';
import type { JobOutcome } from '../gpu-worker/run-job.js';
import { ensureModelPublished } from '../scripts/bundled-checkpoint.js';
import { withLocalS3 } from './helpers/s3.js';

/** Tiny jobs: a 2-stage 8/16 network on 256 real Fashion-MNIST images, a handful of steps. */
const TINY_MODEL = { backbone: { widths: [8, 16], blocks: [1, 1] }, expander: '64-64' };
const tinyJob = (over: Partial<RetrainRequestInput> = {}): RetrainRequestInput => ({
  dataset: { kind: 'fashion-mnist', limit: 256 },
  epochs: 1,
  maxSteps: 4,
  batchSize: 64,
  model: TINY_MODEL,
  ...over,
});

const ENV = {
  LEASE_SECONDS: '30',
  POLL_INTERVAL_MS: '50',
  PROGRESS_INTERVAL_MS: '200',
  SNAPSHOT_EVERY_STEPS: '2',
  DIAGNOSTICS_EVERY_STEPS: '2',
  EVAL_TRAIN_LIMIT: '256',
  EVAL_TEST_LIMIT: '200',
  PROBE_EPOCHS: '3',
  EXIT_WHEN_IDLE: 'true',
  // A 16-dimensional tiny representation has a low rank even when healthy; the embedding floor catches collapse.
  GATE_MIN_RANK: '1.2',
  GATE_MIN_STD: '0.001',
  GATE_MIN_EMBEDDING_STD: '0.1',
  LOG_LEVEL: 'warn',
};

let backend: BackendInfo;
// The gate decides on validation images only: the worker sees a Fashion-MNIST folder (FMNIST_DIR, or the
// Debian package's) without its test files, so any read of a test image would fail the job.
const fmnistDir = process.env.FMNIST_DIR;
let trainOnly: string;
beforeAll(async () => {
  backend = await initNodeBackend({ force: 'wasm', threads: 1, log: () => {} });
  const src = fmnistDir ?? '/usr/share/datasets/fashion-mnist';
  trainOnly = await mkdtemp(join(tmpdir(), 'fmnist-train-only-'));
  for (const f of await readdir(src)) if (f.startsWith('train-')) await symlink(join(src, f), join(trainOnly, f));
  process.env.FMNIST_DIR = trainOnly;
});
afterAll(async () => {
  if (fmnistDir === undefined) delete process.env.FMNIST_DIR;
  else process.env.FMNIST_DIR = fmnistDir;
  await rm(trainOnly, { recursive: true, force: true });
});

function runWorker(store: ObjectStore, env: Record<string, string> = {}, lines?: string[]) {
  const outcomes: JobOutcome[] = [];
  const config = workerConfigFromEnv({ ...ENV, ...env });
  const logger = createJsonLogger({ level: 'info', write: (l) => void lines?.push(l) });
  const w = startWorker({ store, config, backend, logger, onJobDone: (o) => outcomes.push(o) });
  return { ...w, outcomes };
}

describe('worker against the loopback S3 server', () => {
  const s3 = withLocalS3();

  it('claims a queued tiny job, trains, evaluates, publishes, and moves latest', async () => {
    const store = s3.current.store;
    const job = await createJob(store, tinyJob(), systemClock);
    const lines: string[] = [];
    const w = runWorker(store, {}, lines);
    await w.done;
    const done = await readJob(store, job.id);
    expect(done?.state, done?.error).toBe('succeeded');
    expect(done?.lease).toBeUndefined();
    expect(done?.progress).toMatchObject({ step: 4, totalSteps: 4 });
    expect(done?.progress?.lossHistory.length).toBeGreaterThan(0);
    // On the validation split (5,000 training images never pretrained on); test images are not there to read.
    expect(done?.metrics?.['val_knn_top1']).toBeGreaterThan(0.3); // 10 classes: far above chance
    expect(Object.keys(done?.metrics ?? {}).filter((k) => k.startsWith('test_'))).toEqual([]);
    expect(done?.result).toMatchObject({ published: true, activated: true });
    const latest = await readLatest(store);
    expect(latest?.version).toBe(done?.result?.version);
    const m = (await readManifest(store, latest!.version))!.manifest;
    expect(m.state).toBe('active-candidate');
    expect(m.backend).toMatch(/wasm/);
    expect(m.files['linear-head.json']).toBeDefined();
    expect(m.metrics['effective_rank']).toBeGreaterThan(1);
    expect(m.training.command).toMatch(new RegExp(`^retrain job ${job.id} \\(worker .+\\)$`));
    // The snapshots are removed once the job has succeeded.
    expect(await store.list(jobStatePrefix(job.id))).toEqual([]);
    // s3rver has no conditional writes: the worker says a single worker only.
    expect(lines.some((l) => l.includes('worker.single-worker-only'))).toBe(true);
  });

  it('an invariance-only job (μ = ν = 0) collapses and is published as rejected; latest stays', async () => {
    const store = s3.current.store;
    // A served model for the gate to compare with: the one the test above published, or the bundled one.
    const before = await ensureModelPublished(store, resolve(import.meta.dirname, '../checkpoints/bundled'));
    const job = await createJob(store, tinyJob({ ablation: { lambda: 25, mu: 0, nu: 0 }, maxSteps: 24, epochs: 10 }), systemClock);
    const w = runWorker(store);
    await w.done;
    const done = await readJob(store, job.id);
    expect(done?.state, done?.error).toBe('succeeded');
    expect(done?.result?.activated).toBe(false);
    expect(done?.result?.rejectedReason).toMatch(/collapsed: embedding std/);
    // The gate measured the served model on the same validation images.
    expect(done?.metrics?.['current_val_knn_top1']).toBeGreaterThan(0.3);
    const m = (await readManifest(store, done!.result!.version))!.manifest;
    expect(m).toMatchObject({ state: 'rejected' });
    expect((await readLatest(store))?.version).toBe(before.version);
  });
});

describe('worker on the CAS-enforcing memory store', () => {
  it('two workers started on one job run it once', async () => {
    const store = new MemoryStore();
    const job = await createJob(store, tinyJob({ maxSteps: 2 }), systemClock);
    const a = runWorker(store, { WORKER_ID: 'wa' });
    const b = runWorker(store, { WORKER_ID: 'wb' });
    await Promise.all([a.done, b.done]);
    const all = [...a.outcomes, ...b.outcomes];
    expect(all).toHaveLength(1);
    const done = await readJob(store, job.id);
    expect(done).toMatchObject({ state: 'succeeded', attempts: 1 });
    expect(await listVersions(store)).toHaveLength(1);
  });

  it('a cancel written to the job file stops the run within one step → cancelled', async () => {
    const store = new MemoryStore();
    const job = await createJob(store, tinyJob({ maxSteps: 40, epochs: 10 }), systemClock);
    const config = workerConfigFromEnv({ ...ENV, WORKER_ID: 'wc' });
    let cancelledAt = -1;
    const w = startWorker({
      store,
      config,
      backend,
      logger: createJsonLogger({
        level: 'info',
        write: (l) => {
          // Cancel as soon as the first snapshot is written (step 2).
          if (cancelledAt < 0 && l.includes('"job.snapshot"')) {
            cancelledAt = JSON.parse(l).step as number;
            void requestCancel(store, job.id, systemClock);
          }
        },
      }),
    });
    await w.done;
    const done = await readJob(store, job.id);
    expect(done?.state).toBe('cancelled');
    expect(cancelledAt).toBe(2);
    // Stopped within a step or two of the request (the write races the step in flight).
    expect(done?.logTail.find((l) => /cancelled at step/.test(l))).toMatch(/cancelled at step [2-4]\b/);
    expect(await listVersions(store)).toHaveLength(0);
  });

  it('stop() (SIGTERM) snapshots, releases the lease, and another worker resumes from the snapshot', async () => {
    const store = new MemoryStore();
    const job = await createJob(store, tinyJob({ maxSteps: 8, epochs: 2 }), systemClock);
    const lines: string[] = [];
    let stopAt = -1;
    let stopped: Promise<void> | undefined;
    // Stop from the worker's own step-2 health line (no periodic snapshots here): the job is certainly mid-run,
    // with steps left, however fast or loaded the machine is.
    const first: ReturnType<typeof startWorker> = startWorker({
      store,
      config: workerConfigFromEnv({ ...ENV, WORKER_ID: 'w1', SNAPSHOT_EVERY_STEPS: '100' }),
      backend,
      logger: createJsonLogger({
        level: 'info',
        write: (l) => {
          lines.push(l);
          if (stopAt < 0 && l.includes('"train.health"')) {
            stopAt = JSON.parse(l).step as number;
            stopped = first.stop('SIGTERM');
          }
        },
      }),
    });
    await first.done;
    await stopped;
    expect(stopAt).toBe(2);
    expect(lines.some((l) => l.includes('worker.shutdown-timeout'))).toBe(false); // it stopped by itself, not by the bound
    const released = await readJob(store, job.id);
    expect(released).toMatchObject({ state: 'queued', attempts: 1 });
    expect(released?.lease).toBeUndefined();
    const snap = await loadTrainState(store, jobStatePrefix(job.id));
    expect(snap?.step).toBe(stopAt); // the stop's own snapshot, before the next step

    const second = runWorker(store, { WORKER_ID: 'w2' });
    await second.done;
    expect(second.outcomes[0]).toMatchObject({ state: 'succeeded', resumedFromStep: snap!.step, steps: 8 });
    expect(await readJob(store, job.id)).toMatchObject({ state: 'succeeded', attempts: 2 });
  });

  it('stop() is bounded: a worker stuck on a store that stopped answering returns after SHUTDOWN_TIMEOUT_MS and says so', async () => {
    const memory = new MemoryStore();
    const job = await createJob(memory, tinyJob({ maxSteps: 40, epochs: 10 }), systemClock);
    let stuck = false;
    // Every store call made once `stuck` is set never settles.
    const store = new Proxy(memory, {
      get(target, key, receiver) {
        const v = Reflect.get(target, key, receiver) as unknown;
        return typeof v === 'function' ? (...args: unknown[]) => (stuck ? new Promise(() => {}) : (v as (...a: unknown[]) => unknown).apply(target, args)) : v;
      },
    });
    const lines: string[] = [];
    let stopped!: (p: Promise<void>) => void;
    const stopping = new Promise<Promise<void>>((r) => (stopped = r));
    const w: ReturnType<typeof startWorker> = startWorker({
      store,
      config: workerConfigFromEnv({ ...ENV, WORKER_ID: 'ws', SHUTDOWN_TIMEOUT_MS: '100' }),
      backend,
      logger: createJsonLogger({
        level: 'info',
        write: (l) => {
          lines.push(l);
          if (!stuck && l.includes('"train.health"')) {
            stuck = true;
            stopped(w.stop('SIGTERM'));
          }
        },
      }),
    });
    const stop = await Promise.race([stopping, w.done.then(() => null)]);
    expect(stop, 'the job ended before its step-2 health line').not.toBeNull();
    // Nothing settles the job any more: only the shutdown bound can end stop().
    await stop;
    expect(lines.some((l) => l.includes('"worker.shutdown-timeout"'))).toBe(true);
    expect(await readJob(memory, job.id)).toMatchObject({ state: 'running', lease: { owner: 'ws' } });
  });
});
