import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../shared/store/memory-store.js';
import type { Clock } from '../shared/jobs/clock.js';
import { createJob, readJob, requestCancel } from '../shared/jobs/jobs.js';
import { claimJob, claimNextJob, finishJob, heartbeat, LeaseLostError, releaseJob } from '../shared/jobs/lease.js';
import { workerConfigFromEnv } from '../gpu-worker/config.js';

/** A clock the test moves by hand, so lease expiry needs no waiting. */
function manualClock(start = Date.parse('2025-03-01T12:00:00Z')): Clock & { advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

const tiny = { dataset: { kind: 'fashion-mnist' as const, limit: 64 }, maxSteps: 2 };

describe('cancel with no live worker', () => {
  it('a running job whose lease expired (its worker died) is cancelled at once, and stays cancelled', async () => {
    const store = new MemoryStore();
    const clock = manualClock();
    const job = await createJob(store, tiny, clock);
    const dead = { owner: 'dead-worker', leaseMs: 10_000 };
    await claimJob(store, clock, job.id, dead);
    clock.advance(10_001); // no heartbeat: the lease has expired

    const res = await requestCancel(store, job.id, clock);
    expect(res).toMatchObject({ state: 'cancelled', cancelRequested: true });
    expect(res?.lease).toBeUndefined();
    const stored = await readJob(store, job.id);
    expect(stored?.state).toBe('cancelled');
    expect(stored?.logTail.at(-1)).toMatch(/cancelled \(no live worker: lease of dead-worker expired\)/);

    // Nobody resurrects it: not another worker, not the old one waking up.
    expect(await claimNextJob(store, clock, { owner: 'w2', leaseMs: 10_000 })).toBeNull();
    await expect(heartbeat(store, clock, job.id, dead)).rejects.toBeInstanceOf(LeaseLostError);
    await expect(finishJob(store, clock, job.id, dead.owner, { state: 'succeeded' })).rejects.toBeInstanceOf(LeaseLostError);
    await releaseJob(store, clock, job.id, dead.owner, 'SIGTERM');
    expect((await readJob(store, job.id))?.state).toBe('cancelled');
  });

  it('under a live lease the cancel is only flagged; the worker ends the job', async () => {
    const store = new MemoryStore();
    const clock = manualClock();
    const job = await createJob(store, tiny, clock);
    await claimJob(store, clock, job.id, { owner: 'w', leaseMs: 10_000 });
    clock.advance(9_999);
    expect(await requestCancel(store, job.id, clock)).toMatchObject({ state: 'running', cancelRequested: true, lease: { owner: 'w' } });
  });

  it('flagged while its worker lived, then the worker died: the next claim ends it instead of running it', async () => {
    const store = new MemoryStore();
    const clock = manualClock();
    const job = await createJob(store, tiny, clock);
    clock.advance(10);
    const other = await createJob(store, tiny, clock);
    await claimJob(store, clock, job.id, { owner: 'w1', leaseMs: 10_000 });
    await requestCancel(store, job.id, clock);
    clock.advance(10_001);
    const next = await claimNextJob(store, clock, { owner: 'w2', leaseMs: 10_000 });
    expect(next?.job.id).toBe(other.id);
    expect(await readJob(store, job.id)).toMatchObject({ state: 'cancelled', attempts: 1 });
  });

  it('LEASE_SECONDS is how long a dead worker holds its job before another takes it over', async () => {
    const { leaseMs } = workerConfigFromEnv({ LEASE_SECONDS: '7' });
    expect(leaseMs).toBe(7_000);
    const store = new MemoryStore();
    const clock = manualClock();
    const job = await createJob(store, tiny, clock);
    await claimNextJob(store, clock, { owner: 'killed', leaseMs });
    clock.advance(leaseMs - 1);
    expect(await claimNextJob(store, clock, { owner: 'restarted', leaseMs })).toBeNull();
    clock.advance(1);
    const taken = await claimNextJob(store, clock, { owner: 'restarted', leaseMs });
    expect(taken?.job).toMatchObject({ id: job.id, state: 'running', attempts: 2, lease: { owner: 'restarted' } });
  });
});
