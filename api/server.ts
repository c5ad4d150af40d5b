/**
 * Node entry: reads the environment, builds the app's dependencies (S3 store, sharp decoder, model host
 * following models/latest.json; by default the forward pass runs in a model thread, api/node/thread-runner.ts)
 * and serves with @hono/node-server. `startApiServer` is what the
 * `npm start` orchestrator and the tests call; running this file directly serves from process.env.
 */
import { serve, type ServerType } from '@hono/node-server';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { systemClock, type Clock } from '../shared/jobs/clock.js';
import { BackendEnv, initNodeBackend } from '../shared/node/backend-node.js';
import { setCpuScheduling } from '../shared/node/cpu-scheduling.js';
import { createImageDecoder } from '../shared/node/image-decode.js';
import { s3ConfigFromEnv } from '../shared/store/config.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { createS3Store } from '../shared/store/s3-store.js';
import { createApp } from './app.js';
import { checkpointSource, runInThisThread, type RunNetwork } from './checkpoint-source.js';
import { hasOnnx, runOnOnnxRuntime } from './node/onnx-runner.js';
import { runInModelThread } from './node/thread-runner.js';
import type { App } from './context.js';
import { ApiEnvError, CommonApiEnv, apiConfig, intSetting, parseSettings } from './config.js';
import { Gallery } from './gallery.js';
import { storeJobs } from './jobs.js';
import { createJsonLogger, type Logger, type LogLevel } from '../shared/log.js';
import { ApiMetrics } from './metrics.js';
import { ModelHost } from './model-host.js';
import type { ModelSource } from './model-source.js';

/** Every setting, with its default (listed in the README): the common ones plus Node's. */
export const ApiEnv = CommonApiEnv.extend({
  PORT: intSetting('PORT', 0, 65535).default(8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  /** 'on': the forward pass runs in a worker thread (HTTP and decoding overlap with it); 'off': on the event loop. */
  /** 'auto': onnxruntime where the checkpoint has model.onnx and onnxruntime loads, tfjs otherwise. */
  SERVING_ENGINE: z.enum(['auto', 'onnxruntime', 'tfjs'], { error: "SERVING_ENGINE must be 'auto', 'onnxruntime' or 'tfjs'" }).default('auto'),
  /** onnxruntime's threads for one forward pass. */
  SERVING_THREADS: intSetting('SERVING_THREADS', 1, 256).default(() => Math.max(1, availableParallelism())),
  MODEL_THREAD: z.enum(['on', 'off'], { error: "MODEL_THREAD must be 'on' or 'off'" }).default('on'),
  /** Model threads in the pool (one batch each, computing at once); default: one per core. */
  MODEL_THREADS: intSetting('MODEL_THREADS', 1, 64).default(() => Math.max(1, availableParallelism())),
  /** wasm threads inside each model thread (1: the pool, not pthreads, spreads work over the cores). */
  MODEL_THREAD_WASM_THREADS: intSetting('MODEL_THREAD_WASM_THREADS', 1, 64).default(1),
  /**
   * 'batch': every thread of the server runs under Linux's SCHED_BATCH (a waking thread does not preempt a
   * running forward pass; shared/node/cpu-scheduling.ts); 'normal': the policy is left as the process started.
   */
  CPU_SCHEDULING: z.enum(['batch', 'normal'], { error: "CPU_SCHEDULING must be 'batch' or 'normal'" }).default('batch'),
});
export type ApiEnv = z.output<typeof ApiEnv>;

export { ApiEnvError };

export function parseApiEnv(env: Record<string, string | undefined>): ApiEnv {
  return parseSettings(ApiEnv, env);
}

export interface StartApiOptions {
  /** Settings as environment variables (default process.env); explicit options below win. */
  env?: Record<string, string | undefined>;
  /** A ready store (the orchestrator's local S3); default: S3 from the S3_* variables. */
  store?: ObjectStore;
  port?: number;
  host?: string;
  logger?: Logger;
  clock?: Clock;
  /** Override the model source (default: checkpoints in the store). */
  models?: ModelSource;
  /** Pick the tfjs backend first (default true; tests that already chose one pass false). */
  initBackend?: boolean;
  /** Resolve only once the first model serves (or failed); default false. */
  waitForModel?: boolean;
  /** Overrides of the parsed environment. */
  settings?: Partial<ApiEnv>;
  /** Overrides of the HTTP server's limits (HTTP_LIMITS; tests shorten the timeouts). */
  httpLimits?: Partial<HttpLimits>;
}

export interface HttpLimits {
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
}

/**
 * Node's HTTP server limits. Its defaults hold a request whose body trickles in for 5 minutes and accept
 * any number of connections, so a handful of slow clients can pin memory and sockets for free.
 */
export const HTTP_LIMITS: HttpLimits = {
  // Whole request (headers + body) must arrive within 30 s: the largest body (MAX_BODY_BYTES, 10 MB by
  // default) needs ~2.7 Mbit/s for that; a slower upload, or a trickle, gets 408 and the connection closed.
  requestTimeoutMs: 30_000,
  // Headers are a few hundred bytes; 10 s is generous for a real client.
  headersTimeoutMs: 10_000,
  // An idle keep-alive connection is closed after 5 s (Node's default), freeing its slot under maxConnections.
  keepAliveTimeoutMs: 5_000,
  // Past this, new connections are refused outright: far above the load the model can serve on a few cores
  // (the bench peaks at 32 clients), low enough that buffered bodies (up to MAX_BODY_BYTES each) stay bounded.
  maxConnections: 512,
};

export interface ApiServer {
  url: string;
  port: number;
  app: App;
  host: ModelHost;
  metrics: ApiMetrics;
  close(): Promise<void>;
}

export async function startApiServer(opts: StartApiOptions = {}): Promise<ApiServer> {
  const env = opts.env ?? process.env;
  const settings = { ...parseApiEnv(env), ...opts.settings };
  const logger = opts.logger ?? createJsonLogger({ level: settings.LOG_LEVEL as LogLevel });
  const threaded = settings.MODEL_THREAD === 'on';
  // Before any model thread starts, so they inherit it.
  if (settings.CPU_SCHEDULING === 'batch') {
    const sched = await setCpuScheduling('batch');
    if (sched.applied) logger.info('CPU scheduling: SCHED_BATCH on every thread');
    else logger.warn('CPU scheduling left as it was', { reason: sched.reason });
  }
  // With a model thread, this thread's backend only loads checkpoints to verify them: one wasm thread is plenty.
  if (opts.initBackend ?? true)
    await initNodeBackend({ env, ...(threaded ? { threads: 1 } : {}), log: (m) => logger.info('compute backend', { detail: m }) });
  const store = opts.store ?? createS3Store(s3ConfigFromEnv(env));
  const clock = opts.clock ?? systemClock;
  const metrics = new ApiMetrics();
  const decoder = createImageDecoder({ maxPixels: settings.MAX_PIXELS });
  const gallery = new Gallery(store, () => clock.now());
  const backend = BackendEnv.safeParse(env);
  const onTfjs: RunNetwork = threaded
    ? runInModelThread({
        backend: backend.success ? backend.data.VICREG_BACKEND : 'auto',
        threads: settings.MODEL_THREAD_WASM_THREADS,
        poolSize: settings.MODEL_THREADS,
        env,
        onError: (err) => logger.warn('model thread did not close cleanly', { err }),
      })
    : runInThisThread;
  const onOnnx = runOnOnnxRuntime({ threads: settings.SERVING_THREADS });
  const engine = settings.SERVING_ENGINE;
  const run: RunNetwork = async (checkpoint) => {
    if (engine !== 'tfjs' && hasOnnx(checkpoint)) {
      try {
        return await onOnnx(checkpoint);
      } catch (err) {
        if (engine === 'onnxruntime') throw err;
        logger.warn('onnxruntime cannot serve this checkpoint; serving it on tfjs', { version: checkpoint.manifest.version, err: err as Error });
      }
    } else if (engine === 'onnxruntime') {
      throw new Error(`checkpoint ${checkpoint.manifest.version} has no model.onnx, which SERVING_ENGINE=onnxruntime needs (auto serves it on tfjs)`);
    }
    return onTfjs(checkpoint);
  };
  const models = opts.models ?? checkpointSource(store, { run });
  const host = new ModelHost({
    source: models,
    store,
    gallery,
    decoder,
    metrics,
    logger,
    batch: { maxBatch: settings.BATCH_MAX, maxWaitMs: settings.BATCH_WAIT_MS },
    now: () => clock.now(),
  });
  const config = apiConfig(settings);
  if (!config.adminToken) logger.warn('ADMIN_TOKEN is not set: /admin routes answer 503');
  const app = createApp({ store, modelHost: host, models, gallery, jobs: storeJobs(store, clock), decoder, config, clock, logger, metrics });

  const port = opts.port ?? settings.PORT;
  const hostname = opts.host ?? settings.HOST;
  const limits = { ...HTTP_LIMITS, ...opts.httpLimits };
  const serverOptions = {
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs), // Node requires ≤ requestTimeout
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // How often Node checks those timeouts (default 30 s, which would let a 30 s timeout run to 60 s).
    connectionsCheckingInterval: Math.min(5_000, Math.max(50, Math.round(limits.requestTimeoutMs / 5))),
  };
  const { server, actualPort } = await new Promise<{ server: ServerType; actualPort: number }>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port, hostname, serverOptions }, (info) => resolve({ server: s, actualPort: info.port }));
    (s as { maxConnections?: number }).maxConnections = limits.maxConnections;
    s.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === 'EADDRINUSE' ? `port ${port} on ${hostname} is in use; set PORT to a free port` : `cannot listen on ${hostname}:${port}: ${err.message}`)),
    );
  });
  const url = `http://${hostname.includes(':') ? `[${hostname}]` : hostname}:${actualPort}`;
  logger.info('API listening', { url, store: store.description, docs: `${url}/docs` });

  if (opts.waitForModel) await host.refresh();
  host.start(settings.POLL_INTERVAL_MS);

  return {
    url,
    port: actualPort,
    app,
    host,
    metrics,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections would hold close() open; end them.
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      await host.stop();
    },
  };
}

// `tsx api/server.ts` serves from process.env.
if (import.meta.url === `file://${process.argv[1]}`) {
  startApiServer().catch((err: Error) => {
    console.error(JSON.stringify({ level: 'error', msg: 'API failed to start', error: err.message }));
    process.exit(1);
  });
}
