/**
 * Micro-batching across concurrent requests (as in Triton): items submitted while a batch is forming join
 * it; a batch runs when it reaches maxBatch or maxWaitMs after its first item, whichever is first. One
 * batch runs at a time (the forward pass already uses every core it is given); the next forms meanwhile
 * and runs as soon as the running one settles.
 *
 * Callers may reserve() places before their slow preparation (image decoding): while reservations are
 * outstanding the batch waits (up to maxWaitMs) for them, and once every reserved item has arrived it runs
 * at once, so a lone request does not sit out the window.
 */
export interface BatcherOptions<I, O> {
  maxBatch: number;
  maxWaitMs: number;
  /** Runs one batch; must return exactly one output per input, in order. */
  run: (items: I[]) => Promise<O[]>;
  /** Called with each batch's size (metrics). */
  onBatch?: (size: number, ms: number) => void;
  /** Pass-through timer so tests and runtimes without setTimeout semantics can substitute. */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

interface Pending<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
  /** Came through a reservation (so the batcher knows whether more are coming). */
  reserved: boolean;
}

export class MicroBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private timer: unknown = undefined;
  /** A batch is computing. */
  private running = false;
  /** Items promised by reserve() and not yet submitted or released. */
  private expected = 0;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (h: unknown) => void;

  constructor(private readonly opts: BatcherOptions<I, O>) {
    if (!(opts.maxBatch >= 1)) throw new RangeError(`maxBatch must be ≥ 1, got ${opts.maxBatch}`);
    if (!(opts.maxWaitMs >= 0)) throw new RangeError(`maxWaitMs must be ≥ 0, got ${opts.maxWaitMs}`);
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
  }

  /** Items waiting for a batch (not counting the ones running). */
  get pending(): number {
    return this.queue.length;
  }

  submit(item: I): Promise<O> {
    return this.enqueue([item], false)[0]!;
  }

  /** Submit several items; they may span batches but keep their order. */
  submitAll(items: I[]): Promise<O[]> {
    return Promise.all(this.enqueue(items, false));
  }

  /** Announce n items that will be submitted soon. Always call release() (in a finally). */
  reserve(n: number): { submitAll(items: I[]): Promise<O[]>; release(): void } {
    let left = Math.max(0, Math.floor(n));
    this.expected += left;
    const give = (k: number) => {
      const m = Math.min(k, left);
      left -= m;
      this.expected -= m;
    };
    return {
      submitAll: (items) => {
        give(items.length);
        return Promise.all(this.enqueue(items, true));
      },
      release: () => {
        if (left === 0) return;
        give(left);
        this.schedule();
      },
    };
  }

  private enqueue(items: I[], reserved: boolean): Promise<O>[] {
    const promises = items.map((item) => new Promise<O>((resolve, reject) => this.queue.push({ item, resolve, reject, reserved })));
    this.schedule();
    return promises;
  }

  private schedule(): void {
    if (this.running) return; // the running batch's completion starts the next one
    const everyoneHere = this.expected === 0 && this.queue.length > 0 && this.queue.every((p) => p.reserved);
    if (this.queue.length >= this.opts.maxBatch || everyoneHere) {
      this.fire();
    } else if (this.timer === undefined && this.queue.length > 0) {
      this.timer = this.setTimer(() => this.fire(), this.opts.maxWaitMs);
    }
  }

  private fire(): void {
    if (this.timer !== undefined) {
      this.clearTimer(this.timer);
      this.timer = undefined;
    }
    if (this.running || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.opts.maxBatch);
    this.running = true;
    const started = Date.now();
    let settled: Promise<O[]>;
    try {
      settled = this.opts.run(batch.map((p) => p.item));
    } catch (err) {
      settled = Promise.reject(err);
    }
    // The next batch starts before this batch's callers are answered: they go on to write their
    // responses, and the forward pass should not wait for that.
    const finish = () => {
      this.running = false;
      this.next();
    };
    settled.then(
      (outs) => {
        finish();
        try {
          if (outs.length !== batch.length) throw new Error(`batch function returned ${outs.length} results for ${batch.length} items`);
          this.opts.onBatch?.(batch.length, Date.now() - started);
        } catch (err) {
          batch.forEach((p) => p.reject(err));
          return;
        }
        batch.forEach((p, i) => p.resolve(outs[i]!));
      },
      (err) => {
        finish();
        batch.forEach((p) => p.reject(err));
      },
    );
  }

  /** After a batch settles: whatever queued meanwhile has already waited a whole batch, so run it now,
   * unless reserved items are still being prepared (then give them up to one window). */
  private next(): void {
    if (this.queue.length === 0) return;
    if (this.expected > 0) this.schedule();
    else this.fire();
  }
}

/** What the serving pair needs from a batcher. */
export type Batcher<I, O> = Pick<MicroBatcher<I, O>, 'pending' | 'submitAll' | 'reserve'>;

/**
 * Runs each submission as its own batch. In workerd, concurrent requests sharing MicroBatcher's batches
 * were cancelled as hung (a request's result settled by a batch that another request's timer started),
 * so at the edge a request's images are never batched with another request's.
 */
export class PerRequestBatcher<I, O> implements Batcher<I, O> {
  private running = 0;

  constructor(private readonly opts: Pick<BatcherOptions<I, O>, 'maxBatch' | 'run' | 'onBatch'>) {}

  /** Items accepted and not yet answered. */
  get pending(): number {
    return this.running;
  }

  async submitAll(items: I[]): Promise<O[]> {
    const out: O[] = [];
    for (let i = 0; i < items.length; i += this.opts.maxBatch) {
      const batch = items.slice(i, i + this.opts.maxBatch);
      const started = Date.now();
      this.running += batch.length;
      try {
        const outs = await this.opts.run(batch);
        if (outs.length !== batch.length) throw new Error(`batch function returned ${outs.length} results for ${batch.length} items`);
        this.opts.onBatch?.(batch.length, Date.now() - started);
        out.push(...outs);
      } finally {
        this.running -= batch.length;
      }
    }
    return out;
  }

  reserve(): { submitAll(items: I[]): Promise<O[]>; release(): void } {
    return { submitAll: (items) => this.submitAll(items), release: () => {} };
  }
}
