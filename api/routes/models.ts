import type { App, AppDeps } from '../context.js';
import { needs } from '../auth.js';
import { ModelsResponse, ModelEntry } from '../schemas.js';
import { problemResponses, route } from '../route.js';
import { unavailable } from '../problem.js';
import type { z } from 'zod';
import type { ModelSummary } from '../model-source.js';

type Entry = z.infer<typeof ModelEntry>;

/** Published versions with what this replica makes of them: serving, loading, failed (with why), … */
export function registerModels(app: App, deps: AppDeps): void {
  const { modelHost, models } = deps;

  route(
    app,
    {
      method: 'get',
      path: '/v1/models',
      operationId: 'listModels',
      tags: ['models'],
      security: needs('read'),
      summary: 'Published model versions, newest first, with metrics and state',
      responses: { 200: { description: 'Versions', content: { 'application/json': { schema: ModelsResponse } } } },
    },
    async (c) => {
      const status = modelHost.status();
      const summaries = await models.listVersions();
      const entries: Entry[] = summaries.map((s) => entry(s, status));
      // Versions that failed so badly their manifest is unreadable still get listed, with the error.
      for (const f of status.failures) {
        if (!entries.some((e) => e.version === f.version)) entries.push({ version: f.version, state: 'failed', latest: f.version === status.latest, error: f.error });
      }
      return c.json({ current: status.serving, models: entries });
    },
  );

  route(
    app,
    {
      method: 'get',
      path: '/v1/models/current',
      operationId: 'getCurrentModel',
      tags: ['models'],
      security: needs('read'),
      summary: 'The version serving requests',
      responses: {
        200: { description: 'The serving version', content: { 'application/json': { schema: ModelEntry } } },
        ...problemResponses(503),
      },
    },
    async (c) => {
      const pair = modelHost.current;
      if (!pair) throw unavailable(modelHost.status().reason ?? 'no model is loaded yet');
      const status = modelHost.status();
      return c.json({ ...entry(pair.model.summary, status), preprocessing: pair.preprocessing, indexSize: status.indexSize });
    },
  );
}

function entry(s: ModelSummary, status: ReturnType<AppDeps['modelHost']['status']>): Entry {
  const failure = status.failures.find((f) => f.version === s.version);
  const state: Entry['state'] =
    s.version === status.serving
      ? 'serving'
      : s.version === status.loading?.version
        ? 'loading'
        : failure
          ? 'failed'
          : s.details?.state === 'rejected'
            ? 'rejected'
            : 'available';
  return {
    version: s.version,
    state,
    latest: s.version === status.latest,
    ...(s.createdAt ? { createdAt: s.createdAt } : {}),
    ...(s.parent !== undefined ? { parent: s.parent } : {}),
    ...(s.metrics ? { metrics: s.metrics } : {}),
    ...(s.representationDim ? { representationDim: s.representationDim } : {}),
    ...(failure ? { error: failure.error } : {}),
  };
}
