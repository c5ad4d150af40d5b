import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../shared/node/backend-node.js';
import type { BackendInfo } from '../shared/compute/backend.js';
import { readLatest } from '../shared/checkpoint/publish.js';
import { loadTrainState } from '../shared/checkpoint/train-state.js';
import { systemClock } from '../shared/jobs/clock.js';
import { createJob, readJob } from '../shared/jobs/jobs.js';
import { jobStatePrefix } from '../shared/jobs/schema.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { workerConfigFromEnv } from '../gpu-worker/config.js';
import { createJsonLogger } from '../shared/log.js';
import { startWorker } from '../gpu-worker/worker.js';
import type { JobOutcome } from '../gpu-worker/run-job.js';
import { withLocalS3 } from './helpers/s3.js';

/** The worker as a real child process (`npm run worker`'s entry) against s3rver: SIGKILL and SIGTERM. */
const ROOT = join(import.meta.dirname, '..');
const WORKER_ENV = {
  LEASE_SECONDS: '5',
  POLL_INTERVAL_MS: '100',
  PROGRESS_INTERVAL_MS: '300',
  SNAPSHOT_EVERY_STEPS: '2',
  DIAGNOSTICS_EVERY_STEPS: '4',
  EVAL_TRAIN_LIMIT: '256',
  EVAL_TEST_LIMIT: '200',
  PROBE_EPOCHS: '3',
  GATE_MIN_RANK: '1.2',
  GATE_MIN_STD: '0.001',
  SHUTDOWN_TIMEOUT_MS: '8000',
  VICREG_BACKEND: 'wasm',
  VICREG_THREADS: '1',
};
const job = {
  dataset: { kind: 'fashion-mnist' as const, limit: 256 },
  epochs: 10,
  maxSteps: 14,
  batchSize: 64,
  model: { backbone: { widths: [8, 16], blocks: [1, 1] }, expander: '64-64' },
};

let backend: BackendInfo;
beforeAll(async () => {
  backend = await initNodeBackend({ force: 'wasm', threads: 1, log: () => {} });
});

function spawnWorker(env: Record<string, string>, id: string): { child: ChildProcess; exit: Promise<{ code: number | null; signal: string | null }>; log: string[] } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'gpu-worker/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...WORKER_ENV, ...env, WORKER_ID: id },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log: string[] = [];
  child.stderr!.setEncoding('utf8').on('data', (d: string) => log.push(...d.split('\n').filter(Boolean)));
  const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, exit, log };
}

async function waitFor<T>(what: string, f: () => Promise<T | null | undefined | false>, timeoutMs = 90_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Run an in-process worker until no job is claimable. */
async function finishWith(store: ObjectStore, id: string): Promise<JobOutcome[]> {
  const outcomes: JobOutcome[] = [];
  const w = startWorker({
    store,
    config: workerConfigFromEnv({ ...WORKER_ENV, WORKER_ID: id, EXIT_WHEN_IDLE: 'true', LOG_LEVEL: 'warn' }),
    backend,
    logger: createJsonLogger({ level: 'warn', write: () => {} }),
    onJobDone: (o) => outcomes.push(o),
  });
  await w.done;
  return outcomes;
}

describe('worker process lifecycle on s3rver', () => {
  const s3 = withLocalS3();

  it('killed with SIGKILL mid-run, the job is resumed from its last snapshot by the next worker', async () => {
    const store = s3.current.store;
    const j = await createJob(store, job, systemClock);
    const victim = spawnWorker(s3.current.env, 'victim');
    const snap = await waitFor('a snapshot at step ≥ 4', async () => {
      const s = await loadTrainState(store, jobStatePrefix(j.id));
      return s && s.step >= 4 ? s : null;
    });
    victim.child.kill('SIGKILL');
    expect((await victim.exit).signal).toBe('SIGKILL');
    const orphan = await readJob(store, j.id);
    expect(orphan).toMatchObject({ state: 'running', lease: { owner: 'victim' } });
    // Nobody may take it while the dead worker's lease is still valid; wait for it to expire.
    const wait = Date.parse(orphan!.lease!.expiresAt) - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait + 100));
    const resumedFrom = (await loadTrainState(store, jobStatePrefix(j.id)))!.step;
    expect(resumedFrom).toBeGreaterThanOrEqual(snap.step);

    const outcomes = await finishWith(store, 'rescuer');
    expect(outcomes).toEqual([expect.objectContaining({ jobId: j.id, state: 'succeeded', resumedFromStep: resumedFrom, steps: 14 })]);
    const done = await readJob(store, j.id);
    expect(done).toMatchObject({ state: 'succeeded', attempts: 2 });
    expect(done?.logTail.some((l) => /claimed by rescuer \(attempt 2, previous lease expired\)/.test(l))).toBe(true);
    expect((await readLatest(store))?.version).toBe(done?.result?.version);
  });

  it('SIGTERM: snapshots, releases the lease and exits 0 within the bound; the job resumes elsewhere', async () => {
    const store = s3.current.store;
    const j = await createJob(store, job, systemClock);
    const w = spawnWorker(s3.current.env, 'terminated');
    await waitFor('training progress', async () => ((await readJob(store, j.id))?.progress?.step ?? 0) >= 3);
    const t0 = Date.now();
    w.child.kill('SIGTERM');
    const { code } = await w.exit;
    const seconds = (Date.now() - t0) / 1000;
    expect(code, w.log.slice(-5).join('\n')).toBe(0);
    expect(seconds).toBeLessThan(8 + 2);
    const released = await readJob(store, j.id);
    expect(released?.state).toBe('queued');
    expect(released?.lease).toBeUndefined();
    const snap = await loadTrainState(store, jobStatePrefix(j.id));
    expect(snap!.step).toBeGreaterThanOrEqual(3);
    expect(w.log.some((l) => l.includes('worker.single-worker-only'))).toBe(true);

    const outcomes = await finishWith(store, 'next');
    expect(outcomes).toEqual([expect.objectContaining({ state: 'succeeded', resumedFromStep: snap!.step, steps: 14 })]);
  });
});
