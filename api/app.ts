import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { IndexDimensionError } from '../shared/index/vector-index.js';
import { StoreUnavailableError } from '../shared/store/object-store.js';
import type { AppDeps, AppEnv, App } from './context.js';
import { NoModelError } from './serving-pair.js';
import { registerApiKeys } from './auth.js';
import { ApiError, problemResponse, storeUnavailable, unavailable } from './problem.js';
import { allowedMethods, problemResponses, route } from './route.js';
import { registerConsole } from './console/index.js';
import { registerDocs } from './docs/index.js';
import { registerAdmin } from './routes/admin.js';
import { registerGallery } from './routes/gallery.js';
import { registerGalleryMap } from './routes/gallery-map.js';
import { registerInference } from './routes/inference.js';
import { registerModels } from './routes/models.js';
import { ProblemSchema } from './schemas.js';

export type { AppDeps, ApiConfig } from './context.js';
export { DEFAULT_API_CONFIG } from './context.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The HTTP API, runtime-neutral: everything it touches (store, model host, gallery, jobs, decoder,
 * clock, logger) is passed in, so the same app serves from Node (api/server.ts) or a Workers entry.
 */
export function createApp(deps: AppDeps): App {
  const { config, logger, metrics, modelHost } = deps;
  const app: App = new OpenAPIHono<AppEnv>();
  app.openAPIRegistry.register('Problem', ProblemSchema);

  // Request id, access log and request metrics wrap everything (errors included: onError sets c.res).
  app.use('*', async (c, next) => {
    const incoming = c.req.header('x-request-id');
    const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : globalThis.crypto.randomUUID();
    c.set('requestId', requestId);
    const t0 = performance.now();
    await next();
    c.res.headers.set('X-Request-Id', requestId);
    const seconds = (performance.now() - t0) / 1000;
    const routeLabel = c.get('route') ?? 'unmatched';
    const labels = { route: routeLabel, method: c.req.method, status: String(c.res.status) };
    metrics.requests.inc(labels);
    metrics.latency.observe(labels, seconds);
    const quiet = routeLabel === '/metrics' || routeLabel === '/healthz' || routeLabel === '/readyz';
    (quiet ? logger.debug : logger.info)('request', {
      requestId,
      method: c.req.method,
      path: c.req.path,
      route: routeLabel,
      status: c.res.status,
      ms: Math.round(seconds * 10000) / 10,
    });
  });

  if (config.corsOrigins.length > 0) {
    app.use(
      '*',
      cors({
        origin: config.corsOrigins.includes('*') ? '*' : config.corsOrigins,
        allowHeaders: ['Content-Type', 'Authorization', 'X-Request-Id'],
        exposeHeaders: ['X-Request-Id', 'X-Model-Version', 'Location'],
        maxAge: 600,
      }),
    );
  }

  // After CORS (a preflight carries no key) and before any body is read.
  registerApiKeys(app, config.apiKeys);

  const tooLarge = () =>
    new ApiError(413, 'payload-too-large', 'Payload too large', `the request body is over the limit of ${config.maxBodyBytes} bytes (MAX_BODY_BYTES)`);
  app.use('*', async (c, next) => {
    if (c.req.method !== 'POST' && c.req.method !== 'PUT') return next();
    const declared = Number(c.req.header('content-length') ?? NaN);
    if (declared > config.maxBodyBytes) {
      // Read and discard (bounded) before answering: a client still sending would otherwise see a reset
      // connection instead of the 413.
      await drain(c.req.raw.body, DRAIN_CAP);
      return problem(c, tooLarge());
    }
    // With a Content-Length the HTTP parser reads no more than that; only a chunked body needs counting
    // as it streams. (bodyLimit touches the body stream, which on Node builds a full web Request per call.)
    if (!Number.isNaN(declared) && c.req.header('transfer-encoding') === undefined) return next();
    return bodyLimit({ maxSize: config.maxBodyBytes, onError: (cc) => problem(cc as Context<AppEnv>, tooLarge()) })(c, next);
  });

  app.onError((err, c) => {
    // The client went away mid-request (the body read rejects): not our failure, so no error log and no 5xx.
    // The request's signal tells, not the error: an S3 socket reset throws ECONNRESET too, and that is a 500.
    if (c.req.raw.signal?.aborted) {
      logger.debug('client closed the request', { requestId: c.get('requestId'), path: c.req.path, error: (err as Error)?.message ?? String(err) });
      return problem(c, new ApiError(CLIENT_CLOSED, 'client-closed-request', 'Client closed request', 'the client closed the connection before the request was answered'));
    }
    if (err instanceof ApiError) return problem(c, err);
    if (err instanceof NoModelError) return problem(c, unavailable(err.message));
    if (err instanceof StoreUnavailableError) {
      // An outage, not a bug: one line per request without a stack; the client is told to retry.
      logger.warn('object store unreachable', { requestId: c.get('requestId'), path: c.req.path, error: err.message });
      return problem(c, storeUnavailable());
    }
    if (err instanceof IndexDimensionError) return problem(c, new ApiError(400, 'invalid-request', 'Invalid request', err.message));
    if (err instanceof HTTPException) {
      const status = err.status;
      return problem(c, new ApiError(status, status === 413 ? 'payload-too-large' : 'http-error', err.message || 'HTTP error', err.message || `HTTP ${status}`));
    }
    logger.error('unhandled error', { requestId: c.get('requestId'), path: c.req.path, err: err as Error });
    return problem(c, new ApiError(500, 'internal', 'Internal error', `something went wrong on our side; quote request id ${c.get('requestId')} when reporting it`));
  });

  app.notFound((c) => {
    const allow = allowedMethods(app, c.req.path);
    if (allow) {
      return problem(
        c,
        new ApiError(405, 'method-not-allowed', 'Method not allowed', `${c.req.method} is not allowed on ${c.req.path}; use ${allow.join(', ')}`, {}, { Allow: allow.join(', ') }),
      );
    }
    return problem(c, new ApiError(404, 'not-found', 'Not found', `no route ${c.req.method} ${c.req.path}; see /docs or /openapi.json`));
  });

  // Operations.
  route(app, { method: 'get', path: '/healthz', operationId: 'healthz', tags: ['ops'], summary: 'Liveness', responses: { 200: { description: 'Alive' } } }, (c) => c.json({ status: 'ok' }));

  route(
    app,
    {
      method: 'get',
      path: '/readyz',
      operationId: 'readyz',
      tags: ['ops'],
      summary: 'Ready once a model is loaded and its gallery index is complete',
      responses: { 200: { description: 'Ready' }, ...problemResponses(503) },
    },
    (c) => {
      const s = modelHost.status();
      if (s.ready) return c.json({ status: 'ready', model: { version: s.serving, runtime: modelHost.current?.model.runtime ?? null }, indexSize: s.indexSize, loading: s.loading, failures: s.failures });
      return problem(c, new ApiError(503, 'not-ready', 'Not ready', s.reason ?? 'not ready', { loading: s.loading, failures: s.failures, latest: s.latest }, { 'Retry-After': '2' }));
    },
  );

  route(app, { method: 'get', path: '/metrics', operationId: 'metrics', tags: ['ops'], summary: 'Prometheus metrics', responses: { 200: { description: 'text/plain; version=0.0.4' } } }, (c) => {
    const s = modelHost.status();
    metrics.indexSize.reset();
    if (s.serving) metrics.indexSize.set({ version: s.serving }, s.indexSize);
    return c.body(metrics.render(), 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
  });

  registerInference(app, deps);
  registerGallery(app, deps);
  registerGalleryMap(app, deps);
  registerModels(app, deps);
  registerAdmin(app, deps);
  registerConsole(app);

  registerDocs(app);

  return app;
}

/** nginx's non-standard status for a request the client abandoned; never seen by the client. */
const CLIENT_CLOSED = 499;

/** Bytes of an over-limit body read and thrown away before the 413; beyond that the connection is cut. */
const DRAIN_CAP = 64 * 1024 * 1024;

async function drain(body: ReadableStream<Uint8Array> | null, cap: number): Promise<void> {
  if (!body) return;
  const reader = body.getReader();
  let seen = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      seen += value.byteLength;
      if (seen > cap) return void (await reader.cancel());
    }
  } catch {
    // The client went away: nothing to answer.
  }
}

function problem(c: Context<AppEnv>, err: ApiError): Response {
  return problemResponse(err.toProblem(new URL(c.req.url).pathname, c.get('requestId')), err.headers);
}
