/**
 * Cloudflare Workers entry: the same Hono app as the Node server (api/app.ts), with the edge's
 * implementations of its ports: R2 for the bucket, tfjs on wasm from a precompiled module for the
 * model, @jsquash wasm codecs for images, and the gallery index in a Durable Object. Configured by
 * infra/wrangler.jsonc; built and run locally by scripts/edge-local.ts (`npm run dev:edge`).
 */
import * as tf from '@tensorflow/tfjs';
import simdWasm from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-simd.wasm';
import pngWasm from '../../node_modules/@jsquash/png/codec/pkg/squoosh_png_bg.wasm';
import jpegWasm from '../../node_modules/@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm';
import webpWasm from '../../node_modules/@jsquash/webp/codec/dec/webp_dec.wasm';
import { z } from 'zod';
import { systemClock } from '../../shared/jobs/clock.js';
import { createJsonLogger, type Logger } from '../../shared/log.js';
import { createApp } from '../app.js';
import { checkpointSource, runInThisThread } from '../checkpoint-source.js';
import { CommonApiEnv, apiConfig, parseSettings } from '../config.js';
import type { App } from '../context.js';
import { Gallery } from '../gallery.js';
import { storeJobs } from '../jobs.js';
import { ApiMetrics } from '../metrics.js';
import { ApiError, problemResponse } from '../problem.js';
import type { DurableObjectNamespace, ExecutionContext, R2Bucket } from './cf-types.js';
import { EdgeHost } from './edge-host.js';
import { storeErrorsFromRpc, type GalleryIndexStub } from './gallery-index-do.js';
import { createEdgeImageDecoder } from './image-decode.js';
import { R2Store } from './r2-store.js';
import { initEdgeWasmBackend } from './tfjs-wasm.js';

export { GalleryIndex } from './gallery-index-do.js';

/** The bindings and vars infra/wrangler.jsonc declares (secrets such as ADMIN_TOKEN arrive as vars). */
export interface EdgeEnv {
  BUCKET: R2Bucket;
  GALLERY_INDEX: DurableObjectNamespace<GalleryIndexStub>;
  [setting: string]: unknown;
}

/** The edge's settings: the common ones plus the compute backend (wasm, or cpu to compare). */
export const EdgeApiEnv = CommonApiEnv.extend({
  VICREG_BACKEND: z.enum(['auto', 'wasm', 'cpu'], { error: "VICREG_BACKEND must be 'auto', 'wasm' or 'cpu' at the edge" }).default('auto'),
});

interface Isolate {
  app: App;
  host: EdgeHost;
}

/** One app per isolate, built by the first request (bindings arrive with requests, not at load). */
let isolate: Promise<Isolate> | null = null;

async function createIsolate(env: EdgeEnv): Promise<Isolate> {
  const settings = parseSettings(EdgeApiEnv, env);
  const logger = createJsonLogger({ level: settings.LOG_LEVEL });
  await initBackend(settings.VICREG_BACKEND, logger);
  const store = new R2Store(env.BUCKET, 'R2 bucket (binding BUCKET)');
  const clock = systemClock;
  const metrics = new ApiMetrics();
  const decoder = createEdgeImageDecoder({ codecs: { png: pngWasm, jpeg: jpegWasm, webp: webpWasm }, maxPixels: settings.MAX_PIXELS });
  const gallery = new Gallery(store, () => clock.now());
  const models = checkpointSource(store, { run: runInThisThread });
  const galleryIndexId = env.GALLERY_INDEX.idFromName('gallery');
  const host = new EdgeHost({
    source: models,
    gallery,
    decoder,
    index: () => storeErrorsFromRpc(env.GALLERY_INDEX.get(galleryIndexId)),
    metrics,
    logger,
    maxBatch: settings.BATCH_MAX,
    pollMs: settings.POLL_INTERVAL_MS,
    now: () => clock.now(),
  });
  const config = apiConfig(settings);
  if (!config.adminToken) logger.warn('ADMIN_TOKEN is not set: /admin routes answer 503 (wrangler secret put ADMIN_TOKEN)');
  // No loopback at the edge: an open /v1 is the operator's choice, said once per isolate (its first request).
  if (!config.apiKeys) logger.warn('API_KEYS is not set: /v1 (embed, search, gallery writes) is open to anyone who can reach this Worker (wrangler secret put API_KEYS)');
  const app = createApp({ store, modelHost: host, models, gallery, jobs: storeJobs(store, clock), decoder, config, clock, logger, metrics });
  return { app, host };
}

/** wasm unless told otherwise; if wasm cannot start, cpu serves (much slower) and the log says why. */
async function initBackend(wanted: 'auto' | 'wasm' | 'cpu', logger: Logger): Promise<void> {
  if (wanted !== 'cpu') {
    try {
      await initEdgeWasmBackend(simdWasm);
      logger.info('compute backend', { backend: tf.getBackend() });
      return;
    } catch (err) {
      if (wanted === 'wasm') throw err;
      logger.warn('wasm backend unavailable; serving on cpu', { err: err as Error });
    }
  }
  if (!(await tf.setBackend('cpu'))) throw new Error('neither the wasm nor the cpu backend of tfjs started');
  logger.info('compute backend', { backend: tf.getBackend() });
}

export default {
  async fetch(request: Request, env: EdgeEnv, ctx: ExecutionContext): Promise<Response> {
    isolate ??= createIsolate(env).catch((err: unknown) => {
      isolate = null; // the next request tries again
      throw err;
    });
    let it: Isolate;
    try {
      it = await isolate;
    } catch (err) {
      console.error(JSON.stringify({ level: 'error', msg: 'edge API failed to start', error: (err as Error).message }));
      const problem = new ApiError(503, 'misconfigured', 'Service misconfigured', `the edge API cannot start: ${(err as Error).message}`);
      return problemResponse(problem.toProblem(new URL(request.url).pathname), { 'Retry-After': '30' });
    }
    await it.host.follow((work) => ctx.waitUntil(work));
    return it.app.fetch(request, env, ctx);
  },
};
