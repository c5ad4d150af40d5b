import { describe, expect, it } from 'vitest';
import { MicroBatcher } from '../api/batcher.js';

describe('MicroBatcher', () => {
  it('groups concurrent submissions into batches of at most maxBatch, in order', async () => {
    const batches: number[][] = [];
    const b = new MicroBatcher<number, number>({
      maxBatch: 4,
      maxWaitMs: 20,
      run: async (xs) => {
        batches.push(xs);
        await new Promise((r) => setTimeout(r, 5));
        return xs.map((x) => x * 10);
      },
    });
    const out = await Promise.all(Array.from({ length: 10 }, (_, i) => b.submit(i)));
    expect(out).toEqual(Array.from({ length: 10 }, (_, i) => i * 10));
    expect(batches.flat()).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(batches.every((x) => x.length <= 4)).toBe(true);
    expect(batches[0]).toHaveLength(4); // a full batch runs without waiting for the window
    expect(batches.length).toBe(3);
  });

  it('hands the slot to the next batch before answering the finished one (the model thread does not wait for responses)', async () => {
    const releases: (() => void)[] = [];
    let started = 0;
    const b = new MicroBatcher<number, number>({
      maxBatch: 1,
      maxWaitMs: 1,
      run: (xs) => {
        started++;
        return new Promise((r) => releases.push(() => r(xs)));
      },
    });
    const first = b.submit(1);
    const second = b.submit(2); // queued: the only slot is busy
    expect(started).toBe(1);
    // What the first caller sees the moment its answer arrives: has the second batch already started?
    const seenByFirst = first.then(() => started);
    releases[0]!();
    expect(await seenByFirst).toBe(2);
    releases[1]!();
    expect(await second).toBe(2);
  });

  it('a lone item runs after maxWaitMs, not later', async () => {
    const b = new MicroBatcher<number, number>({ maxBatch: 64, maxWaitMs: 30, run: async (xs) => xs });
    const t0 = performance.now();
    await b.submit(1);
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(25);
    expect(ms).toBeLessThan(500);
  });

  it('items arriving within the window share one batch; batch sizes are reported', async () => {
    const sizes: number[] = [];
    const b = new MicroBatcher<number, number>({ maxBatch: 64, maxWaitMs: 40, run: async (xs) => xs, onBatch: (n) => sizes.push(n) });
    const p1 = b.submit(1);
    await new Promise((r) => setTimeout(r, 5));
    const p2 = b.submit(2);
    const p3 = b.submit(3);
    expect(await Promise.all([p1, p2, p3])).toEqual([1, 2, 3]);
    expect(sizes).toEqual([3]);
  });

  it('a failing batch rejects its own items only; the next batch still runs', async () => {
    let calls = 0;
    const b = new MicroBatcher<number, number>({
      maxBatch: 2,
      maxWaitMs: 1,
      run: async (xs) => {
        calls++;
        if (calls === 1) throw new Error('forward pass failed');
        return xs;
      },
    });
    const first = Promise.allSettled([b.submit(1), b.submit(2)]);
    const second = Promise.allSettled([b.submit(3), b.submit(4)]);
    expect((await first).map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect((await second).map((r) => (r.status === 'fulfilled' ? r.value : null))).toEqual([3, 4]);
    // A run that returns the wrong number of results is an error, not a silent mismatch.
    const bad = new MicroBatcher<number, number>({ maxBatch: 2, maxWaitMs: 1, run: async () => [1] });
    await expect(Promise.all([bad.submit(1), bad.submit(2)])).rejects.toThrow(/1 results for 2 items/);
  });

  it('rejects nonsense options', () => {
    expect(() => new MicroBatcher({ maxBatch: 0, maxWaitMs: 1, run: async (x) => x })).toThrow(/maxBatch/);
  });
});

describe('MicroBatcher reservations', () => {
  it('waits for reserved items still being prepared, then runs as soon as all have arrived', async () => {
    const sizes: number[] = [];
    const b = new MicroBatcher<number, number>({ maxBatch: 64, maxWaitMs: 200, run: async (xs) => xs, onBatch: (n) => sizes.push(n) });
    const slots = [b.reserve(1), b.reserve(1), b.reserve(1)];
    const t0 = performance.now();
    const outs = slots.map((s, i) =>
      new Promise((r) => setTimeout(r, 5 + i * 10)).then(() => s.submitAll([i])).finally(() => s.release()),
    );
    expect(await Promise.all(outs)).toEqual([[0], [1], [2]]);
    // One batch with all three, well before the 200 ms window would have closed.
    expect(sizes).toEqual([3]);
    expect(performance.now() - t0).toBeLessThan(150);
  });

  it('a lone reserved request does not sit out the window; a released reservation stops the wait', async () => {
    const b = new MicroBatcher<number, number>({ maxBatch: 64, maxWaitMs: 300, run: async (xs) => xs });
    const s = b.reserve(1);
    const t0 = performance.now();
    expect(await s.submitAll([7])).toEqual([7]);
    expect(performance.now() - t0).toBeLessThan(100);
    const failed = b.reserve(1);
    const ok = b.reserve(1);
    const p = ok.submitAll([8]);
    failed.release(); // its decode failed: nothing more is coming
    expect(await p).toEqual([8]);
    expect(performance.now() - t0).toBeLessThan(200);
  });

  it('batches never overlap; what queued meanwhile runs as soon as the running batch settles', async () => {
    let running = 0;
    let peak = 0;
    const sizes: number[] = [];
    const b = new MicroBatcher<number, number>({
      maxBatch: 4,
      maxWaitMs: 1000,
      run: async (xs) => {
        sizes.push(xs.length);
        peak = Math.max(peak, ++running);
        await new Promise((r) => setTimeout(r, 10));
        running--;
        return xs;
      },
    });
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 6 }, (_, i) => b.submit(i)));
    expect(peak).toBe(1);
    expect(sizes).toEqual([4, 2]);
    expect(performance.now() - t0).toBeLessThan(500); // the 2 left over did not sit out the 1 s window
  });
});
