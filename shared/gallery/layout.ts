import { z } from 'zod';

/**
 * The gallery's layout in the bucket, shared by the API (which writes it) and the worker (which trains
 * on it):
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

export const GALLERY_ITEMS_PREFIX = 'gallery/items/';
export const GALLERY_IMAGES_PREFIX = 'gallery/images/';
export const galleryItemKey = (id: string): string => `${GALLERY_ITEMS_PREFIX}${id}.json`;
export const galleryImageKey = (id: string): string => `${GALLERY_IMAGES_PREFIX}${id}`;
