import type { Context, Next } from 'hono';
import { JobId } from '../../shared/jobs/schema.js';
import { sha256, timingSafeEqual } from '../auth.js';
import type { App, AppDeps, AppEnv } from '../context.js';
import { jsonBody, mediaType } from '../input.js';
import { lossSvg } from '../loss-svg.js';
import { VersionNotFoundError } from '../model-source.js';
import { ApiError, badRequest, conflict, notFound } from '../problem.js';
import { ModelConfig } from '../../shared/model/config.js';
import { inBackground, problemResponses, route } from '../route.js';
import { JobIdParam, RetrainRequest, VersionParam } from '../schemas.js';
import { z } from '@hono/zod-openapi';

/** Optional body of POST /admin/models/{version}/activate. */
const ActivateRequest = z
  .object({
    force: z.boolean().optional().openapi({
      description:
        'Activate even a version the publish gate rejected. The serving hosts still probe it before serving (finite, not collapsed outputs) and keep the old model if it fails.',
    }),
  })
  .strict()
  .openapi('ActivateRequest');

const JobSchema = z.record(z.string(), z.unknown()).openapi('Job', { description: 'A job file (request, state, progress, metrics)' });
const security = [{ Bearer: [] }];

/** Admin routes: retrain jobs and model activation, behind a bearer token. */
export function registerAdmin(app: App, deps: AppDeps): void {
  const { jobs, models, modelHost, config, logger } = deps;
  app.openAPIRegistry.registerComponent('securitySchemes', 'Bearer', { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN' });
  app.use('/admin/*', adminAuth(config.adminToken));

  route(
    app,
    {
      method: 'post',
      path: '/admin/retrain',
      operationId: 'queueRetrain',
      tags: ['admin'],
      summary: 'Queue a retraining job (the worker picks it up)',
      security,
      request: { body: { required: true, content: { 'application/json': { schema: RetrainRequest } } } },
      responses: {
        202: { description: 'Queued', content: { 'application/json': { schema: z.object({ job: JobSchema }) } } },
        ...problemResponses(400, 401, 415, 503),
      },
    },
    async (c) => {
      const t = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (t !== 'application/json') throw new ApiError(415, 'unsupported-media-type', 'Unsupported media type', `send the job request as application/json, not ${t || 'no Content-Type'}`);
      const request = await jsonBody(c, RetrainRequest);
      if (request.init !== undefined) await checkInit(request.init, request.model);
      const job = await jobs.create(request);
      logger.info('retrain job queued', { requestId: c.get('requestId'), job: job.id, dataset: request.dataset.kind });
      c.header('Location', `/admin/jobs/${job.id}`);
      return c.json({ job }, 202);
    },
  );

  route(
    app,
    {
      method: 'get',
      path: '/admin/jobs',
      operationId: 'listJobs',
      tags: ['admin'],
      summary: 'All jobs, newest first',
      security,
      responses: { 200: { description: 'Jobs', content: { 'application/json': { schema: z.object({ jobs: z.array(JobSchema) }) } } }, ...problemResponses(401, 503) },
    },
    async (c) => c.json({ jobs: await jobs.list() }),
  );

  route(
    app,
    {
      method: 'get',
      path: '/admin/jobs/{id}',
      operationId: 'getJob',
      tags: ['admin'],
      summary: 'One job: state, progress, metrics, result',
      security,
      request: { params: JobIdParam },
      responses: { 200: { description: 'The job', content: { 'application/json': { schema: JobSchema } } }, ...problemResponses(401, 404, 503) },
    },
    async (c) => c.json(await findJob(c)),
  );

  route(
    app,
    {
      method: 'get',
      path: '/admin/jobs/{id}/loss.svg',
      operationId: 'getJobLossSvg',
      tags: ['admin'],
      summary: 'The job’s loss curve as an SVG image',
      security,
      request: { params: JobIdParam },
      responses: { 200: { description: 'image/svg+xml' }, ...problemResponses(401, 404, 503) },
    },
    async (c) => {
      const job = await findJob(c);
      const svg = lossSvg(job.progress?.lossHistory ?? [], `job ${job.id} — ${job.state}`);
      return c.body(svg, 200, { 'Content-Type': 'image/svg+xml; charset=utf-8' });
    },
  );

  route(
    app,
    {
      method: 'post',
      path: '/admin/jobs/{id}/cancel',
      operationId: 'cancelJob',
      tags: ['admin'],
      summary: 'Cancel a job (queued, or running with no live worker: at once; running: within one step)',
      security,
      request: { params: JobIdParam },
      responses: { 202: { description: 'Cancel requested', content: { 'application/json': { schema: z.object({ job: JobSchema }) } } }, ...problemResponses(401, 404, 503) },
    },
    async (c) => {
      const id = c.req.param('id')!;
      const job = JobId.safeParse(id).success ? await jobs.cancel(id) : null;
      if (!job) throw notFound(`there is no job ${id}`);
      return c.json({ job }, 202);
    },
  );

  route(
    app,
    {
      method: 'post',
      path: '/admin/models/{version}/activate',
      operationId: 'activateModel',
      tags: ['admin'],
      summary: 'Point latest at a version (promote or roll back); this replica starts loading it at once',
      description:
        'A version the publish gate rejected answers 409 unless the body is {"force": true}. Whether forced or not, a version serves only once it loads, passes its sha256 checks and the sanity probe (finite, not collapsed outputs); otherwise the old model keeps serving and /v1/models, /readyz and model_load_failures_total say why.',
      security,
      request: {
        params: VersionParam,
        body: { required: false, description: 'Optional; no body means {"force": false}', content: { 'application/json': { schema: ActivateRequest } } },
      },
      responses: {
        202: {
          description: 'latest.json moved; the version serves once loaded, probed and indexed (see /v1/models)',
          content: { 'application/json': { schema: z.object({ latest: z.string(), serving: z.string().nullable() }) } },
        },
        ...problemResponses(400, 401, 404, 409, 415, 503),
      },
    },
    async (c) => {
      const version = c.req.param('version')!;
      const { force = false } = await activateBody(c);
      try {
        await models.activate(version, { force });
      } catch (err) {
        if (err instanceof VersionNotFoundError) throw notFound(err.message);
        if (err instanceof Error && err.name === 'CheckpointError') {
          const forceHint = !force && / with force to override$/.test(err.message);
          throw conflict(forceHint ? `${err.message}: send {"force": true} as the JSON body of this request` : err.message);
        }
        throw err;
      }
      logger.info('model activated', { requestId: c.get('requestId'), version, force });
      inBackground(c, modelHost.refresh());
      return c.json({ latest: version, serving: modelHost.current?.version ?? null }, 202);
    },
  );

  /** The activate body: none (or empty) → {}; otherwise application/json matching ActivateRequest. */
  async function activateBody(c: Context<AppEnv>): Promise<z.output<typeof ActivateRequest>> {
    const text = await c.req.text();
    if (text.trim() === '') return {};
    const t = mediaType(c);
    if (t !== 'application/json' && !t.endsWith('+json'))
      throw new ApiError(415, 'unsupported-media-type', 'Unsupported media type', `send the activation options as application/json, not ${t || 'no Content-Type'}`);
    return jsonBody(c, ActivateRequest);
  }

  /** A warm start must name a published version of the same network: a clear 400 now, not a failed job later. */
  async function checkInit(init: string, model: unknown): Promise<void> {
    const version = init === 'latest' ? await models.readLatest() : init;
    if (version === null) throw badRequest('body.init: nothing is published yet to start from', [{ field: 'body.init', message: 'no latest model' }]);
    const found = (await models.listVersions()).find((m) => m.version === version);
    if (!found) throw badRequest(`body.init: there is no published version ${version}`, [{ field: 'body.init', message: 'unknown version' }]);
    const parentModel = (found.details?.training as { config?: { model?: unknown } } | undefined)?.config?.model;
    if (model === undefined || parentModel === undefined) return;
    const [want, have] = [ModelConfig.safeParse(model), ModelConfig.safeParse(parentModel)];
    if (want.success && have.success && JSON.stringify(want.data) !== JSON.stringify(have.data))
      throw badRequest(`body.model: differs from the network of ${version}, which init continues from; leave model out to keep it`, [
        { field: 'body.model', message: 'different architecture from init' },
      ]);
  }

  async function findJob(c: Context<AppEnv>) {
    const id = c.req.param('id')!;
    const job = JobId.safeParse(id).success ? await jobs.get(id) : null;
    if (!job) throw notFound(`there is no job ${id}`);
    return job;
  }
}

/** Bearer check with a constant-time comparison (of SHA-256 digests, so lengths do not leak either). */
export function adminAuth(token: string | undefined) {
  const expected = token ? sha256(token) : null;
  return async (c: Context<AppEnv>, next: Next) => {
    if (!expected) throw new ApiError(503, 'admin-disabled', 'Admin routes disabled', 'no admin token is configured; set ADMIN_TOKEN and restart to enable /admin');
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    const ok = m ? timingSafeEqual(await sha256(m[1]!.trim()), await expected) : false;
    if (!ok) {
      throw new ApiError(
        401,
        'unauthorized',
        'Unauthorized',
        m ? 'the bearer token is wrong' : 'send Authorization: Bearer <ADMIN_TOKEN>',
        {},
        { 'WWW-Authenticate': 'Bearer realm="admin"' },
      );
    }
    await next();
  };
}
