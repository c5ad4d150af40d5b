import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../shared/store/memory-store.js';
import type { Clock } from '../shared/jobs/clock.js';
import { createJob, listJobs, readJob, readJobVersioned, requestCancel } from '../shared/jobs/jobs.js';
import { claimJob, claimNextJob, finishJob, heartbeat, LeaseLostError, releaseJob } from '../shared/jobs/lease.js';
import { jobKey, pushLossHistory, RetrainRequest, resolveRequest } from '../shared/jobs/schema.js';

/** A clock the test moves by hand, so lease expiry needs no waiting. */
function manualClock(start = Date.parse('2025-03-01T12:00:00Z')): Clock & { advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

const tiny = { dataset: { kind: 'fashion-mnist' as const, limit: 64 }, maxSteps: 2 };

describe('job files', () => {
  it('creates, reads and lists jobs newest first; rejects bad requests with a named field', async () => {
    const store = new MemoryStore();
    const clock = manualClock();
    const a = await createJob(store, tiny, clock);
    clock.advance(1000);
    const b = await createJob(store, { ...tiny, epochs: 2 }, clock);
    expect(a.state).toBe('queued');
    expect(await readJob(store, a.id)).toEqual(a);
    expect((await listJobs(store)).map((j) => j.id)).toEqual([b.id, a.id]);
    expect(await readJob(store, 'no-such-job')).toBeNull();
    expect(await readJob(store, '../etc/passwd')).toBeNull();
    await expect(createJob(store, { dataset: { kind: 'folder' } }, clock)).rejects.toThrow(/dataset.path is required/);
    await expect(createJob(store, { ...tiny, id: 'x' } as never, clock)).rejects.toThrow(/Unrecognized key/);
    // The same id cannot be created twice (create-only write).
    await expect(createJob(store, tiny, clock, { id: a.id })).rejects.toThrow(/already exists/);
  });

  it('skips (and reports) a corrupt job file instead of failing the listing', async () => {
    const store = new MemoryStore();
    const clock = manualClock();
    const good = await createJob(store, tiny, clock);
    await store.put(jobKey('broken'), '{"id":"broken"');
    await store.put('jobs/some-id/state/meta.json', '{}'); // snapshots are not jobs
    const bad: Error[] = [];
    const jobs = await listJobs(store, { onInvalid: (e) => bad.push(e) });
    expect(jobs.map((j) => j.id)).toEqual([good.id]);
    expect(bad[0]?.message).toMatch(/jobs\/broken\.json is not a valid job: not JSON/);
  });

  it('fills documented defaults when resolving a request', () => {
    const r = resolveRequest(RetrainRequest.parse({ dataset: { kind: 'gallery' } }));
    expect(r).toMatchObject({ epochs: 3, batchSize: 256, seed: 0, recipe: 'small', force: false });
    expect(r.ablation).toEqual({ lambda: 25, mu: 25, nu: 1 });
    expect(r.model.backbone.widths).toEqual([16, 32, 64, 128]);
  });

  it('keeps the loss history bounded, spanning the whole run', () => {
    let h: [number, number][] = [];
    for (let s = 0; s < 5000; s++) h = pushLossHistory(h, [s, 100 - s / 100], 50);
    expect(h.length).toBeLessThanOrEqual(50);
    expect(h[0]![0]).toBe(0);
    expect(h.at(-1)![0]).toBe(4999);
    expect(h.some(([s]) => s > 1000 && s < 3000)).toBe(true);
  });
});

describe('claiming with conditional writes (memory store enforces CAS)', () => {
  it('two workers racing for one job: exactly one wins', async () => {
    const store = new MemoryStore();
    const clock = manualClock();
    const job = await createJob(store, tiny, clock);
    const results = await Promise.all(
      ['w1', 'w2', 'w3'].map((owner) => claimJob(store, clock, job.id, { owner, leaseMs: 30_000 })),
    );
    const winners = results.filter((r) => r !== null);
    expect(winners).toHaveLength(1);
    const stored = await readJob(store, job.id);
    expect(stored?.state).toBe('running');
    expect(stored?.attempts).toBe(1);
    expect(stored?.lease?.owner).toBe(winners[0]!.job.lease!.owner);
  });

  it('an expired lease lets another worker take over; the old owner then learns it lost the job', async () => {
    const store = new MemoryStore();
    const clock = manualClock();
    const job = await createJob(store, tiny, clock);
    const w1 = { owner: 'w1', leaseMs: 10_000 };
    const w2 = { owner: 'w2', leaseMs: 10_000 };
    expect(await claimNextJob(store, clock, w1)).not.toBeNull();
    expect(await claimNextJob(store, clock, w2)).toBeNull(); // held
    clock.advance(5_000);
    await heartbeat(store, clock, job.id, w1); // renewed to t+15s
    clock.advance(9_000);
    expect(await claimNextJob(store, clock, w2)).toBeNull(); // still held thanks to the heartbeat
    clock.advance(7_000); // w1 silent past expiry
    const taken = await claimNextJob(store, clock, w2);
    expect(taken?.job.lease?.owner).toBe('w2');
    expect(taken?.job.attempts).toBe(2);
    await expect(heartbeat(store, clock, job.id, w1)).rejects.toBeInstanceOf(LeaseLostError);
    await expect(finishJob(store, clock, job.id, 'w1', { state: 'succeeded' })).rejects.toThrow(/lease held by w2/);
    const done = await finishJob(store, clock, job.id, 'w2', { state: 'succeeded', metrics: { knnAccuracy: 0.5 } });
    expect(done.state).toBe('succeeded');
    expect(done.lease).toBeUndefined();
    expect(await claimNextJob(store, clock, w1)).toBeNull();
  });

  it('claims the oldest job first and one job per claim', async () => {
    const store = new MemoryStore();
    const clock = manualClock();
    const first = await createJob(store, tiny, clock);
    clock.advance(10);
    const second = await createJob(store, tiny, clock);
    const w = { owner: 'w', leaseMs: 1000 };
    expect((await claimNextJob(store, clock, w))?.job.id).toBe(first.id);
    expect((await claimNextJob(store, clock, w))?.job.id).toBe(second.id);
    expect(await claimNextJob(store, clock, w)).toBeNull();
  });

  it('cancel: a queued job is cancelled at once; a running one is flagged for its worker', async () => {
    const store = new MemoryStore();
    const clock = manualClock();
    const queued = await createJob(store, tiny, clock);
    expect((await requestCancel(store, queued.id, clock))?.state).toBe('cancelled');
    expect(await claimNextJob(store, clock, { owner: 'w', leaseMs: 1000 })).toBeNull();

    const running = await createJob(store, tiny, clock);
    await claimJob(store, clock, running.id, { owner: 'w', leaseMs: 1000 });
    const flagged = await requestCancel(store, running.id, clock);
    expect(flagged).toMatchObject({ state: 'running', cancelRequested: true });
    const seen = await heartbeat(store, clock, running.id, { owner: 'w', leaseMs: 1000 });
    expect(seen.cancelRequested).toBe(true);
    const done = await finishJob(store, clock, running.id, 'w', { state: 'cancelled' });
    expect(done.state).toBe('cancelled');
    // Cancelling a finished job changes nothing.
    const before = await readJobVersioned(store, running.id);
    await requestCancel(store, running.id, clock);
    expect((await readJobVersioned(store, running.id))?.etag).toBe(before?.etag);
    expect(await requestCancel(store, 'missing', clock)).toBeNull();
  });

  it('a released job is queued again for any worker', async () => {
    const store = new MemoryStore();
    const clock = manualClock();
    const job = await createJob(store, tiny, clock);
    await claimJob(store, clock, job.id, { owner: 'w1', leaseMs: 60_000 });
    await releaseJob(store, clock, job.id, 'w1', 'SIGTERM');
    const j = await readJob(store, job.id);
    expect(j).toMatchObject({ state: 'queued', attempts: 1 });
    expect(j?.lease).toBeUndefined();
    expect(j?.logTail.at(-1)).toMatch(/released by w1: SIGTERM/);
    expect((await claimNextJob(store, clock, { owner: 'w2', leaseMs: 1000 }))?.job.attempts).toBe(2);
  });
});
