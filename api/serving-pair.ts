import type { DecodeTarget } from '../shared/image/decoder.js';
import type { VectorIndex } from '../shared/index/vector-index.js';

/** What requests do with a pair's index (writes go through the host, which knows the gallery revisions). */
export type ServingIndex = Pick<VectorIndex, 'dimension' | 'size' | 'get' | 'has' | 'ids' | 'query' | 'entries'>;
import type { GalleryItem } from './gallery.js';
import { MicroBatcher, PerRequestBatcher, type Batcher } from './batcher.js';
import type { ApiMetrics } from './metrics.js';
import type { Preprocessing, ServingModel } from './model-source.js';

/**
 * One model version and its gallery index, served together. Requests lease the pair they started with,
 * so a swap never changes the model under a request, and the model is disposed when its last lease ends.
 */
export class ServingPair<I extends ServingIndex = ServingIndex> {
  readonly batcher: Batcher<Float32Array, Float32Array>;
  private leases = 0;
  private retired = false;
  private disposed = false;

  constructor(
    readonly model: ServingModel,
    readonly index: I,
    /** Micro-batching across concurrent requests, or (Workers) each request's images as their own batch. */
    batch: { maxBatch: number; maxWaitMs: number; perRequest?: boolean },
    metrics: ApiMetrics,
  ) {
    const size = model.preprocessing.inputSize ** 2 * model.preprocessing.channels;
    const run = async (items: Float32Array[]) => {
      const input = new Float32Array(items.length * size);
      items.forEach((x, i) => input.set(x, i * size));
      const out = await model.forward(input, items.length);
      const d = model.dimension;
      return items.map((_, i) => out.slice(i * d, (i + 1) * d));
    };
    const onBatch = (n: number, ms: number) => {
      metrics.batchSize.observe({}, n);
      metrics.batchSeconds.observe({}, ms / 1000);
    };
    this.batcher = batch.perRequest
      ? new PerRequestBatcher({ maxBatch: batch.maxBatch, run, onBatch })
      : new MicroBatcher({
          maxBatch: batch.maxBatch,
          maxWaitMs: batch.maxWaitMs,
          run,
          onBatch,
        });
  }

  get version(): string {
    return this.model.version;
  }

  get preprocessing(): Preprocessing {
    return this.model.preprocessing;
  }

  get target(): DecodeTarget {
    return { size: this.model.preprocessing.inputSize, channels: this.model.preprocessing.channels, resize: this.model.preprocessing.resize ?? 'fill' };
  }

  /** Embed normalised images through the micro-batcher. */
  embed(inputs: Float32Array[]): Promise<Float32Array[]> {
    return this.batcher.submitAll(inputs);
  }

  /** Prepare (decode) one image while holding a place in the forming batch, then embed it. */
  async embedOne(prepare: () => Promise<Float32Array>): Promise<Float32Array> {
    const slot = this.batcher.reserve(1);
    try {
      return (await slot.submitAll([await prepare()]))[0]!;
    } finally {
      slot.release();
    }
  }

  acquire(): () => void {
    this.leases++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.leases--;
      this.maybeDispose();
    };
  }

  retire(): void {
    this.retired = true;
    this.maybeDispose();
  }

  private maybeDispose(): void {
    if (this.retired && this.leases === 0 && this.batcher.pending === 0 && !this.disposed) {
      this.disposed = true;
      this.model.dispose();
    }
  }
}

export interface LoadFailure {
  version: string;
  error: string;
  at: string;
}

export interface HostStatus {
  ready: boolean;
  reason?: string;
  serving: string | null;
  latest: string | null;
  loading: { version: string; phase: 'loading' | 'indexing'; done: number; total: number } | null;
  failures: LoadFailure[];
  /** Vectors in the serving index (as last seen, where the index lives elsewhere). */
  indexSize: number;
}

export class NoModelError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'NoModelError';
  }
}

/**
 * What the routes need from whatever follows models/latest.json and keeps the serving pair: the Node
 * ModelHost (in-process index, snapshots in the bucket) or the edge host (index in a Durable Object).
 */
export interface ServingHost {
  /** The pair serving now (null before the first model is ready). */
  readonly current: ServingPair | null;
  /** Lease the serving pair for one request; throws NoModelError (→ 503) when none is ready. */
  lease(): { pair: ServingPair; release: () => void };
  status(): HostStatus;
  /** Read latest now and load it if it is new (activate calls this). */
  refresh(): Promise<void>;
  /** A gallery item was added or replaced and embedded with `pair`'s model. */
  indexItem(pair: ServingPair, item: GalleryItem, vector: Float32Array): Promise<void>;
  removeItem(id: string): Promise<void>;
  /** A gallery item was added while no model serves: the first build picks it up. */
  noteChange(id: string): void;
}
