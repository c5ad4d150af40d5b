import type { ObjectStore } from '../store/object-store.js';
import { GALLERY_ITEMS_PREFIX, GalleryId, GalleryItem, galleryImageKey, galleryItemKey } from './layout.js';

/** Read-only access to the gallery in a bucket (the API's Gallery adds writes; the worker only reads). */
export class GalleryReader {
  constructor(protected readonly store: ObjectStore) {}

  /** All ids, sorted. One LIST of the item files. */
  async ids(): Promise<string[]> {
    const infos = await this.store.list(GALLERY_ITEMS_PREFIX);
    return infos
      .map((i) => i.key.slice(GALLERY_ITEMS_PREFIX.length))
      .filter((k) => k.endsWith('.json'))
      .map((k) => k.slice(0, -'.json'.length))
      .filter((id) => GalleryId.safeParse(id).success)
      .sort();
  }

  /** The item, null when absent; throws (naming the key) when its file is not a valid item. */
  async get(id: string): Promise<GalleryItem | null> {
    if (!GalleryId.safeParse(id).success) return null;
    const got = await this.store.get(galleryItemKey(id));
    if (got === null || 'notModified' in got) return null;
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(got.body));
    } catch {
      throw new Error(`gallery item ${galleryItemKey(id)} is corrupt: not JSON`);
    }
    const parsed = GalleryItem.safeParse(json);
    if (!parsed.success) throw new Error(`gallery item ${galleryItemKey(id)} is corrupt: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  }

  async image(id: string): Promise<{ body: Uint8Array; contentType: string } | null> {
    if (!GalleryId.safeParse(id).success) return null;
    const got = await this.store.get(galleryImageKey(id));
    if (got === null || 'notModified' in got) return null;
    return { body: got.body, contentType: got.contentType ?? 'application/octet-stream' };
  }
}
