/** The benchmark's images, built from Fashion-MNIST test images (also used by tests that check the same files). */
import sharp from 'sharp';
import { loadFashionMnist } from '../shared/node/datasets.js';

/** Test image `k` of `images` (28×28 grey, row-major) as a PNG. */
export function fmnistPng(images: Uint8Array, k: number): Promise<Buffer> {
  return sharp(Buffer.from(images.subarray(k * 784, (k + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
}

// A photo-sized JPEG with a photo's detail: 18×14 Fashion-MNIST images in 36 px tiles on a coloured
// ground, 640×480 at q80 (about 80 KB, the size of the photo the serving issue measured).
const MOSAIC_COLS = 18;
const MOSAIC_ROWS = 14;

/** The 28×28 PNG of test image 0 and the 640×480 mosaic JPEG of the first 252 test images. */
export async function benchImages(): Promise<{ png: Buffer; jpeg: Buffer }> {
  const ds = await loadFashionMnist('test', { limit: MOSAIC_COLS * MOSAIC_ROWS });
  return { png: await fmnistPng(ds.images, 0), jpeg: await mosaicJpeg(ds.images) };
}

async function mosaicJpeg(images: Uint8Array): Promise<Buffer> {
  const tile = 36;
  const tiles = await Promise.all(
    Array.from({ length: MOSAIC_COLS * MOSAIC_ROWS }, async (_, k) => ({
      input: await sharp(await fmnistPng(images, k)).resize(tile, tile).toColourspace('srgb').png().toBuffer(),
      left: (k % MOSAIC_COLS) * tile,
      top: Math.floor(k / MOSAIC_COLS) * tile,
    })),
  );
  const canvas = sharp({ create: { width: MOSAIC_COLS * tile, height: MOSAIC_ROWS * tile, channels: 3, background: { r: 90, g: 80, b: 70 } } });
  const mosaic = await canvas.composite(tiles).png().toBuffer();
  return sharp(mosaic).extract({ left: 0, top: 0, width: 640, height: 480 }).jpeg({ quality: 80 }).toBuffer();
}
