import sharp from 'sharp';
import {
  DecodeError,
  SUPPORTED_FORMATS,
  SUPPORTED_MIME_TYPES,
  sniffImageFormat,
  type DecodeTarget,
  type DecodedImage,
  type ImageDecoder,
} from '../image/decoder.js';

export interface SharpDecoderOptions {
  /** Decompression-bomb guard: width × height above this → 'too-many-pixels'. Default 40 MP. */
  maxPixels?: number;
  /** Colour that transparent pixels are flattened onto. Default black: the training images' background. */
  background?: { r: number; g: number; b: number };
}

/** sharp decoder: JPEG, PNG, WebP, GIF (first frame), AVIF, TIFF; EXIF orientation; alpha flattened. */
export function createSharpDecoder(opts: SharpDecoderOptions = {}): ImageDecoder {
  const maxPixels = opts.maxPixels ?? 40_000_000;
  const background = opts.background ?? { r: 0, g: 0, b: 0 };
  return {
    mimeTypes: SUPPORTED_MIME_TYPES,
    async decode(bytes: Uint8Array, target: DecodeTarget): Promise<DecodedImage> {
      const sniffed = sniffImageFormat(bytes);
      if (sniffed === undefined) throw new DecodeError('undecodable', 'the body is not a recognisable image (no JPEG, PNG, GIF, WebP, TIFF or AVIF signature)');
      if (!(SUPPORTED_FORMATS as readonly string[]).includes(sniffed)) {
        throw new DecodeError('unsupported', `${sniffed.toUpperCase()} images are not supported; send JPEG, PNG, WebP, GIF, AVIF or TIFF`);
      }
      // Header first: reject bombs before any pixel is decoded.
      let meta: Awaited<ReturnType<ReturnType<typeof sharp>["metadata"]>>;
      try {
        meta = await sharp(bytes, { limitInputPixels: false }).metadata();
      } catch (err) {
        throw new DecodeError('undecodable', `could not read the ${sniffed.toUpperCase()} image: ${firstLine(err)}`);
      }
      const w = meta.width ?? 0;
      const h = meta.height ?? 0;
      if (w * h > maxPixels) {
        throw new DecodeError('too-many-pixels', `image is ${w}×${h} = ${w * h} pixels; the limit is ${maxPixels}`);
      }
      try {
        let pipeline = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'warning', pages: 1 })
          .autoOrient()
          .flatten({ background })
          .resize(target.size, target.size, { fit: target.resize ?? 'fill', position: 'centre' });
        pipeline = target.channels === 1 ? pipeline.grayscale() : pipeline.toColourspace('srgb');
        const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
        if (info.channels !== target.channels || info.width !== target.size || info.height !== target.size) {
          throw new Error(`decoder produced ${info.width}×${info.height}×${info.channels}`);
        }
        const rotated = (meta.orientation ?? 1) >= 5;
        return {
          pixels: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
          width: info.width,
          height: info.height,
          channels: target.channels,
          format: sniffed,
          sourceWidth: rotated ? h : w,
          sourceHeight: rotated ? w : h,
        };
      } catch (err) {
        const msg = firstLine(err);
        if (/pixel limit/i.test(msg)) throw new DecodeError('too-many-pixels', `image exceeds the pixel limit of ${maxPixels}`);
        throw new DecodeError('undecodable', `could not decode the ${sniffed.toUpperCase()} image: ${msg}`);
      }
    },
  };
}

/** libvips repeats its warnings; the first line says what is wrong. */
function firstLine(err: unknown): string {
  return String((err as Error).message ?? err).split('\n')[0]!.trim();
}
