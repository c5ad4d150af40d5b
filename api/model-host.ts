/**
 * The Node model swap: follows models/latest.json and serves one (model, gallery index) pair at a time. A
 * new version is loaded and verified, and its index built by the gallery indexer (api/gallery-indexer.ts),
 * in the background while the old pair keeps serving; then both are swapped in one assignment.
 */
import type { GalleryItem } from './gallery.js';
import { GalleryIndexer, IndexedPair, type GalleryIndexerDeps } from './gallery-indexer.js';
import { LatestFollower } from './latest-follower.js';
import type { ModelSource } from './model-source.js';
import { NoModelError, type HostStatus, type ServingHost, type ServingPair } from './serving-pair.js';

export { NoModelError, ServingPair, type HostStatus, type LoadFailure, type ServingHost } from './serving-pair.js';

/** The host hands its deps to its gallery indexer, so it needs those plus where models come from and a clock. */
export interface ModelHostDeps extends GalleryIndexerDeps {
  source: ModelSource;
  now?: () => number;
}

export class ModelHost implements ServingHost {
  private serving: IndexedPair | null = null;
  private readonly follower: LatestFollower;
  private readonly indexer: GalleryIndexer;
  private building: { version: string; phase: 'loading' | 'indexing'; done: number; total: number } | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private refreshing: Promise<void> | null = null;
  private readonly now: () => number;

  constructor(private readonly deps: ModelHostDeps) {
    this.now = deps.now ?? Date.now;
    this.follower = new LatestFollower({ source: deps.source, metrics: deps.metrics, logger: deps.logger, now: this.now });
    this.indexer = new GalleryIndexer(deps, () => this.serving);
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
    this.indexer.resume();
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
    await this.indexer.stop();
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
      this.indexer.scheduleSnapshot();
    } catch (err) {
      this.follower.failedToLoad(v, err);
    } finally {
      this.building = null;
    }
  }

  private async build(version: string): Promise<IndexedPair> {
    const started = this.now();
    const building = (this.building = { version, phase: 'loading' as 'loading' | 'indexing', done: 0, total: 0 });
    this.indexer.beginBuild();
    try {
      const model = await this.deps.source.load(version);
      try {
        const { pair, fromSnapshot } = await this.indexer.build(model, (done, total) => {
          building.phase = 'indexing';
          building.done = done;
          building.total = total;
        });
        this.deps.logger.info('model ready', { version, ms: this.now() - started, indexSize: pair.index.sizeSync(), fromSnapshot, runtime: model.runtime });
        return pair;
      } catch (err) {
        model.dispose();
        throw err;
      }
    } finally {
      this.indexer.endBuild();
    }
  }

  /** A gallery item was added or replaced: index it in the serving pair now; queue it for a build. */
  async indexItem(pair: ServingPair, item: GalleryItem, vector: Float32Array): Promise<void> {
    if (!(pair instanceof IndexedPair)) throw new Error('indexItem: the pair was not made by this host');
    await this.indexer.indexItem(pair, item, vector);
  }

  removeItem(id: string): Promise<void> {
    return this.indexer.removeItem(id);
  }

  /** Gallery item added while no model is serving: the first build's reconcile will pick it up. */
  noteChange(id: string): void {
    this.indexer.noteChange(id);
  }

  /** Write the serving index to index/<version>/ (now, skipping the delay). */
  flushSnapshot(): Promise<void> {
    return this.indexer.flushSnapshot();
  }
}
