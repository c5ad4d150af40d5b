/**
 * The Node gallery index beside each served model: an in-process exact index per model version, built
 * from its snapshot in the bucket (index/<version>/) or by re-embedding the gallery with that model, kept
 * in step with gallery writes, and snapshotted back to the bucket. The model swap is api/model-host.ts.
 */
import { z } from 'zod';
import type { ImageDecoder } from '../shared/image/decoder.js';
import { ExactIndex, deserializeExactIndex } from '../shared/index/exact-index.js';
import type { Logger } from '../shared/log.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import type { Gallery, GalleryItem } from './gallery.js';
import type { ApiMetrics } from './metrics.js';
import type { ServingModel } from './model-source.js';
import { normalise } from './preprocess.js';
import { ServingPair } from './serving-pair.js';

/** The Node pair: an in-process exact index and, per id, the gallery revision embedded in it. */
export class IndexedPair extends ServingPair<ExactIndex> {
  constructor(
    model: ServingModel,
    index: ExactIndex,
    /** id → gallery revision embedded in the index (to notice replaced images after a restart). */
    readonly revisions: Map<string, string>,
    batch: { maxBatch: number; maxWaitMs: number },
    metrics: ApiMetrics,
  ) {
    super(model, index, batch, metrics);
  }
}

export interface GalleryIndexerDeps {
  store: ObjectStore;
  gallery: Gallery;
  decoder: ImageDecoder;
  metrics: ApiMetrics;
  logger: Logger;
  batch: { maxBatch: number; maxWaitMs: number };
  /** Delay before an index snapshot is written after a gallery change (coalesces bursts). */
  snapshotDelayMs?: number;
}

const Revisions = z.record(z.string(), z.string());
const snapshotKey = (v: string) => `index/${v}/snapshot.bin`;
const revisionsKey = (v: string) => `index/${v}/revisions.json`;
/** Gallery images decoded and embedded per step of a re-index. */
const REINDEX_CHUNK = 64;

export class GalleryIndexer {
  /** Gallery ids written while a pair is being built (applied to it before the swap); null when no build runs. */
  private dirty: Set<string> | null = null;
  private snapshotTimer: ReturnType<typeof setTimeout> | undefined;
  private snapshotWriting: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly deps: GalleryIndexerDeps,
    /** The pair serving now (snapshots and late writes go to it). */
    private readonly serving: () => IndexedPair | null,
  ) {}

  /**
   * A serving pair for a freshly loaded model (between beginBuild() and endBuild()): its index from the snapshot (or empty), made to match the
   * gallery (re-embedding new or replaced images), then the gallery writes made meanwhile.
   */
  async build(model: ServingModel, onProgress: (done: number, total: number) => void): Promise<{ pair: IndexedPair; fromSnapshot: boolean }> {
    const dirty = (this.dirty ??= new Set());
    const { index, revisions, fromSnapshot } = await this.loadSnapshot(model);
    const pair = new IndexedPair(model, index, revisions, this.deps.batch, this.deps.metrics);
    await this.reconcile(pair, onProgress);
    for (let round = 0; dirty.size > 0 && round < 10; round++) {
      const ids = [...dirty];
      dirty.clear();
      await this.reindexIds(pair, ids);
    }
    return { pair, fromSnapshot };
  }

  /** From now until endBuild(), gallery writes are noted for the pair being built (call it before loading the model). */
  beginBuild(): void {
    this.dirty = new Set();
  }

  endBuild(): void {
    this.dirty = null;
  }

  private async loadSnapshot(model: ServingModel): Promise<{ index: ExactIndex; revisions: Map<string, string>; fromSnapshot: boolean }> {
    const { store, logger } = this.deps;
    const empty = () => ({ index: new ExactIndex(model.dimension), revisions: new Map<string, string>(), fromSnapshot: false });
    try {
      const [snap, revs] = await Promise.all([store.get(snapshotKey(model.version)), store.get(revisionsKey(model.version))]);
      if (!snap || 'notModified' in snap || !revs || 'notModified' in revs) return empty();
      const index = deserializeExactIndex(snap.body);
      if (index.dimension !== model.dimension) throw new Error(`snapshot has dimension ${index.dimension}, model has ${model.dimension}`);
      const revisions = new Map(Object.entries(Revisions.parse(JSON.parse(new TextDecoder().decode(revs.body)))));
      return { index, revisions, fromSnapshot: true };
    } catch (err) {
      logger.warn('index snapshot unusable; re-embedding the gallery', { version: model.version, err: err as Error });
      return empty();
    }
  }

  /** Make the pair's index match the gallery: embed new or replaced items, drop deleted ones. */
  private async reconcile(pair: IndexedPair, onProgress: (done: number, total: number) => void): Promise<void> {
    const { gallery } = this.deps;
    const ids = await gallery.ids();
    const wanted = new Set(ids);
    for (const id of await pair.index.ids()) {
      if (!wanted.has(id)) {
        await pair.index.delete(id);
        pair.revisions.delete(id);
      }
    }
    const items = await mapLimit(ids, 16, (id) => gallery.get(id));
    const stale = items.filter((it): it is GalleryItem => it !== null && pair.revisions.get(it.id) !== it.revision);
    onProgress(0, stale.length);
    for (let i = 0; i < stale.length; i += REINDEX_CHUNK) {
      await this.embedItems(pair, stale.slice(i, i + REINDEX_CHUNK));
      onProgress(Math.min(stale.length, i + REINDEX_CHUNK), stale.length);
    }
  }

  private async reindexIds(pair: IndexedPair, ids: string[]): Promise<void> {
    const items = await Promise.all(ids.map((id) => this.deps.gallery.get(id)));
    const present: GalleryItem[] = [];
    for (let i = 0; i < ids.length; i++) {
      const it = items[i];
      if (it) present.push(it);
      else {
        await pair.index.delete(ids[i]!);
        pair.revisions.delete(ids[i]!);
      }
    }
    await this.embedItems(pair, present);
  }

  /** Fetch, decode and embed gallery items with the pair's model (one forward pass per chunk). */
  private async embedItems(pair: IndexedPair, items: GalleryItem[]): Promise<void> {
    const { gallery, decoder, logger } = this.deps;
    const decoded = await mapLimit(items, 8, async (it) => {
      const img = await gallery.image(it.id);
      if (!img) return null;
      try {
        return normalise(await decoder.decode(img.body, pair.target), pair.preprocessing);
      } catch (err) {
        logger.warn('gallery image cannot be decoded; leaving it out of the index', { id: it.id, err: err as Error });
        return null;
      }
    });
    const ok = items.map((it, i) => ({ it, x: decoded[i] })).filter((e): e is { it: GalleryItem; x: Float32Array } => !!e.x);
    if (ok.length === 0) return;
    const size = ok[0]!.x.length;
    const input = new Float32Array(ok.length * size);
    ok.forEach((e, i) => input.set(e.x, i * size));
    const out = await pair.model.forward(input, ok.length);
    const d = pair.model.dimension;
    ok.forEach((e, i) => {
      pair.index.upsertSync({ id: e.it.id, vector: out.subarray(i * d, (i + 1) * d), label: e.it.label, metadata: e.it.metadata });
      pair.revisions.set(e.it.id, e.it.revision);
    });
    // Let queued requests run between chunks of a long re-index.
    await new Promise((r) => setTimeout(r, 0));
  }

  /** A gallery item was added or replaced and embedded with `pair`'s model: index it now; note it for a build. */
  async indexItem(pair: IndexedPair, item: GalleryItem, vector: Float32Array): Promise<void> {
    await pair.index.upsert({ id: item.id, vector, label: item.label, metadata: item.metadata });
    pair.revisions.set(item.id, item.revision);
    this.dirty?.add(item.id);
    // The request's pair was swapped out meanwhile: index the item in the pair serving now too.
    const now = this.serving();
    if (now && now !== pair) await this.reindexIds(now, [item.id]);
    this.scheduleSnapshot();
  }

  async removeItem(id: string): Promise<void> {
    const pair = this.serving();
    if (pair) {
      await pair.index.delete(id);
      pair.revisions.delete(id);
    }
    this.dirty?.add(id);
    this.scheduleSnapshot();
  }

  /** Gallery item added while no model is serving: the build running (if any) picks it up. */
  noteChange(id: string): void {
    this.dirty?.add(id);
  }

  scheduleSnapshot(): void {
    if (this.snapshotTimer || this.stopped) return;
    this.snapshotTimer = setTimeout(() => {
      this.snapshotTimer = undefined;
      void this.writeSnapshot();
    }, this.deps.snapshotDelayMs ?? 500);
  }

  /** Write the serving index to index/<version>/ (now, skipping the delay). */
  async flushSnapshot(): Promise<void> {
    if (this.snapshotTimer) {
      clearTimeout(this.snapshotTimer);
      this.snapshotTimer = undefined;
      await this.writeSnapshot();
    }
    await this.snapshotWriting;
  }

  /** No more scheduled snapshots; write the pending one. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.flushSnapshot();
  }

  /** Scheduled snapshots run again (after stop(), a host may be started again). */
  resume(): void {
    this.stopped = false;
  }

  private async writeSnapshot(): Promise<void> {
    await this.snapshotWriting; // one writer at a time; the later write carries the later state
    const pair = this.serving();
    if (!pair) return;
    const run = (async () => {
      const revisions = JSON.stringify(Object.fromEntries(pair.revisions));
      const bytes = await pair.index.serialize();
      // Index first: a crash between the writes leaves revisions older than the index, which only causes
      // extra re-embedding on restart (revision mismatch), never a missed change.
      await this.deps.store.put(snapshotKey(pair.version), bytes, { contentType: 'application/octet-stream' });
      await this.deps.store.put(revisionsKey(pair.version), revisions, { contentType: 'application/json' });
    })();
    this.snapshotWriting = run.then(
      () => undefined,
      (err) => this.deps.logger.warn('could not write the index snapshot', { version: pair.version, err: err as Error }),
    );
    await this.snapshotWriting;
  }
}

async function mapLimit<T, R>(xs: T[], limit: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(xs.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, xs.length) }, async () => {
    while (next < xs.length) {
      const i = next++;
      out[i] = await f(xs[i]!);
    }
  });
  await Promise.all(workers);
  return out;
}
