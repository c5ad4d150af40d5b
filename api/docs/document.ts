import { createApp, DEFAULT_API_CONFIG } from '../app.js';
import type { App, AppDeps } from '../context.js';
import { ApiMetrics } from '../metrics.js';
import { createMemoryLogger } from '../../shared/log.js';

/**
 * The OpenAPI document as /openapi.json serves it, without a store or a model: routes register their
 * descriptions when the app is built and touch their dependencies only when a request comes. For the
 * client generator and the lint and drift tests.
 */
export async function openApiDocument(origin = 'http://127.0.0.1:8080'): Promise<Record<string, unknown>> {
  const res = await documentationApp().request(`${origin}/openapi.json`);
  if (res.status !== 200) throw new Error(`/openapi.json answered ${res.status}`);
  return (await res.json()) as Record<string, unknown>;
}

/** The app with no store and no model: /openapi.json, /docs, /healthz and the console's page work. */
export function documentationApp(): App {
  return createApp({ config: DEFAULT_API_CONFIG, logger: createMemoryLogger(), metrics: new ApiMetrics() } as unknown as AppDeps);
}
