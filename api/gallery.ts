import type { ObjectStore } from '../shared/store/object-store.js';
import { GalleryReader } from '../shared/gallery/reader.js';
import { GalleryId, galleryImageKey, galleryItemKey, type GalleryItem } from '../shared/gallery/layout.js';

// The layout (keys, item schema) lives in shared/gallery/ so the training worker can read the gallery too.
export { GalleryId, GalleryItem, GalleryLabel, GalleryMetadata } from '../shared/gallery/layout.js';

/** How long a counted gallery size is trusted before the next size() lists the bucket again. */
export const GALLERY_RECOUNT_MS = 10 * 60_000;

/** The API's read-write view of the gallery: the shared reader plus put, delete and paging. */
export class Gallery extends GalleryReader {
  /** The item count once size() has listed it, kept up by this process's puts and deletes. */
  private counted: { n: number; at: number } | null = null;
  private counting: Promise<number> | null = null;

  constructor(store: ObjectStore, private readonly now: () => number = Date.now) {
    super(store);
  }

  /**
   * How many items the gallery holds: one LIST, then this process's own adds and deletes, listed again
   * after GALLERY_RECOUNT_MS. Other replicas' writes show only at that recount, and concurrent uploads
   * may each see the same count: a limit checked against it is approximate by a few items.
   */
  async size(): Promise<number> {
    if (this.counted && this.now() - this.counted.at < GALLERY_RECOUNT_MS) return this.counted.n;
    this.counting ??= this.ids()
      .then((ids) => {
        this.counted = { n: ids.length, at: this.now() };
        return ids.length;
      })
      .finally(() => {
        this.counting = null;
      });
    return this.counting;
  }

  async has(id: string): Promise<boolean> {
    return GalleryId.safeParse(id).success && (await this.store.head(galleryItemKey(id))) !== null;
  }

  async put(input: { id: string; label?: string; metadata?: Record<string, unknown>; contentType: string; image: Uint8Array }): Promise<GalleryItem> {
    const item: GalleryItem = {
      id: input.id,
      ...(input.label !== undefined ? { label: input.label } : {}),
      ...(input.metadata !== undefined ? { metadata: input.metadata } : {}),
      contentType: input.contentType,
      bytes: input.image.length,
      revision: globalThis.crypto.randomUUID(),
      createdAt: new Date(this.now()).toISOString(),
    };
    // Only while counting (size() was asked): is this a new item?
    const added = this.counted ? !(await this.has(item.id)) : false;
    // Image first, item file second: an item file always has its image.
    await this.store.put(galleryImageKey(item.id), input.image, { contentType: input.contentType });
    await this.store.put(galleryItemKey(item.id), JSON.stringify(item), { contentType: 'application/json' });
    if (added && this.counted) this.counted.n++;
    return item;
  }

  /** Returns false when there was no such item. */
  async delete(id: string): Promise<boolean> {
    if (!GalleryId.safeParse(id).success) return false;
    const existed = (await this.store.head(galleryItemKey(id))) !== null;
    await this.store.delete(galleryItemKey(id));
    await this.store.delete(galleryImageKey(id));
    if (existed && this.counted) this.counted.n = Math.max(0, this.counted.n - 1);
    return existed;
  }

  /** A page of items after `cursor` (an id), in id order. */
  async page(cursor: string | undefined, limit: number): Promise<{ items: GalleryItem[]; nextCursor: string | null }> {
    const all = await this.ids();
    const start = cursor === undefined ? 0 : all.findIndex((id) => id > cursor);
    const ids = start < 0 ? [] : all.slice(start, start + limit);
    const items = (await Promise.all(ids.map((id) => this.get(id)))).filter((x): x is GalleryItem => x !== null);
    const last = ids[ids.length - 1];
    const more = start >= 0 && start + limit < all.length;
    return { items, nextCursor: more && last !== undefined ? last : null };
  }
}
