import type { ImageDecoder } from '../../shared/image/decoder.js';
import type { EntryListing, IndexEntry, IndexFilter, IndexHit, ListOptions } from '../../shared/index/vector-index.js';
import type { Logger } from '../../shared/log.js';
import type { Gallery, GalleryItem } from '../gallery.js';
import type { ApiMetrics } from '../metrics.js';
import type { ModelSource, ServingModel } from '../model-source.js';
import { normalise } from '../preprocess.js';
import { LatestFollower } from '../latest-follower.js';
import { NoModelError, ServingPair, type HostStatus, type ServingHost, type ServingIndex } from '../serving-pair.js';
import type { Answer, FillEntry, ItemMeta, VersionRef, VersionSummary } from './gallery-index.js';
import type { GalleryIndexStub } from './gallery-index-do.js';

/** Items embedded per round trip when catching an index up. */
const CATCH_UP = 32;
/** Catch-up rounds one request may spend before answering from the index as it is. */
const MAX_ROUNDS = 8;
/** Items one refresh embeds while building a new version's index; the next refresh goes on from there. */
const BUILD_BUDGET = 512;

const meta = (it: GalleryItem): ItemMeta => ({ id: it.id, revision: it.revision, createdAt: it.createdAt, label: it.label, metadata: it.metadata });

/**
 * A model version's view of the gallery index Durable Object. Queries come back with the items written
 * since this version last embedded them (read-your-writes across isolates); those are embedded here,
 * with this version's model, and the query is asked again.
 */
export class DurableIndex implements ServingIndex {
  constructor(
    /** A stub for the calling request: Workers bind a stub to the request that made it. */
    private readonly index: () => GalleryIndexStub,
    private readonly ref: VersionRef,
    private readonly embed: (items: ItemMeta[]) => Promise<FillEntry[]>,
    private readonly onSummary: (s: VersionSummary) => void,
  ) {}

  get dimension(): number {
    return this.ref.dimension;
  }

  async size(): Promise<number> {
    return this.seen(await this.index().summary(this.ref)).size;
  }

  async get(id: string): Promise<IndexEntry | undefined> {
    return (await this.answer(() => this.index().get(this.ref, id))) ?? undefined;
  }

  has(id: string): Promise<boolean> {
    return this.index().has(this.ref, id);
  }

  ids(): Promise<string[]> {
    return this.index().ids(this.ref);
  }

  query(vector: Float32Array, k: number, filter?: IndexFilter): Promise<IndexHit[]> {
    return this.answer((last) => this.index().query(this.ref, vector, k, filter, last ? 0 : CATCH_UP));
  }

  /** Every entry of the version (sampled past options.limit), with the pending items embedded first, as query. */
  entries(options?: ListOptions): Promise<EntryListing> {
    return this.answer((last) => this.index().entries(this.ref, options, last ? 0 : CATCH_UP));
  }

  /** Embed pending items and store their vectors; returns what the index holds afterwards. */
  async catchUp(items: ItemMeta[]): Promise<VersionSummary> {
    return this.seen(await this.index().fill(this.ref, await this.embed(items)));
  }

  async upsertItem(item: GalleryItem, vector: Float32Array): Promise<void> {
    this.seen(await this.index().upsert(this.ref, meta(item), vector));
  }

  open(): Promise<VersionSummary> {
    return this.index().open(this.ref).then((s) => this.seen(s));
  }

  pendingItems(limit: number): Promise<ItemMeta[]> {
    return this.index().pendingItems(this.ref, limit);
  }

  private seen(s: VersionSummary): VersionSummary {
    this.onSummary(s);
    return s;
  }

  /** Ask, embedding what the index says is missing, until it answers (the last round answers as it is). */
  private async answer<T>(ask: (last: boolean) => Promise<Answer<T>>): Promise<T> {
    for (let round = 0; ; round++) {
      const last = round === MAX_ROUNDS;
      const a = await ask(last);
      if ('ok' in a) return a.ok;
      if (last) throw new Error('gallery index: still catching up after the last round');
      await this.catchUp(a.pending);
    }
  }
}

export interface EdgeHostDeps {
  source: ModelSource;
  gallery: Gallery;
  decoder: ImageDecoder;
  /** A stub for the calling request (Workers bind a stub to the request that made it). */
  index: () => GalleryIndexStub;
  metrics: ApiMetrics;
  logger: Logger;
  /** Largest forward pass; each request's images are their own batch (see PerRequestBatcher). */
  maxBatch: number;
  /** How stale an isolate's view of models/latest.json may get, in ms. */
  pollMs: number;
  now: () => number;
}

type Building = { version: string; model: ServingModel; index: DurableIndex; done: number; total: number; size: () => number };

/**
 * The edge's ServingHost. An isolate has no timers between requests, so it follows models/latest.json
 * from the requests themselves: each request checks whether the last look is older than pollMs, and if
 * so looks again (in the background once a model serves). A new version is loaded, verified and its
 * index brought up to date in the Durable Object, then swapped in; one that fails is skipped and reported.
 */
export class EdgeHost implements ServingHost {
  private serving: ServingPair<DurableIndex> | null = null;
  private building: Building | null = null;
  private readonly follower: LatestFollower;
  private lastPoll = -Infinity;
  private refreshing: Promise<void> | null = null;
  private indexSize = 0;

  constructor(private readonly deps: EdgeHostDeps) {
    this.follower = new LatestFollower(deps);
  }

  get current(): ServingPair<DurableIndex> | null {
    return this.serving;
  }

  lease(): { pair: ServingPair<DurableIndex>; release: () => void } {
    const pair = this.serving;
    if (!pair) throw new NoModelError(this.status().reason ?? 'no model is loaded yet');
    return { pair, release: pair.acquire() };
  }

  /**
   * Called as each request starts. Before the first model serves, the request waits for the look
   * (and the load); after, a due look runs in the background (`defer` is the request's waitUntil).
   */
  async follow(defer: (work: Promise<unknown>) => void): Promise<void> {
    if (this.refreshing) {
      if (!this.serving) await this.refreshing; // the first model is loading (started by another request)
      return;
    }
    // A new version's index still being built goes on at once; otherwise look at most every pollMs.
    if (!this.building && this.deps.now() - this.lastPoll < this.deps.pollMs) return;
    const work = this.refresh();
    if (this.serving) defer(work);
    else await work;
  }

  status(): HostStatus {
    const b = this.building;
    const base = {
      serving: this.serving?.version ?? null,
      latest: this.follower.latest,
      loading: b ? { version: b.version, phase: 'indexing' as const, done: b.done, total: b.total } : null,
      failures: this.follower.failures,
      indexSize: this.serving ? this.indexSize : 0,
    };
    if (this.serving) return { ready: true, ...base };
    let reason: string;
    if (b) reason = `re-indexing the gallery for model ${b.version}: ${b.done}/${b.total} images`;
    else reason = this.follower.notReadyReason();
    return { ready: false, reason, ...base };
  }

  refresh(): Promise<void> {
    this.refreshing ??= this.refreshOnce().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  async indexItem(pair: ServingPair, item: GalleryItem, vector: Float32Array): Promise<void> {
    if (!(pair.index instanceof DurableIndex)) throw new Error('indexItem: the pair was not made by this host');
    await pair.index.upsertItem(item, vector);
  }

  async removeItem(id: string): Promise<void> {
    await this.deps.index().remove(id);
  }

  /** Nothing to do: the index syncs with the bucket's gallery when a version is first opened. */
  noteChange(): void {}

  private async refreshOnce(): Promise<void> {
    this.lastPoll = this.deps.now();
    const v = await this.follower.look(this.serving?.version ?? null);
    if (this.building && this.building.version !== this.follower.latest) this.abandonBuild();
    if (v === null) return;
    try {
      const b = this.building ?? (this.building = await this.startBuild(v));
      if (!(await this.indexSome(b))) return; // more to embed: the next look goes on
      this.building = null;
      const pair = new ServingPair(b.model, b.index, { maxBatch: this.deps.maxBatch, maxWaitMs: 0, perRequest: true }, this.deps.metrics);
      this.indexSize = b.size();
      const old = this.serving;
      this.serving = pair; // the swap: model and index change together
      old?.retire();
      this.follower.swapped(v, old?.version ?? null, b.model.runtime, { indexSize: this.indexSize });
    } catch (err) {
      this.abandonBuild();
      this.follower.failedToLoad(v, err);
    }
  }

  private async startBuild(version: string): Promise<Building> {
    const model = await this.deps.source.load(version);
    let size = 0;
    const index = new DurableIndex(this.deps.index, { version, dimension: model.dimension }, (items) => this.embedItems(model, items), (s) => {
      size = s.size;
      if (this.serving?.version === version) this.indexSize = s.size;
    });
    const b: Building = { version, model, index, done: 0, total: 0, size: () => size };
    try {
      b.total = (await b.index.open()).pending;
      return b;
    } catch (err) {
      model.dispose();
      throw err;
    }
  }

  /** Embed up to the budget of the version's pending items; true once none is left. */
  private async indexSome(b: Building): Promise<boolean> {
    for (let spent = 0; spent < BUILD_BUDGET; ) {
      const items = await b.index.pendingItems(CATCH_UP);
      if (items.length === 0) return true;
      const s = await b.index.catchUp(items);
      spent += items.length;
      b.done += items.length;
      b.total = Math.max(b.total, b.done + s.pending);
    }
    return false;
  }

  private abandonBuild(): void {
    this.building?.model.dispose();
    this.building = null;
  }

  /** Fetch, decode and embed gallery items with `model`; an image that cannot be decoded gets no vector. */
  private async embedItems(model: ServingModel, items: ItemMeta[]): Promise<FillEntry[]> {
    const { gallery, decoder, logger } = this.deps;
    const pre = model.preprocessing;
    const target = { size: pre.inputSize, channels: pre.channels, resize: pre.resize ?? 'fill' } as const;
    const inputs = await Promise.all(
      items.map(async (it) => {
        const img = await gallery.image(it.id);
        if (!img) return null;
        try {
          return normalise(await decoder.decode(img.body, target), pre);
        } catch (err) {
          logger.warn('gallery image cannot be decoded; leaving it out of the index', { id: it.id, err: err as Error });
          return null;
        }
      }),
    );
    const ok = inputs.flatMap((x, i) => (x ? [{ i, x }] : []));
    const out = new Map<number, Float32Array>();
    if (ok.length > 0) {
      const size = ok[0]!.x.length;
      const batch = new Float32Array(ok.length * size);
      ok.forEach((e, j) => batch.set(e.x, j * size));
      const y = await model.forward(batch, ok.length);
      const d = model.dimension;
      ok.forEach((e, j) => out.set(e.i, y.slice(j * d, (j + 1) * d)));
    }
    return items.map((it, i) => ({ id: it.id, revision: it.revision, vector: out.get(i) ?? null }));
  }
}
