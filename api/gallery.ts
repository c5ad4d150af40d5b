import { z } from 'zod';
import type { ObjectStore } from '../shared/store/object-store.js';

/**
 * Gallery images in the bucket. Layout:
 *   gallery/images/<id>      the original bytes (Content-Type as uploaded)
 *   gallery/items/<id>.json  { id, label, metadata, contentType, bytes, revision, createdAt }
 * The item file is written after the image and deleted before it, so an item file always has its image.
 * `revision` changes on every write: an index snapshot records which revision it embedded.
 */
export const GalleryId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'id: 1–128 of A–Z a–z 0–9 . _ - (starting with a letter or digit)');

export const GalleryLabel = z.string().min(1).max(128);
export const GalleryMetadata = z.record(z.string(), z.unknown());

export const GalleryItem = z.object({
  id: GalleryId,
  label: GalleryLabel.optional(),
  metadata: GalleryMetadata.optional(),
  contentType: z.string(),
  bytes: z.number().int().nonnegative(),
  revision: z.string(),
  createdAt: z.string(),
});
export type GalleryItem = z.infer<typeof GalleryItem>;

const ITEMS = 'gallery/items/';
const IMAGES = 'gallery/images/';
const itemKey = (id: string) => `${ITEMS}${id}.json`;
const imageKey = (id: string) => `${IMAGES}${id}`;

export class Gallery {
  constructor(private readonly store: ObjectStore, private readonly now: () => number = Date.now) {}

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
    await this.store.put(imageKey(item.id), input.image, { contentType: input.contentType });
    await this.store.put(itemKey(item.id), JSON.stringify(item), { contentType: 'application/json' });
    return item;
  }

  async get(id: string): Promise<GalleryItem | null> {
    if (!GalleryId.safeParse(id).success) return null;
    const got = await this.store.get(itemKey(id));
    if (got === null || 'notModified' in got) return null;
    const parsed = GalleryItem.safeParse(JSON.parse(new TextDecoder().decode(got.body)));
    if (!parsed.success) throw new Error(`gallery item ${itemKey(id)} is corrupt: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  }

  async image(id: string): Promise<{ body: Uint8Array; contentType: string } | null> {
    if (!GalleryId.safeParse(id).success) return null;
    const got = await this.store.get(imageKey(id));
    if (got === null || 'notModified' in got) return null;
    return { body: got.body, contentType: got.contentType ?? 'application/octet-stream' };
  }

  /** Returns false when there was no such item. */
  async delete(id: string): Promise<boolean> {
    if (!GalleryId.safeParse(id).success) return false;
    const existed = (await this.store.head(itemKey(id))) !== null;
    await this.store.delete(itemKey(id));
    await this.store.delete(imageKey(id));
    return existed;
  }

  /** All ids, sorted. One LIST of the item files. */
  async ids(): Promise<string[]> {
    const infos = await this.store.list(ITEMS);
    return infos
      .map((i) => i.key.slice(ITEMS.length))
      .filter((k) => k.endsWith('.json'))
      .map((k) => k.slice(0, -'.json'.length))
      .filter((id) => GalleryId.safeParse(id).success)
      .sort();
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
