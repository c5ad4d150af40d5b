import { DurableObject } from 'cloudflare:workers';
import { GalleryReader } from '../../shared/gallery/reader.js';
import type { EntryListing, IndexEntry, IndexFilter, IndexHit, ListOptions } from '../../shared/index/vector-index.js';
import { StoreUnavailableError } from '../../shared/store/object-store.js';
import type { R2Bucket } from './cf-types.js';
import { GalleryIndexCore, type Answer, type FillEntry, type ItemMeta, type VersionRef, type VersionSummary } from './gallery-index.js';
import { R2Store } from './r2-store.js';

/** Model versions whose vectors the index keeps (the serving one, the one rolling out, one to roll back to). */
const KEEP_VERSIONS = 3;

/**
 * Workers RPC hands the caller a thrown error as a plain Error with only its message (class, name,
 * properties and cause are lost), so a store outage crosses as an Error whose message starts with this.
 */
const STORE_UNAVAILABLE = 'store unavailable: ';

/**
 * The gallery index as a Durable Object: one instance per deployment (the Worker addresses it by a
 * fixed name), the single writer every isolate talks to over RPC. State lives in its own storage; the
 * gallery images stay in R2 for the training worker.
 */
export class GalleryIndex extends DurableObject<{ BUCKET: R2Bucket }> {
  private readonly core: GalleryIndexCore;

  constructor(ctx: ConstructorParameters<typeof DurableObject>[0], env: { BUCKET: R2Bucket }) {
    super(ctx, env);
    const gallery = new GalleryReader(new R2Store(env.BUCKET, 'R2 bucket (binding BUCKET)'));
    this.core = new GalleryIndexCore(ctx.storage, {
      keepVersions: KEEP_VERSIONS,
      readGallery: async () => {
        // A corrupt record is left out; an outage is not, or the index would be built without those items.
        const get = (id: string) => gallery.get(id).catch((err: unknown) => (err instanceof StoreUnavailableError ? Promise.reject(err) : null));
        const items = await Promise.all((await gallery.ids()).map(get));
        return items.filter((it) => it !== null).map(({ id, revision, createdAt, label, metadata }) => ({ id, revision, createdAt, label, metadata }));
      },
    });
    void ctx.blockConcurrencyWhile(() => this.core.load());
  }

  /** The one method that reads the bucket (the gallery, on the instance's first open). */
  async open(ref: VersionRef): Promise<VersionSummary> {
    try {
      return await this.core.open(ref);
    } catch (err) {
      throw err instanceof StoreUnavailableError ? new Error(STORE_UNAVAILABLE + err.message) : err;
    }
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

/**
 * The Worker's side of STORE_UNAVAILABLE: the stub, with a store outage in the Durable Object thrown as
 * StoreUnavailableError again, so the Worker treats it as it treats its own R2 failures (a model load
 * tried again at the next look, not written off; a 503 with Retry-After if a request sees it).
 */
export function storeErrorsFromRpc(stub: GalleryIndexStub): GalleryIndexStub {
  const call = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (err) {
      if (err instanceof Error && err.message.startsWith(STORE_UNAVAILABLE)) throw new StoreUnavailableError(err.message.slice(STORE_UNAVAILABLE.length));
      throw err;
    }
  };
  return {
    open: (ref) => call(stub.open(ref)),
    summary: (ref) => call(stub.summary(ref)),
    pendingItems: (ref, limit) => call(stub.pendingItems(ref, limit)),
    fill: (ref, entries) => call(stub.fill(ref, entries)),
    upsert: (ref, item, vector) => call(stub.upsert(ref, item, vector)),
    remove: (id) => call(stub.remove(id)),
    query: (ref, vector, k, filter, catchUp) => call(stub.query(ref, vector, k, filter, catchUp)),
    entries: (ref, options, catchUp) => call(stub.entries(ref, options, catchUp)),
    get: (ref, id) => call(stub.get(ref, id)),
    has: (ref, id) => call(stub.has(ref, id)),
    ids: (ref) => call(stub.ids(ref)),
  };
}
