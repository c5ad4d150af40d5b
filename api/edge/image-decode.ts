/**
 * The Workers image decoder: PNG, JPEG and WebP through @jsquash's wasm codecs (no sharp at the edge),
 * then shared/image/pixels.ts turns the RGBA into the model's input the way the Node (sharp) decoder does;
 * baseline JPEG photos that sharp shrinks by 8 on load go through shared/image/jpeg-fast.ts, as on Node.
 *
 * Workers cannot compile wasm from bytes, so each codec's init() gets a precompiled WebAssembly.Module: the
 * Worker imports the `.wasm` files below as ES modules (wrangler's CompiledWasm rule) and passes them in.
 * Without a module, the codecs would `fetch(new URL('…wasm', import.meta.url))` and fail in workerd.
 */
import pngDecode, { init as initPng } from '@jsquash/png/decode.js';
import jpegDecode, { init as initJpegUntyped } from '@jsquash/jpeg/decode.js';
import webpDecode, { init as initWebpUntyped } from '@jsquash/webp/decode.js';
import { DecodeError, sniffImageFormat, withFastPath, type DecodeTarget, type DecodedImage, type ImageDecoder } from '../../shared/image/decoder.js';
import { decodeJpegFast } from '../../shared/image/jpeg-fast.js';
import { jpegOrientation, jpegSize, pngOrientation, pngSize, webpIsAnimated, webpOrientation, webpSize, type ImageSize } from '../../shared/image/headers.js';
import { toModelInput, type RgbaImage } from '../../shared/image/pixels.js';

/**
 * The codec binaries, relative to the project root, for the Worker entry:
 *   import pngWasm from '../../node_modules/@jsquash/png/codec/pkg/squoosh_png_bg.wasm';
 * (and likewise for jpeg and webp) → createEdgeImageDecoder({ codecs: { png: pngWasm, … } }).
 */
export const EDGE_CODEC_WASM = {
  png: 'node_modules/@jsquash/png/codec/pkg/squoosh_png_bg.wasm',
  jpeg: 'node_modules/@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm',
  webp: 'node_modules/@jsquash/webp/codec/dec/webp_dec.wasm',
} as const;

export const EDGE_MIME_TYPES = ['image/png', 'image/jpeg', 'image/webp'] as const;

export interface EdgeImageDecoderOptions {
  codecs: { png: WebAssembly.Module; jpeg: WebAssembly.Module; webp: WebAssembly.Module };
  /** Decompression-bomb guard, checked on the header before decoding. Default 40 MP (as the Node decoder). */
  maxPixels?: number;
  background?: { r: number; g: number; b: number };
}

type EmscriptenOverrides = { print?: (s: string) => void; printErr?: (s: string) => void };
// The published .d.ts files of jpeg/webp omit the (module, overrides) form that their JS accepts.
const initJpeg = initJpegUntyped as unknown as (module: WebAssembly.Module, overrides?: EmscriptenOverrides) => Promise<void>;
const initWebp = initWebpUntyped as unknown as (module: WebAssembly.Module, overrides?: EmscriptenOverrides) => Promise<void>;

type Format = 'png' | 'jpeg' | 'webp';

const SIZE: Record<Format, (b: Uint8Array) => ImageSize | undefined> = { png: pngSize, jpeg: jpegSize, webp: webpSize };
const ORIENTATION: Record<Format, (b: Uint8Array) => number> = { png: pngOrientation, jpeg: jpegOrientation, webp: webpOrientation };

export function createEdgeImageDecoder(opts: EdgeImageDecoderOptions): ImageDecoder {
  const maxPixels = opts.maxPixels ?? 40_000_000;
  // libjpeg reports recoverable damage (a truncated file, corrupt data) as warnings on stderr and carries
  // on; sharp runs with failOn: 'warning', so the edge collects them and refuses the image too.
  let jpegWarnings: string[] = [];
  const ready: Partial<Record<Format, Promise<unknown>>> = {};
  const init = (format: Format): Promise<unknown> =>
    (ready[format] ??= (
      format === 'png'
        ? initPng(opts.codecs.png)
        : format === 'jpeg'
          ? initJpeg(opts.codecs.jpeg, { print: () => {}, printErr: (s) => void jpegWarnings.push(s) })
          : initWebp(opts.codecs.webp, { print: () => {}, printErr: () => {} })
    ).catch((err: unknown) => {
      delete ready[format]; // let a later request try again
      throw err;
    }));
  // Decodes run one at a time: the JPEG warning list is shared, and wasm work is synchronous anyway.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const run = queue.then(f, f);
    queue = run.catch(() => undefined);
    return run;
  };

  async function decodeRgba(format: Format, bytes: Uint8Array): Promise<RgbaImage> {
    await init(format);
    // The codecs take a whole ArrayBuffer; a view (a Node Buffer from a pool, a subarray) gets copied out.
    // (Not bytes.slice(): on a Node Buffer that is a view too.)
    const buf = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? (bytes.buffer as ArrayBuffer) : copyOf(bytes);
    if (format === 'png') return pngDecode(buf);
    if (format === 'webp') return webpDecode(buf);
    jpegWarnings = [];
    let img: RgbaImage;
    try {
      img = await jpegDecode(buf, { preserveOrientation: false });
    } catch (err) {
      // libjpeg printed why before exiting (the thrown value is only "exit(1)").
      throw new Error(jpegWarnings.at(-1) ?? firstLine(err));
    }
    if (jpegWarnings.length > 0) throw new Error(jpegWarnings[0]);
    return img;
  }

  // Photos that sharp would decode at 1/8 scale skip the full wasm decode: the fast path gives sharp's
  // pixels exactly, so such a JPEG embeds at the edge as it does on Node.
  return withFastPath({
    mimeTypes: EDGE_MIME_TYPES,
    async decode(bytes: Uint8Array, target: DecodeTarget): Promise<DecodedImage> {
      const sniffed = sniffImageFormat(bytes);
      if (sniffed === undefined) throw new DecodeError('undecodable', 'the body is not a recognisable image (no PNG, JPEG or WebP signature)');
      if (sniffed !== 'png' && sniffed !== 'jpeg' && sniffed !== 'webp') {
        throw new DecodeError('unsupported', `${sniffed.toUpperCase()} images are not supported here; send PNG, JPEG or WebP`);
      }
      const name = sniffed.toUpperCase();
      if (sniffed === 'webp' && webpIsAnimated(bytes)) {
        throw new DecodeError('unsupported', 'animated WebP images are not supported here; send a still PNG, JPEG or WebP');
      }
      const size = SIZE[sniffed](bytes);
      if (!size) throw new DecodeError('undecodable', `could not decode the ${name} image: no valid header with its dimensions`);
      const pixels = size.width * size.height;
      if (pixels > maxPixels) {
        throw new DecodeError('too-many-pixels', `image is ${size.width}×${size.height} = ${pixels} pixels; the limit is ${maxPixels} pixels`);
      }
      let rgba: RgbaImage;
      try {
        rgba = await serial(() => decodeRgba(sniffed, bytes));
      } catch (err) {
        throw new DecodeError('undecodable', `could not decode the ${name} image: ${firstLine(err)}`);
      }
      if (rgba.width !== size.width || rgba.height !== size.height) {
        throw new DecodeError('undecodable', `could not decode the ${name} image: header says ${size.width}×${size.height}, pixels are ${rgba.width}×${rgba.height}`);
      }
      const out = toModelInput(rgba, {
        size: target.size,
        channels: target.channels,
        resize: target.resize ?? 'fill',
        orientation: ORIENTATION[sniffed](bytes),
        loader: sniffed === 'png' ? 'none' : sniffed,
        background: opts.background,
        // The Node decoder sends PNGs already at the model's size through png-fast.ts, which rounds when
        // flattening alpha; sharp (everything else) truncates.
        flattenRounding: sniffed === 'png' && size.width === target.size && size.height === target.size ? 'round' : 'truncate',
      });
      return { pixels: out, width: target.size, height: target.size, channels: target.channels, format: sniffed };
    },
  }, (b, t) => decodeJpegFast(b, t, { maxPixels }));
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String((err as { message?: unknown })?.message ?? err);
  return msg.split('\n')[0]!.trim() || 'the codec failed';
}

function copyOf(bytes: Uint8Array): ArrayBuffer {
  const out = new Uint8Array(bytes.byteLength);
  out.set(bytes);
  return out.buffer;
}
