import type { z } from 'zod';

/**
 * RFC 9457 problem details. Every error the API returns is one of these, with Content-Type
 * application/problem+json. `type` is a stable URN per kind of problem; `detail` says what to change.
 */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  requestId?: string;
  /** Validation problems: one entry per offending field. */
  errors?: { field: string; message: string }[];
  [extension: string]: unknown;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly slug: string,
    readonly title: string,
    readonly detail: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.name = 'ApiError';
  }

  toProblem(instance?: string, requestId?: string): Problem {
    return {
      type: `urn:vicreg:problem:${this.slug}`,
      title: this.title,
      status: this.status,
      detail: this.detail,
      ...(instance ? { instance } : {}),
      ...(requestId ? { requestId } : {}),
      ...this.extra,
    };
  }
}

export const badRequest = (detail: string, errors?: { field: string; message: string }[]) =>
  new ApiError(400, 'invalid-request', 'Invalid request', detail, errors ? { errors } : {});
export const notFound = (detail: string) => new ApiError(404, 'not-found', 'Not found', detail);
export const conflict = (detail: string) => new ApiError(409, 'conflict', 'Conflict', detail);
export const payloadTooLarge = (detail: string) => new ApiError(413, 'payload-too-large', 'Payload too large', detail);
export const tooManyPixels = (detail: string) => new ApiError(413, 'too-many-pixels', 'Image has too many pixels', detail);
export const unsupportedMediaType = (detail: string) => new ApiError(415, 'unsupported-media-type', 'Unsupported media type', detail);
export const undecodable = (detail: string) => new ApiError(422, 'undecodable-image', 'Image cannot be decoded', detail);
export const unavailable = (detail: string, retryAfterSeconds = 5) =>
  new ApiError(503, 'unavailable', 'Service unavailable', detail, {}, { 'Retry-After': String(retryAfterSeconds) });

/** The object store cannot be reached: gallery, model and job operations wait for it; embed, search and classify do not. */
export const storeUnavailable = (retryAfterSeconds = 5) =>
  new ApiError(
    503,
    'store-unavailable',
    'Storage unavailable',
    'the object store is unreachable, so this request could not be completed (a write may not have been saved); ' +
      `retry in ${retryAfterSeconds} seconds. Embeddings, search and classification keep working meanwhile.`,
    {},
    { 'Retry-After': String(retryAfterSeconds) },
  );

/** A zod failure → 400 whose detail and `errors` name each field (prefixed, e.g. "body.k"). */
export function fromZod(err: z.ZodError, prefix: string): ApiError {
  const errors = err.issues.map((i) => ({
    field: [prefix, ...i.path.map(String)].filter(Boolean).join('.') || prefix || '(root)',
    message: i.message,
  }));
  const detail = errors.map((e) => `${e.field}: ${e.message}`).join('; ');
  return badRequest(detail, errors);
}

export function problemResponse(p: Problem, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(p), {
    status: p.status,
    headers: { 'Content-Type': 'application/problem+json', ...headers },
  });
}
