import { z } from 'zod';
import type { ImageDecoder } from '../shared/image/decoder.js';
import { ExactIndex, deserializeExactIndex } from '../shared/index/exact-index.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import type { Gallery, GalleryItem } from './gallery.js';
import type { Logger } from '../shared/log.js';
import type { ApiMetrics } from './metrics.js';
import type { ModelSource, ServingModel } from './model-source.js';
import { normalise } from './preprocess.js';
import { LatestFollower } from './latest-follower.js';
import { NoModelError, ServingPair, type HostStatus, type ServingHost } from './serving-pair.js';

export { NoModelError, ServingPair, type HostStatus, type LoadFailure, type ServingHost } from './serving-pair.js';

/** The Node pair: an in-process exact index and, per id, the gallery revision embedded in it. */
class IndexedPair extends ServingPair<ExactIndex> {
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

/**
 * Serves one (model, gallery index) pair at a time and follows models/latest.json. A new version is
 * loaded, verified and its index built (from the snapshot in index/<version>/ or by re-embedding the
 * gallery) in the background while the old pair keeps serving; then both are swapped in one assignment.
 */
export interface ModelHostDeps {
  source: ModelSource;
  store: ObjectStore;
  gallery: Gallery;
  decoder: ImageDecoder;
  metrics: ApiMetrics;
  logger: Logger;
  batch: { maxBatch: number; maxWaitMs: number };
  now?: () => number;
  /** Delay before an index snapshot is written after a gallery change (coalesces bursts). */
  snapshotDelayMs?: number;
}

const Revisions = z.record(z.string(), z.string());
const snapshotKey = (v: string) => `index/${v}/snapshot.bin`;
const revisionsKey = (v: string) => `index/${v}/revisions.json`;
/** Gallery images decoded and embedded per step of a re-index. */
const REINDEX_CHUNK = 64;

export class ModelHost implements ServingHost {
  private serving: IndexedPair | null = null;
  private readonly follower: LatestFollower;
  private building: { version: string; phase: 'loading' | 'indexing'; done: number; total: number; dirty: Set<string> } | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private refreshing: Promise<void> | null = null;
  private snapshotTimer: ReturnType<typeof setTimeout> | undefined;
  private snapshotWriting: Promise<void> | null = null;
  private readonly now: () => number;

  constructor(private readonly deps: ModelHostDeps) {
    this.now = deps.now ?? Date.now;
    this.follower = new LatestFollower({ source: deps.source, metrics: deps.metrics, logger: deps.logger, now: this.now });
  }

  /** The pair serving now (null before the first model is ready). */
  get current(): IndexedPair | null {
    return this.serving;
  }

  /** Lease the serving pair for one request; throws NoModelError (→ 503) when none is ready. */
  lease(): { pair: IndexedPair; release: () => void } {
    const pair = this.serving;
    if (!pair) throw new NoModelError(this.status().reason ?? 'no model is loaded yet');
    return { pair, release: pair.acquire() };
  }

  status(): HostStatus {
    const b = this.building;
    const base = {
      serving: this.serving?.version ?? null,
      latest: this.follower.latest,
      loading: b ? { version: b.version, phase: b.phase, done: b.done, total: b.total } : null,
      failures: this.follower.failures,
      indexSize: this.serving?.index.sizeSync() ?? 0,
    };
    if (this.serving) return { ready: true, ...base };
    let reason: string;
    if (b) reason = b.phase === 'loading' ? `loading model ${b.version}` : `re-indexing the gallery for model ${b.version}: ${b.done}/${b.total} images`;
    else reason = this.follower.notReadyReason();
    return { ready: false, reason, ...base };
  }

  /** Poll now, then every pollMs. */
  start(pollMs: number): void {
    this.stopped = false;
    const tick = async () => {
      await this.refresh();
      if (!this.stopped) this.timer = setTimeout(tick, pollMs);
    };
    void tick();
  }

  /** Stop following latest, write the index snapshot, and free the model once its requests are done. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.refreshing;
    await this.flushSnapshot();
    // A model thread would otherwise keep the process alive.
    this.serving?.retire();
  }

  /**
   * One poll: read latest; if it names a version that is neither serving nor known-bad, load it, build
   * its index and swap. Concurrent calls share the same run.
   */
  refresh(): Promise<void> {
    this.refreshing ??= this.refreshOnce().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async refreshOnce(): Promise<void> {
    const v = await this.follower.look(this.serving?.version ?? null);
    if (v === null) return;
    try {
      const pair = await this.build(v);
      const old = this.serving;
      this.serving = pair; // the swap: model and index change together
      old?.retire();
      this.follower.swapped(v, old?.version ?? null, pair.model.runtime, { indexSize: pair.index.sizeSync() });
      this.scheduleSnapshot();
    } catch (err) {
      this.follower.failedToLoad(v, err);
    } finally {
      this.building = null;
    }
  }

  private async build(version: string): Promise<IndexedPair> {
    const { source, logger } = this.deps;
    const started = this.now();
    this.building = { version, phase: 'loading', done: 0, total: 0, dirty: new Set() };
    const model = await source.load(version);
    try {
      const { index, revisions, fromSnapshot } = await this.loadSnapshot(model);
      const pair = new IndexedPair(model, index, revisions, this.deps.batch, this.deps.metrics);
      this.building.phase = 'indexing';
      await this.reconcile(pair);
      // Gallery writes made while we indexed: apply them with the new model before swapping.
      for (let round = 0; this.building.dirty.size > 0 && round < 10; round++) {
        const ids = [...this.building.dirty];
        this.building.dirty.clear();
        await this.reindexIds(pair, ids);
      }
      logger.info('model ready', { version, ms: this.now() - started, indexSize: index.sizeSync(), fromSnapshot, runtime: model.runtime });
      return pair;
    } catch (err) {
      model.dispose();
      throw err;
    }
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
  private async reconcile(pair: IndexedPair): Promise<void> {
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
    if (this.building) this.building.total = stale.length;
    for (let i = 0; i < stale.length; i += REINDEX_CHUNK) {
      await this.embedItems(pair, stale.slice(i, i + REINDEX_CHUNK));
      if (this.building) this.building.done = Math.min(stale.length, i + REINDEX_CHUNK);
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

  /** A gallery item was added or replaced: index it in the serving pair now; queue it for a build. */
  async indexItem(pair: ServingPair, item: GalleryItem, vector: Float32Array): Promise<void> {
    if (!(pair instanceof IndexedPair)) throw new Error('indexItem: the pair was not made by this host');
    await pair.index.upsert({ id: item.id, vector, label: item.label, metadata: item.metadata });
    pair.revisions.set(item.id, item.revision);
    this.building?.dirty.add(item.id);
    // The request's pair was swapped out meanwhile: index the item in the pair serving now too.
    const now = this.serving;
    if (now && now !== pair) await this.reindexIds(now, [item.id]);
    this.scheduleSnapshot();
  }

  async removeItem(id: string): Promise<void> {
    const pair = this.serving;
    if (pair) {
      await pair.index.delete(id);
      pair.revisions.delete(id);
    }
    this.building?.dirty.add(id);
    this.scheduleSnapshot();
  }

  /** Gallery item added while no model is serving: the first build's reconcile will pick it up. */
  noteChange(id: string): void {
    this.building?.dirty.add(id);
  }

  private scheduleSnapshot(): void {
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

  private async writeSnapshot(): Promise<void> {
    await this.snapshotWriting; // one writer at a time; the later write carries the later state
    const pair = this.serving;
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
