import type { ObjectStore } from '../shared/store/object-store.js';
import { GalleryReader } from '../shared/gallery/reader.js';
import { GalleryId, galleryImageKey, galleryItemKey, type GalleryItem } from '../shared/gallery/layout.js';

// The layout (keys, item schema) lives in shared/gallery/ so the training worker can read the gallery too.
export { GalleryId, GalleryItem, GalleryLabel, GalleryMetadata } from '../shared/gallery/layout.js';

/** The API's read-write view of the gallery: the shared reader plus put, delete and paging. */
export class Gallery extends GalleryReader {
  constructor(store: ObjectStore, private readonly now: () => number = Date.now) {
    super(store);
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
    // Image first, item file second: an item file always has its image.
    await this.store.put(galleryImageKey(item.id), input.image, { contentType: input.contentType });
    await this.store.put(galleryItemKey(item.id), JSON.stringify(item), { contentType: 'application/json' });
    return item;
  }

  /** Returns false when there was no such item. */
  async delete(id: string): Promise<boolean> {
    if (!GalleryId.safeParse(id).success) return false;
    const existed = (await this.store.head(galleryItemKey(id))) !== null;
    await this.store.delete(galleryItemKey(id));
    await this.store.delete(galleryImageKey(id));
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
