import { pca } from '../../shared/eval/pca.js';
import { needs } from '../auth.js';
import type { App, AppDeps } from '../context.js';
import { problemResponses, route } from '../route.js';
import { GalleryMapQuery, GalleryMapResponse } from '../schemas.js';
import { parseQuery } from './inference.js';

/** Coordinates and shares to 6 significant digits: a picture needs no more, and the JSON is half as long. */
const round = (x: number) => Number(x.toPrecision(6));

/** The embedding map: the serving index's vectors projected to 2-D, for the console (and anyone plotting the gallery). */
export function registerGalleryMap(app: App, deps: AppDeps): void {
  const { modelHost } = deps;

  route(
    app,
    {
      method: 'get',
      path: '/v1/gallery/map',
      operationId: 'getGalleryMap',
      tags: ['gallery'],
      security: needs('read'),
      summary: 'The gallery projected to 2-D under the serving model',
      description:
        "The indexed gallery images' L2-normalised embeddings under the serving model, projected onto their first two principal " +
        'components (PCA, fitted on the points returned). An axis points the way its largest component is positive, so the same ' +
        'gallery always gives the same picture. Images written through another replica or model version are embedded first.',
      request: { query: GalleryMapQuery },
      responses: {
        200: { description: 'One point per indexed image (or per sampled one)', content: { 'application/json': { schema: GalleryMapResponse } } },
        ...problemResponses(400, 503),
      },
    },
    async (c) => {
      const q = parseQuery(c, GalleryMapQuery);
      const { pair, release } = modelHost.lease();
      try {
        const { entries, total } = await pair.index.entries({ label: q.label, limit: q.limit });
        const p = pca(entries.map((e) => e.vector), pair.index.dimension, 2);
        c.header('X-Model-Version', pair.version);
        return c.json({
          model: { version: pair.version },
          total,
          explainedVariance: p.explained.map(round),
          points: entries.map((e, i) => ({
            id: e.id,
            x: round(p.coords[i]![0]!),
            y: round(p.coords[i]![1]!),
            ...(e.label !== undefined ? { label: e.label } : {}),
          })),
        });
      } finally {
        release();
      }
    },
  );
}
