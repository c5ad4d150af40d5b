/**
 * `npm start`: the embedded default on one machine. Brings up the object store (a local S3-compatible
 * server under .data/s3 unless S3_ENDPOINT is set), publishes the bundled pretrained checkpoint when the
 * store has no model yet, starts the training worker as a child process and serves the API.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApiServer } from '../api/server.js';
import { ensureModelPublished } from './bundled-checkpoint.js';
import { storeFromEnv } from '../shared/node/local-s3.js';
import { createStderrLogger } from '../shared/node/stderr-log.js';
import { shutdownOnSignal, superviseChild, type Supervisor } from './supervise.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const logger = createStderrLogger({ base: { component: 'start' } });
const log = (msg: string, fields: Record<string, unknown> = {}): void => logger.info(msg, fields);

async function main(): Promise<void> {
  const env = { ...process.env };
  // Handlers first, so a signal in any state (starting up, worker dead or restarting) stops us in time:
  // the worker gets SIGTERM, then SIGKILL if it has not exited within its own bound plus a margin.
  const workerStopMs = (Number(env['SHUTDOWN_TIMEOUT_MS']) || 20_000) + 5_000;
  const killWaitMs = 2_000;
  let stopping = false;
  let worker: Supervisor | null = null;
  let api: { close(): Promise<void> } | null = null;
  let s3: { close(): Promise<void> } | null = null;
  const onSignal = shutdownOnSignal({
    timeoutMs: workerStopMs + killWaitMs + 3_000,
    log: (level, msg, fields) => logger[level](msg, fields),
    exit: (code) => process.exit(code),
    onForcedExit: () => void worker?.current()?.kill('SIGKILL'), // leave no orphan behind
    shutdown: async () => {
      stopping = true;
      await Promise.all([worker?.stop(), api?.close()]);
      await s3?.close();
    },
  });
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const local = await storeFromEnv(env, { localDir: env['S3_LOCAL_DIR'] || path.join(root, '.data/s3') });
  s3 = local;
  if (stopping) return;
  if (local.local) {
    log('local S3-compatible server started', { endpoint: local.local.endpoint, bucket: local.local.bucket, data: local.local.dir });
    Object.assign(env, local.local.env);
  } else {
    log('using S3 store', { store: local.store.description });
  }

  const published = await ensureModelPublished(local.store, path.join(root, 'checkpoints/bundled'));
  log(published.action === 'none' ? 'store already has a model' : 'bundled checkpoint published', published);
  if (stopping) return;

  // A per-run admin token for the local demo, unless one is configured.
  if (!env['ADMIN_TOKEN']) {
    env['ADMIN_TOKEN'] = randomBytes(18).toString('base64url');
    log('ADMIN_TOKEN was not set; generated one for this run', { ADMIN_TOKEN: env['ADMIN_TOKEN'] });
  }

  // The trainer runs in its own process: training steps are long synchronous compute and would stall
  // the API's event loop. If it dies (SIGKILL, OOM) it is restarted with back-off; its job's lease
  // expires after LEASE_SECONDS and the new worker resumes it from its last snapshot.
  if (env['START_WORKER'] !== 'false') {
    worker = superviseChild({
      name: 'worker',
      log: (level, msg, fields) => logger[level](msg, fields),
      stopTimeoutMs: workerStopMs,
      killWaitMs,
      spawn: () =>
        spawn(process.execPath, ['--import', 'tsx', path.join(root, 'gpu-worker/main.ts')], {
          env,
          stdio: ['ignore', 'inherit', 'inherit'],
        }),
    });
  }

  let server;
  try {
    server = await startApiServer({ env, store: local.store, waitForModel: true });
  } catch (e) {
    await worker?.stop(); // do not leave an orphaned worker behind
    throw e;
  }
  api = server;
  if (stopping) return void server.close();
  log('ready', {
    api: server.url,
    docs: `${server.url}/docs`,
    try: `curl -s -X POST ${server.url}/v1/embeddings -H 'content-type: image/png' --data-binary @some-image.png`,
  });
}

main().catch((err) => {
  process.stderr.write(`npm start failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
