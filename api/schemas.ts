import { z } from '@hono/zod-openapi';
import { RetrainRequest as RetrainRequestCore } from '../shared/jobs/schema.js';
import { GalleryId, GalleryLabel, GalleryMetadata } from './gallery.js';

/**
 * The HTTP contract's zod schemas: they validate requests and generate /openapi.json, so the two cannot
 * drift. Response schemas are documentation (the handlers build those objects).
 */
export const MAX_JSON_IMAGES = 64;

export const Base64Image = z
  .string()
  .min(1)
  .openapi({ description: 'Image bytes, base64 (a data: URL prefix is accepted)', example: 'iVBORw0KGgo…' });

export const EmbeddingsJson = z
  .object({
    images: z.array(z.object({ base64: Base64Image })).min(1).max(MAX_JSON_IMAGES),
  })
  .strict()
  .openapi('EmbeddingsRequest');

export const ModelRef = z.object({ version: z.string() }).openapi('ModelRef');

export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional(),
    requestId: z.string().optional(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .openapi('Problem');

export const EmbeddingsResponse = z
  .object({
    model: ModelRef,
    dimension: z.number().int(),
    data: z.array(
      z.union([
        z.object({ index: z.number().int(), embedding: z.array(z.number()) }),
        z.object({ index: z.number().int(), error: ProblemSchema }),
      ]),
    ),
  })
  .openapi('EmbeddingsResponse');

export const ImageJson = z
  .object({
    base64: Base64Image,
    id: GalleryId.optional(),
    label: GalleryLabel.optional(),
    metadata: GalleryMetadata.optional(),
  })
  .strict()
  .openapi('GalleryImageRequest');

export const GalleryItemResponse = z
  .object({
    id: z.string(),
    label: z.string().optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
    contentType: z.string(),
    bytes: z.number().int(),
    createdAt: z.string(),
    indexed: z.boolean().openapi({ description: 'In the serving model’s index' }),
  })
  .openapi('GalleryItem');

export const ImageCreated = z.object({ id: z.string(), model: ModelRef.nullable() }).openapi('GalleryImageCreated');

export const ListQuery = z.object({
  cursor: GalleryId.optional().openapi({ description: 'nextCursor from the previous page' }),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export const ImageList = z
  .object({ items: z.array(GalleryItemResponse), nextCursor: z.string().nullable() })
  .openapi('GalleryPage');

/** Points a gallery map holds at most (its PCA is O(points · dimension²) on the request's thread). */
export const MAP_MAX_POINTS = 5000;

export const GalleryMapQuery = z.object({
  label: GalleryLabel.optional().openapi({ description: 'Only images with this label; the projection is fitted on them alone' }),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAP_MAX_POINTS)
    .default(2000)
    .openapi({ description: 'Points at most; past it, an evenly spaced sample of the indexed images in id order' }),
});

export const GalleryMapResponse = z
  .object({
    model: ModelRef,
    total: z.number().int().openapi({ description: 'Indexed images that match (more than points.length when sampled)' }),
    explainedVariance: z
      .array(z.number().min(0).max(1))
      .min(2)
      .max(2)
      .openapi({ description: 'Share of the total variance along x and along y' }),
    points: z.array(
      z.object({
        id: z.string(),
        x: z.number(),
        y: z.number(),
        label: z.string().optional(),
      }),
    ),
  })
  .openapi('GalleryMap');

/** k in a query string (?k=5: text, coerced). */
export const K = z.coerce.number().int().min(1).max(1000);
/** k in a JSON body: a JSON integer (no coercion: true, [5] and "5" are errors there). */
export const KJson = z.number().int().min(1).max(1000);

/** The largest finite float32: vectors are searched as Float32Array, where anything larger is ±Infinity. */
export const FLOAT32_MAX = 3.4028234663852886e38;

export const SearchVector = z
  .array(z.number())
  .min(1)
  .superRefine((v, ctx) => {
    const i = v.findIndex((x) => !(Math.abs(x) <= FLOAT32_MAX));
    if (i >= 0) ctx.addIssue({ code: 'custom', path: [i], message: `${v[i]} is not finite as float32 (|x| ≤ ${FLOAT32_MAX})` });
  });

export const SearchJson = z
  .object({
    id: GalleryId.optional(),
    vector: SearchVector.optional(),
    base64: Base64Image.optional(),
    k: KJson.default(10),
    filter: z.object({ label: GalleryLabel.optional() }).strict().optional(),
  })
  .strict()
  .refine((b) => [b.id, b.vector, b.base64].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of id, vector or base64',
    path: ['id'],
  })
  .openapi('SearchRequest');

export const SearchQuery = z.object({ k: K.default(10), label: GalleryLabel.optional() });

export const SearchResponse = z
  .object({
    model: ModelRef,
    results: z.array(
      z.object({
        id: z.string(),
        score: z.number(),
        label: z.string().optional(),
        metadata: z.record(z.string(), z.unknown()).optional(),
      }),
    ),
  })
  .openapi('SearchResponse');

export const ClassifyQuery = z.object({
  method: z.enum(['knn', 'linear']).default('knn'),
  k: K.default(20),
});

export const ClassifyJson = z.object({ base64: Base64Image }).strict().openapi('ClassifyRequest');

export const ClassifyResponse = z
  .object({
    model: ModelRef,
    method: z.enum(['knn', 'linear']),
    predictions: z.array(z.object({ label: z.string(), probability: z.number() })),
  })
  .openapi('ClassifyResponse');

export const ModelState = z.enum(['serving', 'loading', 'available', 'failed', 'rejected']);

export const ModelEntry = z
  .object({
    version: z.string(),
    state: ModelState,
    latest: z.boolean(),
    createdAt: z.string().optional(),
    parent: z.string().nullable().optional(),
    metrics: z.record(z.string(), z.number().nullable()).optional(),
    representationDim: z.number().optional(),
    error: z.string().optional(),
  })
  .openapi('ModelEntry');

export const ModelsResponse = z.object({ current: z.string().nullable(), models: z.array(ModelEntry) }).openapi('Models');

// shared/ builds this with plain zod, perhaps before @hono/zod-openapi extended it, and zod gives a schema
// .openapi only when constructing it: a clone made here has it whatever the import order.
export const RetrainRequest = RetrainRequestCore.clone().openapi('RetrainRequest');

export const VersionParam = z.object({ version: z.string().min(1).max(64) });
export const IdParam = z.object({ id: GalleryId });
export const JobIdParam = z.object({ id: z.string().min(1).max(128) });
