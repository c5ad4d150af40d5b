import type { ImageDataset } from '../data/dataset.js';
import type { ImageDecoder } from '../image/decoder.js';
import type { ObjectStore } from '../store/object-store.js';
import { GalleryReader } from './reader.js';

export interface GalleryDatasetOptions {
  /** Images are resized to size × size ('fill', as the API preprocesses). */
  size: number;
  channels: 1 | 3;
  /** Stop after this many decoded images (in id order). */
  limit?: number;
  /** Passed in: the pure core has no decoder of its own (the worker uses sharp). */
  decoder: ImageDecoder;
  /** Where the "skipped images" warning goes; default console.warn. */
  warn?: (message: string) => void;
  /** Items fetched and decoded at once (store round trips dominate). Default 8. */
  concurrency?: number;
}

export interface SkippedGalleryItem {
  id: string;
  reason: string;
}

export const EMPTY_GALLERY_MESSAGE = 'gallery is empty: add images with POST /v1/images';

/**
 * The gallery as a training dataset, in id order. Items with a label get the index of their label in
 * `classNames` (sorted distinct labels); unlabelled items get −1. `classNames`/`labels` are absent when
 * no item has a label. Items whose file is corrupt, whose image is missing or cannot be decoded are
 * skipped, listed in `skipped` and named in one warning.
 */
export async function loadGalleryDataset(
  store: ObjectStore,
  opts: GalleryDatasetOptions,
): Promise<ImageDataset & { skipped: SkippedGalleryItem[] }> {
  if (!Number.isInteger(opts.size) || opts.size < 1) throw new Error(`loadGalleryDataset: size must be a positive integer, got ${opts.size}`);
  const gallery = new GalleryReader(store);
  const ids = await gallery.ids();
  if (ids.length === 0) throw new Error(EMPTY_GALLERY_MESSAGE);

  const limit = opts.limit ?? Infinity;
  const concurrency = Math.max(1, opts.concurrency ?? 8);
  const skipped: SkippedGalleryItem[] = [];
  const decoded: { pixels: Uint8Array; label: string | undefined }[] = [];
  const one = async (id: string): Promise<{ pixels: Uint8Array; label: string | undefined } | SkippedGalleryItem> => {
    try {
      const item = await gallery.get(id);
      if (!item) return { id, reason: 'deleted while loading' };
      const img = await gallery.image(id);
      if (!img) return { id, reason: 'its image object is missing' };
      const out = await opts.decoder.decode(img.body, { size: opts.size, channels: opts.channels, resize: 'fill' });
      return { pixels: out.pixels, label: item.label };
    } catch (err) {
      return { id, reason: (err as Error).message };
    }
  };
  // Chunks in id order, never fetching more than the limit still needs.
  for (let at = 0; at < ids.length && decoded.length < limit; ) {
    const take = Math.min(concurrency, limit - decoded.length, ids.length - at);
    const results = await Promise.all(ids.slice(at, at + take).map(one));
    at += take;
    for (const r of results) {
      if ('reason' in r) skipped.push(r);
      else decoded.push(r);
    }
  }

  if (skipped.length > 0) {
    const list = skipped.slice(0, 10).map((s) => `${s.id} (${s.reason})`).join('; ');
    (opts.warn ?? console.warn)(
      `gallery: skipped ${skipped.length} image(s): ${list}${skipped.length > 10 ? `; … and ${skipped.length - 10} more` : ''}`,
    );
  }
  if (decoded.length === 0) throw new Error(`no decodable images in the gallery (${skipped.length} skipped; see the warning naming them)`);

  const px = opts.size * opts.size * opts.channels;
  const images = new Uint8Array(decoded.length * px);
  decoded.forEach((d, i) => images.set(d.pixels, i * px));
  const ds: ImageDataset & { skipped: SkippedGalleryItem[] } = {
    images,
    n: decoded.length,
    height: opts.size,
    width: opts.size,
    channels: opts.channels,
    source: 'gallery',
    skipped,
  };
  const classNames = [...new Set(decoded.flatMap((d) => (d.label !== undefined ? [d.label] : [])))].sort();
  if (classNames.length > 0) {
    const index = new Map(classNames.map((c, i) => [c, i]));
    ds.labels = Int32Array.from(decoded, (d) => (d.label !== undefined ? index.get(d.label)! : -1));
    ds.classNames = classNames;
  }
  return ds;
}
