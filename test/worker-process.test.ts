import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../shared/node/backend-node.js';
import type { BackendInfo } from '../shared/compute/backend.js';
import { readLatest } from '../shared/checkpoint/publish.js';
import { loadTrainState } from '../shared/checkpoint/train-state.js';
import { systemClock, type Clock } from '../shared/jobs/clock.js';
import { createJob, readJob } from '../shared/jobs/jobs.js';
import { claimNextJob } from '../shared/jobs/lease.js';
import { jobStatePrefix } from '../shared/jobs/schema.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { workerConfigFromEnv } from '../gpu-worker/config.js';
import { createJsonLogger } from '../shared/log.js';
import { startWorker } from '../gpu-worker/worker.js';
import type { JobOutcome } from '../gpu-worker/run-job.js';
import { until } from './helpers/poll.js';
import { withLocalS3 } from './helpers/s3.js';
import { TINY_JOB, WORKER_TEST_ENV } from './helpers/worker-job.js';

/** The worker as a real child process (`npm run worker`'s entry) against s3rver: SIGKILL and SIGTERM. */
const ROOT = join(import.meta.dirname, '..');
const WORKER_ENV = WORKER_TEST_ENV;
const job = TINY_JOB;

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
  let partial = ''; // a chunk can end mid-line: only whole lines are searched
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    log.push(...lines.filter(Boolean));
  });
  const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, exit, log };
}

/**
 * An HTTP proxy between one worker process and s3rver that forwards every request until the worker has
 * written a training snapshot at step ≥ `fromStep` (its state.json pointer), then holds every later request
 * unanswered until release(). The worker awaits the store at every step, so from then on it cannot
 * advance a step, let alone finish the job: a signal sent meanwhile finds it mid-job however fast the
 * machine is.
 */
async function holdAfterSnapshot(target: string, fromStep: number) {
  let armed = false;
  let triggered = false;
  let holding = false;
  let held: (() => void)[] = [];
  let landed!: () => void;
  const snapshotLanded = new Promise<void>((r) => (landed = r));
  const forward = (req: IncomingMessage, res: ServerResponse, onDone?: () => void) => {
    const up = request(new URL(req.url!, target), { method: req.method, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode!, upRes.headers);
      upRes.pipe(res);
      upRes.on('end', () => onDone?.());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  };
  const server = createServer((req, res) => {
    if (holding) {
      held.push(() => forward(req, res));
      return;
    }
    const path = new URL(req.url!, 'http://proxy').pathname;
    const blob = /\/state\/blobs\/step-(\d+)-/.exec(path);
    if (!triggered && req.method === 'PUT' && blob && Number(blob[1]) >= fromStep) armed = true;
    if (armed && req.method === 'PUT' && path.endsWith('/state/state.json')) {
      [armed, triggered] = [false, true]; // once: after release() everything is forwarded
      holding = true; // everything received from now on waits
      forward(req, res, landed);
      return;
    }
    forward(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    /** Resolves once the pointer of the snapshot at step ≥ fromStep is in the store (and holding began). */
    snapshotLanded,
    /** Forward what was held, and everything after. */
    release() {
      holding = false;
      const queued = held;
      held = [];
      for (const f of queued) f();
    },
    async close() {
      held = [];
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Run an in-process worker until no job is claimable. */
async function finishWith(store: ObjectStore, id: string, clock: Clock = systemClock): Promise<JobOutcome[]> {
  const outcomes: JobOutcome[] = [];
  const w = startWorker({
    store,
    clock,
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
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0)) await f();
  });

  it('killed with SIGKILL mid-run, the job is resumed from its last snapshot by the next worker', async () => {
    const store = s3.current.store;
    const j = await createJob(store, job, systemClock);
    const proxy = await holdAfterSnapshot(s3.current.endpoint, 4);
    cleanup.push(() => proxy.close());
    const victim = spawnWorker({ ...s3.current.env, S3_ENDPOINT: proxy.url }, 'victim');
    cleanup.push(() => void (victim.child.exitCode === null && victim.child.signalCode === null && victim.child.kill('SIGKILL')));
    await proxy.snapshotLanded;
    const snap = await loadTrainState(store, jobStatePrefix(j.id));
    expect(snap!.step).toBeGreaterThanOrEqual(4);
    victim.child.kill('SIGKILL');
    expect((await victim.exit).signal).toBe('SIGKILL');
    const orphan = await readJob(store, j.id);
    expect(orphan).toMatchObject({ state: 'running', lease: { owner: 'victim' } });
    // Nobody may take it while the dead worker's lease is valid (clocks injected: no waiting for it to expire).
    const expiresAt = Date.parse(orphan!.lease!.expiresAt);
    expect(await claimNextJob(store, { now: () => expiresAt - 1 }, { owner: 'early', leaseMs: 5_000 })).toBeNull();
    const skew = Math.max(0, expiresAt + 1 - Date.now());
    const afterExpiry: Clock = { now: () => Date.now() + skew };
    expect((await loadTrainState(store, jobStatePrefix(j.id)))!.step).toBe(snap!.step);

    const outcomes = await finishWith(store, 'rescuer', afterExpiry);
    expect(outcomes).toEqual([expect.objectContaining({ jobId: j.id, state: 'succeeded', resumedFromStep: snap!.step, steps: 14 })]);
    const done = await readJob(store, j.id);
    expect(done).toMatchObject({ state: 'succeeded', attempts: 2 });
    expect(done?.logTail.some((l) => /claimed by rescuer \(attempt 2, previous lease expired\)/.test(l))).toBe(true);
    expect((await readLatest(store))?.version).toBe(done?.result?.version);
  });

  it('SIGTERM: snapshots, releases the lease and exits 0 by itself; the job resumes elsewhere', async () => {
    const store = s3.current.store;
    const j = await createJob(store, job, systemClock);
    const proxy = await holdAfterSnapshot(s3.current.endpoint, 2);
    cleanup.push(() => proxy.close());
    const w = spawnWorker({ ...s3.current.env, S3_ENDPOINT: proxy.url }, 'terminated');
    cleanup.push(() => void (w.child.exitCode === null && w.child.signalCode === null && w.child.kill('SIGKILL')));
    // Held after its step-2 snapshot: the worker is inside step 3 of 14 when the signal arrives.
    await proxy.snapshotLanded;
    w.child.kill('SIGTERM');
    await until('worker.stopping logged', () => w.log.some((l) => l.includes('"worker.stopping"')));
    proxy.release();
    const { code } = await w.exit;
    expect(code, w.log.slice(-5).join('\n')).toBe(0);
    // Stopped by the graceful path (snapshot, release), not by SHUTDOWN_TIMEOUT_MS running out.
    expect(w.log.some((l) => l.includes('worker.shutdown-timeout'))).toBe(false);
    const released = await readJob(store, j.id);
    expect(released?.state).toBe('queued');
    expect(released?.lease).toBeUndefined();
    const snap = await loadTrainState(store, jobStatePrefix(j.id));
    expect(snap!.step).toBe(3);
    expect(w.log.some((l) => l.includes('worker.single-worker-only'))).toBe(true);

    const outcomes = await finishWith(store, 'next');
    expect(outcomes).toEqual([expect.objectContaining({ state: 'succeeded', resumedFromStep: snap!.step, steps: 14 })]);
  });
});
