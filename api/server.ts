/**
 * Node entry: reads the environment, builds the app's dependencies (S3 store, sharp decoder, model host
 * following models/latest.json; the forward pass on onnxruntime where the checkpoint has model.onnx,
 * api/node/onnx-runner.ts, else on this thread's tfjs backend) and serves with @hono/node-server. `startApiServer` is what the
 * `npm start` orchestrator and the tests call; running this file directly serves from process.env.
 */
import { serve, type ServerType } from '@hono/node-server';
import * as tf from '@tensorflow/tfjs';
import { unwatchFile, watchFile } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { z } from 'zod';
import { systemClock, type Clock } from '../shared/jobs/clock.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { createImageDecoder } from '../shared/node/image-decode.js';
import { s3ConfigFromEnv } from '../shared/store/config.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { createS3Store } from '../shared/store/s3-store.js';
import { createApp } from './app.js';
import { checkpointSource, runInThisThread, type RunNetwork } from './checkpoint-source.js';
import { hasOnnx, runOnOnnxRuntime } from './node/onnx-runner.js';
import type { App } from './context.js';
import type { ApiKey, ApiKeys } from './auth.js';
import { ApiEnvError, CommonApiEnv, apiConfig, ApiKeysText, intSetting, parseSettings } from './config.js';
import { Gallery } from './gallery.js';
import { storeJobs } from './jobs.js';
import { createJsonLogger, type Logger, type LogLevel } from '../shared/log.js';
import { ApiMetrics, Gauge } from './metrics.js';
import { ModelHost } from './model-host.js';
import type { ModelSource } from './model-source.js';

/** Every setting, with its default (listed in the README): the common ones plus Node's. */
export const ApiEnv = CommonApiEnv.extend({
  PORT: intSetting('PORT', 0, 65535).default(8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  /** Instead of API_KEYS: a file in its format, re-read when it changes (rotation without restart). */
  API_KEYS_FILE: z.string().min(1).optional(),
  /** 'true': serve /v1 without API keys on a non-loopback HOST (for an API guarded by something else). */
  ALLOW_OPEN_API: z
    .enum(['true', 'false'], { error: 'ALLOW_OPEN_API must be true or false' })
    .default('false')
    .transform((v) => v === 'true'),
  /** 'auto': onnxruntime where the checkpoint has model.onnx and onnxruntime loads, tfjs otherwise. */
  SERVING_ENGINE: z.enum(['auto', 'onnxruntime', 'tfjs'], { error: "SERVING_ENGINE must be 'auto', 'onnxruntime' or 'tfjs'" }).default('auto'),
  /** Threads of one forward pass: onnxruntime's intra-op threads, or tfjs-wasm's for a checkpoint without model.onnx. */
  SERVING_THREADS: intSetting('SERVING_THREADS', 1, 256).default(() => Math.max(1, availableParallelism())),
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
  // Who may call /v1, settled before anything starts: keys, or loopback only, or an explicit opt-out.
  const hostname = opts.host ?? settings.HOST;
  if (settings.API_KEYS && settings.API_KEYS_FILE) throw new ApiEnvError('set API_KEYS or API_KEYS_FILE, not both');
  if (!settings.API_KEYS && !settings.API_KEYS_FILE && !settings.ALLOW_OPEN_API && !isLoopback(hostname))
    throw new ApiEnvError(
      `HOST ${hostname} is not a loopback address and no API keys are set, so anyone who can reach it could embed, search and change the gallery: ` +
        'set API_KEYS (or API_KEYS_FILE), or ALLOW_OPEN_API=true if something in front of the API guards it',
    );
  const keysFile = settings.API_KEYS_FILE ? new ApiKeysFile(settings.API_KEYS_FILE, await readKeysFile(settings.API_KEYS_FILE), logger) : null;
  // tfjs verifies every checkpoint and serves those without model.onnx (on this thread).
  if (opts.initBackend ?? true) await initNodeBackend({ env, threads: settings.SERVING_THREADS, log: (m) => logger.info('compute backend', { detail: m }) });
  const store = opts.store ?? createS3Store(s3ConfigFromEnv(env));
  const clock = opts.clock ?? systemClock;
  const metrics = new ApiMetrics();
  const stopProcessMetrics = addProcessMetrics(metrics);
  const decoder = createImageDecoder({ maxPixels: settings.MAX_PIXELS });
  const gallery = new Gallery(store, () => clock.now());
  const onTfjs: RunNetwork = runInThisThread;
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
  const config = { ...apiConfig(settings), ...(keysFile ? { apiKeys: keysFile } : {}) };
  if (!config.adminToken) logger.warn('ADMIN_TOKEN is not set: /admin routes answer 503');
  const app = createApp({ store, modelHost: host, models, gallery, jobs: storeJobs(store, clock), decoder, config, clock, logger, metrics });

  const port = opts.port ?? settings.PORT;
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
  const reach = new URL(url).host;
  if (config.apiKeys)
    logger.info('API keys required on /v1', { keys: describeKeys(config.apiKeys.current()), ...(keysFile ? { file: keysFile.file, reloads: 'on change' } : { from: 'API_KEYS' }) });
  else if (isLoopback(hostname)) logger.warn(`no API keys: open to anyone who can reach ${reach}`, { hint: 'set API_KEYS to require keys on /v1' });
  else logger.warn(`no API keys and ALLOW_OPEN_API=true: /v1 is open to anyone who can reach ${reach}`);
  keysFile?.watch();

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
      keysFile?.close();
      stopProcessMetrics();
    },
  };
}

/**
 * Leaks show here: tfjs tensors never disposed, JS objects kept alive (the heap after a major GC; the
 * heap in use and RSS also swing with garbage not yet collected), native memory that only RSS sees.
 */
function addProcessMetrics(metrics: ApiMetrics): () => void {
  const tensors = new Gauge('tfjs_tensors', 'Tensors alive in the tfjs engine (every model loaded, and any leaked).');
  const tensorBytes = new Gauge('tfjs_memory_bytes', 'Bytes held by tfjs tensors.');
  const rss = new Gauge('process_resident_memory_bytes', 'Resident set size of the API process.');
  const heap = new Gauge('nodejs_heap_used_bytes', 'V8 heap in use (JS objects).');
  const external = new Gauge('nodejs_external_memory_bytes', 'Memory outside the V8 heap that JS objects hold (Buffers, ArrayBuffers).');
  const afterGc = new Gauge('nodejs_heap_used_after_major_gc_bytes', 'V8 heap in use just after the last major (mark-sweep) collection: the live heap.');
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      if ((e as { detail?: { kind?: number } }).detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) afterGc.set({}, process.memoryUsage().heapUsed);
  });
  gc.observe({ entryTypes: ['gc'] });
  metrics.addCollected([tensors, tensorBytes, rss, heap, external, afterGc], () => {
    const m = tf.memory();
    tensors.set({}, m.numTensors);
    tensorBytes.set({}, m.numBytes);
    const mem = process.memoryUsage();
    rss.set({}, mem.rss);
    heap.set({}, mem.heapUsed);
    external.set({}, mem.external);
  });
  return () => gc.disconnect();
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/i.test(host);
}

const describeKeys = (keys: readonly ApiKey[]) => keys.map((k) => `${k.name}:${k.scopes.join('+')}`);

async function readKeysFile(file: string): Promise<ApiKey[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ApiEnvError(`API_KEYS_FILE ${file} cannot be read: ${(err as Error).message}`);
  }
  const r = ApiKeysText.safeParse(text);
  if (!r.success) throw new ApiEnvError(`invalid API settings: API_KEYS_FILE ${file}: ${r.error.issues.map((i) => i.message).join('; ')}`);
  return r.data;
}

/** How often API_KEYS_FILE is checked for changes (a stat; it is read again only when that changed). */
const KEYS_FILE_POLL_MS = 1000;

/** API_KEYS_FILE's keys, swapped in when the file changes; a broken edit is logged and the old keys stay. */
class ApiKeysFile implements ApiKeys {
  constructor(
    readonly file: string,
    private keys: readonly ApiKey[],
    private readonly logger: Logger,
  ) {}

  current(): readonly ApiKey[] {
    return this.keys;
  }

  private readonly onChange = () => {
    readKeysFile(this.file).then(
      (keys) => {
        this.keys = keys;
        this.logger.info('API keys reloaded', { file: this.file, keys: describeKeys(keys) });
      },
      (err: Error) => this.logger.error('API keys not reloaded; the previous keys stay in force', { file: this.file, error: err.message }),
    );
  };

  watch(): void {
    watchFile(this.file, { interval: KEYS_FILE_POLL_MS, persistent: false }, this.onChange);
  }

  close(): void {
    unwatchFile(this.file, this.onChange);
  }
}

// `tsx api/server.ts` serves from process.env.
if (import.meta.url === `file://${process.argv[1]}`) {
  startApiServer().catch((err: Error) => {
    console.error(JSON.stringify({ level: 'error', msg: 'API failed to start', error: err.message }));
    process.exit(1);
  });
}
