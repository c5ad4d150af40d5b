import { describe, expect, it } from 'vitest';
import { MicroBatcher } from '../api/batcher.js';

/** The batcher's window timer on a clock the test moves by hand: a verdict never depends on wall time. */
function manualTimers() {
  const pending = new Map<number, { fn: () => void; ms: number }>();
  let seq = 0;
  let fired = 0;
  return {
    opts: {
      setTimer: (fn: () => void, ms: number) => (pending.set(++seq, { fn, ms }), seq),
      clearTimer: (h: unknown) => void pending.delete(h as number),
    },
    /** Delays of the windows currently open. */
    windows: () => [...pending.values()].map((t) => t.ms),
    /** Close the one open window (its maxWaitMs has passed). */
    fire() {
      expect(pending.size).toBe(1);
      const [id, t] = [...pending][0]!;
      pending.delete(id);
      fired++;
      t.fn();
    },
    get fired() {
      return fired;
    },
  };
}

/** Lets every pending promise callback run (a macrotask turn; no timer involved). */
const settle = () => new Promise<void>((r) => setImmediate(r));

/** Whether p has settled, read after settle(). */
function tracked<T>(p: Promise<T>): { p: Promise<T>; done: () => boolean } {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  return { p, done: () => done };
}

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

  it('a lone item runs when its maxWaitMs window closes, not before and not on a later timer', async () => {
    const t = manualTimers();
    let runs = 0;
    const b = new MicroBatcher<number, number>({
      maxBatch: 64,
      maxWaitMs: 30,
      run: async (xs) => {
        runs++;
        return xs;
      },
      ...t.opts,
    });
    const p = tracked(b.submit(1));
    await settle();
    expect(runs).toBe(0); // waiting for company
    expect(t.windows()).toEqual([30]);
    t.fire();
    expect(await p.p).toBe(1);
    expect(runs).toBe(1);
    expect(t.windows()).toEqual([]);
  });

  it('items arriving within the window share one batch; batch sizes are reported', async () => {
    const t = manualTimers();
    const sizes: number[] = [];
    const b = new MicroBatcher<number, number>({ maxBatch: 64, maxWaitMs: 40, run: async (xs) => xs, onBatch: (n) => sizes.push(n), ...t.opts });
    const p1 = b.submit(1);
    await settle();
    const p2 = b.submit(2);
    const p3 = b.submit(3);
    await settle();
    expect(sizes).toEqual([]);
    expect(t.windows()).toEqual([40]); // one window, opened by the first item
    t.fire();
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
    const t = manualTimers();
    const sizes: number[] = [];
    const b = new MicroBatcher<number, number>({ maxBatch: 64, maxWaitMs: 200, run: async (xs) => xs, onBatch: (n) => sizes.push(n), ...t.opts });
    const slots = [b.reserve(1), b.reserve(1), b.reserve(1)];
    const outs: Promise<number[]>[] = [];
    for (let i = 0; i < 3; i++) {
      outs.push(slots[i]!.submitAll([i]).finally(() => slots[i]!.release()));
      await settle();
      if (i < 2) expect(sizes, `after item ${i}`).toEqual([]); // still waiting for the other reservations
    }
    expect(await Promise.all(outs)).toEqual([[0], [1], [2]]);
    // One batch with all three, started by the last arrival: the window never had to close.
    expect(sizes).toEqual([3]);
    expect(t.fired).toBe(0);
    expect(t.windows()).toEqual([]);
  });

  it('a lone reserved request does not sit out the window; a released reservation stops the wait', async () => {
    const t = manualTimers();
    const b = new MicroBatcher<number, number>({ maxBatch: 64, maxWaitMs: 300, run: async (xs) => xs, ...t.opts });
    const s = b.reserve(1);
    const lone = tracked(s.submitAll([7]));
    await settle();
    expect(lone.done()).toBe(true);
    expect(await lone.p).toEqual([7]);
    const failed = b.reserve(1);
    const ok = b.reserve(1);
    const p = tracked(ok.submitAll([8]));
    await settle();
    expect(p.done()).toBe(false); // the other reservation may still bring an item
    failed.release(); // its decode failed: nothing more is coming
    await settle();
    expect(p.done()).toBe(true);
    expect(await p.p).toEqual([8]);
    expect(t.fired).toBe(0);
    expect(t.windows()).toEqual([]);
  });

  it('batches never overlap; what queued meanwhile runs as soon as the running batch settles', async () => {
    const t = manualTimers();
    let running = 0;
    let peak = 0;
    const sizes: number[] = [];
    const finish: (() => void)[] = [];
    const b = new MicroBatcher<number, number>({
      maxBatch: 4,
      maxWaitMs: 1000,
      run: (xs) => {
        sizes.push(xs.length);
        peak = Math.max(peak, ++running);
        return new Promise((resolve) =>
          finish.push(() => {
            running--;
            resolve(xs);
          }),
        );
      },
      ...t.opts,
    });
    const all = Promise.all(Array.from({ length: 6 }, (_, i) => b.submit(i)));
    await settle();
    expect(sizes).toEqual([4]); // a full batch runs at once; the other 2 wait for it
    finish[0]!();
    await settle();
    expect(sizes).toEqual([4, 2]); // the 2 left over did not sit out the window
    expect(t.fired).toBe(0);
    finish[1]!();
    expect(await all).toEqual([0, 1, 2, 3, 4, 5]);
    expect(peak).toBe(1);
  });
});
