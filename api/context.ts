import type { OpenAPIHono } from '@hono/zod-openapi';
import type { ImageDecoder } from '../shared/image/decoder.js';
import type { Clock } from '../shared/jobs/clock.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import type { ApiKeys } from './auth.js';
import type { Gallery } from './gallery.js';
import type { JobsPort } from './jobs.js';
import type { Logger } from '../shared/log.js';
import type { ApiMetrics } from './metrics.js';
import type { ServingHost } from './serving-pair.js';
import type { ModelSource } from './model-source.js';

export interface ApiConfig {
  /** Largest accepted request body (and single image), bytes. */
  maxBodyBytes: number;
  /** Bearer token for /admin/*; undefined = admin routes answer 503. */
  adminToken?: string;
  /** Allowed CORS origins; ['*'] for any; [] = no CORS headers. */
  corsOrigins: string[];
  /** kNN classification temperature (the reference protocol's 0.07). */
  knnTemperature: number;
  /** API keys for /v1 (api/auth.ts); undefined = /v1 is open. */
  apiKeys?: ApiKeys;
  /** Gallery images at most (507 for a new id beyond); 0 or undefined = no limit. */
  galleryMaxItems?: number;
}

export const DEFAULT_API_CONFIG: ApiConfig = {
  maxBodyBytes: 10 * 1024 * 1024,
  corsOrigins: [],
  knnTemperature: 0.07,
};

export interface AppDeps {
  store: ObjectStore;
  /** The current (model, index) pair and the hot-loader. */
  modelHost: ServingHost;
  /** Checkpoint listing and activation. */
  models: ModelSource;
  gallery: Gallery;
  jobs: JobsPort;
  decoder: ImageDecoder;
  config: ApiConfig;
  clock: Clock;
  logger: Logger;
  metrics: ApiMetrics;
}

export type AppEnv = { Variables: { requestId: string; route: string } };
export type App = OpenAPIHono<AppEnv>;
