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
  it('with concurrency 2, two batches run at once and a third waits for a free slot', async () => {
    let running = 0;
    let peak = 0;
    const batches: number[][] = [];
    const b = new MicroBatcher<number, number>({
      maxBatch: 4,
      maxWaitMs: 20,
      concurrency: 2,
      run: async (xs) => {
        batches.push(xs);
        peak = Math.max(peak, ++running);
        await new Promise((r) => setTimeout(r, 30));
        running--;
        return xs.map((x) => x + 100);
      },
    });
    const out = await Promise.all(Array.from({ length: 12 }, (_, i) => b.submit(i)));
    expect(out).toEqual(Array.from({ length: 12 }, (_, i) => i + 100));
    expect(batches.map((x) => x.length)).toEqual([4, 4, 4]);
    expect(peak).toBe(2);
    expect(() => new MicroBatcher({ maxBatch: 1, maxWaitMs: 0, concurrency: 0, run: async (xs) => xs })).toThrow(/concurrency/);
  });

  it('with the default concurrency, batches never overlap', async () => {
    let running = 0;
    let peak = 0;
    const b = new MicroBatcher<number, number>({
      maxBatch: 4,
      maxWaitMs: 20,
      run: async (xs) => {
        peak = Math.max(peak, ++running);
        await new Promise((r) => setTimeout(r, 10));
        running--;
        return xs;
      },
    });
    await Promise.all(Array.from({ length: 12 }, (_, i) => b.submit(i)));
    expect(peak).toBe(1);
  });
});

describe('MicroBatcher with several batches at once', () => {
  /** A batcher over `concurrency` slots whose batches take `ms`; records each batch and when it started. */
  function slowBatcher(ms: number, maxWaitMs: number) {
    const starts: { items: number[]; at: number }[] = [];
    let running = 0;
    let peak = 0;
    const t0 = performance.now();
    const b = new MicroBatcher<number, number>({
      maxBatch: 64,
      maxWaitMs,
      concurrency: 2,
      run: async (xs) => {
        starts.push({ items: xs, at: performance.now() - t0 });
        peak = Math.max(peak, ++running);
        await new Promise((r) => setTimeout(r, ms));
        running--;
        return xs.map((x) => -x);
      },
    });
    /** Submit through a reservation, as the API does (so a batch with everyone here may start at once). */
    const send = (xs: number[]) => {
      const slot = b.reserve(xs.length);
      return slot.submitAll(xs).finally(() => slot.release());
    };
    return { b, send, starts, peak: () => peak };
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('a batch beside a running one gathers until it is as large as that one, then runs alongside it', async () => {
    const { send, starts, peak } = slowBatcher(150, 1000);
    const first = send([0, 1, 2, 3]); // nothing running: starts at once
    await sleep(10);
    const a = send([4]); // one item beside a batch of four: it waits for more
    await sleep(10);
    expect(starts).toHaveLength(1);
    const b2 = send([5, 6, 7]); // now four: it starts beside the first
    expect(await Promise.all([first, a, b2])).toEqual([[-0, -1, -2, -3], [-4], [-5, -6, -7]]);
    expect(starts.map((s) => s.items)).toEqual([[0, 1, 2, 3], [4, 5, 6, 7]]);
    expect(peak()).toBe(2);
    expect(starts[1]!.at).toBeLessThan(100); // long before the first batch (150 ms) ended
  });

  it('a batch of 8 beside a bigger one does not wait to match it (a core would idle for little gain)', async () => {
    const { send, starts, peak } = slowBatcher(150, 1000);
    const big = Array.from({ length: 20 }, (_, i) => i);
    const first = send(big);
    await sleep(10);
    const seven = send([20, 21, 22, 23, 24, 25, 26]); // 7 beside 20: still gathering
    await sleep(10);
    expect(starts).toHaveLength(1);
    const eighth = send([27]); // 8: enough, it starts beside the first
    await Promise.all([first, seven, eighth]);
    expect(starts.map((s) => s.items.length)).toEqual([20, 8]);
    expect(peak()).toBe(2);
    expect(starts[1]!.at).toBeLessThan(100); // long before the first batch (150 ms) ended or the 1 s window
  });

  it('a gathering batch starts when the running batch ends, or after maxWaitMs, whichever is first', async () => {
    const ends = slowBatcher(80, 1000);
    const first = ends.send([0, 1, 2, 3]);
    await sleep(10);
    await Promise.all([first, ends.send([4])]);
    expect(ends.starts.map((s) => s.items)).toEqual([[0, 1, 2, 3], [4]]);
    expect(ends.starts[1]!.at).toBeGreaterThanOrEqual(70); // waited for the first batch to finish…
    expect(ends.starts[1]!.at).toBeLessThan(500); // …not for the 1 s window

    const window = slowBatcher(400, 30);
    const long = window.send([0, 1, 2, 3]);
    await sleep(10);
    await Promise.all([long, window.send([4])]);
    expect(window.peak()).toBe(2);
    expect(window.starts[1]!.at).toBeGreaterThanOrEqual(30);
    expect(window.starts[1]!.at).toBeLessThan(300); // the window, not the 400 ms batch, ended the wait
  });

  it('maxWaitMs = 0 starts a batch beside a running one at once, whatever its size', async () => {
    const { send, starts, peak } = slowBatcher(100, 0);
    const first = send([0, 1, 2, 3]);
    await sleep(10);
    await Promise.all([first, send([4])]);
    expect(peak()).toBe(2);
    expect(starts[1]!.at).toBeLessThan(60);
  });
});
