import { z } from 'zod';
import { needs } from '../auth.js';
import { GalleryId, GalleryLabel, GalleryMetadata, type GalleryItem } from '../gallery.js';
import type { App, AppDeps } from '../context.js';
import { bodyKind, formBody, formImages, formText, fromBase64, jsonBody, prepare, rawBody, type RawImage } from '../input.js';
import { ApiError, badRequest, fromZod, notFound } from '../problem.js';
import { problemResponses, route } from '../route.js';
import { GalleryItemResponse, IdParam, ImageCreated, ImageJson, ImageList, ListQuery } from '../schemas.js';
import { parseQuery } from './inference.js';

const MAX_METADATA_BYTES = 16 * 1024;
/** Validates an upload when no model is serving yet (the index is built when one arrives). */
const PROBE_TARGET = { inputSize: 8, channels: 1 as const, mean: [0], std: [1] };

const RawQuery = z.object({ id: GalleryId.optional(), label: GalleryLabel.optional() });

/** The gallery lives in the bucket: while the store is unreachable these routes answer 503 (api/app.ts). */
const STORE_DOWN = {
  503: {
    description: 'The object store is unreachable (problem type urn:vicreg:problem:store-unavailable): retry after Retry-After seconds',
    content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
  },
};

/** Gallery CRUD: images + label + metadata in the bucket, embeddings in the serving index. */
export function registerGallery(app: App, deps: AppDeps): void {
  const { gallery, modelHost, decoder, config } = deps;
  const checkRoom = (id: string | undefined) => roomFor(gallery, config.galleryMaxItems ?? 0, id);

  route(
    app,
    {
      method: 'post',
      path: '/v1/images',
      operationId: 'addImage',
      tags: ['gallery'],
      security: needs('write'),
      summary: 'Add (or replace) a gallery image',
      description:
        'multipart/form-data with `image` and optional `id`, `label`, `metadata` (a JSON object as text); or JSON {base64, id, label, metadata}; ' +
        'or the image as the raw body with ?id=&label=. Without an id one is generated. An existing id is replaced.',
      request: {
        body: {
          required: true,
          content: {
            'multipart/form-data': {
              schema: {
                type: 'object',
                properties: {
                  image: { type: 'string', format: 'binary' },
                  id: { type: 'string' },
                  label: { type: 'string' },
                  metadata: { type: 'string', description: 'JSON object' },
                },
                required: ['image'],
              },
            },
            'application/json': { schema: ImageJson },
            'image/*': { schema: { type: 'string', format: 'binary' } },
          },
        } as never,
      },
      responses: {
        201: { description: 'Stored and indexed', content: { 'application/json': { schema: ImageCreated } } },
        ...problemResponses(400, 413, 415, 422),
        ...STORE_DOWN,
        507: {
          description: 'The gallery holds GALLERY_MAX_ITEMS images: a new id is refused (replacing one is allowed)',
          content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
        },
      },
    },
    async (c) => {
      const kind = bodyKind(c);
      let image: RawImage;
      let fields: { id?: string; label?: string; metadata?: Record<string, unknown> };
      if (kind === 'json') {
        const b = await jsonBody(c, ImageJson);
        image = fromBase64(b.base64, 'base64');
        fields = { id: b.id, label: b.label, metadata: b.metadata };
      } else if (kind === 'multipart') {
        const form = await formBody(c);
        image = (await formImages(form, 1))[0]!;
        const metaText = formText(form, 'metadata');
        let metadata: unknown;
        if (metaText !== undefined) {
          try {
            metadata = JSON.parse(metaText);
          } catch (err) {
            throw badRequest(`metadata: not valid JSON (${(err as Error).message})`, [{ field: 'metadata', message: 'malformed JSON' }]);
          }
        }
        const parsed = z
          .object({ id: GalleryId.optional(), label: GalleryLabel.optional(), metadata: GalleryMetadata.optional() })
          .safeParse({ id: formText(form, 'id'), label: formText(form, 'label'), metadata });
        if (!parsed.success) throw fromZod(parsed.error, '');
        fields = parsed.data;
      } else {
        image = await rawBody(c);
        fields = parseQuery(c, RawQuery);
      }
      if (fields.metadata && new TextEncoder().encode(JSON.stringify(fields.metadata)).length > MAX_METADATA_BYTES)
        throw badRequest(`metadata: larger than ${MAX_METADATA_BYTES} bytes as JSON`, [{ field: 'metadata', message: 'too large' }]);
      await checkRoom(fields.id);

      const leased = modelHost.current ? modelHost.lease() : null;
      try {
        // Decode before storing anything: a bad image must not enter the gallery.
        const x = await prepare(decoder, image, leased?.pair.preprocessing ?? PROBE_TARGET, config.maxBodyBytes);
        const id = fields.id ?? globalThis.crypto.randomUUID();
        const contentType = image.contentType && image.contentType !== 'application/octet-stream' ? image.contentType : 'application/octet-stream';
        const item = await gallery.put({ id, label: fields.label, metadata: fields.metadata, contentType, image: image.bytes });
        if (leased) {
          const [v] = await leased.pair.embed([x]);
          await modelHost.indexItem(leased.pair, item, v!);
        } else modelHost.noteChange(id);
        c.header('Location', `/v1/images/${encodeURIComponent(id)}`);
        return c.json({ id, model: leased ? { version: leased.pair.version } : null }, 201);
      } finally {
        leased?.release();
      }
    },
  );

  route(
    app,
    {
      method: 'get',
      path: '/v1/images',
      operationId: 'listImages',
      tags: ['gallery'],
      security: needs('read'),
      summary: 'List gallery images (by id, paged)',
      request: { query: ListQuery },
      responses: { 200: { description: 'A page', content: { 'application/json': { schema: ImageList } } }, ...problemResponses(400), ...STORE_DOWN },
    },
    async (c) => {
      const q = parseQuery(c, ListQuery);
      const page = await gallery.page(q.cursor, q.limit);
      const pair = modelHost.current;
      const items = await Promise.all(page.items.map(async (it) => view(it, pair ? await pair.index.has(it.id) : false)));
      return c.json({ items, nextCursor: page.nextCursor });
    },
  );

  route(
    app,
    {
      method: 'get',
      path: '/v1/images/{id}',
      operationId: 'getImage',
      tags: ['gallery'],
      security: needs('read'),
      summary: 'A gallery image’s label and metadata',
      request: { params: IdParam },
      responses: { 200: { description: 'The item', content: { 'application/json': { schema: GalleryItemResponse } } }, ...problemResponses(404), ...STORE_DOWN },
    },
    async (c) => {
      const id = c.req.param('id')!;
      const item = await gallery.get(id);
      if (!item) throw notFound(`there is no gallery image ${id}`);
      return c.json(view(item, (await modelHost.current?.index.has(id)) ?? false));
    },
  );

  route(
    app,
    {
      method: 'get',
      path: '/v1/images/{id}/content',
      operationId: 'getImageContent',
      tags: ['gallery'],
      security: needs('read'),
      summary: 'A gallery image’s bytes, as uploaded',
      request: { params: IdParam },
      responses: { 200: { description: 'The image' }, ...problemResponses(404), ...STORE_DOWN },
    },
    async (c) => {
      const id = c.req.param('id')!;
      const img = await gallery.image(id);
      if (!img) throw notFound(`there is no gallery image ${id}`);
      return new Response(new Uint8Array(img.body), { headers: { 'Content-Type': img.contentType, 'Content-Length': String(img.body.length) } });
    },
  );

  route(
    app,
    {
      method: 'delete',
      path: '/v1/images/{id}',
      operationId: 'deleteImage',
      tags: ['gallery'],
      security: needs('write'),
      summary: 'Remove a gallery image',
      request: { params: IdParam },
      responses: { 204: { description: 'Deleted' }, ...problemResponses(404), ...STORE_DOWN },
    },
    async (c) => {
      const id = c.req.param('id')!;
      if (!(await gallery.delete(id))) throw notFound(`there is no gallery image ${id}`);
      await modelHost.removeItem(id);
      return c.body(null, 204);
    },
  );
}

/** 507 when the gallery is full and `id` would add an image rather than replace one. */
async function roomFor(gallery: AppDeps['gallery'], max: number, id: string | undefined): Promise<void> {
  if (max <= 0) return;
  const n = await gallery.size();
  if (n < max || (id !== undefined && (await gallery.has(id)))) return;
  throw new ApiError(
    507,
    'gallery-full',
    'Gallery full',
    `the gallery holds ${n} images, this deployment's limit (GALLERY_MAX_ITEMS=${max}); delete images (DELETE /v1/images/{id}), replace an existing id, or raise GALLERY_MAX_ITEMS`,
    { limit: max, setting: 'GALLERY_MAX_ITEMS' },
  );
}

function view(it: GalleryItem, indexed: boolean) {
  return {
    id: it.id,
    ...(it.label !== undefined ? { label: it.label } : {}),
    ...(it.metadata !== undefined ? { metadata: it.metadata } : {}),
    contentType: it.contentType,
    bytes: it.bytes,
    createdAt: it.createdAt,
    indexed,
  };
}
