import { DurableObject } from 'cloudflare:workers';
import { GalleryReader } from '../../shared/gallery/reader.js';
import type { EntryListing, IndexEntry, IndexFilter, IndexHit, ListOptions } from '../../shared/index/vector-index.js';
import type { R2Bucket } from './cf-types.js';
import { GalleryIndexCore, type Answer, type FillEntry, type ItemMeta, type VersionRef, type VersionSummary } from './gallery-index.js';
import { R2Store } from './r2-store.js';

/** Model versions whose vectors the index keeps (the serving one, the one rolling out, one to roll back to). */
const KEEP_VERSIONS = 3;

/**
 * The gallery index as a Durable Object: one instance per deployment (the Worker addresses it by a
 * fixed name), the single writer every isolate talks to over RPC. State lives in its own storage; the
 * gallery images stay in R2 for the training worker.
 */
export class GalleryIndex extends DurableObject<{ BUCKET: R2Bucket }> {
  private readonly core: GalleryIndexCore;

  constructor(ctx: ConstructorParameters<typeof DurableObject>[0], env: { BUCKET: R2Bucket }) {
    super(ctx, env);
    const gallery = new GalleryReader(new R2Store(env.BUCKET));
    this.core = new GalleryIndexCore(ctx.storage, {
      keepVersions: KEEP_VERSIONS,
      readGallery: async () => {
        const items = await Promise.all((await gallery.ids()).map((id) => gallery.get(id).catch(() => null)));
        return items.filter((it) => it !== null).map(({ id, revision, createdAt, label, metadata }) => ({ id, revision, createdAt, label, metadata }));
      },
    });
    void ctx.blockConcurrencyWhile(() => this.core.load());
  }

  open(ref: VersionRef): Promise<VersionSummary> {
    return this.core.open(ref);
  }
  summary(ref: VersionRef): Promise<VersionSummary> {
    return this.core.summary(ref);
  }
  pendingItems(ref: VersionRef, limit: number): Promise<ItemMeta[]> {
    return this.core.pendingItems(ref, limit);
  }
  fill(ref: VersionRef, entries: FillEntry[]): Promise<VersionSummary> {
    return this.core.fill(ref, entries);
  }
  upsert(ref: VersionRef, item: ItemMeta, vector: Float32Array): Promise<VersionSummary> {
    return this.core.upsert(ref, item, vector);
  }
  remove(id: string): Promise<boolean> {
    return this.core.remove(id);
  }
  query(ref: VersionRef, vector: Float32Array, k: number, filter: IndexFilter | undefined, catchUp: number): Promise<Answer<IndexHit[]>> {
    return this.core.query(ref, vector, k, filter, catchUp);
  }
  entries(ref: VersionRef, options: ListOptions | undefined, catchUp: number): Promise<Answer<EntryListing>> {
    return this.core.entries(ref, options, catchUp);
  }
  get(ref: VersionRef, id: string): Promise<Answer<IndexEntry | null>> {
    return this.core.get(ref, id);
  }
  has(ref: VersionRef, id: string): Promise<boolean> {
    return this.core.has(ref, id);
  }
  ids(ref: VersionRef): Promise<string[]> {
    return this.core.ids(ref);
  }
}

/** What an isolate calls on the Durable Object (its public methods, over RPC). */
export type GalleryIndexStub = Pick<GalleryIndex, 'open' | 'summary' | 'pendingItems' | 'fill' | 'upsert' | 'remove' | 'query' | 'entries' | 'get' | 'has' | 'ids'>;
