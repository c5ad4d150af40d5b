/**
 * `npm run dev:edge`: the edge API in local workerd (scripts/edge-local.ts) with a local R2 bucket under
 * .data/edge, the bundled checkpoint published into it on first start, and the training worker running
 * against the same bucket, so retrain → publish → hot-load works as it does on Cloudflare.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { workerConfigFromEnv } from '../gpu-worker/config.js';
import { startWorker, type RunningWorker } from '../gpu-worker/worker.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { createStderrLogger } from '../shared/node/stderr-log.js';
import { ensureModelPublished } from './bundled-checkpoint.js';
import { buildEdge, startLocalEdge } from './edge-local.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const logger = createStderrLogger({ base: { component: 'dev:edge' } });

async function main(): Promise<void> {
  const env = process.env;
  const dataDir = env['EDGE_LOCAL_DIR'] || path.join(root, '.data/edge');
  const buildDir = path.join(dataDir, 'build');
  logger.info('building the Worker with wrangler', { config: 'infra/wrangler.jsonc' });
  const upload = await buildEdge(buildDir);
  logger.info('built', { upload });

  const adminToken = env['ADMIN_TOKEN'] || randomBytes(18).toString('base64url');
  if (!env['ADMIN_TOKEN']) logger.info('ADMIN_TOKEN was not set; generated one for this run', { ADMIN_TOKEN: adminToken });
  // Settings the Worker reads, from this environment over wrangler.jsonc's vars.
  const vars: Record<string, string> = { ADMIN_TOKEN: adminToken };
  for (const k of ['API_KEYS', 'GALLERY_MAX_ITEMS', 'CORS_ORIGINS', 'MAX_BODY_BYTES', 'MAX_PIXELS', 'BATCH_MAX', 'POLL_INTERVAL_MS', 'LOG_LEVEL', 'VICREG_BACKEND']) {
    if (env[k]) vars[k] = env[k]!;
  }
  const edge = await startLocalEdge({ buildDir, persistDir: dataDir, port: Number(env['PORT'] || 8787), host: env['HOST'] || '127.0.0.1', vars });
  const published = await ensureModelPublished(edge.store, path.join(root, 'checkpoints/bundled'));
  logger.info(published.action === 'none' ? 'bucket already has a model' : 'bundled checkpoint published', published);

  let worker: RunningWorker | null = null;
  if (env['START_WORKER'] !== 'false') {
    // In this process: the local bucket is reachable only through this process's Miniflare.
    const backend = await initNodeBackend({ log: (m) => logger.info('worker backend', { detail: m }) });
    worker = startWorker({ store: edge.store, config: workerConfigFromEnv(env), backend, logger: createStderrLogger({ base: { component: 'worker' } }) });
  }

  for (let i = 0; ; i++) {
    const r = await fetch(`${edge.url}/readyz`).catch(() => null);
    if (r?.ok) break;
    if (i === 600) throw new Error(`the Worker did not become ready: ${r ? await r.text() : 'no answer'}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  logger.info('ready', { api: edge.url, docs: `${edge.url}/docs`, try: `curl -s -X POST ${edge.url}/v1/embeddings -H 'content-type: image/png' --data-binary @some-image.png` });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    await worker?.stop(signal);
    await edge.close();
    process.exit(0);
  };
  // Miniflare's own signal hook exits at once, before the worker could snapshot and release its job:
  // replace it; shutdown closes Miniflare itself.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.removeAllListeners(sig);
    process.on(sig, () => void shutdown(sig));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`npm run dev:edge failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
