import * as zlib from 'node:zlib';
import sharp from 'sharp';
import {
  DecodeError,
  SUPPORTED_FORMATS,
  SUPPORTED_MIME_TYPES,
  sniffImageFormat,
  type DecodeTarget,
  type DecodedImage,
  type ImageDecoder,
  withFastPath,
} from '../image/decoder.js';
import { decodeJpegFast } from '../image/jpeg-fast.js';
import { decodePngFast } from '../image/png-fast.js';

export interface SharpDecoderOptions {
  /** Decompression-bomb guard: width × height above this → 'too-many-pixels'. Default 40 MP. */
  maxPixels?: number;
  /** Colour that transparent pixels are flattened onto. Default black: the training images' background. */
  background?: { r: number; g: number; b: number };
}

const DEFAULT_MAX_PIXELS = 40_000_000;

/**
 * The Node image decoder: PNGs already at the model's size on the pure-JS fast path (far cheaper than
 * sharp's per-image pipeline); baseline JPEGs that sharp would decode at 1/8 scale (photos
 * for a small model) on the JPEG fast path, which gives sharp's pixels without libvips' per-image
 * pipeline; everything else through sharp.
 */
export function createImageDecoder(opts: SharpDecoderOptions = {}): ImageDecoder {
  // zlib.crc32 is native from Node 20.15; older versions use the JS one.
  const nativeCrc = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
  const png = { inflate: (b: Uint8Array) => zlib.inflateSync(b), crc32: nativeCrc, background: opts.background };
  const jpeg = { maxPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS };
  return withFastPath(createSharpDecoder(opts), (b, t) => decodePngFast(b, t, png) ?? decodeJpegFast(b, t, jpeg));
}

/**
 * sharp decoder: JPEG, PNG, WebP, GIF (first frame), AVIF, TIFF; EXIF orientation; alpha flattened.
 * One libvips pipeline per image, which decodes once: resizing lets libvips shrink a JPEG while decoding it
 * (DCT scaling, up to 1/8: a 640×480 photo is decoded at 80×60 for a 28×28 model), WebP likewise.
 */
export function createSharpDecoder(opts: SharpDecoderOptions = {}): ImageDecoder {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const background = opts.background ?? { r: 0, g: 0, b: 0 };
  // libvips' operation cache only pays off when the same input is processed again; every request's bytes
  // are new, so it is bookkeeping (and memory) per image. Off for the process (sharp's setting is global).
  sharp.cache(false);
  return {
    mimeTypes: SUPPORTED_MIME_TYPES,
    async decode(bytes: Uint8Array, target: DecodeTarget): Promise<DecodedImage> {
      const sniffed = sniffImageFormat(bytes);
      if (sniffed === undefined) throw new DecodeError('undecodable', 'the body is not a recognisable image (no JPEG, PNG, GIF, WebP, TIFF or AVIF signature)');
      if (!(SUPPORTED_FORMATS as readonly string[]).includes(sniffed)) {
        throw new DecodeError('unsupported', `${sniffed.toUpperCase()} images are not supported; send JPEG, PNG, WebP, GIF, AVIF or TIFF`);
      }
      // One pipeline: sharp checks limitInputPixels against the header before decoding any pixel, so
      // a bomb is refused cheaply. (A separate metadata() call first would halve small-image throughput.)
      try {
        const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels, failOn: 'warning', pages: 1 })
          .autoOrient()
          .flatten({ background })
          .resize(target.size, target.size, { fit: target.resize ?? 'fill', position: 'centre' })
          .raw({ depth: 'uchar' })
          .toBuffer({ resolveWithObject: true });
        if (info.width !== target.size || info.height !== target.size) throw new Error(`decoder produced ${info.width}×${info.height}`);
        return {
          pixels: toChannels(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), info.channels, target.channels),
          width: info.width,
          height: info.height,
          channels: target.channels,
          format: sniffed,
        };
      } catch (err) {
        const msg = firstLine(err);
        if (/pixel limit/i.test(msg)) {
          const meta = await sharp(bytes, { limitInputPixels: false }).metadata().catch(() => null);
          const dims = meta?.width && meta.height ? `${meta.width}×${meta.height} = ${meta.width * meta.height} pixels` : 'over the limit';
          throw new DecodeError('too-many-pixels', `image is ${dims}; the limit is ${maxPixels} pixels`);
        }
        throw new DecodeError('undecodable', `could not decode the ${sniffed.toUpperCase()} image: ${msg}`);
      }
    },
  };
}

/** libvips repeats its warnings; the first line says what is wrong. */
function firstLine(err: unknown): string {
  return String((err as Error).message ?? err).split('\n')[0]!.trim();
}

/**
 * Channel conversion in JS, after sharp: sharp's grayscale() is a colour-managed transform that halves
 * throughput on small images. Grey uses ITU-R 601 luma (what PIL's convert('L') and torchvision use).
 */
function toChannels(px: Uint8Array, from: number, to: 1 | 3): Uint8Array {
  if (from === to) return px;
  const n = px.length / from;
  const out = new Uint8Array(n * to);
  for (let i = 0; i < n; i++) {
    const o = i * from;
    if (to === 1) {
      out[i] = from >= 3 ? Math.round(0.299 * px[o]! + 0.587 * px[o + 1]! + 0.114 * px[o + 2]!) : px[o]!;
    } else if (from >= 3) {
      out[i * 3] = px[o]!;
      out[i * 3 + 1] = px[o + 1]!;
      out[i * 3 + 2] = px[o + 2]!;
    } else {
      out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = px[o]!;
    }
  }
  return out;
}
