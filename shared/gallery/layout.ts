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

/** Levels of objects/arrays metadata may nest (the metadata object itself is level 1). */
export const MAX_METADATA_DEPTH = 32;

/**
 * Where `value` nests objects/arrays more than `limit` levels deep (a scalar is level 0, `{}` level 1):
 * the path to the first container past the limit, or null. Iterative, so it is safe on input too deep for
 * anything recursive (JSON.stringify overflows the stack at a few thousand levels; JSON.parse does not).
 */
export function jsonTooDeep(value: unknown, limit: number): (string | number)[] | null {
  const stack: { v: unknown; depth: number; path: (string | number)[] }[] = [{ v: value, depth: 0, path: [] }];
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > limit) return path;
    const push = (k: string | number, x: unknown) => {
      if (x !== null && typeof x === 'object') stack.push({ v: x, depth: depth + 1, path: [...path, k] });
    };
    if (Array.isArray(v)) for (let i = 0; i < v.length; i++) push(i, v[i]);
    else for (const k of Object.keys(v)) push(k, (v as Record<string, unknown>)[k]);
  }
  return null;
}

/** Client metadata: a JSON object, at most MAX_METADATA_DEPTH levels deep. */
export const GalleryMetadata = z.record(z.string(), z.unknown()).superRefine((m, ctx) => {
  const at = jsonTooDeep(m, MAX_METADATA_DEPTH);
  if (at) ctx.addIssue({ code: 'custom', message: `nested more than ${MAX_METADATA_DEPTH} levels deep` });
});

export const GalleryItem = z.object({
  id: GalleryId,
  label: GalleryLabel.optional(),
  // Items already in the bucket are read as they are (the depth limit applies to what clients send).
  metadata: z.record(z.string(), z.unknown()).optional(),
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
