import type { Context } from 'hono';
import { z } from 'zod';
import { DecodeError, type DecodeTarget, type ImageDecoder } from '../shared/image/decoder.js';
import { jsonTooDeep } from '../shared/gallery/layout.js';
import type { Preprocessing } from './model-source.js';
import { normalise } from './preprocess.js';
import { ApiError, badRequest, fromZod, tooManyPixels, undecodable, unsupportedMediaType } from './problem.js';

/** One image as received, before decoding. */
export interface RawImage {
  bytes: Uint8Array;
  /** The declared type (part or body Content-Type), if any. */
  contentType?: string;
  /** Where it came from, for error messages ("body", "image[2]", "images[0].base64"). */
  field: string;
}

export type BodyKind = 'image' | 'multipart' | 'json';

/** Declared types accepted for raw image bodies and parts; the bytes are sniffed anyway. */
const IMAGE_TYPES = new Set([
  'image/jpeg',
  'image/jpg',
  'image/pjpeg',
  'image/png',
  'image/webp',
  'image/gif',
  'image/avif',
  'image/tiff',
  'application/octet-stream',
]);
const ACCEPTED = 'image/jpeg, image/png, image/webp, image/gif, image/avif or image/tiff as the body, multipart/form-data, or application/json';

export function mediaType(c: Context): string {
  return (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Which of the three body shapes this request uses; 415 for anything else. */
export function bodyKind(c: Context, allowJson = true): BodyKind {
  const t = mediaType(c);
  if (t === 'multipart/form-data') return 'multipart';
  if (allowJson && (t === 'application/json' || t.endsWith('+json'))) return 'json';
  if (t.startsWith('image/') || t === 'application/octet-stream') {
    if (!IMAGE_TYPES.has(t)) throw unsupportedMediaType(`${t} is not supported; send ${ACCEPTED}`);
    return 'image';
  }
  if (t === '') throw unsupportedMediaType(`the request has no Content-Type; send ${ACCEPTED}`);
  throw unsupportedMediaType(`${t} is not accepted here; send ${ACCEPTED}`);
}

export async function rawBody(c: Context): Promise<RawImage> {
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.length === 0) throw badRequest('body: the request body is empty; send the image bytes', [{ field: 'body', message: 'empty' }]);
  return { bytes, contentType: mediaType(c), field: 'body' };
}

/**
 * Levels a JSON body may nest. No request schema comes near it (gallery metadata, the deepest field, is
 * capped at 32 levels by its schema); it stops bodies nested thousands of levels deep — small, valid
 * JSON — before anything recursive (zod, JSON.stringify) touches them and overflows the stack.
 */
export const MAX_JSON_DEPTH = 64;

/** JSON body → validated value; malformed JSON, too deep nesting or a schema mismatch → 400 naming the field. */
export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const text = await c.req.text();
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw badRequest(`body: not valid JSON (${(err as Error).message})`, [{ field: 'body', message: 'malformed JSON' }]);
  }
  const deep = jsonTooDeep(raw, MAX_JSON_DEPTH);
  if (deep) {
    const field = typeof deep[0] === 'string' ? `body.${deep[0]}` : 'body';
    throw badRequest(`${field}: nested more than ${MAX_JSON_DEPTH} levels deep`, [{ field, message: 'nested too deeply' }]);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw fromZod(parsed.error, 'body');
  return parsed.data;
}

export type FormFields = Record<string, (string | File)[]>;

export async function formBody(c: Context): Promise<FormFields> {
  let form: FormData;
  try {
    form = await c.req.formData();
  } catch (err) {
    throw badRequest(`body: malformed multipart/form-data (${(err as Error).message})`, [{ field: 'body', message: 'malformed multipart' }]);
  }
  const out: FormFields = {};
  form.forEach((v, k) => {
    (out[k] ??= []).push(v);
  });
  return out;
}

/** The `image` parts of a form (at least one, at most max). */
export async function formImages(fields: FormFields, max: number): Promise<RawImage[]> {
  const parts = fields.image ?? [];
  if (parts.length === 0) throw badRequest('image: the form has no "image" file part', [{ field: 'image', message: 'required' }]);
  if (parts.length > max) throw badRequest(`image: at most ${max} images per request, got ${parts.length}`, [{ field: 'image', message: 'too many' }]);
  return Promise.all(
    parts.map(async (p, i) => {
      const field = parts.length === 1 ? 'image' : `image[${i}]`;
      if (typeof p === 'string') throw badRequest(`${field}: must be a file part, got a text field`, [{ field, message: 'not a file' }]);
      return { bytes: new Uint8Array(await p.arrayBuffer()), contentType: p.type || undefined, field };
    }),
  );
}

/** A single optional text field of a form. */
export function formText(fields: FormFields, name: string): string | undefined {
  const v = fields[name];
  if (!v || v.length === 0) return undefined;
  if (v.length > 1) throw badRequest(`${name}: given ${v.length} times; give it once`, [{ field: name, message: 'repeated' }]);
  if (typeof v[0] !== 'string') throw badRequest(`${name}: must be a text field, not a file`, [{ field: name, message: 'not text' }]);
  return v[0];
}

const B64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

export function fromBase64(s: string, field: string): RawImage {
  const comma = s.startsWith('data:') ? s.indexOf(',') : -1;
  const declared = comma >= 0 ? /^data:([^;,]+)/.exec(s)?.[1] : undefined;
  const body = (comma >= 0 ? s.slice(comma + 1) : s).replace(/\s+/g, '');
  if (!B64.test(body) || body.length % 4 === 1) throw badRequest(`${field}: not valid base64`, [{ field, message: 'invalid base64' }]);
  let bin: string;
  try {
    bin = atob(body.replace(/-/g, '+').replace(/_/g, '/'));
  } catch {
    throw badRequest(`${field}: not valid base64`, [{ field, message: 'invalid base64' }]);
  }
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  if (bytes.length === 0) throw badRequest(`${field}: empty image`, [{ field, message: 'empty' }]);
  return { bytes, contentType: declared, field };
}

/** Decode + normalise one image to the model's input; decoder failures become 413 / 415 / 422. */
export async function prepare(decoder: ImageDecoder, img: RawImage, pre: Preprocessing, maxBytes: number): Promise<Float32Array> {
  if (img.bytes.length > maxBytes) throw new ApiError(413, 'payload-too-large', 'Payload too large', `${img.field}: ${img.bytes.length} bytes; the limit is ${maxBytes}`);
  if (img.contentType && !IMAGE_TYPES.has(img.contentType.toLowerCase()) && img.field !== 'body') {
    throw unsupportedMediaType(`${img.field}: ${img.contentType} is not supported; send JPEG, PNG, WebP, GIF, AVIF or TIFF`);
  }
  const target: DecodeTarget = { size: pre.inputSize, channels: pre.channels, resize: pre.resize ?? 'fill' };
  try {
    return normalise(await decoder.decode(img.bytes, target), pre);
  } catch (err) {
    throw decodeToApi(err, img.field);
  }
}

export function decodeToApi(err: unknown, field: string): unknown {
  if (!(err instanceof DecodeError)) return err;
  if (err.kind === 'too-many-pixels') return tooManyPixels(`${field}: ${err.message}`);
  if (err.kind === 'unsupported') return unsupportedMediaType(`${field}: ${err.message}`);
  return undecodable(`${field}: ${err.message}`);
}
