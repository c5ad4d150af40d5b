/**
 * Image decoding port. The Node implementation uses sharp (shared/node/image-decode.ts); a Workers one
 * would use wasm codecs. Both turn untrusted bytes into uint8 pixels at the model's size and channels.
 */
export interface DecodeTarget {
  /** Output is size × size. */
  size: number;
  channels: 1 | 3;
  /** 'fill' (default, the checkpoint manifest's rule): stretch ignoring aspect ratio; 'cover': scale and centre-crop. */
  resize?: 'fill' | 'cover';
}

export interface DecodedImage {
  /** size × size × channels bytes, row-major HWC. */
  pixels: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
  /** Detected source format, e.g. "png". */
  format: string;
}

export type DecodeErrorKind =
  /** A format we do not accept (BMP, SVG, HEIC, PDF…) → HTTP 415. */
  | 'unsupported'
  /** Looks like a supported format but cannot be decoded (truncated, corrupt, not an image) → 422. */
  | 'undecodable'
  /** More pixels than the configured limit (decompression bomb) → 413. */
  | 'too-many-pixels';

export class DecodeError extends Error {
  constructor(readonly kind: DecodeErrorKind, message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

export interface ImageDecoder {
  /** Formats accepted, as MIME types (for Content-Type checks and the OpenAPI description). */
  readonly mimeTypes: readonly string[];
  decode(bytes: Uint8Array, target: DecodeTarget): Promise<DecodedImage>;
}

/** `full`, trying `fast` first: a decoder for the files it can take that returns undefined for the rest. */
export function withFastPath(full: ImageDecoder, fast: (bytes: Uint8Array, target: DecodeTarget) => DecodedImage | undefined): ImageDecoder {
  return {
    mimeTypes: full.mimeTypes,
    async decode(bytes, target) {
      return fast(bytes, target) ?? full.decode(bytes, target);
    },
  };
}

/** Supported formats by their leading bytes; undefined = not an image format we know. */
export function sniffImageFormat(b: Uint8Array): 'jpeg' | 'png' | 'gif' | 'webp' | 'tiff' | 'avif' | 'heic' | 'bmp' | 'svg' | undefined {
  const at = (i: number, ...xs: number[]) => xs.every((x, j) => b[i + j] === x);
  const ascii = (i: number, s: string) => at(i, ...Array.from(s, (c) => c.charCodeAt(0)));
  if (at(0, 0xff, 0xd8, 0xff)) return 'jpeg';
  if (at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'png';
  if (ascii(0, 'GIF87a') || ascii(0, 'GIF89a')) return 'gif';
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'webp';
  if (at(0, 0x49, 0x49, 0x2a, 0x00) || at(0, 0x4d, 0x4d, 0x00, 0x2a)) return 'tiff';
  if (ascii(4, 'ftyp')) {
    const brand = String.fromCharCode(...b.subarray(8, 12));
    if (brand === 'avif' || brand === 'avis') return 'avif';
    return 'heic';
  }
  if (ascii(0, 'BM')) return 'bmp';
  const head = new TextDecoder().decode(b.subarray(0, 256)).trimStart().toLowerCase();
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg'))) return 'svg';
  return undefined;
}

export const SUPPORTED_FORMATS = ['jpeg', 'png', 'gif', 'webp', 'tiff', 'avif'] as const;
export const SUPPORTED_MIME_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp', 'image/tiff', 'image/avif'] as const;
