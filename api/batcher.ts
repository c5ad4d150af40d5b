/**
 * Dynamic micro-batching (as in Triton): items submitted while a batch is forming join it; a batch runs
 * when it reaches maxBatch or maxWaitMs after its first item, whichever is first. Batches run one at a
 * time (the forward pass saturates the cores); the next batch forms while one runs.
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
}

export class MicroBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private timer: unknown = undefined;
  private running = false;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (h: unknown) => void;

  constructor(private readonly opts: BatcherOptions<I, O>) {
    if (!(opts.maxBatch >= 1)) throw new RangeError(`maxBatch must be ≥ 1, got ${opts.maxBatch}`);
    if (!(opts.maxWaitMs >= 0)) throw new RangeError(`maxWaitMs must be ≥ 0, got ${opts.maxWaitMs}`);
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
  }

  /** Items waiting for a batch (not counting the one running). */
  get pending(): number {
    return this.queue.length;
  }

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Submit several items; they may span batches but keep their order. */
  submitAll(items: I[]): Promise<O[]> {
    return Promise.all(items.map((i) => this.submit(i)));
  }

  private schedule(): void {
    if (this.running) return; // the running batch's completion schedules the next one
    if (this.queue.length >= this.opts.maxBatch) {
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
    settled
      .then(
        (outs) => {
          if (outs.length !== batch.length) throw new Error(`batch function returned ${outs.length} results for ${batch.length} items`);
          this.opts.onBatch?.(batch.length, Date.now() - started);
          batch.forEach((p, i) => p.resolve(outs[i]!));
        },
        (err) => batch.forEach((p) => p.reject(err)),
      )
      .catch((err) => batch.forEach((p) => p.reject(err)))
      .finally(() => {
        this.running = false;
        // Whatever queued while running goes now: those items have already waited a whole batch.
        if (this.queue.length > 0) this.fire();
      });
  }
}
