/**
 * `npm start`: the embedded default on one machine. Brings up the object store (a local S3-compatible
 * server under .data/s3 unless S3_ENDPOINT is set), publishes the bundled pretrained checkpoint when the
 * store has no model yet, starts the training worker as a child process and serves the API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApiServer } from '../api/server.js';
import { ensureModelPublished } from './bundled-checkpoint.js';
import { storeFromEnv } from '../shared/node/local-s3.js';
import { createStderrLogger } from '../shared/node/stderr-log.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const logger = createStderrLogger({ base: { component: 'start' } });
const log = (msg: string, fields: Record<string, unknown> = {}): void => logger.info(msg, fields);

async function main(): Promise<void> {
  const env = { ...process.env };
  const s3 = await storeFromEnv(env, { localDir: env['S3_LOCAL_DIR'] || path.join(root, '.data/s3') });
  if (s3.local) {
    log('local S3-compatible server started', { endpoint: s3.local.endpoint, bucket: s3.local.bucket, data: s3.local.dir });
    Object.assign(env, s3.local.env);
  } else {
    log('using S3 store', { store: s3.store.description });
  }

  const published = await ensureModelPublished(s3.store, path.join(root, 'checkpoints/bundled'));
  log(published.action === 'none' ? 'store already has a model' : 'bundled checkpoint published', published);

  // A per-run admin token for the local demo, unless one is configured.
  if (!env['ADMIN_TOKEN']) {
    env['ADMIN_TOKEN'] = randomBytes(18).toString('base64url');
    log('ADMIN_TOKEN was not set; generated one for this run', { ADMIN_TOKEN: env['ADMIN_TOKEN'] });
  }

  // The trainer runs in its own process: training steps are long synchronous compute and would stall
  // the API's event loop.
  let worker: ChildProcess | null = null;
  if (env['START_WORKER'] !== 'false') {
    worker = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'gpu-worker/main.ts')], {
      env,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    worker.on('exit', (code, signal) => log('worker exited', { code, signal }));
  }

  const api = await startApiServer({ env, store: s3.store, waitForModel: true });
  log('ready', {
    api: api.url,
    docs: `${api.url}/docs`,
    try: `curl -s -X POST ${api.url}/v1/embeddings -H 'content-type: image/png' --data-binary @some-image.png`,
  });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('shutting down', { signal });
    const workerExit = worker && worker.exitCode === null ? new Promise((r) => worker!.once('exit', r)) : null;
    worker?.kill('SIGTERM');
    await api.close();
    await workerExit;
    await s3.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((err) => {
  process.stderr.write(`npm start failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
