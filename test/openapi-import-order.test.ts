import { describe, expect, it } from 'vitest';

/**
 * Shared schemas are built with plain zod; api/schemas.ts gives some of them OpenAPI names. That must hold
 * when shared/ is loaded before any api module (as the worker's tests do), not only in the API's own order.
 * Each vitest file has its own module graph, so the imports below are the first of this file.
 */
describe('OpenAPI metadata of shared schemas', () => {
  it('survives shared/ being imported before the API', async () => {
    // Dynamic imports keep this order explicit: the shared module first, then anything from api/.
    const core = await import('../shared/jobs/schema.js');
    const { openApiDocument } = await import('../api/docs/document.js');

    const doc = (await openApiDocument()) as { components?: { schemas?: Record<string, unknown> } };
    const retrain = doc.components?.schemas?.['RetrainRequest'] as
      | { type?: string; additionalProperties?: unknown; properties?: Record<string, unknown> }
      | undefined;
    expect(retrain?.type).toBe('object');
    expect(retrain?.additionalProperties).toBe(false);
    expect(Object.keys(retrain?.properties ?? {}).sort()).toEqual(Object.keys(core.RetrainRequest.shape).sort());
  });
});
