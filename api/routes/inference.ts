import { knnVote } from '../../shared/eval/knn.js';
import { IndexDimensionError } from '../../shared/index/vector-index.js';
import { float32ArrayJson } from '../../shared/util/float32-json.js';
import { needs } from '../auth.js';
import type { AppDeps, App } from '../context.js';
import { bodyKind, formBody, formImages, fromBase64, jsonBody, prepare, rawBody, type RawImage } from '../input.js';
import { ApiError, badRequest, conflict, fromZod, notFound } from '../problem.js';
import { imageBody, problemResponses, route } from '../route.js';
import {
  ClassifyJson,
  ClassifyQuery,
  ClassifyResponse,
  EmbeddingsJson,
  EmbeddingsResponse,
  MAX_JSON_IMAGES,
  SearchJson,
  SearchQuery,
  SearchResponse,
} from '../schemas.js';
import type { Context } from 'hono';
import type { z } from 'zod';

/** Embeddings, search and classification: everything that runs images through the serving model. */
export function registerInference(app: App, deps: AppDeps): void {
  const { modelHost, decoder, config } = deps;

  route(
    app,
    {
      method: 'post',
      path: '/v1/embeddings',
      operationId: 'embedImages',
      tags: ['embeddings'],
      security: needs('read'),
      summary: 'Embed one or more images',
      description:
        'One image as the raw body (Content-Type image/*), multipart/form-data with one or more `image` parts, or JSON ' +
        `{"images":[{"base64":…}]} (at most ${MAX_JSON_IMAGES}). In a multipart or JSON batch a bad image gets its own error entry and the rest succeed.`,
      request: { body: imageBody(EmbeddingsJson, 'The image(s)') as never },
      responses: {
        200: { description: 'Embeddings (representation vectors)', content: { 'application/json': { schema: EmbeddingsResponse } } },
        ...problemResponses(400, 413, 415, 422, 503),
      },
    },
    async (c) => {
      const kind = bodyKind(c);
      let raws: (RawImage | ApiError)[];
      if (kind === 'image') raws = [await rawBody(c)];
      else if (kind === 'multipart') raws = await formImages(await formBody(c), MAX_JSON_IMAGES);
      else {
        const body = await jsonBody(c, EmbeddingsJson);
        raws = body.images.map((im, i) => attempt(() => fromBase64(im.base64, `images[${i}].base64`)));
      }
      const { pair, release } = modelHost.lease();
      // Hold places in the forming batch while decoding, so concurrent requests share a forward pass.
      const slot = pair.batcher.reserve(raws.filter((r) => !(r instanceof ApiError)).length);
      try {
        const prepared = await Promise.all(
          raws.map((r) => (r instanceof ApiError ? r : prepare(decoder, r, pair.preprocessing, config.maxBodyBytes).catch(asApiError))),
        );
        if (kind === 'image' && prepared[0] instanceof ApiError) throw prepared[0];
        const ok = prepared.filter((p): p is Float32Array => p instanceof Float32Array);
        const vectors = await slot.submitAll(ok);
        let j = 0;
        // Written by hand so the vectors print at float32 precision (shared/util/float32-json.ts): the same
        // JSON as EmbeddingsResponse describes, ~40% shorter than JSON.stringify's float64 digits.
        const data = prepared.map((p, index) =>
          p instanceof ApiError
            ? JSON.stringify({ index, error: p.toProblem(undefined, c.get('requestId')) })
            : `{"index":${index},"embedding":${float32ArrayJson(vectors[j++]!)}}`,
        );
        c.header('X-Model-Version', pair.version);
        const model = JSON.stringify({ version: pair.version });
        return c.body(`{"model":${model},"dimension":${pair.model.dimension},"data":[${data.join(',')}]}`, 200, { 'Content-Type': 'application/json' });
      } finally {
        slot.release();
        release();
      }
    },
  );

  route(
    app,
    {
      method: 'post',
      path: '/v1/search',
      operationId: 'searchGallery',
      tags: ['search'],
      security: needs('read'),
      summary: 'Find the most similar gallery images',
      description:
        'JSON {id | vector | base64, k, filter: {label}}, or an image as the raw body (or a multipart `image` part) with ?k=&label=. ' +
        'Cosine similarity, best first. Searching by id leaves that image out of the results.',
      request: {
        query: SearchQuery,
        body: imageBody(SearchJson, 'The query') as never,
      },
      responses: {
        200: { description: 'Nearest gallery images', content: { 'application/json': { schema: SearchResponse } } },
        ...problemResponses(400, 404, 409, 413, 415, 422, 503),
      },
    },
    async (c) => {
      const kind = bodyKind(c);
      let query: { id?: string; vector?: number[]; image?: RawImage; k: number; label?: string };
      if (kind === 'json') {
        const b = await jsonBody(c, SearchJson);
        query = {
          id: b.id,
          vector: b.vector,
          image: b.base64 !== undefined ? fromBase64(b.base64, 'base64') : undefined,
          k: b.k,
          label: b.filter?.label,
        };
      } else {
        const q = parseQuery(c, SearchQuery);
        const image = kind === 'image' ? await rawBody(c) : (await formImages(await formBody(c), 1))[0]!;
        query = { image, k: q.k, label: q.label };
      }
      const { pair, release } = modelHost.lease();
      try {
        let vector: Float32Array;
        const exclude: string[] = [];
        if (query.id !== undefined) {
          const entry = await pair.index.get(query.id);
          if (!entry) {
            const item = await deps.gallery.get(query.id);
            if (!item) throw notFound(`id: there is no gallery image ${query.id}`);
            throw conflict(`id: gallery image ${query.id} is not indexed under model ${pair.version} yet; retry shortly`);
          }
          vector = entry.vector;
          exclude.push(query.id);
        } else if (query.vector !== undefined) {
          if (query.vector.length !== pair.model.dimension)
            throw badRequest(`body.vector: has ${query.vector.length} numbers; model ${pair.version} embeds into ${pair.model.dimension}`, [
              { field: 'body.vector', message: `expected ${pair.model.dimension} numbers` },
            ]);
          vector = Float32Array.from(query.vector);
        } else {
          vector = (await pair.embedOne(() => prepare(decoder, query.image!, pair.preprocessing, config.maxBodyBytes)));
        }
        const hits = await pair.index.query(vector, query.k, { label: query.label, excludeIds: exclude });
        c.header('X-Model-Version', pair.version);
        return c.json({
          model: { version: pair.version },
          results: hits.map((h) => ({
            id: h.id,
            score: h.score,
            ...(h.label !== undefined ? { label: h.label } : {}),
            ...(h.metadata !== undefined ? { metadata: h.metadata } : {}),
          })),
        });
      } catch (err) {
        if (err instanceof IndexDimensionError) throw badRequest(`body.vector: ${err.message}`, [{ field: 'body.vector', message: err.message }]);
        throw err;
      } finally {
        release();
      }
    },
  );

  route(
    app,
    {
      method: 'post',
      path: '/v1/classify',
      operationId: 'classifyImage',
      tags: ['classify'],
      security: needs('read'),
      summary: 'Classify an image',
      description:
        'method=knn: temperature-weighted vote of the k most similar labelled gallery images (T=0.07). ' +
        "method=linear: the checkpoint's linear-probe head. Image as raw body, multipart `image`, or JSON {base64}.",
      request: { query: ClassifyQuery, body: imageBody(ClassifyJson, 'The image') as never },
      responses: {
        200: { description: 'Class probabilities, most likely first', content: { 'application/json': { schema: ClassifyResponse } } },
        ...problemResponses(400, 409, 413, 415, 422, 503),
      },
    },
    async (c) => {
      const q = parseQuery(c, ClassifyQuery);
      const kind = bodyKind(c);
      const image =
        kind === 'image'
          ? await rawBody(c)
          : kind === 'multipart'
            ? (await formImages(await formBody(c), 1))[0]!
            : fromBase64((await jsonBody(c, ClassifyJson)).base64, 'base64');
      const { pair, release } = modelHost.lease();
      try {
        if (q.method === 'linear' && !pair.model.linear)
          throw conflict(`model ${pair.version} has no linear-probe head; use method=knn with a labelled gallery`);
        const v = await pair.embedOne(() => prepare(decoder, image, pair.preprocessing, config.maxBodyBytes));
        let predictions: { label: string; probability: number }[];
        if (q.method === 'linear') {
          const out = await pair.model.linear!(v!, 1);
          predictions = out.classNames.map((label, j) => ({ label, probability: out.probabilities[0]![j]! }));
        } else {
          const hits = await pair.index.query(v!, q.k, { labelled: true });
          if (hits.length === 0)
            throw conflict('the gallery has no labelled images to vote; add images with a label (POST /v1/images) or use method=linear');
          const names = [...new Set(hits.map((h) => h.label!))];
          const probs = knnVote(
            hits.map((h) => h.score),
            hits.map((h) => names.indexOf(h.label!)),
            q.k,
            config.knnTemperature,
            names.length,
          );
          predictions = names.map((label, j) => ({ label, probability: probs[j]! }));
        }
        predictions.sort((a, b) => b.probability - a.probability || (a.label < b.label ? -1 : 1));
        c.header('X-Model-Version', pair.version);
        return c.json({ model: { version: pair.version }, method: q.method, predictions });
      } finally {
        release();
      }
    },
  );
}

function attempt<T>(f: () => T): T | ApiError {
  try {
    return f();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
}

function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  throw err;
}

export function parseQuery<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) throw fromZod(parsed.error, 'query');
  return parsed.data;
}
